// Package etcd implements the [store] API on an etcd cluster (go.etcd.io/etcd
// v3), the cluster store of hookreg (--store etcd://host:port[,host:port]/prefix)
// for products that outgrow one machine. Hooks and the upgrade engine see
// only the store API; the same hook runs here and on [github.com/hookreg/hookreg/store/bolt].
//
//	st, err := etcd.Open(ctx, etcd.Options{
//		Endpoints: []string{"10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"},
//		Prefix:    "/broker",
//	})
//	if err != nil {
//		return err // errors.Is(err, store.ErrInUse) when another migrator holds it
//	}
//	defer st.Close()
//
// # Layout
//
// Everything lives under the prefix P, behind a generation pointer, so that
// a restore can build a whole new copy of the data and switch to it in one
// step:
//
//	P/current                  G: the current generation, a positive decimal number
//	P/gen/G                    "" for every generation that exists
//	P/g/G/m/NAME               the marker of every top-level table of generation G
//	P/g/G/t/NAME/KEY           the value of KEY in the top-level table NAME
//	P/g/G/nm/A/B//NAME         the marker of the table NAME nested in A/B (A top-level)
//	P/g/G/n/A/B/NAME//KEY      the value of KEY in the table A/B/NAME
//	P/g/G/d                    written by every delete of a product (Product.DeleteMark)
//	P/lock/LEASE               the migrator's lock (a client/v3/concurrency Mutex)
//
// NAME (and A, B) is a table name with every byte outside [A-Za-z0-9._-]
// written as %XX, so a name is never empty and never contains "/", and a
// path of names joined by "/" never contains "//". KEY is the record's key,
// raw: any bytes, and etcd's bytewise order of the full keys is the table's
// key order. The reserved tables ([store.MetaTable], [store.ConfigTable])
// are tables like the others. A table exists when its marker does, so an
// empty table survives and Tables reads the markers only.
//
// A marker's value is the table's sequence ([store.Table.NextSequence]):
// empty for 0, as every marker written before sequences existed, otherwise
// decimal. A sequence is thus read with the markers and written as a
// marker, with the commit, under the same compare as any write.
//
// Nested tables (bbolt's buckets in buckets) live under their own
// prefixes, n/ and nm/, which no key of the top-level layout (m/, t/)
// starts, so the generations written before nested tables read as they
// did. No key of one table falls in another's ranges:
//   - the records of a top-level table are exactly the keys with the
//     prefix t/NAME/ (NAME holds no "/");
//   - the records of a nested table are exactly the keys with the prefix
//     n/PATH// (PATH, its encoded names joined by "/", holds no "//", so
//     the first "//" of a key ends the path: no other table's record
//     prefix starts with this one, and a key holding "//" stays in its
//     table);
//   - the markers of the tables nested directly in a table at PATH are
//     exactly the keys with the prefix nm/PATH// (what follows is one
//     NAME), so listing a table's nested tables reads only them, not
//     those nested deeper.
//
// A nested table's name and its parent's records share one key space (as
// in bbolt): Get, Put and Delete of a key that names a nested table are
// refused, so is a nested table over a record's key, and the commit that
// creates one compares that the record is still absent (a product's
// [Product.PutPath] compares that no such table exists).
//
// # Transactions
//
// Begin reads P/current and pins the revision R of that read (and, in the
// same request, up to 1000 markers each of top-level and nested tables,
// with their sequences): every read of
// the transaction is a linearizable range read at revision R, so a read-only
// transaction is one consistent snapshot of every table. A Scan streams its
// range (RangeStream: chunks of at most the cluster's request size, read as
// the Scan needs them), because etcd answers a paged read with the count of
// every key to the end of the range, which makes paging through a large
// table quadratic; on a cluster before v3.7, without RangeStream, it reads
// [Options.PageSize] records a page. A Scan gives the nested tables (with
// a nil value) merged in key order with the records, so that
// [store.WalkTree] (backups, dumps) gives every table at every depth with
// its sequence and records, all at R.
//
// A writable transaction keeps its writes in memory (an overlay that its own
// reads, Scans and Tables see) and commits them in one etcd transaction
// whose compares check that
//   - this store still holds the lock (the lock key's create revision);
//   - P/current still names G (no restore switched generations);
//   - every marker written (a table created or dropped, a sequence set)
//     is unchanged since R, and so is a dropped table's;
//   - every written key is unchanged since R: a key the transaction read
//     (Get, or the record a Scan visits) has the mod revision it had at R,
//     so even a delete is caught; a key it wrote blind was not written
//     after R; a dropped table's records were not written after R;
//   - every key of [store.MetaTable] the transaction read with Get has the
//     mod revision it had at R.
//
// A product write to a key the transaction writes makes Commit fail with
// [ErrConflict] and nothing written: the upgrade engine re-runs the hook from
// its last checkpoint. A transaction that only reads is never refused.
// Commit retries itself when the cluster's answer is lost (a leader killed
// mid-commit): the commit also writes a sequence number into the lock key,
// which tells whether the lost attempt applied, and the compares above make
// sure that at most one attempt can apply.
//
// A batching writer (the upgrade engine's checkpoints) commits with
// [Tx.CommitBegin] ([store.Chainer]), which also begins the next writable
// transaction without a request of its own: the commit's txn carries, in
// its success branch, the reads that Begin would send (the table markers;
// P/current is one of the compares), which etcd runs after the commit's
// writes, at the commit's revision, atomically with it. The next
// transaction is pinned at that revision, so a batch costs one round trip
// (its commit) besides its reads, not two; it keeps the store's writer
// slot, so no other transaction or restore of the store comes in between,
// and its commit has the same compares as any, so a write by anyone else
// after the pin (a product's write to a key it writes, a table created, a
// generation switch, the lock taken) refuses it as it would refuse a
// transaction begun afresh. After a commit whose answer was lost, or one
// too full for the two reads (--max-txn-ops counts them), the next
// transaction reads its own pin.
//
// # Limits
//
// One transaction is one etcd txn, so it obeys the cluster's limits:
// --max-txn-ops (default 128) for the compares and, separately, for the
// operations; --max-request-bytes (default 1.5 MiB) for the request; the
// client's send limit (default 2 MiB). A write needs one compare and one
// operation, and every commit needs two compares and one operation of its
// own, so at default limits a transaction holds at most 126 writes. The
// defaults of [Limits] are etcd's; a product whose cluster runs with raised
// limits sets them to match. A transaction that cannot fit fails before
// anything is written with a [*LimitError] naming its writes, its size and
// the ways out. [Tx.Room] tells how much more a transaction can take, so a
// batching caller commits before it is full.
//
// # One migrator at a time
//
// A writable store takes a lease-backed lock (a concurrency.Session with
// [Options.LockTTL], default 10 s, and a Mutex on P/lock) in Open; a second
// writable Open fails within [Options.Timeout] with an error wrapping
// [store.ErrInUse], as on bbolt. Every write is a txn fenced on the lock; a
// holder whose lease expired (a paused process) has its commits refused with
// [ErrLockLost]. Close releases the lock. Read-only stores take no lock.
// A writable Open also removes the generations that are not current (see
// Restore).
//
// The lease is renewed every third of its TTL by a request of its own,
// through whichever member answers. A refused Open names the holder (the
// process, host and time written into the lock key) and the seconds its
// lease has left.
//
// [Store.Status] reports the generation, the revision, the database size
// against the quota, the cluster's alarms (a full cluster raises NOSPACE,
// and commits then fail with [ErrNoSpace]), the members that did not
// answer and why, the lock's holder and the leftover generations.
//
// # Faults
//
// The store lives within the context given to Open: when it ends, every
// request ends at once, and Close still revokes the lock's lease (within a
// second). Every request is bounded by [Options.RequestTimeout], its
// retries included, and each attempt by a quarter of it (1-3 s), so a
// member that stops answering costs an attempt, not the request; it is
// then taken out of the client's endpoints until it answers again (see
// silent.go). etcd's
// transient errors (leader changed, no leader, request timed out: the
// client returns them as rpctypes.EtcdError, gRPC code Unknown) and
// Unavailable are retried with backoff: reads, and a Scan's stream, opened
// again after the last key it gave. A commit whose answer is lost is sent
// again only after a read of the lock key says it did not apply (see
// Transactions). When the cluster does not answer in time, the error is an
// [*UnavailableError] (it wraps [ErrUnavailable] and
// [store.ErrUnavailable]) naming the members that answered and the cause
// of the others ("no leader: 1 of 3 members answered (...)"); Open asks
// every member first, so no quorum and TLS mistakes fail at once.
//
// # Restore
//
// A restore ([Store.BeginRestore], [Restore]; backup.RestoreEtcd reads an
// archive into it) never touches the current generation G until the new
// one is whole. BeginRestore removes every generation that is not current,
// picks G' (one more than any that exists) and writes P/gen/G' alone,
// first, so that every key of a generation exists only while its marker
// does. [Restore.TablePath] (a table at any depth, with its sequence) and
// [Restore.Put] fill G' in txns as full as the
// limits allow, a few in flight, each fenced on the lock and on P/current
// still naming G; a batch only puts keys nobody else writes, so a batch
// whose answer was lost is sent again. [Restore.Finish] reads G' back at
// one revision, page by page, and compares every table, its sequence and an
// order-independent hash of its records ([TableSum]) with what was
// written; then one txn comparing P/current's mod revision (and the lock)
// makes G' current; then it deletes G, PageSize keys per fenced txn (one
// DeleteRange each, found in one keys-only stream), its marker last. A process killed at any point leaves G current, or G' once
// the switch applied, and every writable Open removes the generations that
// are not current, so the next migrator cleans up what a killed one left.
// [Store.CheckRecord] refuses, before anything is written, a record that
// no batch can carry at the store's limits.
//
// A restore of data read at a revision R with the product stopped (the
// migrator's offline upgrade: a backup at R, upgraded, restored) would
// silently drop whatever the product wrote to G after R, if it was not
// stopped after all. [IfUnchanged] refuses that: [Store.WatchUnchanged]
// watches G's keys from R+1 (from right after the backup, so a later
// compaction does not end it); before the switch Finish asks the watch to
// catch up with the cluster's revision ([Unchanged.Check], a progress
// request) and fails on any put or delete it saw; and the switch's txn
// also compares that no key of G has a mod revision above R (a range
// compare, which each member evaluates over G's keys once), so no put can
// slip in between. etcd compares only keys that exist, so a delete leaves
// nothing to compare: every delete through [Product] also writes the
// mark P/g/G/d in its txn, which the range compare sees, so no product
// delete slips in either (a product's own txns that delete add
// [Product.DeleteMark]). The refusal is a [*ChangedError] naming the key
// (a delete seen by its mark only names no key); G stays current and G' is
// removed.
//
// # Products
//
// A product reaches the same data through [Product]: its writes fenced on
// the generation, its caches reloaded when a restore switches generations.
// See [Product] for the contract.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/hookreg/hookreg/store"
)

// Defaults of Options.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultLockTTL        = 10 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultPageSize       = 1000
	// DefaultKeepAliveTime and DefaultKeepAliveTimeout are the gRPC
	// keepalive of a client dialled by Open: a connection that received
	// nothing for KeepAliveTime is pinged, and closed when the ping has
	// no answer within KeepAliveTimeout, so a paused or cut-off member's
	// connection is closed within 13 s. 10 s is gRPC's minimum. Before
	// that, each attempt of a request ends after a quarter of the
	// request timeout (at most 3 s) and the next goes to another member.
	DefaultKeepAliveTime    = 10 * time.Second
	DefaultKeepAliveTimeout = 3 * time.Second
)

// etcd's defaults for the limits.
const (
	DefaultMaxTxnOps        = 128
	DefaultMaxRequestBytes  = 1536 * 1024
	DefaultMaxCallSendBytes = 2 << 20
)

// raftOverhead is what the server adds to a txn request before comparing
// it with --max-request-bytes (the raft request header), plus margin.
const raftOverhead = 128

// Limits are the cluster's limits on one txn; zero fields are etcd's
// defaults.
type Limits struct {
	// MaxTxnOps is the cluster's --max-txn-ops.
	MaxTxnOps int
	// MaxRequestBytes is the cluster's --max-request-bytes.
	MaxRequestBytes int
	// MaxCallSendBytes is the client's send limit; a client dialled by
	// Open uses it.
	MaxCallSendBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxTxnOps <= 0 {
		l.MaxTxnOps = DefaultMaxTxnOps
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if l.MaxCallSendBytes <= 0 {
		l.MaxCallSendBytes = DefaultMaxCallSendBytes
	}
	return l
}

// requestBytes is the largest txn request the store sends.
func (l Limits) requestBytes(username string) int {
	return min(l.MaxRequestBytes-raftOverhead-len(username), l.MaxCallSendBytes)
}

// Options configure Open.
type Options struct {
	// Endpoints are the cluster's client URLs or host:port pairs.
	Endpoints []string
	// Prefix is the key prefix of the store, such as "/broker"; required.
	Prefix string
	// TLS, Username and Password authenticate a client dialled by Open.
	TLS                *tls.Config
	Username, Password string
	// Client is used instead of dialling Endpoints; Close leaves it open.
	Client *clientv3.Client
	// ReadOnly opens the store without the lock; Begin(true) then fails.
	ReadOnly bool
	// Create initializes an empty store (generation 1) when the prefix
	// holds none; otherwise a missing store is an error wrapping
	// fs.ErrNotExist.
	Create bool
	// Timeout bounds the wait for another migrator's lock;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// LockTTL is the lease of the lock, whole seconds; DefaultLockTTL
	// when zero.
	LockTTL time.Duration
	// RequestTimeout bounds each request to the cluster, its retries
	// through a leader election or a member's death included; each
	// attempt gets a quarter of it (at most 3 s, at least 1 s), so that a
	// member that does not answer (paused, cut off) costs one attempt.
	// Without a quorum a request fails after it with an
	// [*UnavailableError] naming the members that answered.
	// DefaultRequestTimeout when zero.
	RequestTimeout time.Duration
	// DialTimeout bounds dialling; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// KeepAliveTime and KeepAliveTimeout are the gRPC keepalive of a
	// client dialled by Open; DefaultKeepAliveTime and
	// DefaultKeepAliveTimeout when zero.
	KeepAliveTime, KeepAliveTimeout time.Duration
	// Limits are the cluster's txn limits.
	Limits Limits
	// PageSize is the number of records per paged range read (table
	// listings, checks, and Scans on a cluster without RangeStream);
	// DefaultPageSize when zero. The removal of a generation deletes a
	// page's worth of keys per txn.
	PageSize int
}

// ParseURL splits a store URL etcd://host:port[,host:port]/prefix into its
// endpoints and prefix ("/prefix").
func ParseURL(s string) (endpoints []string, prefix string, err error) {
	// Errors never repeat s: it may hold a password by mistake.
	const want = "want etcd://host:port[,host:port]/prefix"
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("parsing store URL: %w; %s", err, want)
	}
	switch {
	case u.User != nil:
		return nil, "", errors.New("parsing store URL: user information in the URL; pass credentials with flags or the environment")
	case u.Scheme != "etcd":
		return nil, "", fmt.Errorf("parsing store URL: the scheme is %q, %s", u.Scheme, want)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, "", fmt.Errorf("parsing store URL: unexpected query or fragment, %s", want)
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, "", fmt.Errorf("parsing store URL: empty endpoint in %q, %s", u.Host, want)
		}
		endpoints = append(endpoints, h)
	}
	prefix = trimPrefix(u.Path)
	if prefix == "" {
		return nil, "", fmt.Errorf("parsing store URL: missing prefix, %s", want)
	}
	return endpoints, prefix, nil
}

// Errors of commits; test for them with errors.Is.
var (
	// ErrConflict: a key the transaction writes (or a metadata key it
	// read) changed after the transaction began, or its snapshot was
	// compacted. Nothing was written; retry in a new transaction.
	// It wraps [store.ErrConflict].
	ErrConflict = fmt.Errorf("%w: a key of the transaction changed since it began; nothing was written, retry", store.ErrConflict)
	// ErrLockLost: the store's lock expired or was taken over, so the
	// store may no longer write. Nothing was written.
	// It wraps [store.ErrLockLost].
	ErrLockLost = fmt.Errorf("%w (its lease expired); nothing was written", store.ErrLockLost)
	// ErrGenerationChanged: P/current no longer names the generation the
	// transaction began on (a restore switched it). Nothing was written.
	ErrGenerationChanged = errors.New("the store's current generation changed (a restore replaced the data); nothing was written")
	// ErrTooLarge: the transaction does not fit the cluster's limits.
	// It wraps [store.ErrTooLarge].
	ErrTooLarge = fmt.Errorf("%w (the cluster's limits)", store.ErrTooLarge)
	// ErrOutcomeUnknown: the cluster did not answer a commit and the
	// store could not find out whether it applied.
	ErrOutcomeUnknown = errors.New("the outcome of the commit is unknown")
)

// Store is a store on an etcd cluster. It implements [store.Store].
type Store struct {
	cli       *clientv3.Client
	ownClient bool
	opts      Options
	limits    Limits
	lay       layout
	name      string
	ctx       context.Context
	cancel    context.CancelFunc
	sess      *concurrency.Session // nil when read-only
	mu        *concurrency.Mutex
	since     time.Time     // when the lock was taken
	holder    string        // holderInfo, after the tag in the lock key
	reached   bool          // Open found a member that knows a leader
	lost      chan struct{} // closed when the lock's lease is known to be gone
	lostOnce  sync.Once
	writer    chan struct{} // one writable transaction at a time
	seq       atomic.Uint64 // commit sequence, written to the lock key
	lastGen   atomic.Int64  // the generation the last transaction saw
	silent    silent        // members taken out for not answering
}

var _ store.Store = (*Store)(nil)

// Open opens the store at opts.Prefix.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = DefaultLockTTL
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.KeepAliveTime <= 0 {
		opts.KeepAliveTime = DefaultKeepAliveTime
	}
	if opts.KeepAliveTimeout <= 0 {
		opts.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	prefix := trimPrefix(opts.Prefix)
	if prefix == "" {
		return nil, errors.New("opening etcd store: empty prefix")
	}
	s := &Store{
		opts:   opts,
		limits: opts.Limits.withDefaults(),
		lay:    layout{root: prefix},
		writer: make(chan struct{}, 1),
	}
	s.name = "etcd://" + strings.Join(opts.Endpoints, ",") + prefix
	s.cli = opts.Client
	if s.cli == nil {
		if len(opts.Endpoints) == 0 {
			return nil, fmt.Errorf("opening store %s: no endpoints", s.name)
		}
		cfg := clientv3.Config{
			Endpoints:          opts.Endpoints,
			DialTimeout:        opts.DialTimeout,
			TLS:                opts.TLS,
			MaxCallSendMsgSize: s.limits.MaxCallSendBytes,
			// A member that stops answering (paused, cut off) is
			// left within seconds, not after the request timeout.
			DialKeepAliveTime:    opts.KeepAliveTime,
			DialKeepAliveTimeout: opts.KeepAliveTimeout,
			// Every failure reaches the caller as an error; the
			// client's own log lines would only repeat them on stderr.
			Logger: zap.NewNop(),
		}
		if opts.Username != "" {
			// A client with credentials authenticates as it is
			// dialled, and a failure there says only "context
			// deadline exceeded": reach the members first.
			cli, err := clientv3.New(cfg)
			if err != nil {
				return nil, fmt.Errorf("opening store %s: %w", s.name, err)
			}
			s.cli = cli
			err = s.reach(ctx)
			cli.Close()
			if err != nil {
				return nil, fmt.Errorf("opening store %s: %w", s.name, err)
			}
			s.reached = true
		}
		cfg.Username, cfg.Password = opts.Username, opts.Password
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("opening store %s: %w", s.name, err)
		}
		s.cli, s.ownClient = cli, true
		s.silent.all = slices.Clone(opts.Endpoints)
	} else {
		s.name = "etcd://" + strings.Join(s.cli.Endpoints(), ",") + prefix
	}
	// The store lives within the caller's context: when it ends, every
	// request ends at once, and Close still releases the lock.
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.lost = make(chan struct{})
	if err := s.open(); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening store %s: %w", s.name, err)
	}
	return s, nil
}

// reach waits, within the request timeout, for a member that knows a
// leader: without one (no quorum), or with TLS settings that no member
// accepts, it fails and says so, rather than a request after the request
// timeout.
func (s *Store) reach(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	if err := s.reachable(rctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return err
	}
	return nil
}

func (s *Store) open() error {
	var err error
	if !s.reached {
		if err = s.reach(s.ctx); err != nil {
			return err
		}
	}
	if !s.opts.ReadOnly {
		if err := s.lock(); err != nil {
			return err
		}
	}
	var resp *clientv3.GetResponse
	err = s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.current())
		return err
	})
	if err != nil {
		return err
	}
	if len(resp.Kvs) > 0 {
		if _, err := parseGeneration(resp.Kvs[0].Value); err != nil {
			return err
		}
		if s.opts.ReadOnly {
			return nil
		}
		return s.removeStale()
	}
	if !s.opts.Create || s.opts.ReadOnly {
		return fmt.Errorf("no store at this prefix (no key %s): %w", s.lay.current(), fs.ErrNotExist)
	}
	// A new store: generation 1, created only if no other store
	// appeared meanwhile. A lost answer is sent again: the compare lets
	// one send apply, and a refusal then finds the store created.
	var tresp *clientv3.TxnResponse
	err = s.read(func(ctx context.Context) (err error) {
		tresp, err = s.cli.Txn(ctx).
			If(s.mu.IsOwner(), clientv3.Compare(clientv3.CreateRevision(s.lay.current()), "=", 0)).
			Then(clientv3.OpPut(s.lay.current(), "1"), clientv3.OpPut(s.lay.genMarker(1), "")).
			Else(clientv3.OpGet(s.lay.current())).
			Commit()
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the store: %w", err)
	}
	if !tresp.Succeeded && len(tresp.Responses[0].GetResponseRange().Kvs) == 0 {
		return fmt.Errorf("creating the store: %w", ErrLockLost)
	}
	return nil
}

// interrupted returns err, or says that the caller's context ended when
// it did.
func (s *Store) interrupted(err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", s.ctx.Err())
	}
	return err
}

// lock takes the migrator's lock, waiting at most Options.Timeout for
// another migrator's. The lease is granted and kept alive within the
// store's context, so the caller's end ends it; keepLease keeps it alive
// through whichever members answer.
func (s *Store) lock() error {
	ttl := max(int64(s.opts.LockTTL.Round(time.Second)/time.Second), 1)
	var lease clientv3.LeaseID
	err := s.read(func(ctx context.Context) error {
		// A grant whose answer was lost leaves a lease nobody keeps
		// alive: it expires after ttl, holding nothing.
		resp, err := s.cli.Grant(ctx, ttl)
		if err == nil {
			lease = resp.ID
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("taking the lock (granting its lease): %w", err)
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease), concurrency.WithTTL(int(ttl)), concurrency.WithContext(s.ctx))
	if err != nil {
		s.revoke(lease)
		return fmt.Errorf("taking the lock: %w", s.interrupted(err))
	}
	s.sess = sess
	go s.keepLease(lease, time.Duration(ttl)*time.Second)
	s.mu = concurrency.NewMutex(sess, s.lay.lockPrefix())
	deadline := time.Now().Add(s.opts.Timeout)
	for {
		err := s.read(func(ctx context.Context) error { return s.mu.TryLock(ctx) })
		if err == nil {
			s.since = time.Now()
			s.writeHolder()
			return nil
		}
		if !errors.Is(err, concurrency.ErrLocked) {
			return fmt.Errorf("taking the lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (waited %s for the lock %s%s)", store.ErrInUse, s.opts.Timeout, s.lay.lockPrefix(), s.holderNote())
		}
		select {
		case <-s.ctx.Done():
			return fmt.Errorf("taking the lock: interrupted: %w", s.ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Name returns the store's URL, without credentials.
func (s *Store) Name() string { return s.name }

// Client returns the store's etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Limits returns the limits the store's transactions obey.
func (s *Store) Limits() Limits { return s.limits }

// Lease returns the lease of the store's lock, or 0 for a read-only store.
func (s *Store) Lease() clientv3.LeaseID {
	if s.sess == nil {
		return 0
	}
	return s.sess.Lease()
}

// Begin implements [store.Store]. A writable transaction waits for the
// previous one of this store to end.
func (s *Store) Begin(writable bool) (store.Tx, error) {
	t, err := s.begin(writable)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Store) begin(writable bool) (*Tx, error) {
	if writable {
		if s.sess == nil {
			return nil, fmt.Errorf("beginning a transaction on %s: %w", s.name, store.ErrReadOnly)
		}
		select {
		case s.writer <- struct{}{}:
		case <-s.lost:
			return nil, fmt.Errorf("beginning a transaction on %s: %w", s.name, ErrLockLost)
		case <-s.ctx.Done():
			return nil, fmt.Errorf("beginning a transaction on %s: store closed or interrupted: %w", s.name, s.ctx.Err())
		}
		select {
		case <-s.lost:
			<-s.writer
			return nil, fmt.Errorf("beginning a transaction on %s: %w", s.name, ErrLockLost)
		default:
		}
	}
	release := func() {
		if writable {
			<-s.writer
		}
	}
	t, err := s.pin()
	if err != nil {
		release()
		return nil, fmt.Errorf("beginning a transaction on %s: %w", s.name, err)
	}
	t.writable, t.release = writable, release
	return t, nil
}

// maxPreloadedTables bounds the table markers Begin reads with the
// generation, top-level and nested each; tests lower it.
var maxPreloadedTables int64 = 1000

// pin reads P/current and, in the same request when the generation is the
// one seen last, the table markers (top-level and nested, with their
// sequences): one round trip for a transaction's revision, generation and
// tables.
func (s *Store) pin() (*Tx, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	last := s.lastGen.Load()
	reads := s.pinReads(last)
	var resp *clientv3.TxnResponse
	// The read is a Txn, which the client never sends twice; it writes
	// nothing, so a transient failure (a leader that just died, an
	// election) is retried here, within the request timeout.
	err := s.retry(ctx, func(ctx context.Context) (err error) {
		resp, err = s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(s.lay.current()), "=", fmt.Sprint(last))).
			Then(clientv3.OpGet(s.lay.current()), reads[0], reads[1]).
			Else(clientv3.OpGet(s.lay.current())).
			Commit()
		return err
	})
	if err != nil {
		return nil, err
	}
	cur := resp.Responses[0].GetResponseRange().Kvs
	if len(cur) == 0 {
		return nil, fmt.Errorf("key %s is missing: %w", s.lay.current(), fs.ErrNotExist)
	}
	g, err := parseGeneration(cur[0].Value)
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return s.pinned(resp.Header.Revision, g, nil, nil)
	}
	return s.pinned(resp.Header.Revision, g, resp.Responses[1].GetResponseRange(), resp.Responses[2].GetResponseRange())
}

// pinReads are the reads of a transaction's pin besides P/current: the
// table markers of generation gen, top-level and nested, with their
// sequences. Begin sends them with its read of P/current; a chained commit
// (Tx.CommitBegin) sends them in its txn's success branch, where etcd runs
// them after the commit's writes, at the commit's revision.
func (s *Store) pinReads(gen int64) []clientv3.Op {
	markers, nested := s.lay.markers(gen), s.lay.nestedMarkers(gen)
	return []clientv3.Op{
		clientv3.OpGet(markers, clientv3.WithRange(prefixEnd(markers)), clientv3.WithLimit(maxPreloadedTables)),
		clientv3.OpGet(nested, clientv3.WithRange(prefixEnd(nested)), clientv3.WithLimit(maxPreloadedTables)),
	}
}

// pinned returns a transaction reading at rev on generation gen, its
// table states preloaded from the answers of pinReads (nil: not read).
func (s *Store) pinned(rev, gen int64, r, n *pb.RangeResponse) (*Tx, error) {
	s.lastGen.Store(gen)
	t := &Tx{
		s:      s,
		rev:    rev,
		gen:    gen,
		top:    map[string]*tableState{},
		seen:   map[string]int64{},
		curLen: len(s.lay.current()),
		topLen: len(s.lay.topRecords(gen)),
	}
	if r == nil || n == nil {
		return t, nil
	}
	markers, nested := s.lay.markers(gen), s.lay.nestedMarkers(gen)
	for _, kv := range r.Kvs {
		name, err := decodeName(string(kv.Key[len(markers):]))
		if err != nil {
			return nil, err
		}
		if err := t.newState(nil, name).found(kv.ModRevision, kv.Value); err != nil {
			return nil, err
		}
	}
	if !n.More {
		// Every nested table, so that no lookup of one needs a
		// request. A marker whose parent is missing (which Check
		// reports) is left out.
		for _, kv := range n.Kvs {
			path, err := parseNestedMarker(string(kv.Key[len(nested):]))
			if err != nil {
				return nil, err
			}
			st := t.preloaded(path)
			if st == nil {
				continue
			}
			if err := st.found(kv.ModRevision, kv.Value); err != nil {
				return nil, err
			}
		}
	}
	t.allTop, t.allNested = !r.More, !r.More && !n.More
	return t, nil
}

// pinReadsFit reports whether reads (pinReads') fit in p's txn beside its
// operations, within the store's limits: etcd counts a success branch's
// reads with its writes against --max-txn-ops. It sizes the reads as they
// are sent.
func (s *Store) pinReadsFit(p *request, reads []clientv3.Op) bool {
	size := p.size
	for _, r := range reads {
		op := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{
			Key: r.KeyBytes(), RangeEnd: r.RangeBytes(), Limit: r.Limit()}}}
		size += proto.Size(op) + elemBytes
	}
	return len(p.ops)+len(reads) <= s.limits.MaxTxnOps && size <= s.limits.requestBytes(s.opts.Username)
}

// chained returns the next writable transaction after a commit on
// generation gen, holding the writer slot the committed transaction held
// (release frees it): pinned at the commit's revision from resp, the
// commit's answer whose last nreads responses are pinReads', or begun
// with a read of its own when resp is nil. It fails, freeing the slot,
// when the lock is known lost or the store closed.
func (s *Store) chained(gen int64, resp *clientv3.TxnResponse, nreads int, release func()) (*Tx, error) {
	fail := func(err error) (*Tx, error) {
		release()
		return nil, err
	}
	select {
	case <-s.lost:
		return fail(ErrLockLost)
	case <-s.ctx.Done():
		return fail(fmt.Errorf("store closed or interrupted: %w", s.ctx.Err()))
	default:
	}
	var t *Tx
	var err error
	if resp == nil || nreads != 2 || len(resp.Responses) < nreads {
		t, err = s.pin()
	} else {
		rs := resp.Responses[len(resp.Responses)-nreads:]
		t, err = s.pinned(resp.Header.Revision, gen, rs[0].GetResponseRange(), rs[1].GetResponseRange())
	}
	if err != nil {
		return fail(err)
	}
	t.writable, t.release = true, release
	return t, nil
}

// preloaded returns the state of the nested table at path, adding a
// missing one under its parent: nil when the top-level table is missing.
func (t *Tx) preloaded(path []string) *tableState {
	st := t.top[path[0]]
	if st == nil {
		return nil
	}
	for _, name := range path[1:] {
		c := st.children[name]
		if c == nil {
			c = t.newState(st, name)
		}
		st = c
	}
	return st
}

func (s *Store) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.RequestTimeout)
}

// Check implements [store.Store]: P/current names an existing generation,
// every table name decodes and every record belongs to a table with a
// marker. It reads at one revision, page by page.
func (s *Store) Check() error {
	t, err := s.begin(false)
	if err != nil {
		return err
	}
	defer t.Rollback()
	var errs []error
	var resp *clientv3.GetResponse
	err = s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.genMarker(t.gen), clientv3.WithRev(t.rev), clientv3.WithKeysOnly())
		return err
	})
	if err != nil {
		return fmt.Errorf("checking store %s: %w", s.name, err)
	}
	if len(resp.Kvs) == 0 {
		errs = append(errs, fmt.Errorf("generation %d is current but %s is missing", t.gen, s.lay.genMarker(t.gen)))
	}
	bad := func(err error) {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		}
	}
	// tables holds the encoded path (encodePath) of every table.
	tables := map[string]bool{}
	markers := s.lay.markers(t.gen)
	err = s.pages(t.rev, markers, prefixEnd(markers), false, func(k, v []byte, _ int64) error {
		enc := string(k[len(markers):])
		if _, err := decodeName(enc); err != nil {
			bad(err)
		}
		if _, err := parseSeq(v); err != nil {
			bad(fmt.Errorf("marker %q: %w", k, err))
		}
		tables[enc] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking store %s: %w", s.name, err)
	}
	nested := s.lay.nestedMarkers(t.gen)
	var parents [][2]string // a nested table's encoded path and its parent's
	err = s.pages(t.rev, nested, prefixEnd(nested), false, func(k, v []byte, _ int64) error {
		path, err := parseNestedMarker(string(k[len(nested):]))
		if err != nil {
			bad(err)
			return nil
		}
		if _, err := parseSeq(v); err != nil {
			bad(fmt.Errorf("marker %q: %w", k, err))
		}
		enc := encodePath(path)
		tables[enc] = true
		parents = append(parents, [2]string{enc, encodePath(path[:len(path)-1])})
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking store %s: %w", s.name, err)
	}
	for _, p := range parents {
		if !tables[p[1]] {
			bad(fmt.Errorf("nested table %q has no parent table %q", p[0], p[1]))
		}
	}
	recs := s.lay.topRecords(t.gen)
	err = s.pages(t.rev, recs, prefixEnd(recs), true, func(k, _ []byte, _ int64) error {
		enc, _, ok := strings.Cut(string(k[len(recs):]), "/")
		if !ok || !tables[enc] {
			bad(fmt.Errorf("record %q has no table marker", k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking store %s: %w", s.name, err)
	}
	recs = s.lay.nestedRecords(t.gen)
	err = s.pages(t.rev, recs, prefixEnd(recs), true, func(k, _ []byte, _ int64) error {
		path, _, err := parseNestedRecord(string(k[len(recs):]))
		if err != nil || !tables[encodePath(path)] {
			bad(fmt.Errorf("record %q has no table marker", k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking store %s: %w", s.name, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking store %s: %w", s.name, errors.Join(errs...))
	}
	return nil
}

// maxCheckErrors bounds the problems Check reports.
const maxCheckErrors = 100

// pages calls fn for every key in [from, end) at revision rev, in key
// order, reading PageSize keys at a time.
func (s *Store) pages(rev int64, from, end string, keysOnly bool, fn func(k, v []byte, modRev int64) error) error {
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(int64(s.opts.PageSize))}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		var resp *clientv3.GetResponse
		err := s.read(func(ctx context.Context) (err error) {
			resp, err = s.cli.Get(ctx, from, opts...)
			return err
		})
		if err != nil {
			return readError(rev, err)
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv.Key, kv.Value, kv.ModRevision); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Close implements [store.Store]: it releases the lock (revoking its
// lease, within a second, even when the caller's context has ended) and
// the client if Open dialled it.
func (s *Store) Close() error {
	var errs []error
	if s.sess != nil {
		s.sess.Orphan()
		if err := s.revoke(s.sess.Lease()); err != nil {
			errs = append(errs, fmt.Errorf("releasing the lock (it expires with its lease within %s): %w", s.opts.LockTTL, err))
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.ownClient {
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("closing store %s: %w", s.name, errors.Join(errs...))
	}
	return nil
}
