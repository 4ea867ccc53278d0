package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// Tx is a transaction of a [Store]. It implements [store.Tx]; see the
// package documentation for what a commit checks.
type Tx struct {
	s        *Store
	writable bool
	rev      int64 // the pinned revision
	gen      int64
	closed   bool
	tables   map[string]*tableState
	// allTables: tables holds every table of the generation at rev, so
	// a name missing there has no table.
	allTables bool
	// seen holds the mod revision at rev (0: absent) of every key Get
	// read, which the commit checks when the key is written.
	seen map[string]int64
	// metaReads are the keys of store.MetaTable Get read; the commit
	// checks them.
	metaReads []string
	nwrites   int // entries in every writes map
	wbytes    int // their keys' and values' bytes
	wcost     int // a bound on their bytes in the commit's request
	rcost     int // a bound on the metaReads' compares' bytes
	release   func()
}

var (
	_ store.Tx     = (*Tx)(nil)
	_ store.Roomer = (*Tx)(nil)
)

// tableState is the transaction's view of one table, shared by its
// handles.
type tableState struct {
	name      string
	existed   bool  // the marker existed at rev
	markerRev int64 // its mod revision at rev
	exists    bool
	cleared   bool // dropped in this transaction: no record of rev counts
	epoch     int  // incremented by DropTable; older handles are dead
	writes    map[string]*write
	keys      []string // the keys of writes, sorted
	scan      scanState
}

// scanState is the record a Scan is visiting, so that writing it needs no
// read of its mod revision.
type scanState struct {
	key    string
	modRev int64
	on     bool
}

type write struct {
	cost   int // a bound on its bytes in the commit's request, value excluded
	value  []byte
	del    bool
	modRev int64 // the key's mod revision at rev, 0 when absent
	known  bool  // modRev is known: the transaction read the key
}

// Revision returns the revision the transaction reads at.
func (t *Tx) Revision() int64 { return t.rev }

// Generation returns the generation the transaction reads and writes.
func (t *Tx) Generation() int64 { return t.gen }

// Writable implements [store.Tx].
func (t *Tx) Writable() bool { return t.writable }

func (t *Tx) check(write bool) error {
	if t.closed {
		return store.ErrTxClosed
	}
	if write && !t.writable {
		return store.ErrReadOnly
	}
	return nil
}

// state returns the state of table name, reading its marker at rev the
// first time.
func (t *Tx) state(name string) (*tableState, error) {
	if st := t.tables[name]; st != nil {
		return st, nil
	}
	if t.allTables {
		st := &tableState{name: name, writes: map[string]*write{}}
		t.tables[name] = st
		return st, nil
	}
	ctx, cancel := t.s.reqCtx()
	defer cancel()
	resp, err := t.s.cli.Get(ctx, t.s.lay.marker(t.gen, name), clientv3.WithRev(t.rev), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("table %q: %w", name, readError(t.rev, err))
	}
	st := &tableState{name: name, writes: map[string]*write{}}
	if len(resp.Kvs) > 0 {
		st.existed, st.exists, st.markerRev = true, true, resp.Kvs[0].ModRevision
	}
	t.tables[name] = st
	return st, nil
}

// Table implements [store.Tx].
func (t *Tx) Table(name string) (store.Table, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	st, err := t.state(name)
	if err != nil {
		return nil, err
	}
	if !st.exists {
		return nil, fmt.Errorf("table %q: %w", name, hook.ErrNoTable)
	}
	return &table{tx: t, st: st, epoch: st.epoch}, nil
}

// CreateTable implements [store.Tx].
func (t *Tx) CreateTable(name string) (store.Table, error) {
	if err := t.check(true); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	st, err := t.state(name)
	if err != nil {
		return nil, err
	}
	st.exists = true
	return &table{tx: t, st: st, epoch: st.epoch}, nil
}

// DropTable implements [store.Tx].
func (t *Tx) DropTable(name string) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := store.ValidateName(name); err != nil {
		return err
	}
	st, err := t.state(name)
	if err != nil {
		return err
	}
	if !st.exists {
		return nil
	}
	for k, w := range st.writes {
		t.nwrites--
		t.wbytes -= len(k) + len(w.value)
		t.wcost -= w.cost + len(w.value)
	}
	st.exists = false
	st.cleared = st.cleared || st.existed
	st.writes, st.keys = map[string]*write{}, nil
	st.epoch++
	return nil
}

// Tables implements [store.Tx].
func (t *Tx) Tables() ([]string, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	if !t.allTables {
		markers := t.s.lay.markers(t.gen)
		err := t.s.pages(t.rev, markers, prefixEnd(markers), true, func(k, _ []byte, _ int64) error {
			name, err := decodeName(string(k[len(markers):]))
			if err != nil {
				return err
			}
			names[name] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listing tables: %w", err)
		}
	}
	for name, st := range t.tables {
		if st.exists {
			names[name] = true
		} else {
			delete(names, name)
		}
	}
	list := make([]string, 0, len(names))
	for name := range names {
		list = append(list, name)
	}
	sort.Strings(list)
	return list, nil
}

// Room reports how many more writes the transaction can take, and how
// many bytes of key and value the next one may have, within the store's
// limits. It never overstates (it is exact in writes for tables not
// dropped in the transaction) and costs no request, so a batching caller
// asks it before every write and commits (or checkpoints) when the next
// record would not fit.
func (t *Tx) Room() (writes, bytes int) {
	l := t.s.limits
	cmps, ops, size, perWrite := t.need()
	writes = (l.MaxTxnOps - max(cmps, ops)) / perWrite
	next := 3 * (len(t.s.lay.records(t.gen, "")) + 3*store.MaxNameLen + elemBytes)
	bytes = l.requestBytes(t.s.opts.Username) - size - next
	return max(writes, 0), max(bytes, 0)
}

// elemBytes bounds the encoding of one compare or operation of a txn
// request besides its keys and value: tags, lengths and a revision.
const elemBytes = 32

// need bounds from above the compares, operations and request bytes the
// commit's txn needs (plan builds it exactly), and returns the operations
// one more write may need, without building anything.
func (t *Tx) need() (cmps, ops, size, perWrite int) {
	root := len(t.s.lay.current())
	cmps, ops = 2+len(t.metaReads), 1
	size = 5*(root+tagWidth+elemBytes) + t.wcost + t.rcost
	perWrite = 1
	for _, st := range t.tables {
		n := len(st.writes)
		prefix := len(t.s.lay.records(t.gen, st.name))
		if st.cleared || st.exists != st.existed {
			cmps, ops = cmps+1, ops+1
			size += 2 * (prefix + elemBytes)
		}
		if st.cleared {
			cmps, ops = cmps+1, ops+2*n+1
			size += 2 * (2*prefix + elemBytes)
			perWrite = 2
			continue
		}
		cmps, ops = cmps+n, ops+n
	}
	return cmps, ops, size, perWrite
}

// Commit implements [store.Tx]: the writes, all or none, in one etcd txn.
func (t *Tx) Commit() error {
	if err := t.check(false); err != nil {
		return err
	}
	t.closed = true
	defer t.release()
	if !t.writable || !t.dirty() {
		return nil
	}
	p, err := t.plan()
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	if err := t.fits(p); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	if err := t.s.commit(p, t.gen); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// Rollback implements [store.Tx].
func (t *Tx) Rollback() error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.release()
	return nil
}

func (t *Tx) dirty() bool {
	for _, st := range t.tables {
		if st.cleared || st.exists != st.existed || len(st.writes) > 0 {
			return true
		}
	}
	return false
}

// readError explains a read at revision rev that failed.
func readError(rev int64, err error) error {
	if isRPC(err, rpctypes.ErrGRPCCompacted) {
		return fmt.Errorf("the transaction's snapshot (revision %d) was compacted; start a new transaction (%w): %w", rev, ErrConflict, err)
	}
	return err
}

// table implements store.Table over the overlay and the snapshot.
type table struct {
	tx    *Tx
	st    *tableState
	epoch int
}

func (tb *table) Name() string { return tb.st.name }

func (tb *table) check(write bool) error {
	if err := tb.tx.check(write); err != nil {
		return fmt.Errorf("table %q: %w", tb.st.name, err)
	}
	if tb.epoch != tb.st.epoch || !tb.st.exists {
		return fmt.Errorf("table %q was dropped: %w", tb.st.name, hook.ErrNoTable)
	}
	return nil
}

// Get implements [hook.Table].
func (tb *table) Get(key []byte) ([]byte, error) {
	if err := tb.check(false); err != nil {
		return nil, err
	}
	if w := tb.st.writes[string(key)]; w != nil {
		if w.del {
			return nil, fmt.Errorf("table %q: key %q: %w", tb.st.name, truncate(key), hook.ErrNotFound)
		}
		return bytes.Clone(w.value), nil
	}
	if tb.st.cleared || len(key) == 0 {
		return nil, fmt.Errorf("table %q: key %q: %w", tb.st.name, truncate(key), hook.ErrNotFound)
	}
	t := tb.tx
	ek := t.s.lay.records(t.gen, tb.st.name) + string(key)
	ctx, cancel := t.s.reqCtx()
	defer cancel()
	resp, err := t.s.cli.Get(ctx, ek, clientv3.WithRev(t.rev))
	if err != nil {
		return nil, fmt.Errorf("table %q: getting key %q: %w", tb.st.name, truncate(key), readError(t.rev, err))
	}
	var modRev int64
	if len(resp.Kvs) > 0 {
		modRev = resp.Kvs[0].ModRevision
	}
	if t.writable {
		if _, ok := t.seen[ek]; !ok && tb.st.name == store.MetaTable {
			t.metaReads = append(t.metaReads, ek)
			t.rcost += len(ek) + elemBytes
		}
		t.seen[ek] = modRev
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("table %q: key %q: %w", tb.st.name, truncate(key), hook.ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// Put implements [hook.Table].
func (tb *table) Put(key, value []byte) error {
	if err := tb.check(true); err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("table %q: putting an empty key", tb.st.name)
	}
	if value == nil {
		value = []byte{}
	}
	return tb.write(key, bytes.Clone(value), false)
}

// Delete implements [hook.Table].
func (tb *table) Delete(key []byte) error {
	if err := tb.check(true); err != nil {
		return err
	}
	if len(key) == 0 {
		return nil
	}
	if tb.st.cleared && tb.st.writes[string(key)] == nil {
		return nil // nothing of the snapshot is left to delete
	}
	return tb.write(key, nil, true)
}

func (tb *table) write(key, value []byte, del bool) error {
	st, t := tb.st, tb.tx
	k := string(key)
	w := st.writes[k]
	if w == nil {
		if err := t.fitsOneMore(len(k) + len(value)); err != nil {
			return fmt.Errorf("table %q: writing key %q: %w", st.name, truncate(key), err)
		}
		w = &write{}
		ek := t.s.lay.records(t.gen, st.name) + k
		w.cost = 2 * (len(ek) + elemBytes) // a compare and an operation
		if st.cleared {
			w.cost = len(ek) + elemBytes + 2*len(ek) + 1 + elemBytes // a put and the range delete before it
		}
		switch {
		case st.cleared:
			w.known = true
		case st.scan.on && st.scan.key == k:
			w.modRev, w.known = st.scan.modRev, true
		default:
			w.modRev, w.known = t.seen[ek]
		}
		st.writes[k] = w
		i, _ := slices.BinarySearch(st.keys, k)
		st.keys = slices.Insert(st.keys, i, k)
		t.nwrites++
		t.wbytes += len(k)
		t.wcost += w.cost
	}
	t.wbytes += len(value) - len(w.value)
	t.wcost += len(value) - len(w.value)
	w.value, w.del = value, del
	if del && st.cleared {
		// Deleting a key put after the drop: nothing to write at all.
		delete(st.writes, k)
		i, _ := slices.BinarySearch(st.keys, k)
		st.keys = slices.Delete(st.keys, i, i+1)
		t.nwrites--
		t.wbytes -= len(k)
		t.wcost -= w.cost
	}
	return nil
}

// Scan implements [hook.Table]: the snapshot at rev, page by page, merged
// in key order with the transaction's writes.
func (tb *table) Scan(start []byte, fn func(key, value []byte) error) error {
	if err := tb.check(false); err != nil {
		return err
	}
	t, st := tb.tx, tb.st
	prefix := t.s.lay.records(t.gen, st.name)
	end := prefixEnd(prefix)
	pos := string(start)
	var page []*kv
	more := !st.cleared // the snapshot may hold keys at or after pos
	r := t.newRangeReader(prefix+pos, end, len(prefix))
	defer r.close()
	outer := st.scan
	defer func() { st.scan = outer }()
	for {
		// The next snapshot record at or after pos.
		for len(page) > 0 && page[0].key < pos {
			page = page[1:]
		}
		if len(page) == 0 && more {
			var err error
			if page, more, err = r.next(prefix + pos); err != nil {
				return fmt.Errorf("table %q: %w", st.name, err)
			}
			continue
		}
		// The next write at or after pos.
		var ow *write
		ok := ""
		if i, _ := slices.BinarySearch(st.keys, pos); i < len(st.keys) {
			ok, ow = st.keys[i], st.writes[st.keys[i]]
		}
		var key string
		var value []byte
		var modRev int64
		switch {
		case ow != nil && (len(page) == 0 || ok <= page[0].key):
			key = ok
			if ow.del {
				pos = key + "\x00"
				continue
			}
			value, modRev = ow.value, ow.modRev
		case len(page) > 0:
			key, value, modRev = page[0].key, page[0].value, page[0].modRev
		default:
			return nil
		}
		st.scan = scanState{key: key, modRev: modRev, on: true}
		err := fn([]byte(key), value)
		st.scan = outer
		if errors.Is(err, hook.ErrStop) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tb.check(false); err != nil {
			return err
		}
		pos = key + "\x00"
	}
}

type kv struct {
	key    string
	value  []byte
	modRev int64
}

// rangeReader reads the records of a range at the transaction's revision,
// in key order, one chunk at a time. It streams the range (RangeStream):
// etcd answers a paged range read (a limit) with the count of every key to
// the end of the range, so reading a large table page by page costs the
// members time quadratic in its size, where one stream costs linear time.
// The stream's chunks are bounded by the cluster's request size and read
// as the caller needs them (gRPC flow control holds the rest back). A
// cluster without RangeStream (before etcd v3.7) is read page by page,
// [Options.PageSize] records a page, the first page only as large as
// what one commit can write (a batching caller stops there).
type rangeReader struct {
	t      *Tx
	end    string
	strip  int
	paged  bool // the cluster has no RangeStream
	limit  int  // the next page's size, when paged
	ch     clientv3.GetStreamChan
	cancel context.CancelFunc
	quiet  *time.Timer // cancels a stream that sends nothing for RequestTimeout
}

func (t *Tx) newRangeReader(from, end string, strip int) *rangeReader {
	return &rangeReader{t: t, end: end, strip: strip, paged: pagedReads, limit: min(t.s.limits.MaxTxnOps, t.s.opts.PageSize)}
}

// pagedReads makes every rangeReader read page by page, as on a cluster
// without RangeStream; tests set it.
var pagedReads = false

// next returns the next records at or after from, and whether more may
// follow.
func (r *rangeReader) next(from string) ([]*kv, bool, error) {
	if r.paged {
		page, more, err := r.t.page(from, r.end, r.strip, r.limit)
		r.limit = min(2*r.limit, r.t.s.opts.PageSize)
		return page, more, err
	}
	if r.ch == nil {
		ctx, cancel := context.WithCancel(r.t.s.ctx)
		ch, err := r.t.s.cli.GetStream(ctx, from, clientv3.WithRange(r.end), clientv3.WithRev(r.t.rev))
		if err != nil {
			cancel()
			return r.fallback(from, err)
		}
		r.ch, r.cancel = ch, cancel
		r.quiet = time.AfterFunc(r.t.s.opts.RequestTimeout, cancel)
	}
	r.quiet.Reset(r.t.s.opts.RequestTimeout)
	resp, ok := <-r.ch
	r.quiet.Stop()
	if !ok {
		return nil, false, nil
	}
	if err := resp.Err(); err != nil {
		if status.Code(err) == codes.Unimplemented && r.ch != nil {
			r.close()
			return r.fallback(from, err)
		}
		return nil, false, readError(r.t.rev, err)
	}
	page := make([]*kv, len(resp.Kvs))
	for i, rec := range resp.Kvs {
		page[i] = &kv{key: string(rec.Key[r.strip:]), value: rec.Value, modRev: rec.ModRevision}
	}
	return page, true, nil
}

// fallback reads page by page when the cluster has no RangeStream.
func (r *rangeReader) fallback(from string, err error) ([]*kv, bool, error) {
	if status.Code(err) != codes.Unimplemented {
		return nil, false, readError(r.t.rev, err)
	}
	r.paged = true
	return r.next(from)
}

func (r *rangeReader) close() {
	if r.cancel != nil {
		r.quiet.Stop()
		r.cancel()
		for range r.ch {
		}
		r.cancel, r.ch = nil, nil
	}
}

// page reads up to limit records in [from, end) at rev; keys lose their
// first strip bytes.
func (t *Tx) page(from, end string, strip, limit int) ([]*kv, bool, error) {
	ctx, cancel := t.s.reqCtx()
	defer cancel()
	resp, err := t.s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(t.rev), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, false, readError(t.rev, err)
	}
	page := make([]*kv, len(resp.Kvs))
	for i, r := range resp.Kvs {
		page[i] = &kv{key: string(r.Key[strip:]), value: r.Value, modRev: r.ModRevision}
	}
	return page, resp.More && len(page) > 0, nil
}

// truncate shortens a key for an error message.
func truncate(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}
