package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookreg/hookreg/internal/atomicfile"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/store"
)

// Loader limits: a Loader commits when either is reached.
const (
	// LoadBatchRecords is the number of records per load transaction,
	// each table counting as one.
	LoadBatchRecords = 10000
	// LoadBatchBytes is the number of key and value bytes (and table
	// names) per load transaction.
	LoadBatchBytes = 16 << 20
)

// Loader builds a new store file from a stream of records, many records per
// transaction, so memory stays bounded by the batch whatever the data size.
// Records of a table should come in ascending key order (as a backup holds
// them); pages are then filled completely. Tables come one after the other:
// [Loader.Table] creates one at any depth (a bucket nested in buckets) and
// makes it current, [Loader.Record] adds to the current one.
//
//	l, err := bolt.NewLoader("broker.db.new")
//	if err != nil {
//		return err
//	}
//	defer l.Abort()
//	if err := l.Table([]string{"users"}, 0); err != nil {
//		return err
//	}
//	if err := l.Record(key, value); err != nil {
//		return err
//	}
//	if err := l.Finish(); err != nil {
//		return err
//	}
//	return bolt.Replace("broker.db.new", "broker.db")
type Loader struct {
	db   *bbolt.DB
	file *os.File // the same file, for startWriteback
	path string
	tx   *bbolt.Tx
	// open holds the buckets of the current table's path in tx, outermost
	// first, as far as they are open: all of them (the last is the
	// current table) or none after a commit. A table nested in the
	// current one, or its parent again, is then found without looking
	// its path up from the top: memory by the depth of nesting.
	open    []*bbolt.Bucket
	table   []string // the current table's path
	records int      // records and tables of the transaction
	bytes   int
	done    bool
	// slabs hold the copies of the keys and values of the transaction,
	// which bbolt references until the commit: an allocation a slab
	// instead of two a record. They are reused after each commit; slab
	// is the index of the one being filled.
	slabs [][]byte
	slab  int
}

// slabSize is the size of the Loader's slabs; a record larger than a
// quarter of it is copied on its own.
const slabSize = 1 << 20

// NewLoader creates the store file path, which must not exist.
func NewLoader(path string) (*Loader, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating store %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         DefaultTimeout,
		NoSync:          true, // one sync in Finish
		NoGrowSync:      true, // likewise
		InitialMmapSize: DefaultInitialMmapSize,
	})
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating store %s: %w", path, err)
	}
	return &Loader{db: db, file: f, path: path}, nil
}

// Table creates the table at path (a top-level table's name, or the names
// down to a nested one, whose parents exist), sets its sequence number
// when not 0, and makes it the current table. A table that exists already
// (the parent of the current table, to add the records that follow its
// nested tables) is made current as it is. Names are any non-empty bytes;
// validating them is the caller's business. Each table counts as a record
// towards the transaction's batch, so that memory stays bounded however
// many tables hold few records or none.
func (l *Loader) Table(path []string, sequence uint64) error {
	if len(path) == 0 {
		return fmt.Errorf("loading %s: empty table path", l.path)
	}
	// Keep the open buckets of the path the new table shares with the
	// current one.
	keep := 0
	for keep < len(l.open) && keep < len(path) && l.table[keep] == path[keep] {
		keep++
	}
	l.open = l.open[:keep]
	l.table = append(l.table[:0], path...)
	b, err := l.current()
	if err != nil {
		return err
	}
	if sequence != 0 {
		if err := b.SetSequence(sequence); err != nil {
			return fmt.Errorf("loading %s: table %q: %w", l.path, l.name(), err)
		}
	}
	return l.count(len(path[len(path)-1]))
}

// name returns the current table's path for messages.
func (l *Loader) name() string { return strings.Join(l.table, "/") }

// current returns the current table's bucket, beginning a transaction and
// opening or creating the buckets of its path that are not open yet.
func (l *Loader) current() (*bbolt.Bucket, error) {
	if l.done {
		return nil, fmt.Errorf("loading %s: %w", l.path, store.ErrTxClosed)
	}
	if n := len(l.open); n > 0 && n == len(l.table) {
		return l.open[n-1], nil
	}
	if len(l.table) == 0 {
		return nil, fmt.Errorf("loading %s: record outside a table", l.path)
	}
	if l.tx == nil {
		tx, err := l.db.Begin(true)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", l.path, err)
		}
		l.tx = tx
		l.open = l.open[:0]
	}
	for len(l.open) < len(l.table) {
		name := []byte(l.table[len(l.open)])
		var b *bbolt.Bucket
		var err error
		if len(l.open) == 0 {
			b, err = l.tx.CreateBucketIfNotExists(name)
		} else {
			b, err = l.open[len(l.open)-1].CreateBucketIfNotExists(name)
		}
		if err != nil {
			l.open = l.open[:0]
			return nil, fmt.Errorf("loading %s: creating table %q: %w", l.path, l.name(), err)
		}
		b.FillPercent = 1.0
		l.open = append(l.open, b)
	}
	return l.open[len(l.open)-1], nil
}

// Record adds a record to the current table. Key and value are copied.
func (l *Loader) Record(key, value []byte) error {
	return l.record(l.clone(key), l.clone(value))
}

// RecordRef is Record without the copies: bbolt keeps key and value until
// the transaction commits, so the caller must not change them until the
// next Table or Record call after Finish, or ever (a restore's records
// point into archive chunks that are never reused). It saves a copy, and
// the memory of one, of each record: what a store of large values costs.
func (l *Loader) RecordRef(key, value []byte) error {
	return l.record(key, value)
}

func (l *Loader) record(key, value []byte) error {
	b, err := l.current()
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("loading %s: table %q: empty key", l.path, l.name())
	}
	if err := b.Put(key, value); err != nil {
		return fmt.Errorf("loading %s: table %q: %w", l.path, l.name(), err)
	}
	return l.count(len(key) + len(value))
}

// count counts a record or a table of size bytes into the transaction,
// which it commits when it is full.
func (l *Loader) count(size int) error {
	l.records++
	l.bytes += size
	if l.records >= LoadBatchRecords || l.bytes >= LoadBatchBytes {
		return l.commit()
	}
	return nil
}

// CreateTable creates an empty top-level table.
func (l *Loader) CreateTable(name string) error {
	if err := store.ValidateName(name); err != nil {
		return fmt.Errorf("loading %s: %w", l.path, err)
	}
	return l.Table([]string{name}, 0)
}

// Put adds a record to the top-level table named table, which becomes the
// current table. Key and value are copied.
func (l *Loader) Put(table string, key, value []byte) error {
	if len(l.table) != 1 || l.table[0] != table {
		if err := l.CreateTable(table); err != nil {
			return err
		}
	}
	return l.Record(key, value)
}

// clone copies b into the slabs, which are reused once the transaction
// is committed.
func (l *Loader) clone(b []byte) []byte {
	if len(b) > slabSize/4 {
		return bytes.Clone(b)
	}
	if l.slab == len(l.slabs) || len(b) > slabSize-len(l.slabs[l.slab]) {
		if l.slab < len(l.slabs) {
			l.slab++
		}
		if l.slab == len(l.slabs) {
			l.slabs = append(l.slabs, make([]byte, 0, slabSize))
		}
	}
	s := l.slabs[l.slab]
	n := len(s)
	s = append(s, b...)
	l.slabs[l.slab] = s
	return s[n:len(s):len(s)]
}

func (l *Loader) commit() error {
	if l.tx == nil {
		return nil
	}
	tx := l.tx
	clear(l.open) // nothing of tx stays reachable from here
	l.tx, l.open, l.records, l.bytes = nil, l.open[:0], 0, 0
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("loading %s: %w", l.path, err)
	}
	for i := range l.slabs {
		l.slabs[i] = l.slabs[i][:0]
	}
	l.slab = 0
	atomicfile.StartWriteback(l.file)
	return nil
}

// Finish commits the last batch, syncs the file and its directory, and
// closes the store. The file is then complete.
func (l *Loader) Finish() error { return l.FinishCheck(nil) }

// FinishCheck is Finish with check, when not nil, run while the file is
// being synced, so that checking the new store overlaps with the disk:
// check may open the store file (the Loader has closed it) and read it.
// The file is complete when FinishCheck returns nil; check's error is
// returned as it is.
func (l *Loader) FinishCheck(check func() error) error {
	if l.done {
		return fmt.Errorf("loading %s: %w", l.path, store.ErrTxClosed)
	}
	l.done = true
	defer l.file.Close()
	err := l.commit()
	if cerr := l.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("finishing %s: %w", l.path, err)
	}
	synced := make(chan error, 1)
	go func() { synced <- l.file.Sync() }()
	var checkErr error
	if check != nil {
		checkErr = check()
	}
	err = <-synced
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(l.path))
	}
	if err != nil {
		return fmt.Errorf("finishing %s: %w", l.path, err)
	}
	return checkErr
}

// Abort discards an unfinished load and removes the file; after Finish it
// does nothing, so it can be deferred.
func (l *Loader) Abort() error {
	if l.done {
		return nil
	}
	l.done = true
	if l.tx != nil {
		l.tx.Rollback()
	}
	err := l.db.Close()
	l.file.Close()
	if rerr := os.Remove(l.path); err == nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("discarding %s: %w", l.path, err)
	}
	return nil
}

// Replace moves the finished store file src over dst atomically: it syncs
// src, renames it to dst (both in the same directory) and syncs the
// directory. A crash leaves either the old dst or the new one. The caller
// makes sure no process uses dst (by holding its lock or stopping the
// product).
func Replace(src, dst string) error {
	if filepath.Dir(filepath.Clean(src)) != filepath.Dir(filepath.Clean(dst)) {
		return fmt.Errorf("replacing %s: %s is in another directory", dst, src)
	}
	f, err := os.OpenFile(src, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("replacing %s: syncing %s: %w", dst, src, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	return nil
}
