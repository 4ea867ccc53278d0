package backup

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// maxMetaRecords bounds the records of the metadata table that a check
// keeps in memory: the upgrade state (a few keys and one record per applied
// hook), not hook progress, which is skipped.
const maxMetaRecords = 1 << 16

// metaTable collects the upgrade state carried by an archive's
// [store.MetaTable] table as it streams, so that it can be compared with
// the manifest: a restore writes the table, and the manifest is what every
// refusal looks at, so the two must say the same thing.
type metaTable struct {
	seen    bool // the archive carries the table
	current bool // the records streaming now are the table's
	records []record
}

type record struct{ key, value []byte }

// table notes that the archive carries the metadata table, and refuses
// the configuration table (configuration files are config/ members,
// which a restore without a configuration directory writes into it).
func (t *metaTable) table(info archive.TableInfo) error {
	if len(info.Parent) == 0 && info.Name == store.ConfigTable {
		return &archive.FormatError{Err: fmt.Errorf("it carries the reserved table %q; configuration files belong in config/ members", store.ConfigTable)}
	}
	t.current = info.Name == store.MetaTable && len(info.Parent) == 0
	t.seen = t.seen || t.current
	return nil
}

// end notes the end of a table: the metadata table's records go on after
// a table nested in it.
func (t *metaTable) end(info archive.TableInfo) error {
	t.current = len(info.Parent) == 1 && info.Parent[0] == store.MetaTable
	return nil
}

// record keeps the upgrade state records of the metadata table.
func (t *metaTable) record(key, value []byte) error {
	if !t.current || bytes.HasPrefix(key, []byte("progress/")) {
		return nil
	}
	if len(t.records) == maxMetaRecords {
		return fmt.Errorf("table %q holds more than %d upgrade records", store.MetaTable, maxMetaRecords)
	}
	t.records = append(t.records, record{key, value})
	return nil
}

// agrees returns an error unless the metadata table says what the manifest
// m says: the same product, data version, last upgrade hook and applied
// hooks.
func (t *metaTable) agrees(m *archive.Manifest) error {
	want := ManifestMetadata(m)
	got, err := upgrade.ReadMetadata(t)
	switch {
	case errors.Is(err, upgrade.ErrNotInitialized) && (want.DataVersion == "" || want.DataVersion == upgrade.UnadoptedVersion):
		return nil // data from before the product adopted hookreg
	case errors.Is(err, upgrade.ErrNotInitialized):
		return fmt.Errorf("the manifest records data version %q but the table %q carries no upgrade metadata", want.DataVersion, store.MetaTable)
	case err != nil:
		return fmt.Errorf("table %q: %w", store.MetaTable, err)
	}
	return sameMetadata(got, want)
}

// HoldsManifest reports whether the upgrade metadata meta of a store is
// what the manifest m records: the same product, data version, last
// upgrade hook, covered maintenance hooks and applied hooks (their times included, so the store holds
// the data of that backup, or of another backup of the same moment).
func HoldsManifest(meta upgrade.Metadata, m *archive.Manifest) bool {
	return sameMetadata(meta, ManifestMetadata(m)) == nil
}

// sameMetadata returns an error unless got (a metadata table's) records
// what want (a manifest's) does.
func sameMetadata(got, want upgrade.Metadata) error {
	if got.Product != "" && got.Product != want.Product {
		return fmt.Errorf("the manifest records product %q, the table %q product %q", want.Product, store.MetaTable, got.Product)
	}
	if got.DataVersion != want.DataVersion {
		return fmt.Errorf("the manifest records data version %s, the table %q data version %s", want.DataVersion, store.MetaTable, got.DataVersion)
	}
	if hookNum(got.LastUpgradeHook) != hookNum(want.LastUpgradeHook) {
		return fmt.Errorf("the manifest records last upgrade hook %s, the table %q %s", hookNum(want.LastUpgradeHook), store.MetaTable, hookNum(got.LastUpgradeHook))
	}
	if !slices.Equal(got.Covered, want.Covered) {
		return fmt.Errorf("the manifest records covered maintenance hooks %v, the table %q %v", want.Covered, store.MetaTable, got.Covered)
	}
	if !slices.EqualFunc(got.Applied, want.Applied, sameApplied) {
		return fmt.Errorf("the manifest records applied hooks %s, the table %q %s", appliedNums(want.Applied), store.MetaTable, appliedNums(got.Applied))
	}
	return nil
}

func hookNum(n *int) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprint(*n)
}

func sameApplied(a, b upgrade.Applied) bool {
	ta, erra := time.Parse(time.RFC3339, a.AppliedAt)
	tb, errb := time.Parse(time.RFC3339, b.AppliedAt)
	return a.Num == b.Num && a.Name == b.Name && a.Digest == b.Digest && a.Release == b.Release && a.Mode == b.Mode &&
		a.AllowDigestMismatch == b.AllowDigestMismatch && (erra == nil) == (errb == nil) && ta.Equal(tb)
}

func appliedNums(applied []upgrade.Applied) string {
	if len(applied) == 0 {
		return "none"
	}
	nums := make([]string, len(applied))
	for i, a := range applied {
		nums[i] = fmt.Sprintf("%d (%s, %s, %s)", a.Num, a.Digest, a.Release, a.Mode)
	}
	return strings.Join(nums, ", ")
}

// Table and CreateTable make metaTable the [store.TableSource] that
// upgrade.ReadMetadata reads, so the table is decoded as a store's is.
func (t *metaTable) Table(name string) (store.Table, error) {
	if name != store.MetaTable || !t.seen {
		return nil, fmt.Errorf("table %q: %w", name, hook.ErrNoTable)
	}
	return (*metaRecords)(t), nil
}

func (t *metaTable) CreateTable(name string) (store.Table, error) {
	return nil, store.ErrReadOnly
}

// metaRecords is the read-only table view of a metaTable; records arrive
// in key order, as the archive stores them.
type metaRecords metaTable

func (r *metaRecords) Name() string { return store.MetaTable }

func (r *metaRecords) Get(key []byte) ([]byte, error) {
	i, ok := slices.BinarySearchFunc(r.records, key, func(rec record, k []byte) int { return bytes.Compare(rec.key, k) })
	if !ok {
		return nil, hook.ErrNotFound
	}
	return bytes.Clone(r.records[i].value), nil
}

func (r *metaRecords) Put(key, value []byte) error { return store.ErrReadOnly }

func (r *metaRecords) Delete(key []byte) error { return store.ErrReadOnly }

func (r *metaRecords) Scan(start []byte, fn func(key, value []byte) error) error {
	i, _ := slices.BinarySearchFunc(r.records, start, func(rec record, k []byte) int { return bytes.Compare(rec.key, k) })
	for _, rec := range r.records[i:] {
		if err := fn(rec.key, rec.value); err != nil {
			if errors.Is(err, hook.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Path, the nested tables and the sequence complete the read-only view: the
// metadata table holds no nested table and no sequence.
func (r *metaRecords) Path() []string { return []string{store.MetaTable} }

func (r *metaRecords) Table(name string) (store.Table, error) {
	return nil, fmt.Errorf("table %q: %w", name, hook.ErrNoTable)
}

func (r *metaRecords) CreateTable(string) (store.Table, error) { return nil, store.ErrReadOnly }
func (r *metaRecords) DropTable(string) error                  { return store.ErrReadOnly }
func (r *metaRecords) Tables() ([]string, error)               { return nil, nil }
func (r *metaRecords) Sequence() (uint64, error)               { return 0, nil }
func (r *metaRecords) SetSequence(uint64) error                { return store.ErrReadOnly }
func (r *metaRecords) NextSequence() (uint64, error)           { return 0, store.ErrReadOnly }
