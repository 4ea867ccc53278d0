// Package etcdstore links the etcd cluster store into a migrator, as a
// database/sql driver is linked: by importing it for its side effect in
// the migrator's main package,
//
//	import _ "github.com/hookreg/hookreg/migrator/etcdstore"
//
// A migrator built without it takes bbolt stores only, and refuses an
// etcd:// store or an --etcd-* flag saying how to add it; it links no etcd,
// gRPC or protobuf code, and its module's go.mod needs none of their
// requirements. "hookgen init --stores bolt,etcd" writes the import.
//
// Target gives backup.RestoreEtcd the cluster store of an open
// *etcd.Store, for programs that restore one themselves.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

func init() { cluster.Register(backend{}) }

// The default of --etcd-timeout is etcd's: these arrays have a negative
// length, and the package does not compile, when the two differ.
var (
	_ [etcd.DefaultRequestTimeout - cluster.DefaultRequestTimeout]struct{}
	_ [cluster.DefaultRequestTimeout - etcd.DefaultRequestTimeout]struct{}
)

// backend is the etcd cluster store of the migrator.
type backend struct{}

func (backend) Name() string { return "etcd" }

func (backend) ParseURL(spec string) ([]string, string, error) { return etcd.ParseURL(spec) }

func (backend) Open(ctx context.Context, o cluster.Options) (cluster.Store, error) {
	st, err := etcd.Open(ctx, etcd.Options{
		Endpoints:      o.Endpoints,
		Prefix:         o.Prefix,
		TLS:            o.TLS,
		Username:       o.Username,
		Password:       o.Password,
		RequestTimeout: o.RequestTimeout,
		ReadOnly:       o.ReadOnly,
		Create:         o.Create,
	})
	switch {
	case errors.Is(err, store.ErrInUse):
		return nil, err
	case errors.Is(err, rpctypes.ErrNoSpace):
		// Taking the lock writes: a full cluster refuses it, as it
		// would refuse the commits.
		return nil, &cluster.FullError{Err: fmt.Errorf("%w: %w", err, etcd.ErrNoSpace)}
	case err != nil:
		return nil, err
	}
	return clusterStore{st}, nil
}

func (backend) Unavailable(err error) ([]cluster.Member, bool) {
	var ue *etcd.UnavailableError
	if !errors.As(err, &ue) {
		return nil, false
	}
	members := make([]cluster.Member, 0, len(ue.Members))
	for _, m := range ue.Members {
		members = append(members, cluster.Member{Down: m.Down(), Leader: m.Err == nil && m.Leader != 0})
	}
	return members, true
}

func (backend) Compacted(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return rpctypes.ErrCompacted
	}
	return nil
}

func (backend) Changed(err error) error {
	var changed *etcd.ChangedError
	if errors.As(err, &changed) {
		return changed
	}
	return nil
}

// clusterStore is an open etcd store as the migrator uses it.
type clusterStore struct{ *etcd.Store }

func (s clusterStore) ClusterStatus() (*cluster.Status, error) {
	st, err := s.Status()
	if err != nil {
		return nil, err
	}
	return newClusterStatus(st), nil
}

func (s clusterStore) Target() backup.ClusterStore { return Target(s.Store) }

func (s clusterStore) WatchUnchanged(rev int64) (backup.ClusterStore, func(), error) {
	u, err := s.Store.WatchUnchanged(rev)
	if err != nil {
		return nil, nil, err
	}
	return Target(s.Store, etcd.IfUnchanged(u)), u.Close, nil
}

// Target returns st as backup.RestoreEtcd, backup.VerifyEtcd and
// backup.EtcdSpaceNeeded take it; a restore into it begins with opts (see
// etcd.Store.BeginRestore; etcd.IfUnchanged).
func Target(st *etcd.Store, opts ...etcd.RestoreOption) backup.ClusterStore {
	return target{st, opts}
}

// target is an etcd store as package backup restores it.
type target struct {
	*etcd.Store
	opts []etcd.RestoreOption
}

func (t target) Space() (backup.ClusterSpace, error) {
	s, err := t.Status()
	if err != nil {
		return backup.ClusterSpace{}, err
	}
	return backup.ClusterSpace{DBSize: s.DBSize, DBSizeQuota: s.DBSizeQuota, Alarms: s.Alarms}, nil
}

func (t target) BeginRestore() (backup.ClusterRestore, error) {
	rs, err := t.Store.BeginRestore(t.opts...)
	if err != nil {
		return nil, err
	}
	return restore{rs}, nil
}

// restore is a new generation being written, as package backup writes it.
type restore struct{ *etcd.Restore }

func (r restore) Records() map[string]int64 {
	sums := r.Sums()
	n := make(map[string]int64, len(sums))
	for name, s := range sums {
		n[name] = s.Records
	}
	return n
}

// newClusterStatus is what "migrator status" shows of s.
func newClusterStatus(s etcd.Status) *cluster.Status {
	c := &cluster.Status{Generation: s.Generation, Revision: s.Revision, DBSize: s.DBSize, DBSizeQuota: s.DBSizeQuota,
		Members: s.Members, Endpoints: s.Endpoints, Alarms: s.Alarms, Down: []cluster.MemberDown{}, Leftover: s.Leftover}
	if c.Alarms == nil {
		c.Alarms = []string{}
	}
	if c.Leftover == nil {
		c.Leftover = []int64{}
	}
	for _, m := range s.Down {
		c.Down = append(c.Down, cluster.MemberDown{Endpoint: m.Endpoint, Error: m.Down()})
	}
	if h := s.Holder; h != nil {
		c.Lock = &cluster.LockStatus{Key: h.Key, Holder: h.Info, ExpiresIn: int64(h.TTL / time.Second)}
		if !h.Since.IsZero() {
			c.Lock.Since = h.Since.UTC().Format(time.RFC3339)
		}
	}
	return c
}
