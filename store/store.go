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
// Table names are 1 to 128 bytes of [A-Za-z0-9._-] (see [ValidateName]),
// because backups use them in archive member paths. Names that start with
// "_" are reserved for hookreg: [MetaTable] holds the upgrade metadata and
// [ConfigTable] the configuration files of an offline upgrade (see
// [ConfigView]). The store API itself reaches every table; the hook
// transaction that the upgrade engine gives to hooks hides the reserved ones.
//
// Values given to Put are copied, and values returned by Get are copies, so
// callers may reuse their buffers. Scan tolerates modifications of the
// scanned table by its callback: it continues after the last key visited.
package store

import (
	"errors"
	"fmt"
	"strings"

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

// MaxNameLen is the longest table name in bytes.
const MaxNameLen = 128

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

// Table is one table of a transaction, valid until the transaction ends. It
// is the [hook.Table] interface.
type Table = hook.Table

// ValidateName checks that name is a valid table name: 1 to [MaxNameLen]
// bytes of ASCII letters, digits, '.', '_' and '-', and not "." or "..".
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w %q: %d bytes, at most %d", ErrBadName, name[:32]+"...", len(name), MaxNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w %q", ErrBadName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: byte %d (%q) is not one of [A-Za-z0-9._-]", ErrBadName, name, i, c)
		}
	}
	return nil
}

// IsReserved reports whether name belongs to hookreg (it starts with "_").
func IsReserved(name string) bool {
	return strings.HasPrefix(name, "_")
}
