package etcd

import (
	"fmt"
	"math"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// Table implements [hook.Table]: the table name nested in tb, or an error
// wrapping hook.ErrNoTable (hook.ErrNotTable when name is a record's key).
func (tb *table) Table(name string) (store.Table, error) {
	if err := tb.check(false); err != nil {
		return nil, err
	}
	st, err := tb.nested(name)
	if err != nil {
		return nil, err
	}
	if !st.exists {
		if err := tb.refuseRecord(name); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("table %s: %w", st.label(), hook.ErrNoTable)
	}
	return tb.tx.handle(st), nil
}

// nested returns the state of the table name nested in tb.
func (tb *table) nested(name string) (*tableState, error) {
	path := append(tb.st.path[:len(tb.st.path):len(tb.st.path)], name)
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	return tb.tx.child(tb.st, name)
}

// refuseRecord fails with an error wrapping hook.ErrNotTable when name is
// the key of a record of tb.
func (tb *table) refuseRecord(name string) error {
	_, ok, err := tb.get([]byte(name))
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("table %s: %w", hook.FormatPath(append(tb.Path(), name)), hook.ErrNotTable)
	}
	return nil
}

// CreateTable implements [hook.Table]. The new table's marker is written
// with the commit, which also checks that no record took its name in the
// parent meanwhile.
func (tb *table) CreateTable(name string) (store.Table, error) {
	if err := tb.check(true); err != nil {
		return nil, err
	}
	st, err := tb.nested(name)
	if err != nil {
		return nil, err
	}
	if st.exists {
		return tb.tx.handle(st), nil
	}
	if err := tb.refuseRecord(name); err != nil {
		return nil, fmt.Errorf("creating %w", err)
	}
	t := tb.tx
	st.exists, st.seq = true, 0
	if ek := t.s.lay.records(t.gen, tb.st.path) + name; tb.st.existed && !tb.st.cleared && tb.st.writes[name] == nil {
		st.guard = ek
	}
	if err := t.fitsNeed(); err != nil {
		st.exists, st.guard = false, ""
		return nil, fmt.Errorf("creating table %s: %w", st.label(), err)
	}
	tb.st.kidsMod++
	return t.handle(st), nil
}

// DropTable implements [hook.Table]: a missing table (a record's key
// included, as on bbolt) is not an error; a table that holds nested tables
// or a non-zero sequence is (hook.ErrNotFlat).
func (tb *table) DropTable(name string) error {
	if err := tb.check(true); err != nil {
		return err
	}
	st, err := tb.nested(name)
	if err != nil {
		return err
	}
	return tb.tx.drop(st)
}

// Tables implements [hook.Table].
func (tb *table) Tables() ([]string, error) {
	if err := tb.check(false); err != nil {
		return nil, err
	}
	return tb.tx.kidNames(tb.st)
}

// Sequence implements [hook.Table]: the sequence at the transaction's
// revision, or as the transaction set it.
func (tb *table) Sequence() (uint64, error) {
	if err := tb.check(false); err != nil {
		return 0, err
	}
	return tb.st.seq, nil
}

// SetSequence implements [hook.Table]. The commit writes the table's
// marker, and fails with ErrConflict when another writer changed it
// after the transaction's revision.
func (tb *table) SetSequence(v uint64) error {
	if err := tb.check(true); err != nil {
		return err
	}
	old := tb.st.seq
	tb.st.seq = v
	if err := tb.tx.fitsNeed(); err != nil {
		tb.st.seq = old
		return fmt.Errorf("table %s: setting the sequence: %w", tb.st.label(), err)
	}
	return nil
}

// NextSequence implements [hook.Table], as SetSequence(Sequence()+1).
func (tb *table) NextSequence() (uint64, error) {
	if err := tb.check(true); err != nil {
		return 0, err
	}
	if tb.st.seq == math.MaxUint64 {
		return 0, fmt.Errorf("table %s: next sequence: the sequence is at its maximum", tb.st.label())
	}
	if err := tb.SetSequence(tb.st.seq + 1); err != nil {
		return 0, err
	}
	return tb.st.seq, nil
}
