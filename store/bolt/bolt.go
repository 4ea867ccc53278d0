// Package bolt implements the [store] API on a go.etcd.io/bbolt file, the
// embedded default store of hookreg (--store PATH). Tables are buckets,
// top-level or nested at any depth ([store.Table.Table]), each with its
// sequence (bbolt's Sequence, SetSequence and NextSequence); their names
// are any bytes a backup can carry ([store.ValidateName]). Scan gives a
// nested bucket's name with a nil value, as bbolt's ForEach does. Backup
// and restore carry every bucket exactly, with its sequence, through
// [Store]'s transactions' WalkTree ([store.TreeWalker]) and [Loader.Table].
//
//	st, err := bolt.Open("broker.db", bolt.Options{Create: true})
//	if err != nil {
//		return err // errors.Is(err, store.ErrInUse) when another migrator holds it
//	}
//	defer st.Close()
//	tx, err := st.Begin(false) // one consistent snapshot of every table
//	if err != nil {
//		return err
//	}
//	defer tx.Rollback()
//	names, err := tx.Tables()
//
// The traps of bbolt are handled here, not by callers:
//   - Open waits at most [Options.Timeout] (default [DefaultTimeout]) for
//     the file lock, then fails with an error wrapping [store.ErrInUse];
//   - a writable store maps [Options.InitialMmapSize] bytes at once, so
//     that growth rarely remaps;
//   - creating a store fsyncs its directory, so the new file survives a
//     crash;
//   - Put copies key and value, because bbolt keeps a reference to them
//     until the transaction commits;
//   - nothing uses DB.Batch, which may run a function twice;
//   - a damaged file (truncated, or with corrupted pages) gives an error
//     wrapping [store.ErrDamaged] that names the file and says to restore
//     it from a backup: Open compares the file's size with the pages its
//     metadata claims, and every operation recovers the panics of bbolt
//     and the memory faults of reading a page past the end of the file;
//   - a transaction whose commit fails or panics is rolled back, so that
//     it never keeps the writer lock.
//
// [Load] builds a new store file from a stream of records (for restore) and
// [Replace] moves a finished file over an old one atomically.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/failpoint"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = 2 * time.Second

// DefaultInitialMmapSize is the initial memory map of a writable store.
const DefaultInitialMmapSize = 256 << 20

// maxCheckErrors bounds the problems Check reports.
const maxCheckErrors = 100

// Options configure Open.
type Options struct {
	// ReadOnly opens the store for reading only, sharing the file lock
	// with other readers.
	ReadOnly bool
	// Create creates the file when it does not exist; otherwise a missing
	// file is an error wrapping fs.ErrNotExist.
	Create bool
	// Timeout bounds the wait for the file lock; DefaultTimeout when zero.
	Timeout time.Duration
	// Context, when not nil, ends the wait for the file lock as soon as
	// it is done (a signal), with an error that wraps its error.
	Context context.Context
	// InitialMmapSize is the initial memory map of a writable store;
	// DefaultInitialMmapSize when zero.
	InitialMmapSize int
}

// Store is a bbolt store file. It implements [store.Store].
type Store struct {
	db   *bbolt.DB
	path string
	// stuck is set when a transaction could not be rolled back after a
	// panic: bbolt may still hold its locks, so Close must not wait for
	// them.
	stuck bool
	// warning is what Warning returns.
	warning string
}

// Warning returns what an operator should know of the file that Open
// found but that is no error: that one of its two meta pages is damaged,
// so that bbolt reads the store through the other one, possibly one
// transaction back (bbolt says nothing of it). "" when there is nothing.
func (s *Store) Warning() string { return s.warning }

var _ store.Store = (*Store)(nil)

// Open opens the store file at path.
func Open(path string, opts Options) (st *Store, err error) {
	info, statErr := os.Stat(path)
	created := false
	switch {
	case statErr == nil && info.IsDir():
		return nil, fmt.Errorf("opening store %s: it is a directory; name the store's file", path)
	case statErr == nil && !info.Mode().IsRegular():
		// A FIFO or device would block open(2) or be no store at all.
		return nil, fmt.Errorf("opening store %s: it is %s; name the store's file", path, atomicfile.Kind(info.Mode()))
	case statErr == nil && info.Size() == 0:
		return nil, damaged(path, errors.New("the file is empty"))
	case statErr == nil:
		if isArchive(path) {
			return nil, fmt.Errorf("opening store %s: %w", path, ErrArchive)
		}
	case errors.Is(statErr, os.ErrNotExist) && opts.Create && !opts.ReadOnly:
		created = true
	case errors.Is(statErr, os.ErrNotExist):
		return nil, fmt.Errorf("opening store %s: %w", path, os.ErrNotExist)
	default:
		return nil, fmt.Errorf("opening store %s: %w", path, statErr)
	}
	bopts := &bbolt.Options{
		Timeout:  opts.Timeout,
		ReadOnly: opts.ReadOnly,
	}
	if bopts.Timeout <= 0 {
		bopts.Timeout = DefaultTimeout
	}
	if !opts.ReadOnly {
		bopts.InitialMmapSize = opts.InitialMmapSize
		if bopts.InitialMmapSize <= 0 {
			bopts.InitialMmapSize = DefaultInitialMmapSize
		}
	}
	var db *bbolt.DB
	err = protect(path, func() (err error) {
		db, err = openWaiting(path, bopts, opts.Context)
		return err
	})
	switch {
	case opts.Context != nil && opts.Context.Err() != nil && errors.Is(err, opts.Context.Err()):
		return nil, fmt.Errorf("opening store %s: interrupted while waiting for its lock: %w", path, err)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("opening store %s: %w (waited %s)", path, store.ErrInUse, bopts.Timeout)
	case errors.Is(err, store.ErrDamaged):
		return nil, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, damaged(path, err)
	case err != nil:
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if !created {
		if err := checkSize(db, path); err != nil {
			db.Close()
			return nil, err
		}
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, fmt.Errorf("creating store %s: %w", path, err)
		}
	}
	st = &Store{db: db, path: path}
	if !created {
		st.warning = metaFallback(path)
	}
	return st, nil
}

// lockPoll is how long one attempt to take the file lock waits, when
// Open's wait can be interrupted.
const lockPoll = 100 * time.Millisecond

// openWaiting opens the bbolt file, waiting up to bopts.Timeout for its
// lock; with a ctx, in attempts of lockPoll, so that ctx ends the wait
// (bbolt's own wait cannot be interrupted).
func openWaiting(path string, bopts *bbolt.Options, ctx context.Context) (*bbolt.DB, error) {
	if ctx == nil || bopts.Timeout <= lockPoll {
		return bbolt.Open(path, 0o600, bopts)
	}
	deadline := time.Now().Add(bopts.Timeout)
	attempt := *bopts
	for waited := false; ; waited = true {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		attempt.Timeout = min(lockPoll, max(time.Until(deadline), time.Millisecond))
		db, err := bbolt.Open(path, 0o600, &attempt)
		if !errors.Is(err, berrors.ErrTimeout) || !time.Now().Before(deadline) {
			return db, err
		}
		if !waited {
			if err := failpoint.Inject("bolt.lock-wait"); err != nil {
				return nil, err
			}
		}
	}
}

// ErrArchive is a store path naming a backup archive.
var ErrArchive = errors.New("the file is a backup archive, not a bbolt store: restore it into a store (restore FILE --store STORE), or read it with dump --backup")

// isArchive reports whether the file at path starts like a backup
// archive.
func isArchive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	return archive.Looks(head[:n])
}

// checkSize refuses a file shorter than the pages its metadata claims: a
// truncated store, whose missing pages would fault when read.
func checkSize(db *bbolt.DB, path string) error {
	return protect(path, func() error {
		btx, err := db.Begin(false)
		if err != nil {
			return err
		}
		need := btx.Size()
		if err := btx.Rollback(); err != nil {
			return err
		}
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("opening store %s: %w", path, err)
		}
		if info.Size() < need {
			return damaged(path, fmt.Errorf("the file is %d bytes, its pages need %d: it was truncated", info.Size(), need))
		}
		return nil
	})
}

// damaged returns the error about a damaged store file.
func damaged(path string, cause any) error {
	return fmt.Errorf("%w: %s: %v; restore it from a backup", store.ErrDamaged, path, cause)
}

// callbackPanic carries a panic of a caller's callback through protect,
// which re-raises it: it is not the store's.
type callbackPanic struct{ v any }

// call runs a caller's callback, marking its panics as not the store's,
// except a memory fault (a runtime error with an address, which
// debug.SetPanicOnFault gives): the callback read a key or value that
// points outside the file.
func call(fn func() error) error {
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); fault {
				panic(r)
			}
			panic(callbackPanic{r})
		}
	}()
	return fn()
}

// protect runs fn, which uses bbolt, at the store boundary: a panic of
// bbolt (a corrupted page) or a memory fault (a page past the end of a
// truncated file) becomes an error wrapping store.ErrDamaged.
func protect(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if cp, ok := r.(callbackPanic); ok {
				panic(cp.v)
			}
			err = damaged(path, r)
		}
	}()
	return fn()
}

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Begin implements [store.Store].
func (s *Store) Begin(writable bool) (store.Tx, error) {
	if s.stuck {
		return nil, damaged(s.path, "an earlier transaction failed on a damaged page")
	}
	var btx *bbolt.Tx
	err := protect(s.path, func() (err error) {
		btx, err = s.db.Begin(writable)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction on %s: %w", s.path, err)
	}
	return &tx{s: s, tx: btx, tables: map[string]*tableState{}}, nil
}

// Check implements [store.Store]: first a check of the page structure
// that reads the file on its own (checkPages: through a mapping of its
// own under debug.SetPanicOnFault, or with plain reads), so that nothing
// bbolt reads through its memory map points outside it; then bbolt's own
// consistency check (key order, pages reachable once, freelist), which
// runs in a goroutine of its own where a memory fault could not be
// recovered.
func (s *Store) Check() error {
	t, err := s.Begin(false)
	if err != nil {
		return err
	}
	defer t.Rollback()
	if err := checkPages(s.path); err != nil {
		return fmt.Errorf("checking store: %w", damaged(s.path, err))
	}
	tx := t.(*tx)
	return tx.protect(func() error {
		var errs []error
		for err := range tx.tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("checking store: %w", damaged(s.path, errors.Join(errs...)))
		}
		return nil
	})
}

// Close implements [store.Store]. After a transaction could not be rolled
// back from a damaged page, it leaves the file to the end of the process.
func (s *Store) Close() error {
	if s.stuck {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", s.path, err)
	}
	return nil
}

// tx implements store.Tx. tables holds the state shared by every handle of
// one table (by pathKey), so that a Scan notices writes made through any
// handle and a handle of a dropped table knows it.
type tx struct {
	s      *Store
	tx     *bbolt.Tx
	closed bool
	tables map[string]*tableState
}

var (
	_ store.TreeWalker = (*tx)(nil)
)

// protect runs fn at the store boundary (see the package protect); after a
// panic of bbolt, the transaction is rolled back and closed, so that it
// keeps no lock.
func (t *tx) protect(fn func() error) error {
	err := protect(t.s.path, fn)
	if errors.Is(err, store.ErrDamaged) && !t.closed {
		t.closed = true
		if rerr := protect(t.s.path, t.tx.Rollback); errors.Is(rerr, store.ErrDamaged) {
			t.s.stuck = true
		}
	}
	return err
}

type tableState struct {
	path    []string
	b       *bbolt.Bucket // nil once dropped
	mods    uint64        // writes that may have moved a cursor
	scanKey []byte        // the key an active Scan is visiting
}

// pathKey is the key of a table's state in tx.tables: each name with its
// length, so that a table's key starts every key of the tables nested in
// it, and no other.
func pathKey(path []string) string {
	var b strings.Builder
	for _, n := range path {
		fmt.Fprintf(&b, "%d:%s", len(n), n)
	}
	return b.String()
}

func (t *tx) Writable() bool { return t.tx.Writable() }

func (t *tx) check(write bool) error {
	if t.closed {
		return store.ErrTxClosed
	}
	if write && !t.tx.Writable() {
		return store.ErrReadOnly
	}
	return nil
}

// bucketer is a top-level bucket's parent (the bbolt.Tx) or a nested
// one's (a bbolt.Bucket).
type bucketer interface {
	Bucket(name []byte) *bbolt.Bucket
	CreateBucketIfNotExists(name []byte) (*bbolt.Bucket, error)
	DeleteBucket(name []byte) error
	Cursor() *bbolt.Cursor
}

// parent is the state of what holds a table: the transaction (st nil) or
// a table.
type parent struct {
	t  *tx
	st *tableState
}

func (p parent) path(name string) []string {
	if p.st == nil {
		return []string{name}
	}
	return append(p.st.path[:len(p.st.path):len(p.st.path)], name)
}

func (p parent) bucketer(write bool) (bucketer, error) {
	if err := p.t.check(write); err != nil {
		return nil, err
	}
	if p.st == nil {
		return p.t.tx, nil
	}
	if p.st.b == nil {
		return nil, fmt.Errorf("table %s was dropped: %w", hook.FormatPath(p.st.path), hook.ErrNoTable)
	}
	return p.st.b, nil
}

func (p parent) table(name string) (*table, error) {
	path := p.path(name)
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	if st := p.t.tables[pathKey(path)]; st != nil && st.b != nil {
		return &table{tx: p.t, st: st}, nil
	}
	bk, err := p.bucketer(false)
	if err != nil {
		return nil, err
	}
	var b *bbolt.Bucket
	isRecord := false
	err = p.t.protect(func() error {
		if b = bk.Bucket([]byte(name)); b == nil {
			k, v := bk.Cursor().Seek([]byte(name))
			isRecord = k != nil && v != nil && string(k) == name
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case isRecord:
		return nil, fmt.Errorf("table %s: %w", hook.FormatPath(path), hook.ErrNotTable)
	case b == nil:
		return nil, fmt.Errorf("table %s: %w", hook.FormatPath(path), hook.ErrNoTable)
	}
	return p.t.handle(path, b), nil
}

func (t *tx) handle(path []string, b *bbolt.Bucket) *table {
	st := &tableState{path: path, b: b}
	t.tables[pathKey(path)] = st
	return &table{tx: t, st: st}
}

func (p parent) createTable(name string) (*table, error) {
	path := p.path(name)
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	if st := p.t.tables[pathKey(path)]; st != nil && st.b != nil {
		return &table{tx: p.t, st: st}, nil
	}
	bk, err := p.bucketer(true)
	if err != nil {
		return nil, err
	}
	var b *bbolt.Bucket
	err = p.t.protect(func() (err error) {
		b, err = bk.CreateBucketIfNotExists([]byte(name))
		return err
	})
	if errors.Is(err, berrors.ErrIncompatibleValue) {
		return nil, fmt.Errorf("creating table %s: %w", hook.FormatPath(path), hook.ErrNotTable)
	}
	if err != nil {
		return nil, fmt.Errorf("creating table %s: %w", hook.FormatPath(path), err)
	}
	if p.st != nil {
		p.st.mods++
	}
	return p.t.handle(path, b), nil
}

// dropTable drops a flat table: one that holds no nested table and whose
// sequence is 0 (hook.ErrNotFlat otherwise).
func (p parent) dropTable(name string) error {
	path := p.path(name)
	if err := store.ValidatePath(path); err != nil {
		return err
	}
	bk, err := p.bucketer(true)
	if err != nil {
		return err
	}
	err = p.t.protect(func() error {
		b := bk.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		var nested []string
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(nested) < 4; k, v = c.Next() {
			if v == nil {
				nested = append(nested, string(k))
			}
		}
		if err := store.NotFlat(nested, b.Sequence()); err != nil {
			return err
		}
		return bk.DeleteBucket([]byte(name))
	})
	if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		if errors.Is(err, berrors.ErrIncompatibleValue) {
			err = hook.ErrNotTable
		}
		return fmt.Errorf("dropping table %s: %w", hook.FormatPath(path), err)
	}
	key := pathKey(path)
	for k, st := range p.t.tables {
		if strings.HasPrefix(k, key) {
			st.b = nil
			delete(p.t.tables, k)
		}
	}
	if p.st != nil {
		p.st.mods++
	}
	return nil
}

func (p parent) tableNames() ([]string, error) {
	bk, err := p.bucketer(false)
	if err != nil {
		return nil, err
	}
	var names []string
	err = p.t.protect(func() error {
		c := bk.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				names = append(names, string(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return names, nil
}

func (t *tx) Table(name string) (store.Table, error)       { return parent{t: t}.table(name) }
func (t *tx) CreateTable(name string) (store.Table, error) { return parent{t: t}.createTable(name) }
func (t *tx) DropTable(name string) error                  { return parent{t: t}.dropTable(name) }
func (t *tx) Tables() ([]string, error)                    { return parent{t: t}.tableNames() }

// WalkTree implements [store.TreeWalker]: every bucket at every depth,
// in the order of bbolt's cursors (a nested bucket among the keys of its
// parent), with one cursor open per level.
func (t *tx) WalkTree(table func(path []string, sequence uint64) error, record func(key, value []byte) error, end func(path []string) error) error {
	if err := t.check(false); err != nil {
		return err
	}
	return t.protect(func() error {
		c := t.tx.Cursor()
		path := make([]string, 1, 8)
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			path[0] = string(k)
			if err := walkTree(t.tx.Bucket(k), path, table, record, end); err != nil {
				return err
			}
		}
		return nil
	})
}

func walkTree(b *bbolt.Bucket, path []string, table func(path []string, sequence uint64) error, record func(key, value []byte) error, end func(path []string) error) error {
	if b == nil {
		return fmt.Errorf("bucket %q is not a bucket", strings.Join(path, "/"))
	}
	seq := b.Sequence()
	err := call(func() error { return table(path, seq) })
	if errors.Is(err, store.SkipTable) {
		return nil
	}
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if err := walkTree(b.Bucket(k), append(path, string(k)), table, record, end); err != nil {
				return err
			}
			continue
		}
		if err := call(func() error { return record(k, v) }); err != nil {
			return err
		}
	}
	return call(func() error { return end(path) })
}

// Commit implements [store.Tx]. A commit that fails is rolled back, so the
// transaction never keeps bbolt's writer lock; the transaction is closed
// in either case.
func (t *tx) Commit() error {
	if err := t.check(false); err != nil {
		return err
	}
	if !t.tx.Writable() {
		t.closed = true
		return t.tx.Rollback()
	}
	err := t.protect(t.tx.Commit)
	if err != nil && !t.closed {
		// bbolt rolls back most failed commits itself; make sure.
		t.closed = true
		if rerr := protect(t.s.path, t.tx.Rollback); errors.Is(rerr, store.ErrDamaged) {
			t.s.stuck = true
		}
	}
	t.closed = true
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func (t *tx) Rollback() error {
	if t.closed {
		return nil
	}
	t.closed = true
	err := protect(t.s.path, t.tx.Rollback)
	if errors.Is(err, store.ErrDamaged) {
		t.s.stuck = true
	}
	if err != nil {
		return fmt.Errorf("rolling back: %w", err)
	}
	return nil
}

// table implements store.Table.
type table struct {
	tx *tx
	st *tableState
}

func (t *table) Name() string   { return t.st.path[len(t.st.path)-1] }
func (t *table) Path() []string { return slices.Clone(t.st.path) }
func (t *table) String() string { return hook.FormatPath(t.st.path) }

func (t *table) bucket(write bool) (*bbolt.Bucket, error) {
	if err := t.tx.check(write); err != nil {
		return nil, fmt.Errorf("table %s: %w", t, err)
	}
	if t.st.b == nil {
		return nil, fmt.Errorf("table %s was dropped: %w", t, hook.ErrNoTable)
	}
	return t.st.b, nil
}

// Get implements [store.Table]; the key of a nested bucket is not a
// record (hook.ErrIsTable).
func (t *table) Get(key []byte) ([]byte, error) {
	b, err := t.bucket(false)
	if err != nil {
		return nil, err
	}
	var v []byte
	nested := false
	err = t.tx.protect(func() error {
		k, val := b.Cursor().Seek(key)
		if k != nil && bytes.Equal(k, key) {
			if val == nil {
				nested = true
			} else {
				v = append(make([]byte, 0, len(val)), val...)
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case nested:
		return nil, fmt.Errorf("table %s: key %q: %w", t, truncate(key), hook.ErrIsTable)
	case v == nil:
		return nil, fmt.Errorf("table %s: key %q: %w", t, truncate(key), hook.ErrNotFound)
	}
	return v, nil
}

func (t *table) Put(key, value []byte) error {
	b, err := t.bucket(true)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("table %s: putting an empty key", t)
	}
	if value == nil {
		return fmt.Errorf("table %s: putting key %q: a nil value (a nested table, as Scan shows one; store an empty record as []byte{})", t, truncate(key))
	}
	// Replacing the value of the key a Scan visits leaves the cursor
	// valid; any other write makes the Scan seek again.
	if t.st.scanKey == nil || !bytes.Equal(key, t.st.scanKey) {
		t.st.mods++
	}
	if err := t.tx.protect(func() error { return b.Put(bytes.Clone(key), bytes.Clone(value)) }); err != nil {
		return fmt.Errorf("table %s: putting key %q: %w", t, truncate(key), nestedErr(err))
	}
	return nil
}

func (t *table) Delete(key []byte) error {
	b, err := t.bucket(true)
	if err != nil {
		return err
	}
	t.st.mods++
	if err := t.tx.protect(func() error { return b.Delete(key) }); err != nil {
		return fmt.Errorf("table %s: deleting key %q: %w", t, truncate(key), nestedErr(err))
	}
	return nil
}

// nestedErr explains bbolt's error about a key that names a nested bucket.
func nestedErr(err error) error {
	if errors.Is(err, berrors.ErrIncompatibleValue) {
		return fmt.Errorf("%w (open it with Table, drop it with DropTable)", hook.ErrIsTable)
	}
	return err
}

// Scan implements [store.Table]: records with their values, nested
// buckets with a nil value.
func (t *table) Scan(start []byte, fn func(key, value []byte) error) error {
	b, err := t.bucket(false)
	if err != nil {
		return err
	}
	outer := t.st.scanKey
	defer func() { t.st.scanKey = outer }()
	return t.tx.protect(func() error {
		c := b.Cursor()
		var k, v []byte
		if start == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(start)
		}
		var last []byte
		for k != nil {
			if v != nil && len(v) == 0 {
				v = empty
			}
			last = append(last[:0], k...)
			mods := t.st.mods
			t.st.scanKey = last
			err := call(func() error { return fn(k, v) })
			t.st.scanKey = outer
			if errors.Is(err, hook.ErrStop) {
				return nil
			}
			if err != nil {
				return err
			}
			if t.st.mods == mods {
				k, v = c.Next()
				continue
			}
			if b, err = t.bucket(false); err != nil {
				return err
			}
			c = b.Cursor()
			if k, v = c.Seek(last); k != nil && bytes.Equal(k, last) {
				k, v = c.Next()
			}
		}
		return nil
	})
}

// empty is the value Scan gives an empty record: not nil, which means a
// nested table.
var empty = []byte{}

func (t *table) parent() parent { return parent{t: t.tx, st: t.st} }

func (t *table) Table(name string) (store.Table, error)       { return t.parent().table(name) }
func (t *table) CreateTable(name string) (store.Table, error) { return t.parent().createTable(name) }
func (t *table) DropTable(name string) error                  { return t.parent().dropTable(name) }
func (t *table) Tables() ([]string, error)                    { return t.parent().tableNames() }

func (t *table) Sequence() (uint64, error) {
	b, err := t.bucket(false)
	if err != nil {
		return 0, err
	}
	var v uint64
	err = t.tx.protect(func() error { v = b.Sequence(); return nil })
	return v, err
}

func (t *table) SetSequence(v uint64) error {
	b, err := t.bucket(true)
	if err != nil {
		return err
	}
	if err := t.tx.protect(func() error { return b.SetSequence(v) }); err != nil {
		return fmt.Errorf("table %s: setting the sequence: %w", t, err)
	}
	return nil
}

func (t *table) NextSequence() (uint64, error) {
	b, err := t.bucket(true)
	if err != nil {
		return 0, err
	}
	var v uint64
	err = t.tx.protect(func() (err error) { v, err = b.NextSequence(); return err })
	if err != nil {
		return 0, fmt.Errorf("table %s: next sequence: %w", t, err)
	}
	return v, nil
}

// truncate shortens a key for an error message.
func truncate(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}

// Identity returns what tells this store file's content from any other's
// and from its own after a change: the last committed transaction's ID,
// the file's size and modification time. A write, a restore (a new file)
// or a compaction changes it. The one-command offline upgrade records it
// when it backs the store up, and swaps its result in only over the same
// identity.
func (s *Store) Identity() (string, error) {
	var txid int
	err := protect(s.path, func() error {
		btx, err := s.db.Begin(false)
		if err != nil {
			return err
		}
		txid = btx.ID()
		return btx.Rollback()
	})
	if err != nil {
		return "", fmt.Errorf("reading the identity of %s: %w", s.path, err)
	}
	info, err := os.Stat(s.path)
	if err != nil {
		return "", fmt.Errorf("reading the identity of %s: %w", s.path, err)
	}
	return fmt.Sprintf("txid %d, %d bytes, modified %s", txid, info.Size(), info.ModTime().UTC().Format(time.RFC3339Nano)), nil
}
