// Package bolt implements the [store] API on a go.etcd.io/bbolt file, the
// embedded default store of hookreg (--store PATH). Tables are top-level
// buckets.
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
//   - nothing uses DB.Batch, which may run a function twice.
//
// [Load] builds a new store file from a stream of records (for restore) and
// [Replace] moves a finished file over an old one atomically.
package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hookreg/hookreg/internal/atomicfile"

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
	// InitialMmapSize is the initial memory map of a writable store;
	// DefaultInitialMmapSize when zero.
	InitialMmapSize int
}

// Store is a bbolt store file. It implements [store.Store].
type Store struct {
	db   *bbolt.DB
	path string
}

var _ store.Store = (*Store)(nil)

// Open opens the store file at path.
func Open(path string, opts Options) (*Store, error) {
	_, statErr := os.Stat(path)
	created := false
	switch {
	case statErr == nil:
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
	db, err := bbolt.Open(path, 0o600, bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("opening store %s: %w (waited %s)", path, store.ErrInUse, bopts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, fmt.Errorf("creating store %s: %w", path, err)
		}
	}
	return &Store{db: db, path: path}, nil
}

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Begin implements [store.Store].
func (s *Store) Begin(writable bool) (store.Tx, error) {
	btx, err := s.db.Begin(writable)
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction on %s: %w", s.path, err)
	}
	return &tx{tx: btx, tables: map[string]*tableState{}}, nil
}

// Check implements [store.Store] with bbolt's consistency check.
func (s *Store) Check() error {
	return s.db.View(func(btx *bbolt.Tx) error {
		var errs []error
		for err := range btx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("checking store %s: %w", s.path, errors.Join(errs...))
		}
		return nil
	})
}

// Close implements [store.Store].
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", s.path, err)
	}
	return nil
}

// tx implements store.Tx. tables holds the state shared by every handle of
// one table, so that a Scan notices writes made through any handle.
type tx struct {
	tx     *bbolt.Tx
	closed bool
	tables map[string]*tableState
}

type tableState struct {
	name    string
	b       *bbolt.Bucket // nil once dropped
	mods    uint64        // writes that may have moved a cursor
	scanKey []byte        // the key an active Scan is visiting
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

func (t *tx) Table(name string) (store.Table, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	if st := t.tables[name]; st != nil {
		return &table{tx: t, st: st}, nil
	}
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("table %q: %w", name, hook.ErrNoTable)
	}
	return t.handle(name, b), nil
}

func (t *tx) handle(name string, b *bbolt.Bucket) *table {
	st := &tableState{name: name, b: b}
	t.tables[name] = st
	return &table{tx: t, st: st}
}

func (t *tx) CreateTable(name string) (store.Table, error) {
	if err := t.check(true); err != nil {
		return nil, err
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	if st := t.tables[name]; st != nil {
		return &table{tx: t, st: st}, nil
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("creating table %q: %w", name, err)
	}
	return t.handle(name, b), nil
}

func (t *tx) DropTable(name string) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if st := t.tables[name]; st != nil {
		st.b = nil
		delete(t.tables, name)
	}
	err := t.tx.DeleteBucket([]byte(name))
	if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("dropping table %q: %w", name, err)
	}
	return nil
}

func (t *tx) Tables() ([]string, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	var names []string
	err := t.tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return names, nil
}

func (t *tx) Commit() error {
	if err := t.check(false); err != nil {
		return err
	}
	t.closed = true
	if !t.tx.Writable() {
		return t.tx.Rollback()
	}
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func (t *tx) Rollback() error {
	if t.closed {
		return nil
	}
	t.closed = true
	if err := t.tx.Rollback(); err != nil {
		return fmt.Errorf("rolling back: %w", err)
	}
	return nil
}

// table implements store.Table.
type table struct {
	tx *tx
	st *tableState
}

func (t *table) Name() string { return t.st.name }

func (t *table) bucket(write bool) (*bbolt.Bucket, error) {
	if err := t.tx.check(write); err != nil {
		return nil, fmt.Errorf("table %q: %w", t.st.name, err)
	}
	if t.st.b == nil {
		return nil, fmt.Errorf("table %q was dropped: %w", t.st.name, hook.ErrNoTable)
	}
	return t.st.b, nil
}

func (t *table) Get(key []byte) ([]byte, error) {
	b, err := t.bucket(false)
	if err != nil {
		return nil, err
	}
	v := b.Get(key)
	if v == nil {
		return nil, fmt.Errorf("table %q: key %q: %w", t.st.name, key, hook.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (t *table) Put(key, value []byte) error {
	b, err := t.bucket(true)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("table %q: putting an empty key", t.st.name)
	}
	// Replacing the value of the key a Scan visits leaves the cursor
	// valid; any other write makes the Scan seek again.
	if t.st.scanKey == nil || !bytes.Equal(key, t.st.scanKey) {
		t.st.mods++
	}
	if value == nil {
		value = []byte{}
	}
	if err := b.Put(bytes.Clone(key), bytes.Clone(value)); err != nil {
		return fmt.Errorf("table %q: putting key %q: %w", t.st.name, truncate(key), err)
	}
	return nil
}

func (t *table) Delete(key []byte) error {
	b, err := t.bucket(true)
	if err != nil {
		return err
	}
	t.st.mods++
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("table %q: deleting key %q: %w", t.st.name, truncate(key), err)
	}
	return nil
}

func (t *table) Scan(start []byte, fn func(key, value []byte) error) error {
	b, err := t.bucket(false)
	if err != nil {
		return err
	}
	c := b.Cursor()
	var k, v []byte
	if start == nil {
		k, v = c.First()
	} else {
		k, v = c.Seek(start)
	}
	var last []byte
	outer := t.st.scanKey
	defer func() { t.st.scanKey = outer }()
	for k != nil {
		last = append(last[:0], k...)
		mods := t.st.mods
		t.st.scanKey = last
		err := fn(k, v)
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
}

// truncate shortens a key for an error message.
func truncate(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}
