package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/store"
)

// TestRestoreSmallLimits restores through batches of at most 8 operations
// and 4 KiB: every record arrives, empty tables survive, one generation is
// left, and a record no batch can carry is refused by CheckRecord and Put.
func TestRestoreSmallLimits(t *testing.T) {
	st := open(t, Options{Limits: Limits{MaxTxnOps: 8, MaxRequestBytes: 4096}})
	put(t, st, "old", "k", "v")
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
	if got := records(t, st, "a/b"); fmt.Sprint(got) != fmt.Sprint(want) {
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
	put(t, st, "t", "k", "old")
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
	if got := records(t, st, "t"); got["k"] != "old" || len(got) != 1 {
		t.Errorf("after the failed restore: %q", got)
	}
	for k := range raw(t, cli, p) {
		if strings.Contains(k, "/g/2/") || strings.HasSuffix(k, "/gen/2") {
			t.Errorf("key %q of the failed restore left", k)
		}
	}
}
