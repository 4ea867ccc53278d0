package etcd

import (
	"errors"
	"fmt"

	"github.com/hookreg/hookreg/store"
)

// errNested is returned by the nested-table and sequence methods until the
// etcd layout carries them.
var errNested = errors.New("nested tables and sequences are not yet supported by the etcd store")

func (tb *table) Path() []string { return []string{tb.st.name} }

func (tb *table) Table(name string) (store.Table, error) {
	return nil, fmt.Errorf("table %q: %w", tb.st.name, errNested)
}

func (tb *table) CreateTable(name string) (store.Table, error) {
	return nil, fmt.Errorf("table %q: %w", tb.st.name, errNested)
}

func (tb *table) DropTable(name string) error {
	return fmt.Errorf("table %q: %w", tb.st.name, errNested)
}

func (tb *table) Tables() ([]string, error) { return nil, nil }

func (tb *table) Sequence() (uint64, error) { return 0, nil }

func (tb *table) SetSequence(uint64) error {
	return fmt.Errorf("table %q: %w", tb.st.name, errNested)
}

func (tb *table) NextSequence() (uint64, error) {
	return 0, fmt.Errorf("table %q: %w", tb.st.name, errNested)
}
