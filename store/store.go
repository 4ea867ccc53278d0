// Package store is the store-neutral transaction API that the hookreg
// runtime, the upgrade engine and the backup commands use: a store is a set
// of named tables of ordered key/value records, read and written in explicit
// transactions. Implementations live in sub-packages: [github.com/hookreg/hookreg/store/bolt]
// on a go.etcd.io/bbolt file (the embedded default). Nothing here names a
// particular database, so an etcd implementation fits the same interfaces.
//
// The caller controls transactions: [Store.Begin] starts a writable or a
// read-only one, [Tx.Commit] and [Tx.Rollback] end it. A read-only
// transaction is one consistent snapshot of every table, so a backup taken
// from one sees all tables and the metadata at the same moment.
//
//	st, err := bolt.Open("broker.db", bolt.Options{})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	tx, err := st.Begin(true)
//	if err != nil {
//		return err
//	}
//	defer tx.Rollback()
//	users, err := tx.CreateTable("users")
//	if err != nil {
//		return err
//	}
//	if err := users.Put([]byte("alice"), []byte(`{"is_superuser":true}`)); err != nil {
//		return err
//	}
//	return tx.Commit()
//
// Table names are arbitrary bytes, as bbolt's bucket names are: any
// non-empty name that a backup can carry (see [ValidateName]; the archive
// encodes names in its member paths). Names that start with "_" are
// reserved for hookreg: [MetaTable] holds the upgrade metadata and
// [ConfigTable] the configuration files of an offline upgrade (see
// [ConfigView]). The store API itself reaches every table; the hook
// transaction that the upgrade engine gives to hooks hides the reserved ones.
//
// Tables hold nested tables at any depth, and a sequence, as bbolt's
// buckets do (see [hook.Table]): a key names a record or a nested table,
// Scan shows a nested table with a nil value, and DropTable refuses a table
// whose nested tables or sequence it would lose ([NotFlat]). Backup and
// dump visit every table at every depth with [WalkTree] (through a
// store's [TreeWalker] where it has one).
//
// Values given to Put are copied, and values returned by Get are copies, so
// callers may reuse their buffers. Scan tolerates modifications of the
// scanned table by its callback: it continues after the last key visited.
package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
)

// Reserved table names.
const (
	// MetaTable holds the upgrade metadata (data_version, last_upgrade_hook,
	// the applied-hook records and hook progress).
	MetaTable = "_hookreg"
	// ConfigTable holds configuration files during an offline upgrade:
	// key = slash-separated path, value = [EncodeConfigFile].
	ConfigTable = "_config"
)

// MaxNameLen is the longest table name in bytes; a name of non-ASCII or
// punctuation bytes must be shorter (see [ValidateName]).
const MaxNameLen = archive.MaxNameLen

// Errors of stores; test for them with errors.Is. Missing keys and tables
// are reported with [hook.ErrNotFound] and [hook.ErrNoTable].
var (
	// ErrInUse is returned by Open when another process holds the store.
	ErrInUse = errors.New("store is in use by another process")
	// ErrBadName is returned for a table name outside the allowed charset
	// or length.
	ErrBadName = errors.New("invalid table name")
	// ErrReadOnly is returned by writes in a read-only transaction.
	ErrReadOnly = errors.New("transaction is read-only")
	// ErrTxClosed is returned by operations on a committed or rolled back
	// transaction.
	ErrTxClosed = errors.New("transaction is closed")
	// ErrDamaged is wrapped by the errors about a store file that is
	// truncated or corrupted; the error names the file. Restore it from a
	// backup.
	ErrDamaged = errors.New("store is damaged")
	// ErrConflict is wrapped by the commit errors of stores whose
	// transactions run beside other writers (etcd, where the product keeps
	// writing during an online upgrade): a key the transaction wrote (or
	// read and must not have changed) was changed by another writer after
	// the transaction began, or its snapshot is gone. Nothing of the
	// transaction was written; run it again in a new transaction. The
	// upgrade engine does so, from the hook's last checkpoint. bbolt never
	// returns it: its writable transactions are serialized.
	ErrConflict = errors.New("transaction conflict")
	// ErrTooLarge is wrapped by the errors of stores that bound one
	// transaction (see [Roomer]) about a transaction beyond the bounds.
	// Nothing of the transaction was written.
	ErrTooLarge = errors.New("transaction too large for the store")
	// ErrUnavailable: the store could not reach its data (a cluster
	// without quorum, every member down): what is committed stays, the
	// failed transaction was not written (or its outcome is unknown),
	// and running again resumes from the last checkpoint.
	ErrUnavailable = errors.New("the store is unavailable")
	// ErrLockLost: a store that holds a lock in the store itself (a
	// cluster's, with a lease) lost it, so it may no longer write: another
	// process may hold it now. What is committed stays; the failed
	// transaction was not written.
	ErrLockLost = errors.New("the store's lock was lost")
	// SkipTable is returned by a [WalkTree] table callback to skip the table,
	// its records and the tables nested in it.
	SkipTable = errors.New("skip this table")
)

// Store is an open store.
type Store interface {
	// Begin starts a transaction. Only one writable transaction runs at a
	// time; read-only ones see a consistent snapshot.
	Begin(writable bool) (Tx, error)
	// Check verifies the store's internal consistency and returns an error
	// describing every problem found, or nil.
	Check() error
	// Close releases the store; open transactions must be ended first.
	Close() error
}

// Tx is one transaction. It is not safe for concurrent use.
type Tx interface {
	// Writable reports whether the transaction may write.
	Writable() bool
	// Table returns the named table, or an error wrapping hook.ErrNoTable.
	Table(name string) (Table, error)
	// CreateTable returns the named table, creating it if needed.
	CreateTable(name string) (Table, error)
	// DropTable deletes the named table and its records; a missing table
	// is not an error.
	DropTable(name string) error
	// Tables returns the names of every table, reserved ones included,
	// sorted bytewise.
	Tables() ([]string, error)
	// Commit makes the transaction's writes durable and ends it.
	Commit() error
	// Rollback discards the transaction's writes and ends it. It is safe
	// to call after Commit (it then does nothing), so it can be deferred.
	Rollback() error
}

// TreeWalker is implemented by the transactions of stores whose tables can
// hold nested tables (bbolt) to visit them in the store's own order, with
// memory bounded by the depth of nesting whatever the number of tables:
// in each table, its records and the tables nested in it interleaved in
// key order (a nested table's name among the keys, as bbolt keeps them),
// each nested table visited at its place, whole. WalkTree calls table
// when a table starts (its path and sequence number), record for each of
// the current table's records, and end when a table ends (after the tables
// nested in it; its parent is then current again). Top-level tables come
// in name order. The slices passed are valid only during the call. An
// error from a callback stops the walk and is returned, except SkipTable
// from table, which skips the table, its records and the tables nested in
// it (end is not called for it). Backups use it: the archive format
// (format 3) keeps this order, in which a record's key and a nested
// table's name cannot be equal unnoticed.
type TreeWalker interface {
	WalkTree(table func(path []string, sequence uint64) error, record func(key, value []byte) error, end func(path []string) error) error
}

// RemoteReader is implemented by stores whose reads go to a server (etcd):
// each read of a table costs the server and the network, so a backup
// reads every table once, spooling the records to a local file while it
// counts them, rather than reading the store twice (once to count the
// records for the archive's manifest, once to copy them).
type RemoteReader interface {
	// ReadsAreRemote reports whether the store's reads go to a server.
	ReadsAreRemote() bool
}

// Roomer is implemented by the transactions of stores that bound what one
// transaction may write: store/etcd's, within the cluster's --max-txn-ops
// and --max-request-bytes. Room reports how many more writes the
// transaction can take and how many bytes of key and value the next one may
// have; it never overstates and costs no request, so a batching caller
// commits (or checkpoints) before the next record would not fit. A write
// beyond it fails with an error wrapping [ErrTooLarge] before anything is
// written. Transactions of unbounded stores (bbolt) do not implement it.
// It is the [hook.Roomer] interface, which [hook.EachBatch] uses.
type Roomer = hook.Roomer

// Chainer is implemented by the transactions of stores that can begin the
// next writable transaction from a commit's own answer: store/etcd's,
// whose commit's txn also reads what the next transaction's pin needs, so
// that a batching caller (the upgrade engine's checkpoints) pays one round
// trip per batch, not two. Transactions of stores whose Begin costs no
// request (bbolt) do not implement it.
type Chainer interface {
	// CommitBegin commits the transaction as Commit does and then
	// returns the store's next writable transaction, as Begin(true)
	// would, but reading at the commit's revision: a write by another
	// client after the commit is not seen, and when it touches a key
	// the next transaction writes, the next transaction's commit fails
	// with an error wrapping [ErrConflict], as after a Begin. committed
	// reports whether the commit applied: an error with committed true
	// is the next transaction failing to begin.
	CommitBegin() (next Tx, committed bool, err error)
}

// Table is one table of a transaction, valid until the transaction ends. It
// is the [hook.Table] interface.
type Table = hook.Table

// ValidateName checks that name is a valid table name: any non-empty bytes
// that a backup can carry, that is at most [MaxNameLen] bytes once encoded
// for the archive ([archive.EncodeName]: bytes other than [A-Za-z0-9_-]
// take three), so up to 255 bytes of letters and digits and 85 of anything.
func ValidateName(name string) error {
	if err := archive.ValidTableName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadName, err)
	}
	return nil
}

// ValidatePath checks the path of a table (a top-level table's name, or
// the names down to a nested one) against what a backup can carry: its
// last name as [ValidateName] does, naming the table it is nested in, and
// the whole path's length. Stores check each table they open or create
// with it, its parents having passed before.
func ValidatePath(path []string) error {
	if len(path) == 0 {
		return fmt.Errorf("%w: empty table path", ErrBadName)
	}
	if err := ValidateName(path[len(path)-1]); err != nil {
		if len(path) > 1 {
			return fmt.Errorf("in table %s: %w", hook.FormatPath(path[:len(path)-1]), err)
		}
		return err
	}
	if len(path) > 1 {
		if err := archive.ValidTablePath(path); err != nil {
			return fmt.Errorf("%w: %w", ErrBadName, err)
		}
	}
	return nil
}

// IsReserved reports whether name belongs to hookreg (it starts with "_").
func IsReserved(name string) bool {
	return strings.HasPrefix(name, "_")
}

// NotFlat returns the error of a DropTable that would lose nested tables
// (the first few of their names) or a non-zero sequence, wrapping
// [hook.ErrNotFlat]; nil when there is neither. Stores share it so that
// the refusal reads the same on each.
func NotFlat(nested []string, sequence uint64) error {
	var what []string
	if len(nested) > 0 {
		q := make([]string, 0, 3)
		for _, n := range nested[:min(3, len(nested))] {
			q = append(q, strconv.Quote(n))
		}
		list := strings.Join(q, ", ")
		if len(nested) > 3 {
			list += ", ..."
		}
		what = append(what, "nested tables "+list)
	}
	if sequence != 0 {
		what = append(what, fmt.Sprintf("the sequence %d", sequence))
	}
	if len(what) == 0 {
		return nil
	}
	return fmt.Errorf("%w: it holds %s, which dropping it would lose; drop or copy them first (hook.CopyTable), or drop everything knowingly with hook.DropTree", hook.ErrNotFlat, strings.Join(what, " and "))
}

// WalkTree visits every table of tx at every depth, in the order of a
// [TreeWalker] (and of a format 3 archive), with memory bounded by the
// depth: through the transaction's own WalkTree where it implements
// TreeWalker (bbolt), otherwise through the tables' Scan (etcd), which
// gives a nested table's name among the records with a nil value, so that
// each nested table is visited at its place, whole. Backup and dump use
// it, so that every store shows every table.
func WalkTree(tx Tx, table func(path []string, sequence uint64) error, record func(key, value []byte) error, end func(path []string) error) error {
	if w, ok := tx.(TreeWalker); ok {
		return w.WalkTree(table, record, end)
	}
	names, err := tx.Tables()
	if err != nil {
		return err
	}
	for _, name := range names {
		t, err := tx.Table(name)
		if err != nil {
			return err
		}
		if err := walkTable(t, []string{name}, table, record, end); err != nil {
			return err
		}
	}
	return nil
}

// walkTable is WalkTree of the table t at path.
func walkTable(t Table, path []string, table func(path []string, sequence uint64) error, record func(key, value []byte) error, end func(path []string) error) error {
	seq, err := t.Sequence()
	if err != nil {
		return err
	}
	err = table(path, seq)
	if errors.Is(err, SkipTable) {
		return nil
	}
	if err != nil {
		return err
	}
	err = t.Scan(nil, func(k, v []byte) error {
		if v != nil {
			return record(k, v)
		}
		n, err := t.Table(string(k))
		if err != nil {
			return err
		}
		return walkTable(n, append(path[:len(path):len(path)], string(k)), table, record, end)
	})
	if err != nil {
		return err
	}
	return end(path)
}
