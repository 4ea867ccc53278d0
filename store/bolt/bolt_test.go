package bolt_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

func open(t *testing.T, path string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func begin(t *testing.T, st store.Store, writable bool) store.Tx {
	t.Helper()
	tx, err := st.Begin(writable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return tx
}

func TestPutCopiesReusedBuffers(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	tb, err := tx.CreateTable("t")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	for i := range 100 {
		buf[0], buf[1] = 'k', byte('0'+i%10)
		if i >= 10 {
			buf[0] = 'l' + byte(i/10)
		}
		if err := tb.Put(buf, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rtx := begin(t, st, false)
	rt, err := rtx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	got := storetest.TableRecords(t, rt)
	if len(got) != 100 {
		t.Fatalf("got %d records, want 100", len(got))
	}
	for k, v := range got {
		if k != v {
			t.Errorf("record %q has value %q", k, v)
		}
	}
	v, err := rt.Get([]byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	if v2, _ := rt.Get([]byte("k1")); string(v2) != "k1" {
		t.Errorf("modifying a Get result changed the store: %q", v2)
	}
}

func TestScanToleratesModification(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	tb, err := tx.CreateTable("t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		k := fmt.Appendf(nil, "k%05d", i)
		if err := tb.Put(k, k); err != nil {
			t.Fatal(err)
		}
	}
	// Re-key every record by moving it to a prefix sorting after the
	// current keys, deleting the old; the scan must visit each old key
	// once and the moved ones once.
	visited := map[string]int{}
	err = tb.Scan(nil, func(k, v []byte) error {
		visited[string(k)]++
		if k[0] == 'k' {
			if err := tb.Delete(k); err != nil {
				return err
			}
			return tb.Put(append([]byte("m"), k[1:]...), v)
		}
		return tb.Put(k, append(v, '!'))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(visited) != 10000 {
		t.Fatalf("visited %d keys, want 10000", len(visited))
	}
	for k, n := range visited {
		if n != 1 {
			t.Fatalf("key %q visited %d times", k, n)
		}
	}
	got := storetest.TableRecords(t, tb)
	if len(got) != 5000 || got["m00042"] != "k00042!" {
		t.Fatalf("after the scan: %d records, m00042 = %q", len(got), got["m00042"])
	}
	// ErrStop ends a scan without an error.
	n := 0
	if err := tb.Scan([]byte("m00100"), func(k, v []byte) error {
		n++
		if n == 3 {
			return hook.ErrStop
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("scan with ErrStop: n = %d, err = %v", n, err)
	}
}

func TestNamesAndErrors(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	// Names are bytes, as bbolt's bucket names are, as long as a backup
	// can carry them: 255 bytes once encoded for the archive.
	for _, name := range []string{"", string(make([]byte, 86)), strings.Repeat("a", 256)} {
		if _, err := tx.CreateTable(name); !errors.Is(err, store.ErrBadName) {
			t.Errorf("CreateTable(%q) = %v, want ErrBadName", name, err)
		}
	}
	// A bad nested name is refused naming the table it would be in.
	users, err := tx.CreateTable("users")
	if err != nil {
		t.Fatal(err)
	}
	byName, err := users.CreateTable("by-name")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", strings.Repeat("a", 256)} {
		_, err := byName.CreateTable(name)
		if !errors.Is(err, store.ErrBadName) || !strings.Contains(err.Error(), "in table users/by-name: ") {
			t.Errorf("CreateTable(%q) in users/by-name = %v, want ErrBadName naming users/by-name", name, err)
		}
		if _, err := byName.Table(name); !errors.Is(err, store.ErrBadName) || !strings.Contains(err.Error(), "in table users/by-name: ") {
			t.Errorf("Table(%q) in users/by-name = %v, want ErrBadName naming users/by-name", name, err)
		}
	}
	for _, name := range []string{"user sessions", "a/b", "..", "ä", "\xff\x00", string(make([]byte, 85)), strings.Repeat("a", 255)} {
		if _, err := tx.CreateTable(name); err != nil {
			t.Errorf("CreateTable(%q) = %v", name, err)
		}
	}
	if _, err := tx.Table("missing"); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("Table(missing) = %v, want ErrNoTable", err)
	}
	tb, err := tx.CreateTable("acl.tenant-1_x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Get([]byte("nope")); !errors.Is(err, hook.ErrNotFound) {
		t.Errorf("Get(nope) = %v, want ErrNotFound", err)
	}
	if err := tx.DropTable("acl.tenant-1_x"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("k"), nil); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("Put on a dropped table = %v, want ErrNoTable", err)
	}
	if err := tx.DropTable("acl.tenant-1_x"); err != nil {
		t.Errorf("dropping a missing table: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Get([]byte("k")); !errors.Is(err, store.ErrTxClosed) {
		t.Errorf("Get after commit = %v, want ErrTxClosed", err)
	}
	rtx := begin(t, st, false)
	if _, err := rtx.CreateTable("x"); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("CreateTable in a read-only tx = %v, want ErrReadOnly", err)
	}
}

func TestSnapshotAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := open(t, path)
	w := begin(t, st, true)
	if _, err := w.CreateTable("a"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r := begin(t, st, false)
	w = begin(t, st, true)
	if _, err := w.CreateTable("b"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if names, _ := r.Tables(); len(names) != 1 {
		t.Errorf("the read transaction sees %v, want only [a]", names)
	}
	r.Rollback()

	start := time.Now()
	_, err := bolt.Open(path, bolt.Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second open = %v, want ErrInUse", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second open took %s", d)
	}
	if _, err := bolt.Open(filepath.Join(t.TempDir(), "none.db"), bolt.Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("opening a missing store without Create = %v, want ErrNotExist", err)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}

func TestLoadAndReplace(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "s.db")
	st := open(t, old)
	st.Close()
	tmp := filepath.Join(dir, "s.db.new")
	l, err := bolt.NewLoader(tmp)
	if err != nil {
		t.Fatal(err)
	}
	const n = bolt.LoadBatchRecords*2 + 7
	buf := make([]byte, 8)
	for i := range n {
		copy(buf, fmt.Sprintf("%08d", i))
		if err := l.Put("big", buf, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.CreateTable("empty"); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(store.MetaTable, []byte("data_version"), []byte("4.4.0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.NewLoader(tmp); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a loader over an existing file = %v, want ErrExist", err)
	}
	if err := bolt.Replace(tmp, old); err != nil {
		t.Fatal(err)
	}
	st = open(t, old)
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, st, false)
	names, _ := tx.Tables()
	if fmt.Sprint(names) != "[_hookreg big empty]" {
		t.Errorf("tables %v", names)
	}
	big, _ := tx.Table("big")
	got := storetest.TableRecords(t, big)
	if len(got) != n || got["00012345"] != "00012345" {
		t.Errorf("loaded %d records, 00012345 = %q", len(got), got["00012345"])
	}

	abort := filepath.Join(dir, "aborted.db")
	l, err = bolt.NewLoader(abort)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(strings.Repeat("a", 256), []byte("k"), nil); !errors.Is(err, store.ErrBadName) {
		t.Errorf("Put into a bad table name = %v", err)
	}
	if err := l.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abort); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an aborted load left %s", abort)
	}
}

func TestConfigView(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	cfg := store.ConfigView(tx)
	if _, err := cfg.ReadFile("broker.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading a missing file = %v", err)
	}
	if err := cfg.WriteFile("etc/broker.json", []byte(`{}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := cfg.WriteFile("../x", nil, 0o600); err == nil {
		t.Error("writing ../x succeeded")
	}
	data, mode, err := store.ReadConfigFile(tx, "etc/broker.json")
	if err != nil || string(data) != "{}" || mode != 0o640 {
		t.Errorf("ReadConfigFile = %q, %v, %v", data, mode, err)
	}
	if list, _ := cfg.List(); fmt.Sprint(list) != "[etc/broker.json]" {
		t.Errorf("List = %v", list)
	}
	if err := cfg.Remove("etc/broker.json"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Remove("etc/broker.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removing a missing file = %v", err)
	}
	if !bytes.Equal(store.EncodeConfigFile(0o644, []byte("x"))[:1], []byte{1}) {
		t.Error("config record format byte")
	}
}

func TestEmptyValueRoundTrips(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	tb, err := tx.CreateTable("t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("nil"), nil); err == nil {
		t.Error("a nil value (how Scan shows a nested table) was accepted")
	}
	if err := tb.Put([]byte("k"), []byte{}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Put(nil, []byte("v")); err == nil {
		t.Error("an empty key was accepted")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rtx := begin(t, st, false)
	rt, err := rtx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rt.Get([]byte("k")); err != nil || v == nil || len(v) != 0 {
		t.Errorf("Get of an empty value = %#v, %v", v, err)
	}
	var seen [][]byte
	if err := rt.Scan(nil, func(k, v []byte) error { seen = append(seen, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] == nil {
		t.Errorf("Scan gave %#v for one empty record; want a non-nil empty value", seen)
	}
}
