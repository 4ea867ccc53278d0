// Package hooktest tests one upgrade hook the way the migrator runs it:
// on a real bbolt store in a temporary directory, seeded with tables and
// configuration files or loaded from a backup (a release fixture), the hook
// run in a transaction by the upgrade engine itself (with the offline or
// the online view of the configuration), then the tables and files read
// back.
//
//	func TestPurgeStaleSessions(t *testing.T) {
//		st := hooktest.New(t)
//		st.Put("sessions", "a", `{"seen":"2020-01-01"}`)
//		st.Put("sessions", "b", `{"seen":"2026-01-01"}`)
//		st.WriteConfig("broker.json", `{"sessions":{"ttl":"30d"}}`)
//		h := hook.Hook{Num: 101, IntroducedIn: "5.2.0", Name: "PurgeStaleSessions", Func: PurgeStaleSessions}
//		if err := st.Run(h); err != nil {
//			t.Fatal(err)
//		}
//		if _, ok := st.Get("sessions", "a"); ok {
//			t.Error("the stale session a is still there")
//		}
//	}
//
// A hook of the registry is found with [Lookup]; a release fixture is
// loaded with [Load]:
//
//	st := hooktest.Load(t, "../testdata/releases/5.0.0.tar.zst")
//	err := st.Run(hooktest.Lookup(t, generated.Registry, 100))
//
// (a test that imports the generated registry is in the external test
// package, such as hooks_test, since the registry imports the hooks).
//
// Every method but Run fails the test on an error: they prepare and
// inspect, the hook is what is tested.
package hooktest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// Store is a bbolt store in a temporary directory of the test, closed when
// the test ends.
type Store struct {
	t    testing.TB
	path string
	st   *bolt.Store
}

// New returns an empty store: no tables, no metadata, no configuration
// files.
func New(t testing.TB) *Store {
	t.Helper()
	return open(t, filepath.Join(t.TempDir(), "store.db"))
}

func open(t testing.TB, path string) *Store {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatalf("hooktest: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &Store{t: t, path: path, st: st}
}

// Load returns a store restored from the backup archive at path, such as a
// release fixture: its tables, its upgrade metadata and its configuration
// files (in the store, where the offline view finds them). The archive is
// verified whole first. Any product's backup loads.
func Load(t testing.TB, path string) *Store {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("hooktest: %v", err)
	}
	m, err := backup.Verify(f, path)
	f.Close()
	if err != nil {
		t.Fatalf("hooktest: %v", err)
	}
	db := filepath.Join(t.TempDir(), "store.db")
	if _, err := backup.Restore(t.Context(), accepting(m), path, db, backup.RestoreOptions{}); err != nil {
		t.Fatalf("hooktest: %v", err)
	}
	return open(t, db)
}

// accepting returns a registry that restores the data of manifest m: its
// product, at its data version, knowing its last hook.
func accepting(m *archive.Manifest) *hook.Registry {
	reg := &hook.Registry{Product: m.Product, Release: m.DataVersion}
	if m.LastUpgradeHook != nil {
		reg.Hooks = []hook.Hook{{Num: *m.LastUpgradeHook, IntroducedIn: m.DataVersion}}
	}
	return reg
}

// Lookup returns hook num of reg (a product's generated registry), failing
// the test when there is none.
func Lookup(t testing.TB, reg *hook.Registry, num int) hook.Hook {
	t.Helper()
	h, ok := reg.Lookup(num)
	if !ok {
		t.Fatalf("hooktest: the registry of %s %s has no hook %d", reg.Product, reg.Release, num)
	}
	return h
}

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Store returns the store, for what the methods here do not cover.
func (s *Store) Store() store.Store { return s.st }

// update runs fn in a writable transaction and commits it.
func (s *Store) update(fn func(tx store.Tx) error) {
	s.t.Helper()
	tx, err := s.st.Begin(true)
	if err != nil {
		s.t.Fatalf("hooktest: %v", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		s.t.Fatalf("hooktest: %v", err)
	}
	if err := tx.Commit(); err != nil {
		s.t.Fatalf("hooktest: %v", err)
	}
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(tx store.Tx) error) {
	s.t.Helper()
	tx, err := s.st.Begin(false)
	if err != nil {
		s.t.Fatalf("hooktest: %v", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		s.t.Fatalf("hooktest: %v", err)
	}
}

// Put writes the record key = value into table, creating the table.
func (s *Store) Put(table, key, value string) {
	s.t.Helper()
	s.PutBytes(table, []byte(key), []byte(value))
}

// PutBytes is Put for keys and values that are not text.
func (s *Store) PutBytes(table string, key, value []byte) {
	s.t.Helper()
	s.PutBytesIn([]string{table}, key, value)
}

// PutIn writes the record key = value into the table at path (a top-level
// table and the tables nested in it), creating every table on the way.
func (s *Store) PutIn(path []string, key, value string) {
	s.t.Helper()
	s.PutBytesIn(path, []byte(key), []byte(value))
}

// PutBytesIn is PutIn for keys and values that are not text.
func (s *Store) PutBytesIn(path []string, key, value []byte) {
	s.t.Helper()
	s.update(func(tx store.Tx) error {
		t, err := hook.CreatePath(tx, path...)
		if err != nil {
			return err
		}
		return t.Put(key, value)
	})
}

// CreateTable creates an empty table.
func (s *Store) CreateTable(table string) {
	s.t.Helper()
	s.CreatePath(table)
}

// CreatePath creates the table at path and every table on the way.
func (s *Store) CreatePath(path ...string) {
	s.t.Helper()
	s.update(func(tx store.Tx) error {
		_, err := hook.CreatePath(tx, path...)
		return err
	})
}

// SetSequence sets the sequence of the table at path, creating the tables
// on the way, as a product that hands out IDs with NextSequence leaves it.
func (s *Store) SetSequence(path []string, v uint64) {
	s.t.Helper()
	s.update(func(tx store.Tx) error {
		t, err := hook.CreatePath(tx, path...)
		if err != nil {
			return err
		}
		return t.SetSequence(v)
	})
}

// Sequence returns the sequence of the table at path, 0 when the table
// does not exist.
func (s *Store) Sequence(path ...string) uint64 {
	s.t.Helper()
	var v uint64
	s.viewPath(path, func(t store.Table) (err error) {
		v, err = t.Sequence()
		return err
	})
	return v
}

// TablesIn returns the names of the tables nested in the table at path,
// sorted; nil when the table does not exist.
func (s *Store) TablesIn(path ...string) []string {
	s.t.Helper()
	var names []string
	s.viewPath(path, func(t store.Table) (err error) {
		names, err = t.Tables()
		return err
	})
	return names
}

// viewPath runs fn on the table at path in a read-only transaction, and
// not at all when the table does not exist.
func (s *Store) viewPath(path []string, fn func(t store.Table) error) {
	s.t.Helper()
	s.view(func(tx store.Tx) error {
		t, err := hook.OpenPath(tx, path...)
		if errors.Is(err, hook.ErrNoTable) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// WriteConfig writes the configuration file at the slash-separated
// relative path, mode 0644.
func (s *Store) WriteConfig(path, data string) {
	s.t.Helper()
	s.update(func(tx store.Tx) error {
		return store.ConfigView(tx).WriteFile(path, []byte(data), 0o644)
	})
}

// SetDataVersion records the upgrade metadata of data of version v from
// before hooks were tracked (see upgrade.Baseline): the hook then sees v
// as [hook.Info.From].
func (s *Store) SetDataVersion(v string) {
	s.t.Helper()
	s.update(func(tx store.Tx) error {
		return upgrade.WriteMetadata(tx, upgrade.Metadata{DataVersion: v})
	})
}

// Run runs h on the store as an offline upgrade runs it: in one
// transaction (several when it checkpoints) committed together with its
// metadata update, the configuration files writable, a panic turned into
// an error. On an error, the hook's transaction is rolled back: the store
// shows what it was before (or after the last checkpoint), and running
// the hook again resumes as a re-run of the migrator would. The hook sees
// the store's data version (see SetDataVersion; "0.0.0" without metadata)
// as hook.Info.From.
func (s *Store) Run(h hook.Hook) error {
	s.t.Helper()
	return upgrade.RunHook(context.Background(), s.st, h, s.dataVersion(), upgrade.Options{})
}

// RunOnline runs h as an online upgrade runs it: the configuration files
// are read-only (a write fails the hook, saying to make it offline). A
// hook that does not allow online is refused as the migrator refuses it:
// with a *upgrade.Refusal whose Offline is set.
func (s *Store) RunOnline(h hook.Hook) error {
	s.t.Helper()
	if !h.AllowOnline {
		return &upgrade.Refusal{Reason: fmt.Sprintf("hook %d (%s) does not allow online: the migrator runs it offline only", h.Num, h.Name), Offline: true}
	}
	dir := s.t.TempDir()
	for _, p := range s.ConfigFiles() {
		data, _ := s.Config(p)
		file := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			s.t.Fatalf("hooktest: %v", err)
		}
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			s.t.Fatalf("hooktest: %v", err)
		}
	}
	return upgrade.RunHook(context.Background(), s.st, h, s.dataVersion(), upgrade.Options{Online: true, Config: upgrade.DirConfig(dir)})
}

func (s *Store) dataVersion() string {
	s.t.Helper()
	v := upgrade.UnadoptedVersion
	s.view(func(tx store.Tx) error {
		m, err := upgrade.ReadMetadata(tx)
		if err == nil {
			v = m.DataVersion
		}
		if errors.Is(err, upgrade.ErrNotInitialized) {
			return nil
		}
		return err
	})
	return v
}

// Get returns the value of key in table, and false when the table or the
// key does not exist.
func (s *Store) Get(table, key string) (string, bool) {
	s.t.Helper()
	return s.GetIn([]string{table}, key)
}

// GetIn returns the value of key in the table at path, and false when the
// table or the key does not exist.
func (s *Store) GetIn(path []string, key string) (string, bool) {
	s.t.Helper()
	var v []byte
	found := false
	s.viewPath(path, func(t store.Table) error {
		var err error
		v, err = t.Get([]byte(key))
		if errors.Is(err, hook.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return string(v), found
}

// Records returns every record of table, nil when the table does not
// exist. Tables nested in it are not records (see TablesIn).
func (s *Store) Records(table string) map[string]string {
	s.t.Helper()
	return s.RecordsIn(table)
}

// RecordsIn returns every record of the table at path, nil when the table
// does not exist; the tables nested in it are listed by TablesIn.
func (s *Store) RecordsIn(path ...string) map[string]string {
	s.t.Helper()
	var records map[string]string
	s.viewPath(path, func(t store.Table) error {
		records = map[string]string{}
		return t.Scan(nil, func(k, v []byte) error {
			if v != nil {
				records[string(k)] = string(v)
			}
			return nil
		})
	})
	return records
}

// Tables returns the names of the product's top-level tables, sorted:
// hookreg's reserved tables (metadata, configuration) are left out.
func (s *Store) Tables() []string {
	s.t.Helper()
	var names []string
	s.view(func(tx store.Tx) error {
		var err error
		names, err = upgrade.DataTables(tx)
		return err
	})
	return names
}

// Config returns the content of the configuration file at path, and false
// when there is none.
func (s *Store) Config(path string) (string, bool) {
	s.t.Helper()
	var data []byte
	found := false
	s.view(func(tx store.Tx) error {
		var err error
		data, _, err = store.ReadConfigFile(tx, path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		found = err == nil
		return err
	})
	return string(data), found
}

// ConfigFiles returns the paths of the configuration files, sorted.
func (s *Store) ConfigFiles() []string {
	s.t.Helper()
	var paths []string
	s.view(func(tx store.Tx) error {
		var err error
		paths, err = store.ConfigView(tx).List()
		return err
	})
	slices.Sort(paths)
	return paths
}

// Applied returns the upgrade metadata's applied-hook records: the hooks
// Run applied, with those of a loaded backup.
func (s *Store) Applied() []upgrade.Applied {
	s.t.Helper()
	var applied []upgrade.Applied
	s.view(func(tx store.Tx) error {
		m, err := upgrade.ReadMetadata(tx)
		if errors.Is(err, upgrade.ErrNotInitialized) {
			return nil
		}
		applied = m.Applied
		return err
	})
	return applied
}
