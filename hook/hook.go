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
	"strconv"
	"strings"
)

// Func is the signature of an upgrade hook. A hook returns an error to stop
// the upgrade; its transaction is then rolled back. A panic is treated as an
// error.
type Func func(ctx context.Context, tx Tx) error

// Hook is one entry of a registry.
type Hook struct {
	// Num identifies the hook and orders main's hooks: a larger Num runs
	// later. A maintenance hook's Num is in its line's range (see
	// MaintenanceBase) and runs where its IntroducedIn places it.
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

// Table is one table of ordered key/value records, which may also hold
// nested tables (bbolt's buckets in buckets) at any depth, and a sequence.
// Keys are non-empty byte strings ordered bytewise; a key names either a
// record or a nested table, never both.
//
// The nested tables and the sequence follow go.etcd.io/bbolt's Bucket, so a
// product's migration ports as it is:
//
//	payments, err := tx.Table("payments")       // bbolt: tx.Bucket
//	byID, err := payments.CreateTable("by-id")  // bbolt: b.CreateBucketIfNotExists
//	id, err := byID.NextSequence()              // bbolt: b.NextSequence
//	err = byID.Put(itob(id), record)
//
// Records and nested tables share one key space, as in bbolt: [Table.Scan]
// visits both, giving a nested table's name with a nil value; a record's
// value is never nil (an empty value is a non-nil empty slice). Get, Put and
// Delete of a key that names a nested table fail with an error wrapping
// [ErrIsTable], and CreateTable of a key that names a record with one
// wrapping [ErrNotTable], so no hook mistakes one for the other silently.
type Table interface {
	// Name returns the table's name (its last path element).
	Name() string
	// Path returns the names from the top-level table down to this one.
	Path() []string
	// Get returns a copy of the value stored under key, or an error
	// wrapping ErrNotFound when there is none (or ErrIsTable when key
	// names a nested table).
	Get(key []byte) ([]byte, error)
	// Put stores value under key. The table keeps copies of both slices,
	// so the caller may reuse them at once. A nil value is an error: it
	// is how Scan shows a nested table, and copying one as a record would
	// lose it; store an empty record as []byte{}. A value over 16 MiB is
	// an error too: no backup could carry it.
	Put(key, value []byte) error
	// Delete removes key. Deleting a missing key is not an error;
	// deleting a nested table's name is (use DropTable).
	Delete(key []byte) error
	// Scan calls fn for every key >= start (all keys when start is nil),
	// in key order: each record with its value, and each nested table
	// with a nil value. The slices given to fn are valid only until fn
	// returns. fn may modify the table; the scan continues after the last
	// key it visited. Returning ErrStop from fn ends the scan without an
	// error.
	Scan(start []byte, fn func(key, value []byte) error) error

	// Table returns the nested table name, or an error wrapping ErrNoTable
	// (ErrNotTable when name is a record's key).
	Table(name string) (Table, error)
	// CreateTable returns the nested table name, creating it if needed.
	CreateTable(name string) (Table, error)
	// DropTable deletes the nested table name and its records. A missing
	// table is not an error. A table that holds nested tables or a
	// non-zero sequence is refused with an error wrapping ErrNotFlat, so
	// nothing is lost unnoticed: drop or move those first, or call
	// [DropTree] to drop everything knowingly.
	DropTable(name string) error
	// Tables returns the names of the nested tables, sorted.
	Tables() ([]string, error)

	// Sequence returns the table's sequence: the last integer
	// NextSequence returned, or what SetSequence set (0 for a new table).
	Sequence() (uint64, error)
	// SetSequence sets the table's sequence. It is written with the
	// transaction, like a record.
	SetSequence(v uint64) error
	// NextSequence increments the sequence and returns its new value, as
	// bbolt's Bucket.NextSequence does: a hook that creates records under
	// IDs from it keeps the product's next ID from reusing theirs.
	NextSequence() (uint64, error)
}

// Parent is what holds tables: a [Tx] holds the top-level tables, and a
// [Table] the tables nested in it.
type Parent interface {
	Table(name string) (Table, error)
	CreateTable(name string) (Table, error)
	DropTable(name string) error
	Tables() ([]string, error)
}

// OpenPath returns the table at path, the names from a top-level table of p
// down to it, or an error wrapping ErrNoTable that names the first missing
// element.
func OpenPath(p Parent, path ...string) (Table, error) {
	if len(path) == 0 {
		return nil, errors.New("opening a table: empty path")
	}
	var t Table
	for i, name := range path {
		var err error
		if t, err = p.Table(name); err != nil {
			return nil, fmt.Errorf("opening table %s: %w", FormatPath(path[:i+1]), err)
		}
		p = t
	}
	return t, nil
}

// CreatePath returns the table at path, creating every missing table on the
// way.
func CreatePath(p Parent, path ...string) (Table, error) {
	if len(path) == 0 {
		return nil, errors.New("creating a table: empty path")
	}
	var t Table
	for i, name := range path {
		var err error
		if t, err = p.CreateTable(name); err != nil {
			return nil, fmt.Errorf("creating table %s: %w", FormatPath(path[:i+1]), err)
		}
		p = t
	}
	return t, nil
}

// DropTree drops the table name of p with everything it holds: its records,
// its sequence and its nested tables at every depth. It is the explicit form
// of [Table.DropTable] for a table that is not flat; nothing else drops
// nested tables. It drops one nested table at a time, so it holds no more
// than one level's names in memory.
func DropTree(p Parent, name string) error {
	t, err := p.Table(name)
	if errors.Is(err, ErrNoTable) {
		return nil
	}
	if err != nil {
		return err
	}
	nested, err := t.Tables()
	if err != nil {
		return err
	}
	for _, n := range nested {
		if err := DropTree(t, n); err != nil {
			return err
		}
	}
	if err := t.SetSequence(0); err != nil {
		return err
	}
	return p.DropTable(name)
}

// CopyTable copies the table at src into the table at dst, creating dst and
// its parents when missing, in batches that survive a crash as
// [EachBatchPath]'s do (phases named after phase): every record of src,
// passed through fn; every table nested in src, at every depth, with its
// records as they are; and every sequence (dst's becomes the larger of the
// two, so IDs handed out from either never repeat). fn returns the value to
// store under key in dst, or nil to leave the record out; a nil fn copies
// every record as it is.
//
// It is the large-table pattern that loses nothing: copy with CopyTable,
// then drop the source with [DropTree] in the same hook, after the copy.
// src is only read, so an interrupted run leaves it whole and the next run
// completes the copy. Memory holds one batch and the names of one level of
// nested tables at a time.
//
// A copy that finished is skipped when the hook is called again, as a
// finished phase of EachBatch is, also after the hook dropped its source:
// a hook may move several tables in a row (CopyTable, DropTree, CopyTable,
// DropTree), and a run that stops during a later one resumes there. A copy
// whose destination the hook dropped since starts again from the first
// record. To replace a table in place, use [ReplaceTable], which is done
// once: written as CopyTable, DropTree, CopyTable, DropTree, a rerun
// after a later step stopped would copy the replaced table out again.
func CopyTable(ctx context.Context, tx Tx, phase string, src, dst []string, size int, fn func(key, value []byte) ([]byte, error)) error {
	if _, err := OpenPath(tx, src...); errors.Is(err, ErrNoTable) {
		// The source is gone. When a run before this one finished the
		// copy's first phase, the copy was done (its source is only
		// read) and the hook dropped the source after it.
		state, ok, perr := tx.Progress("batch:" + phase)
		if perr != nil {
			return fmt.Errorf("copying table %s to %s: reading progress of phase %q: %w", FormatPath(src), FormatPath(dst), phase, perr)
		}
		if ok && len(state) > 0 && state[0] == batchDone {
			return nil
		}
	}
	if _, err := OpenPath(tx, dst...); errors.Is(err, ErrNoTable) {
		// The destination is gone. When a run before this one copied
		// some of the source into it, the hook dropped it since (a hook
		// that replaces a table: copy it out, drop it, copy it back):
		// resuming after the last batch, or skipping the finished phase
		// whose nested tables are still to copy, would lose records, so
		// the copy starts again from the first record.
		progressKey := "batch:" + phase
		state, ok, perr := tx.Progress(progressKey)
		if perr != nil {
			return fmt.Errorf("copying table %s to %s: reading progress of phase %q: %w", FormatPath(src), FormatPath(dst), phase, perr)
		}
		if ok && string(state) != string(batchMore) {
			if err := tx.Checkpoint(progressKey, []byte{batchMore}); err != nil {
				return fmt.Errorf("copying table %s to %s: starting phase %q again: %w", FormatPath(src), FormatPath(dst), phase, err)
			}
		}
	}
	if _, err := CreatePath(tx, dst...); err != nil {
		return err
	}
	var out Table
	err := EachBatchPath(ctx, tx, phase, src, size, func(k, v []byte) error {
		if v == nil {
			return nil // a nested table: copied below
		}
		if fn != nil {
			var err error
			if v, err = fn(k, v); err != nil || v == nil {
				return err
			}
		}
		if out == nil {
			var err error
			if out, err = OpenPath(tx, dst...); err != nil {
				return err
			}
		}
		return out.Put(k, v)
	})
	if err != nil {
		return fmt.Errorf("copying table %s to %s: %w", FormatPath(src), FormatPath(dst), err)
	}
	from, err := OpenPath(tx, src...)
	if err != nil {
		return err
	}
	to, err := OpenPath(tx, dst...)
	if err != nil {
		return err
	}
	seq, err := from.Sequence()
	if err != nil {
		return err
	}
	if have, err := to.Sequence(); err != nil {
		return err
	} else if seq > have {
		if err := to.SetSequence(seq); err != nil {
			return err
		}
	}
	nested, err := from.Tables()
	if err != nil {
		return err
	}
	for _, n := range nested {
		sub := func(p []string) []string { return append(p[:len(p):len(p)], n) }
		if err := CopyTable(ctx, tx, phase+"/"+strconv.Quote(n), sub(src), sub(dst), size, nil); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceTable replaces the table at path (a top-level table's name, or
// the names down to a nested one) with its records passed through fn (as
// CopyTable passes them: nil from fn drops the record), keeping its nested
// tables and its sequence: it copies the table into a temporary table
// beside it, drops it, copies the temporary table back and drops that, in
// batches that resume, as CopyTable and DropTree would. Unlike those
// steps written one after the other, the replacement is done once: its
// end is a checkpoint, so a hook that stops at a later step and runs
// again skips it (fn is never applied twice to a record), and one that
// stops during it completes it. The temporary table is named after the
// table and phase ("accounts\x00replace:phase").
func ReplaceTable(ctx context.Context, tx Tx, phase string, path []string, size int, fn func(key, value []byte) ([]byte, error)) error {
	if len(path) == 0 {
		return fmt.Errorf("replacing a table: empty table path")
	}
	key := "replace:" + phase
	state, ok, err := tx.Progress(key)
	if err != nil {
		return fmt.Errorf("replacing table %s: reading progress of phase %q: %w", FormatPath(path), phase, err)
	}
	if ok && len(state) > 0 && state[0] == batchDone {
		return nil
	}
	last := path[len(path)-1]
	tmp := append(path[:len(path)-1:len(path)-1], last+"\x00replace:"+phase)
	// drop drops name in the table above path, opened in the current
	// transaction (the copies' checkpoints begin new ones).
	drop := func(name string) error {
		var parent Parent = tx
		if len(path) > 1 {
			if parent, err = OpenPath(tx, path[:len(path)-1]...); err != nil {
				return err
			}
		}
		return DropTree(parent, name)
	}
	if err := CopyTable(ctx, tx, phase+"/out", path, tmp, size, fn); err != nil {
		return err
	}
	// A run that stopped during the copy back finds the table partly
	// copied: dropped again, the copy back starts from its first record.
	if err := drop(last); err != nil {
		return fmt.Errorf("replacing table %s: %w", FormatPath(path), err)
	}
	if err := CopyTable(ctx, tx, phase+"/back", tmp, path, size, nil); err != nil {
		return err
	}
	if err := drop(tmp[len(tmp)-1]); err != nil {
		return fmt.Errorf("replacing table %s: dropping its copy: %w", FormatPath(path), err)
	}
	return tx.Checkpoint(key, []byte{batchDone})
}

// FormatPath returns path as text that tells every path from every other:
// the names joined by "/" (users/by-id), each quoted as a Go string when any
// name of the path holds other bytes than letters, digits and "._-"
// ("users"/"by tenant", and "a/b" for a top-level table of that name). It is
// how errors and the migrator's text output name a nested table.
func FormatPath(path []string) string {
	plain := true
	for _, n := range path {
		if !plainName(n) {
			plain = false
			break
		}
	}
	if plain {
		return strings.Join(path, "/")
	}
	q := make([]string, len(path))
	for i, n := range path {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, "/")
}

// plainName reports whether name prints as itself in FormatPath: letters,
// digits and "._-" only, so it holds no "/" or quote.
func plainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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

// Tx is the store transaction a hook runs in. It, its tables and its
// configuration view are for the hook's own goroutine and only until the
// hook returns: they are not safe for concurrent use, and every call after
// the hook returned fails (a goroutine the hook starts must end before it
// returns).
type Tx interface {
	// Info describes the running hook and its versions.
	Info() Info
	// Table returns the named top-level table, or an error wrapping
	// ErrNoTable. Nested tables are reached through their parents
	// ([Table.Table], [OpenPath]).
	Table(name string) (Table, error)
	// CreateTable creates the named top-level table, or returns it if it
	// exists. A name holding "/" is refused: it would read as a nested
	// path; create nested tables in their parent ([CreatePath]).
	CreateTable(name string) (Table, error)
	// DropTable deletes the named table and all its records. Dropping a
	// missing table is not an error. As [Table.DropTable], it refuses a
	// table that holds nested tables or a non-zero sequence (ErrNotFlat);
	// [DropTree] drops those knowingly.
	DropTable(name string) error
	// Tables returns the names of all top-level tables, sorted.
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
	// ErrIsTable is returned by Get, Put and Delete of a key that names a
	// nested table: open it with Table, drop it with DropTable.
	ErrIsTable = errors.New("the key names a nested table, not a record")
	// ErrNotTable is returned by Table and CreateTable of a name that is
	// a record's key.
	ErrNotTable = errors.New("the key names a record, not a nested table")
	// ErrNotFlat is returned by DropTable of a table that holds nested
	// tables or a non-zero sequence, which dropping would lose.
	ErrNotFlat = errors.New("the table holds nested tables or a sequence")
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
// the batch size whatever the table size. It is [EachBatchPath] of the
// top-level table.
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
// new table, and drops or replaces the source only after the last phase
// ([CopyTable] does the copy, nested tables and sequence included).
//
// As [Table.Scan], EachBatch gives fn each nested table's name with a nil
// value, so that a table holding nested tables is never mistaken for an
// empty one; fn opens it (t.Table(string(key))) or skips it knowingly.
//
// fn must not modify the scanned table; write to another table instead.
func EachBatch(ctx context.Context, tx Tx, phase, table string, size int, fn func(key, value []byte) error) error {
	return EachBatchPath(ctx, tx, phase, []string{table}, size, fn)
}

// EachBatchPath is [EachBatch] over the table at path: a top-level table
// and the tables nested in it down to the one scanned (see [OpenPath]).
func EachBatchPath(ctx context.Context, tx Tx, phase string, path []string, size int, fn func(key, value []byte) error) error {
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
	t, err := OpenPath(tx, path...)
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
