package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

func TestLayout(t *testing.T) {
	st := open(t, Options{})
	p := prefix(t)
	tx := begin(t, st, true)
	users, err := tx.CreateTable("users")
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Put([]byte("alice"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := users.Put([]byte("b\x00/\xff"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CreateTable("empty"); err != nil {
		t.Fatal(err)
	}
	meta, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.Put([]byte("data_version"), []byte("5.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := raw(t, client(t, cluster), p+"/")
	for k := range got {
		if strings.HasPrefix(k, p+"/lock/") {
			delete(got, k)
		}
	}
	want := map[string]string{
		p + "/current":                     "1",
		p + "/gen/1":                       "",
		p + "/g/1/m/users":                 "",
		p + "/g/1/m/empty":                 "",
		p + "/g/1/m/_hookreg":              "",
		p + "/g/1/t/users/alice":           "1",
		p + "/g/1/t/users/b\x00/\xff":      "2",
		p + "/g/1/t/_hookreg/data_version": "5.0.0",
	}
	if !maps.Equal(got, want) {
		t.Errorf("keys in etcd:\n%q\nwant\n%q", got, want)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	status, err := st.Status()
	if err != nil {
		t.Fatal(err)
	}
	if status.Generation != 1 || status.Tables != 3 || status.Members != 3 || status.Revision == 0 || len(status.Alarms) != 0 {
		t.Errorf("status: %+v", status)
	}
}

func TestNameEncoding(t *testing.T) {
	names := []string{"a", "a.b", "a-b", "a/b", "a%2Fb", "a%", "_config", "\x00", "\xff", "a b", "ä"}
	seen := map[string]string{}
	lay := layout{root: "/p"}
	for _, n := range names {
		enc := encodeName(n)
		if strings.Contains(enc, "/") {
			t.Errorf("encodeName(%q) = %q contains /", n, enc)
		}
		dec, err := decodeName(enc)
		if err != nil || dec != n {
			t.Errorf("decodeName(encodeName(%q)) = %q, %v", n, dec, err)
		}
		if o, ok := seen[enc]; ok {
			t.Errorf("%q and %q both encode to %q", n, o, enc)
		}
		seen[enc] = n
	}
	for _, a := range names {
		for _, b := range names {
			if a != b && strings.HasPrefix(lay.records(1, []string{a}), lay.records(1, []string{b})) {
				t.Errorf("the records of %q fall in the range of %q", a, b)
			}
		}
	}
	for _, bad := range []string{"%2f", "%zz", "a/b"} {
		if _, err := decodeName(bad); err == nil {
			t.Errorf("decodeName(%q) succeeded", bad)
		}
	}
}

func TestOpenMissingAndReadOnly(t *testing.T) {
	_, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening a missing store: %v, want fs.ErrNotExist", err)
	}
	st := open(t, Options{})
	storetest.Put(t, st, "t", "k", "v")
	ro, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Begin(true); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Begin(true) on a read-only store: %v", err)
	}
	if got := storetest.Records(t, ro, "t"); got["k"] != "v" {
		t.Errorf("read-only store reads %q", got)
	}
}

func TestSnapshotIsPinned(t *testing.T) {
	st := open(t, Options{PageSize: 3})
	var kv []string
	for i := range 20 {
		kv = append(kv, fmt.Sprintf("k%02d", i), "old")
	}
	storetest.Put(t, st, "t", kv...)
	tx := begin(t, st, false)
	cli := client(t, cluster)
	rec := prefix(t) + "/g/1/t/t/"
	// Product writes after the snapshot: a change, a delete, a new key.
	for _, op := range []clientv3.Op{
		clientv3.OpPut(rec+"k05", "new"),
		clientv3.OpDelete(rec + "k06"),
		clientv3.OpPut(rec+"k055", "new"),
	} {
		if _, err := cli.Do(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := tb.Scan(nil, func(k, v []byte) error {
		if string(v) != "old" || string(k) != fmt.Sprintf("k%02d", n) {
			t.Errorf("record %d: %q=%q", n, k, v)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Errorf("scanned %d records, want 20", n)
	}
	if v, err := tb.Get([]byte("k06")); err != nil || string(v) != "old" {
		t.Errorf("Get at the snapshot: %q, %v", v, err)
	}
	if got := storetest.Records(t, st, "t"); got["k05"] != "new" || got["k055"] != "new" || len(got) != 20 {
		t.Errorf("a new transaction sees %q", got)
	}
}

// TestMatchesBolt runs the same random transactions on a bbolt store and on
// the etcd store and compares every answer: gets, scans that modify the
// scanned table, table creation and drops, commits and rollbacks.
//
// It runs twice: reading ranges as streams, and page by page as on a
// cluster without RangeStream.
func TestMatchesBolt(t *testing.T) {
	t.Run("stream", matchesBolt)
	t.Run("paged", func(t *testing.T) {
		pagedReads = true
		defer func() { pagedReads = false }()
		matchesBolt(t)
	})
}

func matchesBolt(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e := open(t, Options{PageSize: 4})
	rng := rand.New(rand.NewPCG(1, 2))
	tables := []string{"a", "b", store.MetaTable}
	key := func() []byte { return []byte{byte('a' + rng.IntN(12))} }
	for round := range rounds {
		bt, et := begin(t, b, true), begin(t, e, true)
		// Rolled back on failure: bbolt's Close waits for a writer.
		defer bt.Rollback()
		defer et.Rollback()
		both := func(what string, f func(tx store.Tx) string) {
			t.Helper()
			if bs, es := f(bt), f(et); bs != es {
				t.Fatalf("round %d, %s: bolt %q, etcd %q", round, what, bs, es)
			}
		}
		writes := 0
		for range 1 + rng.IntN(12) {
			name := tables[rng.IntN(len(tables))]
			k, v := key(), fmt.Appendf(nil, "v%d", rng.IntN(1000))
			switch op := rng.IntN(10); {
			case op < 3 && writes < 80:
				writes++
				both(fmt.Sprintf("put %s %s", name, k), func(tx store.Tx) string {
					tb, err := tx.CreateTable(name)
					if err != nil {
						return err.Error()
					}
					return fmt.Sprint(tb.Put(k, v))
				})
			case op < 4 && writes < 80:
				writes++
				both(fmt.Sprintf("delete %s %s", name, k), func(tx store.Tx) string {
					tb, err := tx.Table(name)
					if err != nil {
						return fmt.Sprint(errors.Is(err, hook.ErrNoTable))
					}
					return fmt.Sprint(tb.Delete(k))
				})
			case op < 5:
				both(fmt.Sprintf("get %s %s", name, k), func(tx store.Tx) string {
					tb, err := tx.Table(name)
					if err != nil {
						return fmt.Sprint(errors.Is(err, hook.ErrNoTable))
					}
					v, err := tb.Get(k)
					return fmt.Sprint(string(v), errors.Is(err, hook.ErrNotFound))
				})
			case op < 6 && writes < 60:
				// A scan that rewrites, deletes and inserts as it goes.
				start := key()
				seed := rng.Uint64()
				both(fmt.Sprintf("scan %s from %s", name, start), func(tx store.Tx) string {
					r := rand.New(rand.NewPCG(seed, 0))
					tb, err := tx.Table(name)
					if err != nil {
						return fmt.Sprint(errors.Is(err, hook.ErrNoTable))
					}
					var out bytes.Buffer
					n := 0
					err = tb.Scan(start, func(k, v []byte) error {
						fmt.Fprintf(&out, "%s=%s ", k, v)
						if n++; n > 20 {
							return hook.ErrStop
						}
						switch r.IntN(4) {
						case 0:
							return tb.Put(k, append(slices.Clone(v), '+'))
						case 1:
							return tb.Delete([]byte{k[0] + 1})
						case 2:
							return tb.Put([]byte{k[0] + 2}, []byte("ins"))
						}
						return nil
					})
					return out.String() + fmt.Sprint(err)
				})
				writes += 20
			case op < 7:
				writes += 2
				both("drop "+name, func(tx store.Tx) string { return fmt.Sprint(tx.DropTable(name)) })
			default:
				both("tables", func(tx store.Tx) string {
					names, err := tx.Tables()
					return fmt.Sprint(names, err)
				})
			}
			// Room's bound holds: never less than the commit needs.
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
		// Both stores hold the same tables and records.
		both("dump", func(store.Tx) string { return "" })
		if bd, ed := dump(t, b), dump(t, e); bd != ed {
			t.Fatalf("round %d: bolt holds\n%s\netcd holds\n%s", round, bd, ed)
		}
	}
	if err := e.Check(); err != nil {
		t.Error(err)
	}
}

// dump renders every table and record of st.
func dump(t testing.TB, st store.Store) string {
	t.Helper()
	tx := begin(t, st, false)
	defer tx.Rollback()
	names, err := tx.Tables()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range names {
		tb, err := tx.Table(n)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:", n)
		if err := tb.Scan(nil, func(k, v []byte) error {
			fmt.Fprintf(&b, " %s=%s", k, v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestCheckFindsOrphanRecords(t *testing.T) {
	st := open(t, Options{})
	storetest.Put(t, st, "t", "k", "v")
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	cli := client(t, cluster)
	if _, err := cli.Put(context.Background(), prefix(t)+"/g/1/t/ghost/k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("Check with a record outside any table: %v", err)
	}
}

func TestCompactedSnapshot(t *testing.T) {
	st := open(t, Options{PageSize: 2})
	storetest.Put(t, st, "t", "a", "1", "b", "2", "c", "3", "d", "4")
	tx := begin(t, st, false)
	cli := client(t, cluster)
	resp, err := cli.Put(context.Background(), prefix(t)+"/g/1/t/t/a", "new")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	err = tb.Scan(nil, func(k, v []byte) error { return nil })
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("scanning a compacted snapshot: %v, want a compaction error wrapping ErrConflict", err)
	}
}

func TestParseURL(t *testing.T) {
	eps, p, err := ParseURL("etcd://10.0.0.1:2379,10.0.0.2:2379/broker/")
	if err != nil || !slices.Equal(eps, []string{"10.0.0.1:2379", "10.0.0.2:2379"}) || p != "/broker" {
		t.Errorf("ParseURL: %q, %q, %v", eps, p, err)
	}
	for _, bad := range []string{
		"http://h:2379/p",          // another scheme
		"etcd://h:2379",            // no prefix
		"etcd://h:2379/",           // no prefix
		"etcd://u:secret@h:2379/p", // credentials in the URL
		"etcd://h:2379,,h2:2379/p", // an empty endpoint
		"etcd://h:2379/p?x=1",      // a query
		"etcd://u:secret@h:x/p",    // a bad port after credentials
		"http://u:secret@h:2379/p", // credentials and another scheme
	} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) repeats the password: %v", bad, err)
		}
	}
}

// TestLockLostIsTheStores: the cluster store's lost lock is the store
// package's, which the upgrade engine names without importing etcd.
func TestLockLostIsTheStores(t *testing.T) {
	if !errors.Is(ErrLockLost, store.ErrLockLost) || ErrLockLost.Error() != "the store's lock was lost (its lease expired); nothing was written" {
		t.Errorf("ErrLockLost = %v", ErrLockLost)
	}
}
