package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
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
	// top holds the state of every top-level table the transaction
	// knows, and states every state of any depth, in creation order.
	top    map[string]*tableState
	states []*tableState
	// allTop: top holds every top-level table of the generation at rev,
	// so a name missing there has no table; allNested: likewise, the
	// states hold every nested table.
	allTop, allNested bool
	// maxPrefix is the longest record prefix of a nested state.
	maxPrefix int
	// seen holds the mod revision at rev (0: absent) of every key Get
	// read, which the commit checks when the key is written.
	seen map[string]int64
	// metaReads are the keys of store.MetaTable Get read; the commit
	// checks them.
	metaReads []string
	// curLen and topLen are the lengths of P/current and of the
	// top-level records' prefix, which Room needs at every write.
	curLen, topLen int
	nwrites        int // entries in every writes map
	wbytes         int // their keys' and values' bytes
	wcost          int // a bound on their bytes in the commit's request
	rcost          int // a bound on the metaReads' compares' bytes
	release        func()
}

var (
	_ store.Tx      = (*Tx)(nil)
	_ store.Roomer  = (*Tx)(nil)
	_ store.Chainer = (*Tx)(nil)
)

// tableState is the transaction's view of one table, shared by its
// handles.
type tableState struct {
	path      []string
	parent    *tableState // nil for a top-level table
	existed   bool        // the marker existed at rev
	markerRev int64       // its mod revision at rev
	exists    bool
	cleared   bool   // dropped in this transaction: no record of rev counts
	epoch     int    // incremented by DropTable; older handles are dead
	seq0, seq uint64 // the sequence at rev (the marker's value), and now
	writes    map[string]*write
	keys      []string // the keys of writes, sorted
	scan      scanState
	// children holds the states of the tables nested in this one that
	// the transaction knows; kids: every one that existed at rev.
	children map[string]*tableState
	kids     bool
	kidsMod  int // incremented when a child is created or dropped
	// guard is the parent's record key under the table's name, which
	// the commit checks is still absent when the table is new.
	guard string
	// prefixLen is the length of the records' prefix, once need
	// computed it.
	prefixLen int
}

func (st *tableState) name() string { return st.path[len(st.path)-1] }

// label names the table in errors: a top-level table's name quoted, a
// nested table's path (hook.FormatPath).
func (st *tableState) label() string {
	if len(st.path) == 1 {
		return strconv.Quote(st.path[0])
	}
	return hook.FormatPath(st.path)
}

// markerChanged reports whether the commit writes the table's marker:
// created, dropped, or its sequence changed.
func (st *tableState) markerChanged() bool {
	return st.exists != st.existed || st.exists && st.seq != st.seq0
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

// newState adds the state of a table the transaction did not know, as
// missing at rev.
func (t *Tx) newState(parent *tableState, name string) *tableState {
	st := &tableState{parent: parent, writes: map[string]*write{}}
	if parent == nil {
		st.path = []string{name}
		t.top[name] = st
	} else {
		st.path = append(parent.path[:len(parent.path):len(parent.path)], name)
		if parent.children == nil {
			parent.children = map[string]*tableState{}
		}
		parent.children[name] = st
		t.maxPrefix = max(t.maxPrefix, len(t.s.lay.records(t.gen, st.path)))
	}
	t.states = append(t.states, st)
	return st
}

// found records what the marker of st held at rev.
func (st *tableState) found(modRev int64, value []byte) error {
	seq, err := parseSeq(value)
	if err != nil {
		return fmt.Errorf("table %s: %w", st.label(), err)
	}
	st.existed, st.exists, st.markerRev, st.seq0, st.seq = true, true, modRev, seq, seq
	return nil
}

// known reports whether the states of the children of parent (nil: the
// top-level tables) hold every child that existed at rev.
func (t *Tx) known(parent *tableState) bool {
	if parent == nil {
		return t.allTop
	}
	return t.allNested || parent.kids || !parent.existed
}

// child returns the state of table name in parent (nil: a top-level
// table), reading its marker at rev the first time.
func (t *Tx) child(parent *tableState, name string) (*tableState, error) {
	m := t.top
	if parent != nil {
		m = parent.children
	}
	if st := m[name]; st != nil {
		return st, nil
	}
	known := t.known(parent)
	st := t.newState(parent, name)
	if known {
		return st, nil
	}
	var resp *clientv3.GetResponse
	err := t.s.read(func(ctx context.Context) (err error) {
		resp, err = t.s.cli.Get(ctx, t.s.lay.marker(t.gen, st.path), clientv3.WithRev(t.rev))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", st.label(), readError(t.rev, err))
	}
	if len(resp.Kvs) > 0 {
		if err := st.found(resp.Kvs[0].ModRevision, resp.Kvs[0].Value); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// loadKids reads the markers of every table nested in parent at rev into
// its children, once.
func (t *Tx) loadKids(parent *tableState) error {
	if t.known(parent) {
		return nil
	}
	p := t.s.lay.children(t.gen, parent.path)
	err := t.s.pages(t.rev, p, prefixEnd(p), false, func(k, v []byte, modRev int64) error {
		name, err := decodeName(string(k[len(p):]))
		if err != nil {
			return err
		}
		if parent.children[name] != nil {
			return nil
		}
		return t.newState(parent, name).found(modRev, v)
	})
	if err != nil {
		return fmt.Errorf("listing the tables nested in %s: %w", parent.label(), readError(t.rev, err))
	}
	parent.kids = true
	return nil
}

// kidNames returns the sorted names of the tables nested in parent, as
// the transaction sees them.
func (t *Tx) kidNames(parent *tableState) ([]string, error) {
	if err := t.loadKids(parent); err != nil {
		return nil, err
	}
	var names []string
	for name, st := range parent.children {
		if st.exists {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// handle returns a handle of the table of st.
func (t *Tx) handle(st *tableState) *table { return &table{tx: t, st: st, epoch: st.epoch} }

// Table implements [store.Tx].
func (t *Tx) Table(name string) (store.Table, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	st, err := t.child(nil, name)
	if err != nil {
		return nil, err
	}
	if !st.exists {
		return nil, fmt.Errorf("table %q: %w", name, hook.ErrNoTable)
	}
	return t.handle(st), nil
}

// CreateTable implements [store.Tx].
func (t *Tx) CreateTable(name string) (store.Table, error) {
	if err := t.check(true); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	st, err := t.child(nil, name)
	if err != nil {
		return nil, err
	}
	st.exists = true
	return t.handle(st), nil
}

// DropTable implements [store.Tx]. A table that holds nested tables or a
// non-zero sequence is refused ([hook.ErrNotFlat]).
func (t *Tx) DropTable(name string) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := store.ValidateName(name); err != nil {
		return err
	}
	st, err := t.child(nil, name)
	if err != nil {
		return err
	}
	return t.drop(st)
}

// drop drops the table of st, if it exists and is flat.
func (t *Tx) drop(st *tableState) error {
	if !st.exists {
		return nil
	}
	nested, err := t.kidNames(st)
	if err != nil {
		return err
	}
	if err := store.NotFlat(nested, st.seq); err != nil {
		return fmt.Errorf("dropping table %s: %w", st.label(), err)
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
	st.guard = ""
	if st.parent != nil {
		st.parent.kidsMod++
	}
	return nil
}

// Tables implements [store.Tx].
func (t *Tx) Tables() ([]string, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	if !t.allTop {
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
	for name, st := range t.top {
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
	// The next write's key has the record prefix of a table the
	// transaction knows: a top-level one's, or the longest nested one's.
	prefix := max(t.topLen+3*store.MaxNameLen+1, t.maxPrefix)
	next := 3 * (prefix + elemBytes)
	bytes = l.requestBytes(t.s.opts.Username) - size - next
	return max(writes, 0), max(bytes, 0)
}

// elemBytes bounds the encoding of one compare or operation of a txn
// request besides its keys and value: tags, lengths and a revision.
const elemBytes = 32

// seqBytes bounds the value of a marker (encodeSeq).
const seqBytes = 20

// need bounds from above the compares, operations and request bytes the
// commit's txn needs (plan builds it exactly), and returns the operations
// one more write may need, without building anything.
func (t *Tx) need() (cmps, ops, size, perWrite int) {
	root := t.curLen
	cmps, ops = 2+len(t.metaReads), 1
	size = 5*(root+tagWidth+maxHolder+elemBytes) + t.wcost + t.rcost
	perWrite = 1
	for _, st := range t.states {
		n := len(st.writes)
		if st.prefixLen == 0 {
			st.prefixLen = len(t.s.lay.records(t.gen, st.path))
		}
		prefix := st.prefixLen
		if st.cleared || st.markerChanged() {
			// The marker's key is as long as the records' prefix.
			cmps, ops = cmps+1, ops+1
			size += 2*(prefix+elemBytes) + seqBytes
		}
		if st.guard != "" && st.exists && !st.existed {
			cmps++
			size += len(st.guard) + elemBytes
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

// fitsNeed refuses a transaction whose commit would not fit the limits
// by need's bound: a write that adds no record (a table, a sequence)
// undoes itself when it fails.
func (t *Tx) fitsNeed() error {
	l := t.s.limits
	cmps, ops, size, _ := t.need()
	if cmps > l.MaxTxnOps || ops > l.MaxTxnOps || size > l.requestBytes(t.s.opts.Username) {
		return &LimitError{Writes: t.nwrites, Bytes: t.wbytes, Limits: l}
	}
	return nil
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

// CommitBegin implements [store.Chainer]: it commits as Commit does and
// returns the store's next writable transaction, which reads at the
// commit's revision. The commit's txn also reads, in its success branch,
// the table markers that Begin would read (etcd runs those reads after the
// commit's writes, at its revision, atomically with it), so the next
// transaction needs no request of its own: a batch of an online hook costs
// one round trip, not two. The writer slot passes from this transaction to
// the next, so no other transaction or restore of this store runs in
// between. The next transaction's commit compares what any commit does
// (the lock, P/current, every key it writes, since its revision): a
// product's write after the commit's revision to a key it writes fails it
// with [ErrConflict], as it would fail a freshly begun one.
//
// The next transaction begins with a read of its own, as Begin's, when the
// reads do not fit the cluster's limits beside the commit's writes, when
// the commit had nothing to write, or when the commit's answer was lost
// and the store found out otherwise (the lock key) that it applied.
func (t *Tx) CommitBegin() (next store.Tx, committed bool, err error) {
	if err := t.check(false); err != nil {
		return nil, false, err
	}
	if !t.writable || !t.dirty() {
		if err := t.Commit(); err != nil {
			return nil, false, err
		}
		n, err := t.s.begin(true)
		if err != nil {
			return nil, true, err
		}
		return n, true, nil
	}
	t.closed = true
	release := t.release
	p, err := t.plan()
	if err == nil {
		err = t.fits(p)
	}
	if err != nil {
		release()
		return nil, false, fmt.Errorf("committing: %w", err)
	}
	reads := t.s.pinReads(t.gen)
	if !t.s.pinReadsFit(p, reads) {
		reads = nil
	}
	resp, err := t.s.commitReading(p, t.gen, reads)
	if err != nil {
		release()
		return nil, false, fmt.Errorf("committing: %w", err)
	}
	n, err := t.s.chained(t.gen, resp, len(reads), release)
	if err != nil {
		return nil, true, fmt.Errorf("beginning a transaction on %s: %w", t.s.name, err)
	}
	return n, true, nil
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
	for _, st := range t.states {
		if st.cleared || st.markerChanged() || len(st.writes) > 0 {
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

func (tb *table) Name() string { return tb.st.name() }

// Path implements [hook.Table].
func (tb *table) Path() []string { return slices.Clone(tb.st.path) }

func (tb *table) check(write bool) error {
	if err := tb.tx.check(write); err != nil {
		return fmt.Errorf("table %s: %w", tb.st.label(), err)
	}
	if tb.epoch != tb.st.epoch || !tb.st.exists {
		return fmt.Errorf("table %s was dropped: %w", tb.st.label(), hook.ErrNoTable)
	}
	return nil
}

// isTable reports whether key names a table nested in the table: Get,
// Put and Delete refuse it (hook.ErrIsTable).
func (tb *table) isTable(key []byte) (bool, error) {
	if len(key) == 0 || len(key) > store.MaxNameLen {
		return false, nil // no table has that name
	}
	if err := tb.tx.loadKids(tb.st); err != nil {
		return false, err
	}
	c := tb.st.children[string(key)]
	return c != nil && c.exists, nil
}

func (tb *table) refuseTable(key []byte) error {
	is, err := tb.isTable(key)
	if err != nil {
		return err
	}
	if is {
		return fmt.Errorf("table %s: key %q: %w (open it with Table, drop it with DropTable)", tb.st.label(), truncate(key), hook.ErrIsTable)
	}
	return nil
}

// Get implements [hook.Table].
func (tb *table) Get(key []byte) ([]byte, error) {
	if err := tb.check(false); err != nil {
		return nil, err
	}
	if err := tb.refuseTable(key); err != nil {
		return nil, err
	}
	v, ok, err := tb.get(key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("table %s: key %q: %w", tb.st.label(), truncate(key), hook.ErrNotFound)
	}
	return v, nil
}

// get reads the record key as the transaction sees it.
func (tb *table) get(key []byte) ([]byte, bool, error) {
	if w := tb.st.writes[string(key)]; w != nil {
		if w.del {
			return nil, false, nil
		}
		return bytes.Clone(w.value), true, nil
	}
	if tb.st.cleared || !tb.st.existed || len(key) == 0 {
		return nil, false, nil
	}
	t := tb.tx
	ek := t.s.lay.records(t.gen, tb.st.path) + string(key)
	var resp *clientv3.GetResponse
	err := t.s.read(func(ctx context.Context) (err error) {
		resp, err = t.s.cli.Get(ctx, ek, clientv3.WithRev(t.rev))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("table %s: getting key %q: %w", tb.st.label(), truncate(key), readError(t.rev, err))
	}
	var modRev int64
	if len(resp.Kvs) > 0 {
		modRev = resp.Kvs[0].ModRevision
	}
	if t.writable {
		if _, ok := t.seen[ek]; !ok && len(tb.st.path) == 1 && tb.st.path[0] == store.MetaTable {
			t.metaReads = append(t.metaReads, ek)
			t.rcost += len(ek) + elemBytes
		}
		t.seen[ek] = modRev
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	v := resp.Kvs[0].Value
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put implements [hook.Table].
func (tb *table) Put(key, value []byte) error {
	if err := tb.check(true); err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("table %s: putting an empty key", tb.st.label())
	}
	if value == nil {
		return fmt.Errorf("table %s: putting key %q: a nil value (a nested table, as Scan shows one; store an empty record as []byte{})", tb.st.label(), truncate(key))
	}
	if err := tb.refuseTable(key); err != nil {
		return err
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
	if err := tb.refuseTable(key); err != nil {
		return err
	}
	if (tb.st.cleared || !tb.st.existed) && tb.st.writes[string(key)] == nil {
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
			return fmt.Errorf("table %s: writing key %q: %w", st.label(), truncate(key), err)
		}
		w = &write{}
		ek := t.s.lay.records(t.gen, st.path) + k
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
// in key order with the transaction's writes and with the nested tables
// (a nil value each).
func (tb *table) Scan(start []byte, fn func(key, value []byte) error) error {
	return tb.scan(start, true, fn)
}

// scan is Scan, without the nested tables when tables is false.
func (tb *table) scan(start []byte, tables bool, fn func(key, value []byte) error) error {
	if err := tb.check(false); err != nil {
		return err
	}
	t, st := tb.tx, tb.st
	prefix := t.s.lay.records(t.gen, st.path)
	end := prefixEnd(prefix)
	pos := string(start)
	var page []*kv
	more := !st.cleared && st.existed // the snapshot may hold keys at or after pos
	r := t.newRangeReader(prefix+pos, end, len(prefix))
	defer r.close()
	outer := st.scan
	defer func() { st.scan = outer }()
	var kids []string // the nested tables' names, as of kidsMod
	kidsMod := -1
	for {
		// The next snapshot record at or after pos.
		for len(page) > 0 && page[0].key < pos {
			page = page[1:]
		}
		if len(page) == 0 && more {
			var err error
			if page, more, err = r.next(prefix + pos); err != nil {
				return fmt.Errorf("table %s: %w", st.label(), err)
			}
			continue
		}
		// The next nested table at or after pos.
		kid := ""
		if tables {
			if kidsMod != st.kidsMod || kids == nil {
				var err error
				if kids, err = t.kidNames(st); err != nil {
					return err
				}
				if kids == nil {
					kids = []string{}
				}
				kidsMod = st.kidsMod
			}
			if i, _ := slices.BinarySearch(kids, pos); i < len(kids) {
				kid = kids[i]
			}
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
		case kid != "" && (ow == nil || kid <= ok) && (len(page) == 0 || kid <= page[0].key):
			key, value = kid, nil
		case ow != nil && (len(page) == 0 || ok <= page[0].key):
			key = ok
			if ow.del {
				pos = key + "\x00"
				continue
			}
			value, modRev = ow.value, ow.modRev
		case len(page) > 0:
			key, value, modRev = page[0].key, page[0].value, page[0].modRev
			if value == nil {
				value = empty
			}
		default:
			return nil
		}
		st.scan = scanState{key: key, modRev: modRev, on: value != nil}
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

// empty is the value Scan gives an empty record: not nil, which means a
// nested table.
var empty = []byte{}

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
	sctx   context.Context // the stream's
	cancel context.CancelFunc
	quiet  *time.Timer // cancels a stream that sends nothing for an attempt's time
}

func (t *Tx) newRangeReader(from, end string, strip int) *rangeReader {
	return &rangeReader{t: t, end: end, strip: strip, paged: pagedReads, limit: min(t.s.limits.MaxTxnOps, t.s.opts.PageSize)}
}

// pagedReads makes every rangeReader read page by page, as on a cluster
// without RangeStream; tests set it.
var pagedReads = false

// next returns the next records at or after from, and whether more may
// follow. A stream that fails with a transient failure of the cluster (its
// member died, an election) is opened again from the key after the last
// one it gave (from), at the same revision, until the request timeout
// passes without an answer.
func (r *rangeReader) next(from string) ([]*kv, bool, error) {
	// The request timeout counts from the wait for this page, the first
	// attempt and its probe of the members included.
	deadline := time.Now().Add(r.t.s.opts.RequestTimeout)
	delay := 20 * time.Millisecond
	for {
		page, more, err := r.next1(from, deadline)
		if err == nil || !retryable(err) || r.t.s.ctx.Err() != nil {
			return page, more, err
		}
		r.close()
		if time.Until(deadline) <= 0 {
			return nil, false, r.t.s.unavailable(err)
		}
		var wait time.Duration
		wait, delay = backoff(delay)
		select {
		case <-r.t.s.ctx.Done():
			return nil, false, r.t.s.interrupted(err)
		case <-time.After(min(wait, max(time.Until(deadline), 0))):
		}
	}
}

// next1 is one attempt of next, which gives up at deadline.
func (r *rangeReader) next1(from string, deadline time.Time) ([]*kv, bool, error) {
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
		r.ch, r.cancel, r.sctx = ch, cancel, ctx
		r.quiet = time.AfterFunc(r.t.s.attempt(), cancel)
	}
	r.quiet.Reset(max(min(r.t.s.attempt(), time.Until(deadline)), time.Millisecond))
	resp, ok := <-r.ch
	r.quiet.Stop()
	if r.sctx.Err() != nil && r.t.s.ctx.Err() == nil {
		// The quiet timer ended a stream that sent nothing.
		r.t.s.avoidSilent()
		return nil, false, status.Error(codes.Unavailable, "the range stream sent nothing within an attempt's time")
	}
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
	var resp *clientv3.GetResponse
	err := t.s.read(func(ctx context.Context) (err error) {
		resp, err = t.s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(t.rev), clientv3.WithLimit(int64(limit)))
		return err
	})
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
