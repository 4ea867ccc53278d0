package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// Mode is how a hook was applied.
type Mode string

// Modes of an upgrade.
const (
	Online  Mode = "online"
	Offline Mode = "offline"
)

// Metadata is the upgrade state of a store, kept in its [store.MetaTable]
// table and carried by backups in MANIFEST.json.
type Metadata struct {
	// Product is the product whose data the store holds; empty in stores
	// initialized before products were recorded.
	Product string `json:"product,omitempty"`
	// DataVersion is the semantic version of the data.
	DataVersion string `json:"data_version"`
	// LastUpgradeHook is the number of the last hook applied or skipped by
	// init; nil for data from before hooks were tracked.
	LastUpgradeHook *int `json:"last_upgrade_hook"`
	// Applied holds one record per applied hook, in ascending Num order.
	Applied []Applied `json:"applied"`
	// Covered are the maintenance hooks (see hook.MaintenanceBase) that
	// the release which installed the data ([Init]) or adopted it
	// ([Baseline]) contained, so that they never run on it, in ascending
	// order; nil when there were none. Main's hooks are covered by
	// LastUpgradeHook, as before: data without Covered plans exactly as
	// it always did.
	Covered []int `json:"covered,omitempty"`
}

// Applied records one applied hook.
type Applied struct {
	Num int `json:"num"`
	// Name is the hook's function as the registry names it
	// ("libfoo.UpgradeLibFoo"): with Num and Digest, the hook's identity.
	// A migrator whose hook Num is another function refuses the data,
	// whatever its flags. Empty in records of hookreg releases before it
	// was recorded.
	Name string `json:"name,omitempty"`
	// Digest is the hook's code digest in the binary that applied it.
	Digest string `json:"digest"`
	// Release is the release of the migrator that applied it.
	Release string `json:"release"`
	// AppliedAt is the time it was committed, UTC, RFC 3339.
	AppliedAt string `json:"applied_at"`
	Mode      Mode   `json:"mode"`
	// AllowDigestMismatch reports that the run went ahead with
	// --allow-digest-mismatch over a changed applied hook.
	AllowDigestMismatch bool `json:"allow_digest_mismatch,omitempty"`
	// AmendedTo is set when an upgrade found the hook's code amended since
	// it was applied (reviewed amendments lead from Digest to the
	// binary's digest): that binary's digest.
	AmendedTo string `json:"amended_to,omitempty"`
}

// Keys of the metadata table.
const (
	keyProduct         = "product"
	keyDataVersion     = "data_version"
	keyLastUpgradeHook = "last_upgrade_hook"
	keyCovered         = "covered"
	prefixApplied      = "applied/"
	prefixProgress     = "progress/"
)

// ErrNotInitialized is returned for a store without upgrade metadata: a
// fresh store, or data written before the product adopted hookreg (see
// [Init] and [Baseline]).
var ErrNotInitialized = errors.New("the store has no hookreg metadata")

// UnadoptedVersion is the data version a backup records for a store
// without upgrade metadata (data from before the product adopted
// hookreg). Such a backup carries no metadata table, so it restores to a
// store without metadata again.
const UnadoptedVersion = "0.0.0"

func appliedKey(num int) []byte { return fmt.Appendf(nil, "%s%010d", prefixApplied, num) }

func progressPrefix(num int) string { return fmt.Sprintf("%s%010d/", prefixProgress, num) }

// ReadMetadata reads the upgrade metadata of the store tx belongs to, or
// returns an error wrapping ErrNotInitialized.
func ReadMetadata(tx store.TableSource) (Metadata, error) {
	var m Metadata
	t, err := tx.Table(store.MetaTable)
	if errors.Is(err, hook.ErrNoTable) {
		return m, ErrNotInitialized
	}
	if err != nil {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	v, err := t.Get([]byte(keyDataVersion))
	if errors.Is(err, hook.ErrNotFound) {
		return m, ErrNotInitialized
	}
	if err != nil {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	m.DataVersion = string(v)
	if v, err := t.Get([]byte(keyProduct)); err == nil {
		m.Product = string(v)
	} else if !errors.Is(err, hook.ErrNotFound) {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	if v, err := t.Get([]byte(keyLastUpgradeHook)); err == nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return m, fmt.Errorf("reading upgrade metadata: last_upgrade_hook %q is not a number", v)
		}
		m.LastUpgradeHook = &n
	} else if !errors.Is(err, hook.ErrNotFound) {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	if v, err := t.Get([]byte(keyCovered)); err == nil {
		if m.Covered, err = parseCovered(string(v)); err != nil {
			return m, fmt.Errorf("reading upgrade metadata: %w", err)
		}
	} else if !errors.Is(err, hook.ErrNotFound) {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	err = t.Scan([]byte(prefixApplied), func(k, v []byte) error {
		if !strings.HasPrefix(string(k), prefixApplied) {
			return hook.ErrStop
		}
		var a Applied
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("record %s: %w", k, err)
		}
		m.Applied = append(m.Applied, a)
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("reading upgrade metadata: %w", err)
	}
	return m, nil
}

// WriteMetadata replaces the product, data version, last upgrade hook and
// applied records of the store tx belongs to; hook progress is kept.
func WriteMetadata(tx store.TableSource, m Metadata) error {
	t, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		return fmt.Errorf("writing upgrade metadata: %w", err)
	}
	var del [][]byte
	err = t.Scan([]byte(prefixApplied), func(k, _ []byte) error {
		if !strings.HasPrefix(string(k), prefixApplied) {
			return hook.ErrStop
		}
		del = append(del, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing upgrade metadata: %w", err)
	}
	for _, k := range del {
		if err := t.Delete(k); err != nil {
			return fmt.Errorf("writing upgrade metadata: %w", err)
		}
	}
	puts := [][2][]byte{{[]byte(keyDataVersion), []byte(m.DataVersion)}}
	if m.Product != "" {
		puts = append(puts, [2][]byte{[]byte(keyProduct), []byte(m.Product)})
	}
	if m.LastUpgradeHook != nil {
		puts = append(puts, [2][]byte{[]byte(keyLastUpgradeHook), []byte(strconv.Itoa(*m.LastUpgradeHook))})
	} else if err := t.Delete([]byte(keyLastUpgradeHook)); err != nil {
		return fmt.Errorf("writing upgrade metadata: %w", err)
	}
	if len(m.Covered) > 0 {
		puts = append(puts, [2][]byte{[]byte(keyCovered), []byte(formatCovered(m.Covered))})
	} else if err := t.Delete([]byte(keyCovered)); err != nil {
		return fmt.Errorf("writing upgrade metadata: %w", err)
	}
	for _, a := range m.Applied {
		v, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("writing upgrade metadata: %w", err)
		}
		puts = append(puts, [2][]byte{appliedKey(a.Num), v})
	}
	for _, kv := range puts {
		if err := t.Put(kv[0], kv[1]); err != nil {
			return fmt.Errorf("writing upgrade metadata: %w", err)
		}
	}
	return nil
}

// recordAmended marks the applied records of plan's amended hooks with the
// digest the amendments lead to, in one transaction; nothing is written
// when every record says so already.
func recordAmended(st store.Store, plan *Plan) error {
	amended := make(map[int]string)
	for _, a := range plan.Amended {
		amended[a.Num] = a.Binary
	}
	var todo []Applied
	for _, a := range plan.Applied {
		if to, ok := amended[a.Num]; ok && a.AmendedTo != to {
			a.AmendedTo = to
			todo = append(todo, a)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := st.Begin(true)
	if err != nil {
		return fmt.Errorf("recording amended hooks: %w", err)
	}
	defer tx.Rollback()
	t, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		return fmt.Errorf("recording amended hooks: %w", err)
	}
	for _, a := range todo {
		v, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("recording amended hooks: %w", err)
		}
		if err := t.Put(appliedKey(a.Num), v); err != nil {
			return fmt.Errorf("recording amended hook %d: %w", a.Num, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recording amended hooks: %w", err)
	}
	return nil
}

// recordApplied adds the metadata update of one applied hook to tx: its
// record, last_upgrade_hook (main's hooks only: a maintenance hook is known
// by its record, never by the high-water mark) and the data version, and
// drops its progress.
func recordApplied(tx store.Tx, a Applied, dataVersion string) error {
	t, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		return err
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := t.Put(appliedKey(a.Num), v); err != nil {
		return err
	}
	if !hook.IsMaintenance(a.Num) {
		if err := t.Put([]byte(keyLastUpgradeHook), []byte(strconv.Itoa(a.Num))); err != nil {
			return err
		}
	}
	if err := t.Put([]byte(keyDataVersion), []byte(dataVersion)); err != nil {
		return err
	}
	prefix := progressPrefix(a.Num)
	return t.Scan([]byte(prefix), func(k, _ []byte) error {
		if !strings.HasPrefix(string(k), prefix) {
			return hook.ErrStop
		}
		return t.Delete(k)
	})
}

// Init records a fresh install in st: the product, data_version = the
// release, last_upgrade_hook = the largest number of main's hooks and, when
// reg has maintenance hooks, Covered = their numbers, so that no hook of
// reg runs on it and every hook reg does not contain (a later hook of
// main, a later hook of any maintenance line) is pending later. It refuses
// a store that already has metadata.
func Init(st store.Store, reg *hook.Registry) error {
	tx, err := st.Begin(true)
	if err != nil {
		return fmt.Errorf("initializing the store: %w", err)
	}
	defer tx.Rollback()
	m, err := ReadMetadata(tx)
	switch {
	case err == nil:
		return &Refusal{Reason: fmt.Sprintf("the store is already initialized (data version %s); init is for a fresh install", m.DataVersion)}
	case !errors.Is(err, ErrNotInitialized):
		return fmt.Errorf("initializing the store: %w", err)
	}
	m = Metadata{Product: reg.Product, DataVersion: reg.Release}
	if last := reg.MaxMainNum(); last > 0 {
		m.LastUpgradeHook = &last
	} else if n := len(reg.Hooks); n > 0 {
		// Only maintenance hooks: none of main's is covered.
		zero := 0
		m.LastUpgradeHook = &zero
	}
	for _, h := range reg.Hooks {
		if hook.IsMaintenance(h.Num) {
			m.Covered = append(m.Covered, h.Num)
		}
	}
	if err := WriteMetadata(tx, m); err != nil {
		return fmt.Errorf("initializing the store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("initializing the store: %w", err)
	}
	return nil
}

// Baseline records in st, which holds data written before the product
// adopted hookreg, that the data is of version dataVersion and that no hook
// was tracked: no last_upgrade_hook, so the hooks introduced after
// dataVersion are pending (as atlas's --baseline and golang-migrate's
// force do). A maintenance hook of dataVersion's own line, introduced in
// dataVersion or before, is recorded as covered (the release contained
// it); one of another line stays pending, since whether a release of a
// later line contained it is not known. It refuses a store that already
// has metadata, a version that is not a semantic version, and a version
// reg cannot upgrade (newer than its release, older than its
// MinDataVersion).
func Baseline(st store.Store, reg *hook.Registry, dataVersion string) error {
	m, err := BaselineMetadata(reg, dataVersion)
	if err != nil {
		return err
	}
	tx, err := st.Begin(true)
	if err != nil {
		return fmt.Errorf("recording a baseline: %w", err)
	}
	defer tx.Rollback()
	old, err := ReadMetadata(tx)
	switch {
	case err == nil:
		return refusef("the store is already initialized (data version %s); a baseline is for data written before hookreg", old.DataVersion)
	case !errors.Is(err, ErrNotInitialized):
		return fmt.Errorf("recording a baseline: %w", err)
	}
	if err := WriteMetadata(tx, m); err != nil {
		return fmt.Errorf("recording a baseline: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recording a baseline: %w", err)
	}
	return nil
}

// BaselineMetadata returns the metadata [Baseline] records for
// dataVersion, or its refusal of the version, without a store: a command
// checks the version before it creates a store.
func BaselineMetadata(reg *hook.Registry, dataVersion string) (Metadata, error) {
	m := Metadata{Product: reg.Product, DataVersion: dataVersion}
	dv, err := semver.StrictNewVersion(dataVersion)
	if err != nil {
		return Metadata{}, refusef("the data version %q is not a semantic version MAJOR.MINOR.PATCH: %v", dataVersion, err)
	}
	for _, h := range reg.Hooks {
		major, minor, _, ok := hook.LineOf(h.Num)
		if !ok || uint64(major) != dv.Major() || uint64(minor) != dv.Minor() {
			continue
		}
		if v, err := semver.StrictNewVersion(h.IntroducedIn); err == nil && !v.GreaterThan(dv) {
			m.Covered = append(m.Covered, h.Num)
		}
	}
	if _, err := PlanFor(reg, m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// DataTables returns the names of the tables of tx that hold the product's
// data: every table but the reserved ones (see [store.IsReserved]).
func DataTables(tx store.Tx) ([]string, error) {
	names, err := tx.Tables()
	if err != nil {
		return nil, err
	}
	var data []string
	for _, n := range names {
		if !store.IsReserved(n) {
			data = append(data, n)
		}
	}
	return data, nil
}

// errHeld stops HeldData's walk at the first data.
var errHeld = errors.New("data found")

// HeldData returns the path of the first of tx's data tables (at any
// depth) that holds data: a record or a non-zero sequence; nil when there
// is none. A store without upgrade metadata whose tables hold no data is
// a fresh install whose product created its (empty) tables before
// migrating, not data written before the product adopted hookreg.
// HeldDataIn is HeldData in a read-only transaction of its own on st.
func HeldDataIn(st store.Store) ([]string, error) {
	tx, err := st.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return HeldData(tx)
}

func HeldData(tx store.Tx) ([]string, error) {
	var open [][]string // the tables the walk is in
	var held []string
	err := store.WalkTree(tx, func(path []string, seq uint64) error {
		if store.IsReserved(path[0]) {
			return store.SkipTable
		}
		open = append(open, slices.Clone(path))
		if seq != 0 {
			held = open[len(open)-1]
			return errHeld
		}
		return nil
	}, func(k, v []byte) error {
		held = open[len(open)-1]
		return errHeld
	}, func(path []string) error {
		open = open[:len(open)-1]
		return nil
	})
	if errors.Is(err, errHeld) {
		return held, nil
	}
	return nil, err
}

// formatCovered writes covered hook numbers as the metadata table keeps
// them: ascending, comma-separated.
func formatCovered(nums []int) string {
	s := slices.Clone(nums)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// parseCovered reads what formatCovered wrote: maintenance hook numbers,
// strictly ascending.
func parseCovered(v string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || !hook.IsMaintenance(n) || len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("covered %q is not a strictly ascending list of maintenance hook numbers", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// appliedAt formats t as an applied-hook time.
func appliedAt(t time.Time) string { return t.UTC().Format(time.RFC3339) }
