package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// ErrChanged: a key of the current generation was written or deleted
// after the revision its data was read at (a product kept writing during
// an offline upgrade). Test for it with errors.Is; the error is a
// [*ChangedError] naming the key.
var ErrChanged = errors.New("the store's data changed after it was backed up")

// ChangedError names a change to the current generation made after the
// revision Since. It wraps [ErrChanged].
type ChangedError struct {
	// Since is the revision the data was read at.
	Since int64
	// Revision is the revision of the change.
	Revision int64
	// Table is the table changed (a nested table's path as
	// hook.FormatPath gives it); Key the record, or nil when the table
	// itself was created, dropped, or its sequence written.
	Table string
	Key   []byte
	// Path is the path of the table changed.
	Path []string
	// Deleted reports a delete (of the record, or of the table).
	Deleted bool
	// Sequence reports a write of the sequence of a table that existed.
	Sequence bool
	// ProductDelete reports a delete through [Product] seen by its mark
	// only: Table and Key are empty.
	ProductDelete bool
}

func (e *ChangedError) Error() string {
	if e.ProductDelete {
		return fmt.Sprintf("%s: the product deleted a record at revision %d, after revision %d", ErrChanged, e.Revision, e.Since)
	}
	what, how := fmt.Sprintf("table %q", e.Table), "written"
	if len(e.Path) > 1 {
		what = "table " + e.Table
	}
	switch {
	case e.Key != nil && e.Deleted:
		what, how = fmt.Sprintf("%s, key %q", what, truncate(e.Key)), "deleted"
	case e.Key != nil:
		what = fmt.Sprintf("%s, key %q", what, truncate(e.Key))
	case e.Deleted:
		how = "dropped"
	case e.Sequence:
		what = "the sequence of " + what
	default:
		how = "created"
	}
	return fmt.Sprintf("%s: %s was %s at revision %d, after revision %d", ErrChanged, what, how, e.Revision, e.Since)
}

func (e *ChangedError) Unwrap() error { return ErrChanged }

// changeAt describes the key k of generation g, changed at rev; version
// is the key's version after the change (1: created).
func (l layout) changeAt(g int64, k []byte, rev, since, version int64, deleted bool) *ChangedError {
	e := &ChangedError{Since: since, Revision: rev, Deleted: deleted, Table: string(k)}
	rest := strings.TrimPrefix(string(k), l.gen(g))
	var path []string
	switch {
	case string(k) == l.deletes(g):
		e.ProductDelete, e.Deleted, e.Table = true, true, ""
	case strings.HasPrefix(rest, "m/"):
		if name, err := decodeName(rest[len("m/"):]); err == nil {
			path = []string{name}
		}
		e.Sequence = !deleted && version > 1
	case strings.HasPrefix(rest, "nm/"):
		path, _ = parseNestedMarker(rest[len("nm/"):])
		e.Sequence = !deleted && version > 1
	case strings.HasPrefix(rest, "t/"):
		if enc, key, ok := strings.Cut(rest[len("t/"):], "/"); ok {
			if name, err := decodeName(enc); err == nil {
				path, e.Key = []string{name}, []byte(key)
			}
		}
	case strings.HasPrefix(rest, "n/"):
		var key string
		var err error
		if path, key, err = parseNestedRecord(rest[len("n/"):]); err == nil {
			e.Key = []byte(key)
		}
	}
	if path != nil {
		e.Path, e.Table = path, path[0]
		if len(path) > 1 {
			e.Table = hook.FormatPath(path)
		}
	}
	return e
}

// Unchanged watches the generation that is current at a revision R for
// any write or delete after R. A caller that read the data at R (a backup)
// and replaces it with a restore passes it to [Store.BeginRestore] with
// [IfUnchanged], so that the restore refuses to make its generation
// current when the data changed after R: the change would be lost.
//
// It is a watch of the generation's keys from R+1, kept open from
// [Store.WatchUnchanged] to Close, so that a compaction of the cluster
// meanwhile does not end it. [Unchanged.Check] catches the watch up with
// the cluster's current revision and reports the first change.
type Unchanged struct {
	s      *Store
	gen    int64
	rev    int64
	w      clientv3.Watcher
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changed *ChangedError // the first change seen
	err     error         // why the watch ended
	synced  int64         // every event up to this revision was seen
	tick    chan struct{} // closed at every answer of the watch
}

// WatchUnchanged starts watching the current generation for changes made
// after revision rev. The store must be writable: its lock keeps the
// current generation current until its own restore switches it. It fails
// with [ErrGenerationChanged] when P/current itself changed after rev,
// and when the cluster compacted rev+1 already.
func (s *Store) WatchUnchanged(rev int64) (*Unchanged, error) {
	if s.sess == nil {
		return nil, fmt.Errorf("watching %s for changes: %w", s.name, store.ErrReadOnly)
	}
	var resp *clientv3.GetResponse
	err := s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.current())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("watching %s for changes: %w", s.name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("watching %s for changes: key %s is missing", s.name, s.lay.current())
	}
	gen, err := parseGeneration(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("watching %s for changes: %w", s.name, err)
	}
	if r := resp.Kvs[0].ModRevision; r > rev {
		return nil, fmt.Errorf("watching %s for changes after revision %d: %w (at revision %d)", s.name, rev, ErrGenerationChanged, r)
	}
	// A watch from a compacted revision is created, then canceled: find
	// out now, with a read at the revision.
	err = s.read(func(ctx context.Context) error {
		_, err := s.cli.Get(ctx, s.lay.current(), clientv3.WithRev(rev), clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("watching %s for changes after revision %d: %w", s.name, rev, err)
	}
	wctx, wcancel := context.WithCancel(s.ctx)
	u := &Unchanged{s: s, gen: gen, rev: rev, w: clientv3.NewWatcher(s.cli), cancel: wcancel, done: make(chan struct{}), tick: make(chan struct{})}
	wch := u.w.Watch(wctx, s.lay.gen(gen), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithCreatedNotify())
	var first clientv3.WatchResponse
	select {
	case first = <-wch:
	case <-time.After(s.opts.RequestTimeout):
		err = context.DeadlineExceeded
	}
	if err == nil {
		err = first.Err()
	}
	if err == nil && !first.Created {
		err = errors.New("the watch was not created")
	}
	if err != nil {
		wcancel()
		u.w.Close()
		return nil, fmt.Errorf("watching %s for changes after revision %d: %w", s.name, rev, err)
	}
	go u.follow(wch)
	return u, nil
}

// follow records what the watch reports until it ends.
func (u *Unchanged) follow(wch clientv3.WatchChan) {
	defer close(u.done)
	for resp := range wch {
		u.mu.Lock()
		if err := resp.Err(); err != nil && u.err == nil {
			u.err = err
		}
		for _, ev := range resp.Events {
			if u.changed == nil {
				u.changed = u.s.lay.changeAt(u.gen, ev.Kv.Key, ev.Kv.ModRevision, u.rev, ev.Kv.Version, ev.Type == clientv3.EventTypeDelete)
			}
		}
		if resp.IsProgressNotify() {
			u.synced = max(u.synced, resp.Header.Revision)
		}
		close(u.tick)
		u.tick = make(chan struct{})
		u.mu.Unlock()
	}
	u.mu.Lock()
	if u.err == nil {
		u.err = errors.New("the watch ended")
	}
	close(u.tick)
	u.mu.Unlock()
}

// Revision returns the revision the data was read at.
func (u *Unchanged) Revision() int64 { return u.rev }

// Check reports the first change to the generation since the revision:
// a [*ChangedError], nil when there was none up to the cluster's revision
// at the call, or an error when it cannot tell (the watch ended: a
// compaction overtook it, the cluster is unreachable). It asks the member
// serving the watch for a progress notification, which comes once the
// watch has delivered every event up to the member's revision.
func (u *Unchanged) Check() error {
	var resp *clientv3.GetResponse
	err := u.s.read(func(ctx context.Context) (err error) {
		resp, err = u.s.cli.Get(ctx, u.s.lay.current())
		return err
	})
	if err != nil {
		return fmt.Errorf("checking for changes after revision %d: %w", u.rev, err)
	}
	now := resp.Header.Revision
	ctx, cancel := u.s.reqCtx()
	defer cancel()
	for {
		u.mu.Lock()
		changed, werr, synced, tick := u.changed, u.err, u.synced, u.tick
		u.mu.Unlock()
		switch {
		case changed != nil:
			return changed
		case werr != nil:
			return fmt.Errorf("checking for changes after revision %d: %w", u.rev, werr)
		case synced >= now:
			return nil
		}
		// The watch's context carries no metadata, nor does ctx: the
		// request goes to the watch's stream.
		if err := u.w.RequestProgress(ctx); err != nil {
			return fmt.Errorf("checking for changes after revision %d: %w", u.rev, err)
		}
		select {
		case <-tick:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("checking for changes after revision %d: the watch did not reach revision %d: %w", u.rev, now, ctx.Err())
		}
	}
}

// Close ends the watch.
func (u *Unchanged) Close() {
	u.cancel()
	u.w.Close()
	<-u.done
}
