package bolt_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// TestNestedTables builds tables three levels deep under binary names
// through the store API and reads them back with bbolt itself: buckets,
// records and sequences where the API put them.
func TestNestedTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := open(t, path)
	tx := begin(t, st, true)
	deep, err := hook.CreatePath(tx, "payments", "\x00\xff", "by id")
	if err != nil {
		t.Fatal(err)
	}
	if got := deep.Path(); !slices.Equal(got, []string{"payments", "\x00\xff", "by id"}) {
		t.Errorf("Path = %q", got)
	}
	for i := range 3 {
		id, err := deep.NextSequence()
		if err != nil {
			t.Fatal(err)
		}
		if id != uint64(i+1) {
			t.Fatalf("NextSequence = %d, want %d", id, i+1)
		}
		if err := deep.Put(fmt.Appendf(nil, "%d", id), []byte("rec")); err != nil {
			t.Fatal(err)
		}
	}
	mid, err := hook.OpenPath(tx, "payments", "\x00\xff")
	if err != nil {
		t.Fatal(err)
	}
	if err := mid.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := mid.SetSequence(41); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(btx *bbolt.Tx) error {
		b := btx.Bucket([]byte("payments")).Bucket([]byte("\x00\xff"))
		if b == nil {
			return errors.New("payments/\\x00\\xff is not a bucket")
		}
		if b.Sequence() != 41 || string(b.Get([]byte("a"))) != "1" {
			return fmt.Errorf("middle bucket: sequence %d, a=%q", b.Sequence(), b.Get([]byte("a")))
		}
		d := b.Bucket([]byte("by id"))
		if d == nil || d.Sequence() != 3 || string(d.Get([]byte("3"))) != "rec" {
			return fmt.Errorf("deep bucket wrong: %v", d)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNestedScanAndRefusals: Scan shows a nested table with a nil value in
// key order; a key is a record or a table, and each operation of the other
// kind is refused with its error; DropTable refuses what it would lose.
func TestNestedScanAndRefusals(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	top, err := tx.CreateTable("top")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "c"} {
		if err := top.Put([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := top.CreateTable("b"); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = top.Scan(nil, func(k, v []byte) error {
		got = append(got, fmt.Sprintf("%s=%v", k, v != nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=true", "b=false", "c=true"}; !slices.Equal(got, want) {
		t.Errorf("Scan = %v, want %v", got, want)
	}
	if names, _ := top.Tables(); !slices.Equal(names, []string{"b"}) {
		t.Errorf("Tables = %q", names)
	}
	if _, err := top.Get([]byte("b")); !errors.Is(err, hook.ErrIsTable) {
		t.Errorf("Get of a nested table = %v", err)
	}
	if err := top.Put([]byte("b"), []byte("x")); !errors.Is(err, hook.ErrIsTable) {
		t.Errorf("Put over a nested table = %v", err)
	}
	if err := top.Delete([]byte("b")); !errors.Is(err, hook.ErrIsTable) {
		t.Errorf("Delete of a nested table = %v", err)
	}
	if _, err := top.Table("a"); !errors.Is(err, hook.ErrNotTable) {
		t.Errorf("Table of a record = %v", err)
	}
	if _, err := top.CreateTable("a"); !errors.Is(err, hook.ErrNotTable) {
		t.Errorf("CreateTable over a record = %v", err)
	}
	if _, err := top.Table("zz"); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("Table of a missing name = %v", err)
	}
	if err := tx.DropTable("top"); !errors.Is(err, hook.ErrNotFlat) {
		t.Errorf("DropTable of a table holding a nested one = %v", err)
	}
	b, _ := top.Table("b")
	if _, err := b.NextSequence(); err != nil {
		t.Fatal(err)
	}
	if err := top.DropTable("b"); !errors.Is(err, hook.ErrNotFlat) {
		t.Errorf("DropTable of a table with a sequence = %v", err)
	}
	if err := hook.DropTree(tx, "top"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get([]byte("x")); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("a handle nested in a dropped table = %v", err)
	}
	if names, _ := tx.Tables(); len(names) != 0 {
		t.Errorf("tables left after DropTree: %q", names)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestNestedReadOnly: a read-only transaction reads nested tables and
// sequences and refuses to change them.
func TestNestedReadOnly(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "s.db"))
	tx := begin(t, st, true)
	n, err := hook.CreatePath(tx, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetSequence(7); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rtx := begin(t, st, false)
	rn, err := hook.OpenPath(rtx, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := rn.Sequence(); err != nil || seq != 7 {
		t.Errorf("Sequence = %d, %v", seq, err)
	}
	if _, err := rn.NextSequence(); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("NextSequence in a read-only transaction = %v", err)
	}
	if _, err := rn.CreateTable("c"); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("CreateTable in a read-only transaction = %v", err)
	}
}

// TestDeepNestingChecks: buckets nested 300 deep (each a page tree of
// its own) are a legal store: Check accepts it, so that a backup of it
// restores.
func TestDeepNestingChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := open(t, path)
	tx := begin(t, st, true)
	var p hook.Parent = tx
	for i := range 300 {
		tb, err := p.CreateTable(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		// Enough records that the bucket is not inlined in its parent.
		for k := range 40 {
			if err := tb.Put(fmt.Appendf(nil, "k%03d", k), make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
		}
		p = tb
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err != nil {
		t.Errorf("Check of a store nested 300 deep: %v", err)
	}
}

// TestLoaderNested loads nested tables, records of a parent after its
// nested tables, a sequence, and enough tables and records that the load
// commits in the middle of a table at every depth, then reads it all back
// in the store's own order.
func TestLoaderNested(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.db")
	l, err := bolt.NewLoader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Abort()
	var want []string
	table := func(p []string, seq uint64) {
		t.Helper()
		if err := l.Table(p, seq); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("table %s %d", strings.Join(p, "/"), seq))
	}
	record := func(k string) {
		t.Helper()
		if err := l.Record([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "record "+k)
	}
	end := func(p []string) { want = append(want, "end "+strings.Join(p, "/")) }
	// Top level "a": records, then as many nested tables as a load
	// transaction holds records (each with a deeper table in turn), then
	// records of "a" again.
	table([]string{"a"}, 7)
	record("a0")
	for i := range bolt.LoadBatchRecords + 3 {
		name := fmt.Sprintf("n%06d", i)
		table([]string{"a", name}, 0)
		if i%1000 == 0 {
			record("c")
			table([]string{"a", name, "deep"}, uint64(i+1))
			for j := range 3 {
				record(fmt.Sprintf("d%d", j))
			}
			end([]string{"a", name, "deep"})
			if err := l.Table([]string{"a", name}, 0); err != nil { // back to the parent
				t.Fatal(err)
			}
			record("z")
		}
		end([]string{"a", name})
	}
	if err := l.Table([]string{"a"}, 0); err != nil {
		t.Fatal(err)
	}
	for i := range bolt.LoadBatchRecords + 1 {
		record(fmt.Sprintf("z%06d", i))
	}
	end([]string{"a"})
	table([]string{"b"}, 0)
	end([]string{"b"})
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var got []string
	err = store.WalkTree(tx, func(p []string, seq uint64) error {
		got = append(got, fmt.Sprintf("table %s %d", strings.Join(p, "/"), seq))
		return nil
	}, func(k, v []byte) error {
		if string(v) != "v"+string(k) {
			t.Errorf("%s = %q", k, v)
		}
		got = append(got, "record "+string(k))
		return nil
	}, func(p []string) error {
		got = append(got, "end "+strings.Join(p, "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("walk differs at %d: got %q, want %q (%d and %d entries)", i, got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("walk of %d entries, want %d", len(got), len(want))
	}
}
