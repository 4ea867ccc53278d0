// Package hook is the runtime API of hookreg: the types that generated
// registries and upgrade hooks import.
//
// An upgrade hook is a Go function with the signature of [Func]:
//
//	// UpgradeLibFoo re-keys the users table by client id.
//	func UpgradeLibFoo(ctx context.Context, tx hook.Tx) error {
//		users, err := tx.Table("users")
//		if err != nil {
//			return err
//		}
//		return users.Put([]byte("alice"), []byte(`{"role":"admin"}`))
//	}
//
// The runtime calls it inside one store transaction together with the update
// of the upgrade metadata, so a hook is either fully applied or not at all.
// Hooks see only the store-neutral [Tx], [Table] and [Config] interfaces of
// this package, never the types of a particular store (bbolt, etcd), so the
// same hook runs on every store.
//
// A hook over a table too large for one transaction uses [EachBatch], which
// commits its progress with every batch (see [Tx.Checkpoint]), and earlier
// when a store that bounds its transactions (see [Roomer]: an etcd cluster)
// would not take the next record.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Func is the signature of an upgrade hook. A hook returns an error to stop
// the upgrade; its transaction is then rolled back. A panic is treated as an
// error.
type Func func(ctx context.Context, tx Tx) error

// Hook is one entry of a registry.
type Hook struct {
	// Num orders the hooks; a larger Num runs later.
	Num int
	// IntroducedIn is the release (a semantic version) that introduced the hook.
	IntroducedIn string
	// AllowOnline reports whether the hook may run on a live store.
	AllowOnline bool
	// Name is the hook function's name relative to the hook package,
	// such as "UpgradeLibBaz" or "libfoo.UpgradeLibFoo".
	Name string
	// Digest is the code digest of the function and everything of the
	// product it uses ("h2:" followed by base64 of a SHA-256; "h1:" in
	// registries generated before hookreg's second digest algorithm).
	Digest string
	// Amendments lead from digests recorded by earlier releases to Digest:
	// the reviewed changes of the hook's code (hookgen amend), and the
	// same code's digest under an earlier algorithm. A store that applied
	// the hook with a digest on this chain is upgraded without
	// --allow-digest-mismatch and the hook is shown as amended.
	Amendments []Amendment
	// Func is the hook itself.
	Func Func
}

// Amendment is one link from an earlier digest of a hook to a later one.
type Amendment struct {
	// Old and New are code digests, possibly of different algorithms.
	Old, New string
	// Reason is the reviewed reason recorded in registry.yaml; empty for
	// a link between two algorithms' digests of the same code.
	Reason string
}

// Amended reports how a store's recorded digest of the hook relates to the
// hook's code: same when it is Digest or the same code under an earlier
// algorithm; amended, with the reasons of the amendments followed, when
// amendments lead from it to Digest; neither when it names other code.
func (h Hook) Amended(recorded string) (same bool, reasons []string, ok bool) {
	d := recorded
	for _, a := range h.Amendments {
		if a.Old == d {
			d = a.New
			if a.Reason != "" {
				reasons = append(reasons, a.Reason)
			}
		}
	}
	if d != h.Digest {
		return false, nil, false
	}
	return len(reasons) == 0, reasons, true
}

// Table is one table of ordered key/value records. Keys are non-empty byte
// strings ordered bytewise.
type Table interface {
	// Name returns the table's name.
	Name() string
	// Get returns a copy of the value stored under key, or an error
	// wrapping ErrNotFound when there is none.
	Get(key []byte) ([]byte, error)
	// Put stores value under key. The table keeps copies of both slices,
	// so the caller may reuse them at once.
	Put(key, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn for every record with a key >= start (all records
	// when start is nil), in key order. The slices given to fn are valid
	// only until fn returns. fn may modify the table; the scan continues
	// after the last key it visited. Returning ErrStop from fn ends the
	// scan without an error.
	Scan(start []byte, fn func(key, value []byte) error) error
}

// Config is the view of the product's configuration files that a hook
// receives: files addressed by slash-separated paths relative to the
// configuration directory. In an online upgrade the view is read-only and
// the write methods return an error wrapping ErrReadOnlyConfig.
type Config interface {
	// ReadFile returns the content of the file at path, or an error
	// wrapping fs.ErrNotExist.
	ReadFile(path string) ([]byte, error)
	// WriteFile creates or replaces the file at path.
	WriteFile(path string, data []byte, perm fs.FileMode) error
	// Remove deletes the file at path.
	Remove(path string) error
	// List returns the paths of all files, sorted.
	List() ([]string, error)
}

// Info describes the run a hook is part of.
type Info struct {
	// Num is the running hook's number.
	Num int
	// From is the data version before the hook ran.
	From string
	// To is the data version the hook upgrades to (its IntroducedIn).
	To string
	// Online reports whether the hook runs on a live store.
	Online bool
}

// Tx is the store transaction a hook runs in.
type Tx interface {
	// Info describes the running hook and its versions.
	Info() Info
	// Table returns the named table, or an error wrapping ErrNoTable.
	Table(name string) (Table, error)
	// CreateTable creates the named table, or returns it if it exists.
	CreateTable(name string) (Table, error)
	// DropTable deletes the named table and all its records. Dropping a
	// missing table is not an error.
	DropTable(name string) error
	// Tables returns the names of all tables, sorted.
	Tables() ([]string, error)
	// Config returns the configuration files.
	Config() Config
	// Checkpoint commits everything the hook has done so far together
	// with progress, the hook's own resumption state under the given
	// key, and continues in a new transaction. If the run stops before
	// the hook returns, the next run calls the hook again and Progress
	// returns what was saved. Table values obtained before a checkpoint
	// stay usable after it. Most hooks use EachBatch instead.
	Checkpoint(key string, progress []byte) error
	// Progress returns what the last Checkpoint of this hook saved under
	// key, and false when nothing was saved.
	Progress(key string) ([]byte, bool, error)
}

// Errors returned by stores; test for them with errors.Is.
var (
	// ErrNotFound is returned by Table.Get for a missing key.
	ErrNotFound = errors.New("key not found")
	// ErrNoTable is returned by Tx.Table for a missing table.
	ErrNoTable = errors.New("no such table")
	// ErrReadOnlyConfig is returned by Config writes in online runs.
	ErrReadOnlyConfig = errors.New("configuration is read-only in an online upgrade; make the hook offline (allow_online: false) to change configuration files")
	// ErrStop ends a Scan early without an error.
	ErrStop = errors.New("stop scan")
)

// DefaultBatchSize is the number of records EachBatch processes per
// transaction when size is zero or negative.
const DefaultBatchSize = 10000

// Roomer is implemented by the transactions of stores that bound what one
// transaction may write (an etcd cluster's --max-txn-ops and
// --max-request-bytes); a store without such limits (bbolt) does not
// implement it. The engine's [Tx] implements it exactly when the store's
// transaction does, so a hook that batches its own writes may ask it too.
type Roomer interface {
	// Room reports how many more writes the transaction can take and how
	// many bytes of key and value the next one may have. It never
	// overstates and costs no request.
	Room() (writes, bytes int)
}

// EachBatch calls fn for every record of table in key order, committing
// every size records together with the position reached (under the progress
// key "batch:"+phase). When a run is interrupted, the next run resumes after
// the last committed batch, so memory and transaction size stay bounded by
// the batch size whatever the table size.
//
// On a store whose transactions are bounded (tx implements [Roomer]: an
// etcd cluster), a batch also ends early, whatever size asked for, when the
// transaction's room gets low: before each record, EachBatch keeps room for
// the most writes and bytes one call of fn has used so far in this run,
// plus the checkpoint's own write. A record whose writes do not fit an
// empty transaction fails the hook with the store's limit error, and so may
// a record that needs more room than every record before it (the next run
// then resumes with that record at the start of a transaction).
//
// A phase that has finished is skipped when the hook is called again, so a
// hook may run several phases in a row. Code between phases may run again
// after a crash and must be idempotent. A hook that must stay all-or-nothing
// from the user's point of view reads the source table in batches, writes a
// new table, and drops or replaces the source only after the last phase.
//
// fn must not modify the scanned table; write to another table instead.
func EachBatch(ctx context.Context, tx Tx, phase, table string, size int, fn func(key, value []byte) error) error {
	if size <= 0 {
		size = DefaultBatchSize
	}
	progressKey := "batch:" + phase
	state, ok, err := tx.Progress(progressKey)
	if err != nil {
		return fmt.Errorf("reading progress of phase %q: %w", phase, err)
	}
	var start []byte
	if ok {
		if len(state) > 0 && state[0] == batchDone {
			return nil
		}
		if len(state) > 1 {
			start = append(state[1:], 0) // the smallest key after the last one done
		}
	}
	t, err := tx.Table(table)
	if err != nil {
		return err
	}
	room, _ := tx.(Roomer)
	var most roomUse // the most one call of fn used
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, full := 0, false
		var last []byte
		err := t.Scan(start, func(k, v []byte) error {
			if n == size {
				return ErrStop
			}
			var before roomUse
			if room != nil {
				before.writes, before.bytes = room.Room()
				if n > 0 && !before.fits(most, checkpointUse(progressKey, k)) {
					full = true
					return ErrStop
				}
			}
			if err := fn(k, v); err != nil {
				return err
			}
			if room != nil {
				var after roomUse
				after.writes, after.bytes = room.Room()
				most.writes = max(most.writes, before.writes-after.writes)
				most.bytes = max(most.bytes, before.bytes-after.bytes)
			}
			last = append(last[:0], k...)
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if n < size && !full {
			return tx.Checkpoint(progressKey, []byte{batchDone})
		}
		if err := tx.Checkpoint(progressKey, append([]byte{batchMore}, last...)); err != nil {
			return err
		}
		start = append(last, 0)
	}
}

// roomUse is room in a transaction, or what a call used of it.
type roomUse struct{ writes, bytes int }

// fits reports whether r holds one more call using up to most and then the
// checkpoint cp.
func (r roomUse) fits(most, cp roomUse) bool {
	return r.writes >= most.writes+cp.writes && r.bytes >= most.bytes+cp.bytes
}

// checkpointUse bounds what the checkpoint after the record key uses: its
// progress record (the engine's key prefix, the phase's key, a state byte
// and key) and a second write's worth for the metadata table's creation.
func checkpointUse(progressKey string, key []byte) roomUse {
	return roomUse{writes: 2, bytes: checkpointKeyBytes + len(progressKey) + 1 + len(key)}
}

// checkpointKeyBytes bounds what the engine adds to a progress key
// ("progress/<num>/").
const checkpointKeyBytes = 64

const (
	batchMore byte = 'm'
	batchDone byte = 'd'
)
