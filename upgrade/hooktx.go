package upgrade

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// hookTx is the hook.Tx a hook runs in. It wraps the current store
// transaction, which Checkpoint replaces; table handles and the
// configuration view resolve through it, so they stay valid.
type hookTx struct {
	st  store.Store
	cur store.Tx // nil after a failed Checkpoint
	gen int      // incremented by every Checkpoint
	// committed counts the checkpoints committed: the run's progress,
	// which a conflict afterwards does not undo.
	committed int
	scanning  int // active Scans; Checkpoint is refused inside one
	info      hook.Info
	name      string
	config    hook.Config
	log       io.Writer   // Options.Log
	space     *spaceWatch // Options.space: counts the commits
	// conflict: a Checkpoint's commit failed with store.ErrConflict, so
	// the run re-runs the hook whatever the hook made of the error.
	conflict bool
	// returned is set when the hook has returned, and inflight counts
	// the calls of the hook's Tx, tables and configuration in progress:
	// a goroutine the hook left behind must not touch the transaction
	// the engine then commits (a store transaction is not safe for
	// concurrent use), so its calls fail from then on, and the engine
	// waits for those in progress (see enter and hookReturned).
	returned atomic.Bool
	inflight atomic.Int64
}

// errReturned is what a call of a hook's Tx, tables or configuration
// fails with after the hook returned.
var errReturned = errors.New("the hook has returned: its transaction, tables and configuration files are no longer usable (a goroutine it started must finish before it returns)")

// enter begins a call of the hook's Tx, a table or the configuration:
// it fails once the hook has returned; leave ends a call that began.
func (h *hookTx) enter() error {
	h.inflight.Add(1)
	if h.returned.Load() {
		h.inflight.Add(-1)
		return fmt.Errorf("hook %d (%s): %w", h.info.Num, h.name, errReturned)
	}
	return nil
}

func (h *hookTx) leave() { h.inflight.Add(-1) }

// hookReturned is called when the hook has returned: every later call of
// its Tx, tables and configuration fails, and it waits for the calls in
// progress (of goroutines the hook left behind) to end, so that none
// touches the transaction while the engine commits or rolls it back.
//
// A goroutine stuck in a call (blocked in a Scan callback) would keep the
// run waiting: after a second, warn says so once, and what the operator
// can do.
func (h *hookTx) hookReturned(warn io.Writer) {
	h.returned.Store(true)
	start := time.Now()
	warned := false
	for h.inflight.Load() != 0 {
		if !warned && warn != nil && time.Since(start) > time.Second {
			warned = true
			fmt.Fprintf(warn, "hook %d (%s) returned, but a goroutine it started is still in a call of its transaction: waiting for it to end before the transaction is committed or rolled back (a second interrupt ends the process; nothing of this hook's transaction since its last checkpoint is written then)\n", h.info.Num, h.name)
		}
		time.Sleep(time.Millisecond)
	}
}

// roomHookTx is the hook.Tx of a store whose transactions are bounded
// (their store.Tx is a store.Roomer): it adds Room, which hook.EachBatch
// uses to checkpoint before the transaction is full.
type roomHookTx struct{ *hookTx }

var (
	_ hook.Tx     = (*hookTx)(nil)
	_ hook.Roomer = roomHookTx{}
)

// Room implements [hook.Roomer]: the room of the current transaction, none
// after a failed Checkpoint.
func (h roomHookTx) Room() (writes, bytes int) {
	if err := h.enter(); err != nil {
		return 0, 0
	}
	defer h.leave()
	r, ok := h.cur.(store.Roomer)
	if !ok {
		return 0, 0
	}
	return r.Room()
}

// hookView returns what the hook sees of h: h, with Room when the store's
// transactions are bounded.
func hookView(h *hookTx) hook.Tx {
	if _, ok := h.cur.(store.Roomer); ok {
		return roomHookTx{h}
	}
	return h
}

func (h *hookTx) tx() (store.Tx, error) {
	if h.cur == nil {
		return nil, store.ErrTxClosed
	}
	return h.cur, nil
}

func (h *hookTx) Info() hook.Info { return h.info }

func checkUserTable(name string) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if store.IsReserved(name) {
		return fmt.Errorf("%w %q: names starting with \"_\" are reserved for hookreg", store.ErrBadName, name)
	}
	return nil
}

// checkNewName refuses a name that a hook may not create: one holding "/",
// which would print as a nested path (an existing table of such a name can
// still be opened).
func checkNewName(path []string) error {
	if name := path[len(path)-1]; strings.Contains(name, "/") {
		return fmt.Errorf("creating table %s: %w: a name holding \"/\" reads as a nested path; create nested tables in their parent (hook.CreatePath)", hook.FormatPath(path), store.ErrBadName)
	}
	return nil
}

func (h *hookTx) Table(name string) (hook.Table, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.leave()
	if err := checkUserTable(name); err != nil {
		return nil, err
	}
	tx, err := h.tx()
	if err != nil {
		return nil, err
	}
	t, err := tx.Table(name)
	if err != nil {
		return nil, err
	}
	return &hookTable{h: h, path: []string{name}, gen: h.gen, t: t}, nil
}

func (h *hookTx) CreateTable(name string) (hook.Table, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.leave()
	if err := checkUserTable(name); err != nil {
		return nil, err
	}
	if err := checkNewName([]string{name}); err != nil {
		return nil, err
	}
	tx, err := h.tx()
	if err != nil {
		return nil, err
	}
	t, err := tx.CreateTable(name)
	if err != nil {
		return nil, err
	}
	return &hookTable{h: h, path: []string{name}, gen: h.gen, t: t}, nil
}

func (h *hookTx) DropTable(name string) error {
	if err := h.enter(); err != nil {
		return err
	}
	defer h.leave()
	if err := checkUserTable(name); err != nil {
		return err
	}
	tx, err := h.tx()
	if err != nil {
		return err
	}
	return tx.DropTable(name)
}

func (h *hookTx) Tables() ([]string, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.leave()
	tx, err := h.tx()
	if err != nil {
		return nil, err
	}
	all, err := tx.Tables()
	if err != nil {
		return nil, err
	}
	names := all[:0]
	for _, n := range all {
		if !store.IsReserved(n) {
			names = append(names, n)
		}
	}
	return names, nil
}

func (h *hookTx) Config() hook.Config { return guardedConfig{h} }

func (h *hookTx) progressKey(key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("empty progress key")
	}
	return []byte(progressPrefix(h.info.Num) + key), nil
}

func (h *hookTx) Checkpoint(key string, progress []byte) error {
	if err := h.enter(); err != nil {
		return err
	}
	defer h.leave()
	k, err := h.progressKey(key)
	if err != nil {
		return err
	}
	if h.scanning > 0 {
		return errors.New("checkpoint inside a Scan: checkpoint between scans (or use hook.EachBatch)")
	}
	tx, err := h.tx()
	if err != nil {
		return err
	}
	meta, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		return fmt.Errorf("checkpoint %q: %w", key, err)
	}
	if err := meta.Put(k, progress); err != nil {
		return fmt.Errorf("checkpoint %q: %w", key, err)
	}
	h.cur = nil
	h.gen++
	next, committed, err := commitBegin(h.st, tx)
	if committed {
		h.committed++
		h.space.committed()
	}
	if err != nil {
		h.conflict = !committed && errors.Is(err, store.ErrConflict)
		return fmt.Errorf("checkpoint %q: %w", key, err)
	}
	h.cur = next
	if h.log != nil {
		fmt.Fprintf(h.log, "hook %d (%s): checkpoint %d (%s)\n", h.info.Num, h.name, h.gen, key)
	}
	return nil
}

// commitBegin commits tx and begins the next writable transaction of st:
// in one step when the store's transactions chain ([store.Chainer]: on
// etcd, the commit's txn reads what the next transaction needs, which
// saves a round trip per checkpoint). committed reports whether tx
// committed.
func commitBegin(st store.Store, tx store.Tx) (next store.Tx, committed bool, err error) {
	if c, ok := tx.(store.Chainer); ok {
		return c.CommitBegin()
	}
	if err := tx.Commit(); err != nil {
		return nil, false, err
	}
	next, err = st.Begin(true)
	return next, true, err
}

func (h *hookTx) Progress(key string) ([]byte, bool, error) {
	if err := h.enter(); err != nil {
		return nil, false, err
	}
	defer h.leave()
	k, err := h.progressKey(key)
	if err != nil {
		return nil, false, err
	}
	tx, err := h.tx()
	if err != nil {
		return nil, false, err
	}
	meta, err := tx.Table(store.MetaTable)
	if errors.Is(err, hook.ErrNoTable) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := meta.Get(k)
	if errors.Is(err, hook.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// hookTable is a table handle that survives checkpoints: it reopens the
// table by its path in the current transaction when a checkpoint replaced
// it.
type hookTable struct {
	h    *hookTx
	path []string
	gen  int
	t    store.Table
}

func (t *hookTable) table() (store.Table, error) {
	if t.gen == t.h.gen {
		return t.t, nil
	}
	tx, err := t.h.tx()
	if err != nil {
		return nil, err
	}
	tt, err := hook.OpenPath(tx, t.path...)
	if err != nil {
		return nil, err
	}
	t.t, t.gen = tt, t.h.gen
	return tt, nil
}

func (t *hookTable) Name() string   { return t.path[len(t.path)-1] }
func (t *hookTable) Path() []string { return slices.Clone(t.path) }

func (t *hookTable) Get(key []byte) ([]byte, error) {
	if err := t.h.enter(); err != nil {
		return nil, err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return nil, err
	}
	return tt.Get(key)
}

func (t *hookTable) Put(key, value []byte) error {
	if err := t.h.enter(); err != nil {
		return err
	}
	defer t.h.leave()
	if len(value) > archive.MaxValueSize {
		// bbolt takes it, but no backup could carry it: the offline
		// upgrade's result, and every later backup, would be refused.
		k := key[:min(len(key), 64)]
		return fmt.Errorf("table %s: putting key %q: a value of %d bytes: a backup carries values of up to %d bytes (the archive format's limit), so the store could no longer be backed up; split the value over several keys", hook.FormatPath(t.path), k, len(value), archive.MaxValueSize)
	}
	tt, err := t.table()
	if err != nil {
		return err
	}
	return tt.Put(key, value)
}

func (t *hookTable) Delete(key []byte) error {
	if err := t.h.enter(); err != nil {
		return err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return err
	}
	return tt.Delete(key)
}

func (t *hookTable) Scan(start []byte, fn func(key, value []byte) error) error {
	if err := t.h.enter(); err != nil {
		return err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return err
	}
	t.h.scanning++
	defer func() { t.h.scanning-- }()
	return tt.Scan(start, fn)
}

// nested returns the handle of the table name nested in t, opened (or
// created) by open in t's current store table.
func (t *hookTable) nested(name string, open func(store.Table) (store.Table, error)) (hook.Table, error) {
	if err := t.h.enter(); err != nil {
		return nil, err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return nil, err
	}
	n, err := open(tt)
	if err != nil {
		return nil, err
	}
	return &hookTable{h: t.h, path: append(t.path[:len(t.path):len(t.path)], name), gen: t.h.gen, t: n}, nil
}

func (t *hookTable) Table(name string) (hook.Table, error) {
	return t.nested(name, func(tt store.Table) (store.Table, error) { return tt.Table(name) })
}

func (t *hookTable) CreateTable(name string) (hook.Table, error) {
	if err := checkNewName(append(t.Path(), name)); err != nil {
		return nil, err
	}
	return t.nested(name, func(tt store.Table) (store.Table, error) { return tt.CreateTable(name) })
}

func (t *hookTable) DropTable(name string) error {
	if err := t.h.enter(); err != nil {
		return err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return err
	}
	return tt.DropTable(name)
}

func (t *hookTable) Tables() ([]string, error) {
	if err := t.h.enter(); err != nil {
		return nil, err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return nil, err
	}
	return tt.Tables()
}

func (t *hookTable) Sequence() (uint64, error) {
	if err := t.h.enter(); err != nil {
		return 0, err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return 0, err
	}
	return tt.Sequence()
}

func (t *hookTable) SetSequence(v uint64) error {
	if err := t.h.enter(); err != nil {
		return err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return err
	}
	return tt.SetSequence(v)
}

func (t *hookTable) NextSequence() (uint64, error) {
	if err := t.h.enter(); err != nil {
		return 0, err
	}
	defer t.h.leave()
	tt, err := t.table()
	if err != nil {
		return 0, err
	}
	return tt.NextSequence()
}

// storeSource resolves configuration tables through the current
// transaction of h.
type storeSource struct{ h *hookTx }

func (s storeSource) Table(name string) (store.Table, error) {
	tx, err := s.h.tx()
	if err != nil {
		return nil, err
	}
	return tx.Table(name)
}

func (s storeSource) CreateTable(name string) (store.Table, error) {
	tx, err := s.h.tx()
	if err != nil {
		return nil, err
	}
	return tx.CreateTable(name)
}

// readOnlyConfig is the configuration view of an online run: writes fail
// the hook, naming it.
type readOnlyConfig struct {
	hook.Config
	num  int
	name string
}

func (c readOnlyConfig) WriteFile(path string, _ []byte, _ fs.FileMode) error {
	return fmt.Errorf("hook %d (%s): writing configuration file %s: %w", c.num, c.name, path, hook.ErrReadOnlyConfig)
}

func (c readOnlyConfig) Remove(path string) error {
	return fmt.Errorf("hook %d (%s): removing configuration file %s: %w", c.num, c.name, path, hook.ErrReadOnlyConfig)
}

// guardedConfig is the hook's configuration view: its calls fail once the
// hook has returned (see hookTx.enter).
type guardedConfig struct{ h *hookTx }

func (c guardedConfig) ReadFile(path string) ([]byte, error) {
	if err := c.h.enter(); err != nil {
		return nil, err
	}
	defer c.h.leave()
	return c.h.config.ReadFile(path)
}

func (c guardedConfig) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := c.h.enter(); err != nil {
		return err
	}
	defer c.h.leave()
	return c.h.config.WriteFile(path, data, perm)
}

func (c guardedConfig) Remove(path string) error {
	if err := c.h.enter(); err != nil {
		return err
	}
	defer c.h.leave()
	return c.h.config.Remove(path)
}

func (c guardedConfig) List() ([]string, error) {
	if err := c.h.enter(); err != nil {
		return nil, err
	}
	defer c.h.leave()
	return c.h.config.List()
}
