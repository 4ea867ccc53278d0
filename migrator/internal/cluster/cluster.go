// Package cluster is the seam between the migrator and its cluster-store
// backend, as database/sql/driver is between database/sql and a driver:
// package migrator reaches an etcd:// store only through the Backend
// registered here, and package migrator/etcdstore, imported for its side
// effect by a migrator's main package, registers the etcd one. A migrator
// whose main does not import it links no etcd, gRPC or protobuf code, and
// its module needs none of their requirements.
package cluster

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/store"
)

// DefaultRequestTimeout is etcd.DefaultRequestTimeout, the default of
// --etcd-timeout, written out: package migrator does not import package
// etcd (package migrator/etcdstore does not compile if they differ).
const DefaultRequestTimeout = 10 * time.Second

// Options are how the migrator reaches a cluster store: its endpoints and
// key prefix, TLS and credentials, and how it opens it.
type Options struct {
	Endpoints []string
	Prefix    string
	TLS       *tls.Config
	Username  string
	Password  string
	// RequestTimeout bounds each request to the cluster; 0 is the
	// backend's default.
	RequestTimeout time.Duration
	// ReadOnly opens the store without its lock; Create creates it when
	// its prefix holds none.
	ReadOnly, Create bool
}

// Backend is a cluster store the migrator can open.
type Backend interface {
	// Name is the store's name in messages and in "version --json":
	// "etcd".
	Name() string
	// ParseURL checks a store URL (etcd://host:port[,host:port]/prefix)
	// and splits it; its error never repeats a password in the URL.
	ParseURL(spec string) (endpoints []string, prefix string, err error)
	// Open opens the store. Its errors wrap store.ErrInUse for a store
	// locked by another migrator and fs.ErrNotExist for a prefix that
	// holds no store; a full cluster's is a *FullError.
	Open(ctx context.Context, opts Options) (Store, error)
	// Unavailable returns what each member answered when err is the
	// cluster not answering a request, and false when it is not.
	Unavailable(err error) ([]Member, bool)
	// Compacted returns the backend's error for a revision compacted
	// away while it was read when err is one, and nil when it is not.
	Compacted(err error) error
	// Changed returns the error in err that says the store changed
	// after the revision a WatchUnchanged target watches from, nil when
	// there is none.
	Changed(err error) error
}

// FullError is Open's error for a cluster whose database is full: the
// migrator passes Err on as it is, a refusal rather than a cluster that
// cannot be reached.
type FullError struct{ Err error }

func (e *FullError) Error() string { return e.Err.Error() }
func (e *FullError) Unwrap() error { return e.Err }

// Store is an open cluster store.
type Store interface {
	store.Store
	// Prefix is the store's key prefix.
	Prefix() string
	// ClusterStatus reads the store's generation, its lock and its
	// cluster's members, sizes, quota and alarms.
	ClusterStatus() (*Status, error)
	// Target is the store as backup.RestoreEtcd writes it.
	Target() backup.ClusterStore
	// WatchUnchanged watches the store for changes after revision rev
	// and returns the store as backup.RestoreEtcd writes it, refusing
	// to switch to the restored data when the store changed after rev;
	// stop ends the watch.
	WatchUnchanged(rev int64) (target backup.ClusterStore, stop func(), err error)
}

// Member is what one member of the cluster answered.
type Member struct {
	// Down is why it did not answer, "" when it did.
	Down string
	// Leader is whether it answered and follows a leader.
	Leader bool
}

var backend Backend

// Register makes b the cluster store backend. It is called from the init
// function of the backend's package; a second Register panics.
func Register(b Backend) {
	if backend != nil {
		panic("cluster: a second cluster store backend registered: " + b.Name())
	}
	backend = b
}

// Registered returns the registered backend, nil when none is.
func Registered() Backend { return backend }
