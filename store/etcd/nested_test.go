package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// walkDump renders every table at every depth of st as its Walk gives
// them: path, sequence, records.
func walkDump(t testing.TB, st store.Store) string {
	t.Helper()
	tx := begin(t, st, false)
	defer tx.Rollback()
	return walkTx(t, tx)
}

func walkTx(t testing.TB, tx store.Tx) string {
	t.Helper()
	var b strings.Builder
	err := store.WalkTree(tx, func(path []string, seq uint64) error {
		fmt.Fprintf(&b, "\n%q seq=%d:", path, seq)
		return nil
	}, func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("record %q with a nil value", k)
		}
		fmt.Fprintf(&b, " %q=%q", k, v)
		return nil
	}, func(path []string) error {
		fmt.Fprintf(&b, "\nend %q:", path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func openBolt(t testing.TB) *bolt.Store {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// binaryNames are table names that the layout must escape.
var binaryNames = []string{"a", "\x00", "\xff", "a/b", "a%2Fb", "a b", "ä", "%", "_x", "."}

// fillNested writes nested tables at several depths with binary names,
// records (empty values among them) and sequences, over several commits.
func fillNested(t testing.TB, st store.Store) {
	t.Helper()
	for round := range 3 {
		for i, top := range binaryNames[:4] {
			tx := begin(t, st, true)
			for j, mid := range binaryNames {
				path := []string{top, mid}
				if j%3 == 0 {
					path = append(path, binaryNames[(i+j)%len(binaryNames)], "deep")
				}
				tb, err := hook.CreatePath(tx, path...)
				if err != nil {
					t.Fatal(err)
				}
				for k := range 3 {
					key := fmt.Appendf(nil, "%d-%d\x00/%d", round, k, j)
					if err := tb.Put(key, bytes.Repeat([]byte{byte(k)}, k)); err != nil {
						t.Fatal(err)
					}
				}
				if j%2 == 0 {
					if _, err := tb.NextSequence(); err != nil {
						t.Fatal(err)
					}
				}
			}
			top, err := tx.Table(top)
			if err != nil {
				t.Fatal(err)
			}
			if err := top.Put(fmt.Appendf(nil, "rec%d", round), []byte{}); err != nil {
				t.Fatal(err)
			}
			if round == 2 {
				if err := top.SetSequence(1 << 60); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestNestedWalkMatchesBolt(t *testing.T) {
	b, e := openBolt(t), open(t, Options{})
	fillNested(t, b)
	fillNested(t, e)
	bd, ed := walkDump(t, b), walkDump(t, e)
	if bd != ed {
		t.Fatalf("bolt walks\n%s\netcd walks\n%s", bd, ed)
	}
	if !strings.Contains(ed, `"deep"] seq=3`) || !strings.Contains(ed, "seq=1152921504606846976") {
		t.Errorf("the walk misses the deep tables or the sequences:\n%s", ed)
	}
	if err := e.Check(); err != nil {
		t.Error(err)
	}
	// Scans show nested tables with a nil value, in key order with the
	// records, in both stores.
	scans := func(st store.Store) string {
		tx := begin(t, st, false)
		defer tx.Rollback()
		var out strings.Builder
		for _, top := range binaryNames[:4] {
			for _, p := range [][]string{{top}, {top, binaryNames[0]}, {top, "\x00"}} {
				tb, err := hook.OpenPath(tx, p...)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&out, "\n%q:", p)
				if err := tb.Scan(nil, func(k, v []byte) error {
					fmt.Fprintf(&out, " %q=%q(%v)", k, v, v == nil)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out.String()
	}
	bs, es := scans(b), scans(e)
	if bs != es {
		t.Errorf("bolt scans%s\netcd scans%s", bs, es)
	}
	if !strings.Contains(es, "(true)") || !strings.Contains(es, "(false)") {
		t.Errorf("the scans miss records or nested tables:%s", es)
	}
}

// TestNestedMatchesBolt runs the same random operations on nested tables
// in a bbolt store and in the etcd store and compares every answer, then
// both stores by a walk after every transaction.
//
// It runs three times: reading ranges as streams with the tables preloaded
// by Begin; page by page; and with no table preloaded, so that every
// table's marker and every table's nested tables are read when needed.
func TestNestedMatchesBolt(t *testing.T) {
	t.Run("stream", nestedMatchesBolt)
	t.Run("paged", func(t *testing.T) {
		pagedReads = true
		defer func() { pagedReads = false }()
		nestedMatchesBolt(t)
	})
	t.Run("unloaded", func(t *testing.T) {
		maxPreloadedTables = 1
		defer func() { maxPreloadedTables = 1000 }()
		nestedMatchesBolt(t)
	})
}

func nestedMatchesBolt(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 12
	}
	b, e := openBolt(t), open(t, Options{PageSize: 3})
	rng := rand.New(rand.NewPCG(3, 4))
	paths := [][]string{{"a"}, {"a", "x"}, {"a", "x", "\x00"}, {"a", "y"}, {"b"}, {"b", "a"}, {"b", "a", "k"}}
	key := func() []byte { return []byte{byte('a' + rng.IntN(12))} }
	errKind := func(err error) string {
		for _, e := range []error{hook.ErrNoTable, hook.ErrNotFound, hook.ErrIsTable, hook.ErrNotTable, hook.ErrNotFlat} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
		if err != nil {
			return "error"
		}
		return "nil"
	}
	for round := range rounds {
		bt, et := begin(t, b, true), begin(t, e, true)
		defer bt.Rollback()
		defer et.Rollback()
		var ops []string
		both := func(what string, f func(tx store.Tx) string) {
			t.Helper()
			bs, es := f(bt), f(et)
			ops = append(ops, what+": "+bs)
			if bs != es {
				t.Fatalf("round %d, %s: bolt %q, etcd %q; the round's operations:\n%s", round, what, bs, es, strings.Join(ops, "\n"))
			}
		}
		for range 1 + rng.IntN(15) {
			path := paths[rng.IntN(len(paths))]
			parent, name := path[:len(path)-1], path[len(path)-1]
			k, v := key(), fmt.Appendf(nil, "v%d", rng.IntN(1000))
			if rng.IntN(8) == 0 {
				o := paths[rng.IntN(len(paths))]
				k = []byte(o[len(o)-1]) // a table's name as a key
			}
			open := func(tx store.Tx, p []string) (hook.Table, string) {
				tb, err := hook.OpenPath(tx, p...)
				if err != nil {
					return nil, errKind(err)
				}
				return tb, ""
			}
			holder := func(tx store.Tx) (hook.Parent, string) {
				if len(parent) == 0 {
					return tx, ""
				}
				return open(tx, parent)
			}
			switch op := rng.IntN(14); op {
			case 0, 1:
				both(fmt.Sprintf("put %q %q", path, k), func(tx store.Tx) string {
					tb, err := hook.CreatePath(tx, path...)
					if err != nil {
						return errKind(err)
					}
					return errKind(tb.Put(k, v))
				})
			case 2:
				both(fmt.Sprintf("delete %q %q", path, k), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					return errKind(tb.Delete(k))
				})
			case 3:
				both(fmt.Sprintf("get %q %q", path, k), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					v, err := tb.Get(k)
					return string(v) + errKind(err)
				})
			case 4, 5:
				start := key()
				seed := rng.Uint64()
				both(fmt.Sprintf("scan %q from %s", path, start), func(tx store.Tx) string {
					r := rand.New(rand.NewPCG(seed, 0))
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					var out bytes.Buffer
					n := 0
					err := tb.Scan(start, func(k, v []byte) error {
						fmt.Fprintf(&out, "%q=%q(%v) ", k, v, v == nil)
						if n++; n > 20 {
							return hook.ErrStop
						}
						switch r.IntN(5) {
						case 0:
							if v != nil {
								return tb.Put(k, append(slices.Clone(v), '+'))
							}
						case 1:
							fmt.Fprint(&out, errKind(tb.Delete([]byte{k[0] + 1})))
						case 2:
							fmt.Fprint(&out, errKind(tb.Put([]byte{k[0] + 2}, []byte("ins"))))
						case 3:
							_, err := tb.CreateTable(string([]byte{k[0] + 1}))
							fmt.Fprint(&out, errKind(err))
						}
						return nil
					})
					return out.String() + errKind(err)
				})
			case 6:
				both(fmt.Sprintf("drop %q", path), func(tx store.Tx) string {
					p, s := holder(tx)
					if p == nil {
						return s
					}
					return errKind(p.DropTable(name))
				})
			case 7:
				both(fmt.Sprintf("drop tree %q", path), func(tx store.Tx) string {
					p, s := holder(tx)
					if p == nil {
						return s
					}
					return errKind(hook.DropTree(p, name))
				})
			case 8:
				both(fmt.Sprintf("next sequence %q", path), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					n, err := tb.NextSequence()
					return fmt.Sprint(n, errKind(err))
				})
			case 9:
				v := uint64(rng.IntN(2))
				both(fmt.Sprintf("set sequence %q", path), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					return errKind(tb.SetSequence(v))
				})
			case 10:
				both(fmt.Sprintf("tables %q", path), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					names, err := tb.Tables()
					seq, _ := tb.Sequence()
					return fmt.Sprint(names, seq, errKind(err))
				})
			case 11:
				both(fmt.Sprintf("create table %q in %q", k, path), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					_, err := tb.CreateTable(string(k))
					return errKind(err)
				})
			case 12:
				both(fmt.Sprintf("open table %q in %q", k, path), func(tx store.Tx) string {
					tb, s := open(tx, path)
					if tb == nil {
						return s
					}
					_, err := tb.Table(string(k))
					return errKind(err)
				})
			default:
				both("walk", func(tx store.Tx) string { return walkTx(t, tx) })
			}
			etx := et.(*Tx)
			cmps, ops, size, _ := etx.need()
			p, err := etx.plan()
			if err != nil {
				t.Fatal(err)
			}
			if cmps < len(p.cmps) || ops < len(p.ops) || size < p.size {
				t.Fatalf("round %d: need() = %d compares, %d operations, %d bytes; the commit needs %d, %d, %d", round, cmps, ops, size, len(p.cmps), len(p.ops), p.size)
			}
		}
		if rng.IntN(4) == 0 {
			both("rollback", func(tx store.Tx) string { return fmt.Sprint(tx.Rollback()) })
		} else {
			both("commit", func(tx store.Tx) string { return fmt.Sprint(tx.Commit()) })
		}
		if bd, ed := walkDump(t, b), walkDump(t, e); bd != ed {
			t.Fatalf("round %d: bolt holds%s\netcd holds%s\nthe round's operations:\n%s", round, bd, ed, strings.Join(ops, "\n"))
		}
	}
	if err := e.Check(); err != nil {
		t.Error(err)
	}
}

func TestNestedLayout(t *testing.T) {
	st := open(t, Options{})
	p := prefix(t)
	tx := begin(t, st, true)
	tb, err := hook.CreatePath(tx, "a/b", "c", "\x00")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("k//x"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.NextSequence(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := raw(t, client(t, cluster), p+"/g/")
	want := map[string]string{
		p + "/g/1/m/a%2Fb":             "",
		p + "/g/1/nm/a%2Fb//c":         "",
		p + "/g/1/nm/a%2Fb/c//%00":     "1",
		p + "/g/1/n/a%2Fb/c/%00//k//x": "v",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keys in etcd:\n%q\nwant\n%q", got, want)
	}
	// No table's record prefix is a prefix of another's, nor of a
	// marker; no marker prefix of a table's children holds another's.
	lay := layout{root: "/p"}
	var all [][]string
	for _, a := range binaryNames {
		all = append(all, []string{a})
		for _, b := range binaryNames {
			all = append(all, []string{a, b}, []string{a, b, a})
		}
	}
	for _, a := range all {
		for _, b := range all {
			if slices.Equal(a, b) {
				continue
			}
			if strings.HasPrefix(lay.records(1, b), lay.records(1, a)) || strings.HasPrefix(lay.marker(1, b), lay.records(1, a)) {
				t.Fatalf("the records of %q cover a key of %q", a, b)
			}
			if strings.HasPrefix(lay.marker(1, b), lay.children(1, a)) && !slices.Equal(b[:len(b)-1], a) {
				t.Fatalf("the children of %q hold %q", a, b)
			}
		}
	}
}

// TestNestedRefusals checks the rules of the shared key space on both
// stores: the same error for every refusal.
func TestNestedRefusals(t *testing.T) {
	for _, st := range []store.Store{openBolt(t), open(t, Options{})} {
		t.Run(fmt.Sprintf("%T", st), func(t *testing.T) {
			tx := begin(t, st, true)
			top, err := tx.CreateTable("top")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := top.CreateTable("sub"); err != nil {
				t.Fatal(err)
			}
			if err := top.Put([]byte("rec"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			// In a new transaction (the snapshot), then again after
			// writes in the same one (the overlay).
			tx = begin(t, st, true)
			top, err = tx.Table("top")
			if err != nil {
				t.Fatal(err)
			}
			for pass := range 2 {
				for _, c := range []struct {
					what string
					err  error
					want error
				}{
					{"get a table", second(top.Get([]byte("sub"))), hook.ErrIsTable},
					{"put a table", top.Put([]byte("sub"), []byte("v")), hook.ErrIsTable},
					{"delete a table", top.Delete([]byte("sub")), hook.ErrIsTable},
					{"open a record", second(top.Table("rec")), hook.ErrNotTable},
					{"create a record", second(top.CreateTable("rec")), hook.ErrNotTable},
					{"drop a table with a table", tx.DropTable("top"), hook.ErrNotFlat},
					{"open a missing table", second(top.Table("none")), hook.ErrNoTable},
				} {
					if !errors.Is(c.err, c.want) {
						t.Errorf("pass %d: %s: %v, want %v", pass, c.what, c.err, c.want)
					}
				}
				if err := top.Put([]byte("nil"), nil); err == nil {
					t.Errorf("pass %d: Put of a nil value succeeded", pass)
				}
				if err := top.DropTable("none"); err != nil {
					t.Errorf("pass %d: dropping a missing table: %v", pass, err)
				}
				sub, err := top.Table("sub")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sub.NextSequence(); err != nil {
					t.Fatal(err)
				}
				if err := top.DropTable("sub"); !errors.Is(err, hook.ErrNotFlat) {
					t.Errorf("pass %d: dropping a table with a sequence: %v", pass, err)
				}
				if err := sub.SetSequence(0); err != nil {
					t.Fatal(err)
				}
				// The overlay: a new record and a new table.
				if err := top.Put([]byte("rec2"), []byte{}); err != nil {
					t.Fatal(err)
				}
				if _, err := top.CreateTable("sub2"); err != nil {
					t.Fatal(err)
				}
				if _, err := top.CreateTable("rec2"); !errors.Is(err, hook.ErrNotTable) {
					t.Errorf("pass %d: creating a table over a new record: %v", pass, err)
				}
				if err := top.Put([]byte("sub2"), []byte("v")); !errors.Is(err, hook.ErrIsTable) {
					t.Errorf("pass %d: putting over a new table: %v", pass, err)
				}
			}
			if err := hook.DropTree(tx, "top"); err != nil {
				t.Fatal(err)
			}
			if names, err := tx.Tables(); err != nil || len(names) != 0 {
				t.Errorf("after DropTree: %q, %v", names, err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if d := walkDump(t, st); d != "" {
				t.Errorf("after DropTree the store holds%s", d)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestSequenceAcrossCommits(t *testing.T) {
	st := open(t, Options{})
	next := func(tx store.Tx) uint64 {
		t.Helper()
		tb, err := hook.CreatePath(tx, "ids", "by-id")
		if err != nil {
			t.Fatal(err)
		}
		n, err := tb.NextSequence()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tx := begin(t, st, true)
	if a, b := next(tx), next(tx); a != 1 || b != 2 {
		t.Fatalf("NextSequence in one transaction: %d, %d", a, b)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx = begin(t, st, true)
	if n := next(tx); n != 3 {
		t.Errorf("after a commit: %d, want 3", n)
	}
	tx.Rollback()
	tx = begin(t, st, true)
	if n := next(tx); n != 3 {
		t.Errorf("after a rollback: %d, want 3", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// A read-only transaction sees the committed value; the product
	// takes the next one.
	ro := begin(t, st, false)
	tb, err := hook.OpenPath(ro, "ids", "by-id")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tb.Sequence(); err != nil || n != 3 {
		t.Errorf("Sequence: %d, %v", n, err)
	}
	ro.Rollback()
	p, err := OpenProduct(context.Background(), client(t, cluster), prefix(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n, err := p.NextSequence(context.Background(), "ids", "by-id"); err != nil || n != 4 {
		t.Errorf("the product's NextSequence: %d, %v", n, err)
	}
	if _, err := p.NextSequence(context.Background(), "ids", "none"); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("the product's NextSequence of a missing table: %v", err)
	}
	tx = begin(t, st, true)
	if n := next(tx); n != 5 {
		t.Errorf("after the product's: %d, want 5", n)
	}
	tx.Rollback()
}

// TestSequenceConflict: a product's NextSequence after a transaction read
// the sequence makes the transaction's NextSequence fail at commit, and
// nothing of it is written; a transaction that read it without writing it
// commits.
func TestSequenceConflict(t *testing.T) {
	st := open(t, Options{})
	tx := begin(t, st, true)
	if _, err := hook.CreatePath(tx, "ids", "n"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := OpenProduct(context.Background(), client(t, cluster), prefix(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	tx = begin(t, st, true)
	tb, err := hook.OpenPath(tx, "ids", "n")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tb.NextSequence(); err != nil || n != 1 {
		t.Fatalf("NextSequence: %d, %v", n, err)
	}
	if err := tb.Put([]byte("1"), []byte("hook")); err != nil {
		t.Fatal(err)
	}
	if n, err := p.NextSequence(context.Background(), "ids", "n"); err != nil || n != 1 {
		t.Fatalf("the product's NextSequence: %d, %v", n, err)
	}
	if err := p.PutPath(context.Background(), []string{"ids", "n"}, []byte("1"), []byte("product")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("commit after the product took the same value: %v, want ErrConflict", err)
	}
	ro := begin(t, st, false)
	tb, err = hook.OpenPath(ro, "ids", "n")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := tb.Sequence(); n != 1 {
		t.Errorf("sequence %d, want the product's 1", n)
	}
	if v, err := tb.Get([]byte("1")); err != nil || string(v) != "product" {
		t.Errorf("record 1: %q, %v", v, err)
	}
	ro.Rollback()

	// Two NextSequence in a row on the product while a transaction only
	// reads the sequence and writes elsewhere: no conflict.
	tx = begin(t, st, true)
	tb, err = hook.OpenPath(tx, "ids", "n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Sequence(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("x"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := p.NextSequence(context.Background(), "ids", "n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestProductNested: the product reads and writes nested tables by path,
// and never a key that names a nested table.
func TestProductNested(t *testing.T) {
	st := open(t, Options{})
	tx := begin(t, st, true)
	if _, err := hook.CreatePath(tx, "u", "by\x00id", "deep"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := OpenProduct(context.Background(), client(t, cluster), prefix(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	path := []string{"u", "by\x00id"}
	if err := p.PutPath(ctx, path, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := p.GetPath(ctx, path, []byte("k")); err != nil || string(v) != "v" {
		t.Errorf("GetPath: %q, %v", v, err)
	}
	if err := p.PutPath(ctx, path, []byte("deep"), []byte("v")); !errors.Is(err, hook.ErrIsTable) {
		t.Errorf("PutPath over a nested table: %v", err)
	}
	if _, err := p.GetPath(ctx, path, []byte("deep")); !errors.Is(err, hook.ErrIsTable) {
		t.Errorf("GetPath of a nested table: %v", err)
	}
	if err := p.PutPath(ctx, []string{"u", "none"}, []byte("k"), []byte("v")); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("PutPath into a missing table: %v", err)
	}
	if err := p.PutPath(ctx, []string{store.MetaTable, "x"}, []byte("k"), []byte("v")); !errors.Is(err, store.ErrBadName) {
		t.Errorf("PutPath into a reserved table: %v", err)
	}
	if err := p.DeletePath(ctx, path, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetPath(ctx, path, []byte("k")); !errors.Is(err, hook.ErrNotFound) {
		t.Errorf("GetPath after DeletePath: %v", err)
	}
	// A hook creating a nested table over a key the product writes
	// meanwhile is refused at commit.
	tx = begin(t, st, true)
	u, err := tx.Table("u")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.CreateTable("new"); err != nil {
		t.Fatal(err)
	}
	if err := p.PutPath(ctx, []string{"u"}, []byte("new"), []byte("product")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Errorf("creating a table over a record the product wrote meanwhile: %v, want ErrConflict", err)
	}
}

// TestNestedRestore restores nested tables with sequences into a new
// generation and reads them back by a walk; the verification catches a
// sequence changed behind the restore's back.
func TestNestedRestore(t *testing.T) {
	b, e := openBolt(t), open(t, Options{})
	fillNested(t, b)
	storetest_put(t, e, "old", "k", "v")
	restoreFrom(t, b, e)
	if bd, ed := walkDump(t, b), walkDump(t, e); bd != ed {
		t.Fatalf("bolt walks\n%s\nthe restored etcd walks\n%s", bd, ed)
	}
	if err := e.Check(); err != nil {
		t.Error(err)
	}

	r, err := e.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	if err := r.TablePath([]string{"a", "b"}, 0); err == nil {
		t.Error("a nested table before its parent was accepted")
	}
	if err := r.TablePath([]string{"a"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.TablePath([]string{"a", "b"}, 7); err != nil {
		t.Fatal(err)
	}
	if err := r.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := r.sender.send(r.batch); err != nil {
		t.Fatal(err)
	}
	r.batch = r.newBatch()
	if err := r.sender.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, cluster).Put(context.Background(), e.lay.marker(r.gen, []string{"a", "b"}), "8"); err != nil {
		t.Fatal(err)
	}
	r.sender = newSender(r)
	if err := r.Finish(); err == nil || !strings.Contains(err.Error(), "sequence 8") {
		t.Errorf("Finish after the sequence changed: %v", err)
	}
}

func storetest_put(t testing.TB, st store.Store, table, k, v string) {
	t.Helper()
	tx := begin(t, st, true)
	tb, err := tx.CreateTable(table)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte(k), []byte(v)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// restoreFrom restores every table of src into dst by a walk.
func restoreFrom(t testing.TB, src store.Store, dst *Store) {
	t.Helper()
	tx := begin(t, src, false)
	r, err := dst.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	err = store.WalkTree(tx, func(path []string, seq uint64) error {
		return r.TablePath(path, seq)
	}, func(k, v []byte) error {
		return r.Put(bytes.Clone(k), bytes.Clone(v))
	}, func(path []string) error {
		if len(path) == 1 {
			return nil
		}
		return r.ResumePath(path[:len(path)-1])
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
}
