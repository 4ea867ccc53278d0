package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

// TestRestoreSmallLimits restores through batches of at most 8 operations
// and 4 KiB: every record arrives, empty tables survive, one generation is
// left, and a record no batch can carry is refused by CheckRecord and Put.
func TestRestoreSmallLimits(t *testing.T) {
	st := open(t, Options{Limits: Limits{MaxTxnOps: 8, MaxRequestBytes: 4096}})
	storetest.Put(t, st, "old", "k", "v")
	r, err := st.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	want := map[string]string{}
	for _, name := range []string{"a/b", "empty", store.MetaTable} {
		if err := r.Table(name); err != nil {
			t.Fatal(err)
		}
		if name == "empty" {
			continue
		}
		for i := range 50 {
			k, v := fmt.Sprintf("k%03d", i), strings.Repeat("v", i*10)
			if name == "a/b" {
				want[k] = v
			}
			if err := r.Put([]byte(k), []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	huge := bytes.Repeat([]byte("x"), 4096)
	if err := st.CheckRecord("a/b", []byte("huge"), huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckRecord of a record larger than a request: %v", err)
	}
	if err := r.Put([]byte("huge"), huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Put of a record larger than a request: %v", err)
	}
	if err := r.Table("a/b"); err == nil {
		t.Error("a table restored twice")
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Records(t, st, "a/b"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored %d records, want %d", len(got), len(want))
	}
	tx := begin(t, st, false)
	names, err := tx.Tables()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != fmt.Sprint([]string{store.MetaTable, "a/b", "empty"}) {
		t.Errorf("tables %q", names)
	}
	for k := range raw(t, client(t, cluster), prefix(t)+"/g") {
		if !strings.HasPrefix(k, prefix(t)+"/g/2/") && !strings.HasPrefix(k, prefix(t)+"/gen/2") {
			t.Errorf("key %q of another generation left", k)
		}
	}
}

// TestRestoreVerifyFails writes a stray record into the new generation
// while it is being written: the verification catches it, the old data
// stays current and the new generation is removed.
func TestRestoreVerifyFails(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "t", "k", "old")
	r, err := st.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Table("t"); err != nil {
		t.Fatal(err)
	}
	if err := r.Put([]byte("k"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	p := prefix(t)
	if _, err := cli.Put(context.Background(), fmt.Sprintf("%s/g/%d/t/t/stray", p, r.Generation()), "x"); err != nil {
		t.Fatal(err)
	}
	err = r.Finish()
	if err == nil || !strings.Contains(err.Error(), "verifying generation 2") {
		t.Fatalf("Finish with a stray record: %v", err)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Records(t, st, "t"); got["k"] != "old" || len(got) != 1 {
		t.Errorf("after the failed restore: %q", got)
	}
	for k := range raw(t, cli, p) {
		if strings.Contains(k, "/g/2/") || strings.HasSuffix(k, "/gen/2") {
			t.Errorf("key %q of the failed restore left", k)
		}
	}
}

// leaveGeneration writes n records of 200 B into table of a new generation
// through a restore of st that never finishes, as a restore killed before
// its switch leaves it, and closes st.
func leaveGeneration(t testing.TB, st *Store, table string, n int) {
	t.Helper()
	r, err := st.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Table(table); err != nil {
		t.Fatal(err)
	}
	v := bytes.Repeat([]byte("v"), 200)
	for i := range n {
		if err := r.Put(fmt.Appendf(nil, "%08d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.sender.send(r.batch); err != nil {
		t.Fatal(err)
	}
	if err := r.sender.close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRemovesLeftover: a writable Open removes the generation a killed
// restore left, in fenced DeleteRanges of a page of keys each, its marker
// last, and leaves the current generation whole; a read-only Open
// removes nothing.
func TestOpenRemovesLeftover(t *testing.T) {
	const pageSize, n = 10, 345
	cli := client(t, cluster)
	p := prefix(t)
	st := open(t, Options{PageSize: pageSize})
	storetest.Put(t, st, "cur", "a", "1", "b", "2")
	leaveGeneration(t, st, "left", n)
	ro, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: p, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if got := len(raw(t, cli, p+"/g/2/")); got != n+1 {
		t.Fatalf("the leftover generation has %d keys, want %d", got, n+1)
	}
	var deletes int
	failpoint.Hook = func(name string) error {
		if name == "etcd.restore.delete" {
			deletes++
		}
		return nil
	}
	defer func() { failpoint.Hook = nil }()
	st2, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: p, PageSize: pageSize, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if left := raw(t, cli, p+"/g/2/"); len(left) != 0 {
		t.Errorf("%d keys of the leftover generation remain", len(left))
	}
	if left := raw(t, cli, p+"/gen/2"); len(left) != 0 {
		t.Errorf("the leftover generation's marker remains")
	}
	if want := (n+1+pageSize-1)/pageSize + 1; deletes != want {
		t.Errorf("%d delete txns for %d keys, want %d of up to %d keys and one for the marker", deletes, n+1, want, pageSize)
	}
	if got := storetest.Records(t, st2, "cur"); fmt.Sprint(got) != "map[a:1 b:2]" {
		t.Errorf("the current generation after the removal: %v", got)
	}
}
