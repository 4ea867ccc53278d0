package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/migrator/etcdstore"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/store/etcd"
)

func TestMain(m *testing.M) {
	restoreChildMain() // the restore that TestRestoreEtcdCrash kills
	code := m.Run()
	etcdtest.CloseShared()
	os.Exit(code)
}

// cluster is the process's shared etcd cluster (etcdtest.Shared); each
// test works under its own prefix (etcdtest.Prefix).
func cluster(t testing.TB) *etcdtest.Cluster { return etcdtest.Shared(t) }

// openEtcd opens the store at prefix writable, creating it.
func openEtcd(t testing.TB, endpoints []string, prefix string) *etcd.Store {
	t.Helper()
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: endpoints, Prefix: prefix, Create: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// logicalDump is every table of st and every record, in order.
func logicalDump(t testing.TB, st store.Store) string {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var b strings.Builder
	if err := example.Dump(tx, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// boltArchive builds a bbolt store of the example product (release 5.0.1)
// plus what fill writes, backs it up into dir and returns the archive's
// path and the store's logical dump.
func boltArchive(t testing.TB, dir, name string, fill func(tx store.Tx) error) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name+".db")
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := example.Build(context.Background(), st, generated.Registry, "5.0.1", example.Small); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		storetest.Update(t, st, fill)
	}
	out := filepath.Join(dir, name+".hrb")
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, out, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	return out, logicalDump(t, st)
}

// puts creates table and writes the records kv (key, value, key, value...).
func puts(tx store.Tx, table string, kv ...[]byte) error {
	tb, err := tx.CreateTable(table)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := tb.Put(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// oddTables writes tables of odd names, empty tables, empty values,
// binary keys and a configuration file.
func oddTables(tx store.Tx) error {
	for _, name := range []string{"a/b", "%41", "\x00", "\xff", "..", strings.Repeat("n", 255), "empty table", "ä ö"} {
		if _, err := tx.CreateTable(name); err != nil {
			return err
		}
	}
	if err := puts(tx, "a/b", []byte("k"), []byte{}, []byte("\x00\xff"), []byte("binary"), []byte("a/b/c"), []byte("slash")); err != nil {
		return err
	}
	if err := puts(tx, "ä ö", []byte("x"), bytes.Repeat([]byte("v"), 100_000)); err != nil {
		return err
	}
	return puts(tx, store.ConfigTable, []byte("broker/broker.yaml"), store.EncodeConfigFile(0o640, []byte("listen: :8080\n")))
}

// rawKeys returns every key under prefix and its value.
func rawKeys(t testing.TB, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), prefix+"/lock/") {
			m[string(kv.Key)] = string(kv.Value)
		}
	}
	return m
}

// generationsLeft returns the generations that have a marker or a key
// under the prefix, and the current one.
func generationsLeft(t testing.TB, cli *clientv3.Client, prefix string) (gens map[string]bool, current string) {
	t.Helper()
	gens = map[string]bool{}
	for k, v := range rawKeys(t, cli, prefix) {
		rest := strings.TrimPrefix(k, prefix+"/")
		switch {
		case rest == "current":
			current = v
		case strings.HasPrefix(rest, "gen/"):
			gens[strings.TrimPrefix(rest, "gen/")] = true
		case strings.HasPrefix(rest, "g/"):
			g, _, _ := strings.Cut(strings.TrimPrefix(rest, "g/"), "/")
			gens[g] = true
		}
	}
	return gens, current
}

// TestRestoreEtcdRoundTrip backs up a bbolt store with odd table names,
// empty tables, empty values and a configuration file, restores it into
// an etcd store holding other data, twice, and wants the bbolt store's
// logical dump back, one generation left, and a store that checks clean.
func TestRestoreEtcdRoundTrip(t *testing.T) {
	c := cluster(t)
	cli := c.Client(t)
	dir := t.TempDir()
	arc, want := boltArchive(t, dir, "odd", oddTables)
	prefix := etcdtest.Prefix(t)
	st := openEtcd(t, c.Endpoints, prefix)
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := puts(tx, "old", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(arc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.VerifyEtcd(f, arc, etcdstore.Target(st)); err != nil {
		t.Errorf("VerifyEtcd of an archive the store can hold: %v", err)
	}
	f.Close()
	for round := range 2 {
		m, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if m.Product != generated.Registry.Product {
			t.Errorf("manifest of product %q", m.Product)
		}
		if got := logicalDump(t, st); got != want {
			t.Fatalf("round %d: the etcd store dumps\n%s\nwant\n%s", round, got, want)
		}
		if err := st.Check(); err != nil {
			t.Fatal(err)
		}
		gens, cur := generationsLeft(t, cli, prefix)
		if wantGen := fmt.Sprint(round + 2); cur != wantGen || len(gens) != 1 || !gens[cur] {
			t.Fatalf("round %d: current %s, generations %v; want %s alone", round, cur, gens, wantGen)
		}
	}
	// The restored data backs up to an archive that restores into bbolt
	// with the same dump.
	back := filepath.Join(dir, "back.hrb")
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, back, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored.db")
	if _, err := backup.Restore(t.Context(), generated.Registry, back, restored, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	rst, err := bolt.Open(restored, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	if got := logicalDump(t, rst); got != want {
		t.Errorf("etcd → archive → bbolt dumps\n%s\nwant\n%s", got, want)
	}
}

// walkDump renders every table at every depth of st by a walk: path,
// sequence, records.
func walkDump(t testing.TB, st store.Store) string {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var b strings.Builder
	err = store.WalkTree(tx, func(path []string, seq uint64) error {
		fmt.Fprintf(&b, "table %q sequence %d\n", path, seq)
		return nil
	}, func(k, v []byte) error {
		fmt.Fprintf(&b, "%q %q\n", k, v)
		return nil
	}, func(path []string) error {
		fmt.Fprintf(&b, "end %q\n", path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRestoreEtcdNested restores archives of bbolt stores with nested
// buckets at several depths, odd names and sequence numbers into an etcd
// store, wants the same walk, then backs the etcd store up (spooled: its
// reads are remote) and restores that into bbolt, and wants the same walk
// again.
func TestRestoreEtcdNested(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	odd := oddStore(t, dir) // nested buckets and sequence numbers
	for _, src := range []string{odd, strings.TrimSuffix(nestedArchive(t, dir), ".hrb") + ".db"} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			bst, err := bolt.Open(src, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			want := walkDump(t, bst)
			arc := filepath.Join(t.TempDir(), "nested.hrb")
			_, err = backup.WriteFile(context.Background(), bst, generated.Registry, arc, backup.Options{})
			bst.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(want, `sequence 1`) && src == odd {
				t.Fatalf("the store has no sequence:\n%s", want)
			}
			est := openEtcd(t, c.Endpoints, etcdtest.Prefix(t))
			if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(est), backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := walkDump(t, est); got != want {
				t.Fatalf("the etcd store walks\n%s\nwant\n%s", got, want)
			}
			if err := est.Check(); err != nil {
				t.Fatal(err)
			}
			back := filepath.Join(t.TempDir(), "back.hrb")
			if _, err := backup.WriteFile(context.Background(), est, generated.Registry, back, backup.Options{}); err != nil {
				t.Fatal(err)
			}
			restored := filepath.Join(t.TempDir(), "restored.db")
			if _, err := backup.Restore(t.Context(), generated.Registry, back, restored, backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			rst, err := bolt.Open(restored, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer rst.Close()
			if got := walkDump(t, rst); got != want {
				t.Errorf("bbolt → etcd → archive → bbolt walks\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestRestoreEtcdRefused: archives that the cluster store cannot hold are
// refused before anything is written, with an error naming what is wrong.
func TestRestoreEtcdRefused(t *testing.T) {
	c := cluster(t)
	cli := c.Client(t)
	dir := t.TempDir()
	bigArc, _ := boltArchive(t, dir, "big", func(tx store.Tx) error {
		return puts(tx, "blobs", []byte("small"), []byte("1"), []byte("huge"), bytes.Repeat([]byte("x"), 1600<<10))
	})
	for _, tc := range []struct {
		name, arc string
		want      []string
	}{
		{"too large", bigArc, []string{`table "blobs", key "huge"`, "--max-request-bytes", "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			est := openEtcd(t, c.Endpoints, prefix)
			before := rawKeys(t, cli, prefix)
			_, err := backup.RestoreEtcd(t.Context(), generated.Registry, tc.arc, etcdstore.Target(est), backup.RestoreOptions{})
			if err == nil {
				t.Fatal("restored")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := rawKeys(t, cli, prefix); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the refused restore wrote: %v, was %v", after, before)
			}
			// verify refuses it too, through a read-only store.
			ro, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			f, err := os.Open(tc.arc)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = backup.VerifyEtcd(f, tc.arc, etcdstore.Target(ro))
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("VerifyEtcd: %v, want an error that says %q", err, w)
				}
			}
		})
	}
}

// nestedArchive backs up the example product's store with a nested table
// "top/inner" (no sequence numbers) added with bbolt.
func nestedArchive(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "nested-only.db")
	db := exampleBoltDB(t, path)
	err := db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket([]byte("top"))
		if err == nil {
			_, err = top.CreateBucket([]byte("inner"))
		}
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := filepath.Join(dir, "nested-only.hrb")
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, out, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestoreEtcdQuota: a restore that would not fit under the cluster's
// quota is refused before anything is written, saying what it needs and
// the quota.
func TestRestoreEtcdQuota(t *testing.T) {
	const quota = 8 << 20
	small, err := etcdtest.Start(etcdtest.Config{Members: 1, QuotaBackendBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Close) // after the store's and the client's cleanups, which reach it
	cli := small.Client(t)
	dir := t.TempDir()
	arc, _ := boltArchive(t, dir, "large", func(tx store.Tx) error {
		tb, err := tx.CreateTable("blobs")
		if err != nil {
			return err
		}
		for i := range 80 {
			if err := tb.Put(fmt.Appendf(nil, "b%03d", i), bytes.Repeat([]byte{byte(i)}, 100<<10)); err != nil {
				return err
			}
		}
		return nil
	})
	prefix := etcdtest.Prefix(t)
	st := openEtcd(t, small.Endpoints, prefix)
	before := rawKeys(t, cli, prefix)
	_, err = backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{})
	if err == nil {
		t.Fatal("a restore larger than the quota was not refused")
	}
	for _, w := range []string{"quota", fmt.Sprintf("%d-byte quota", quota), "needs about"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if after := rawKeys(t, cli, prefix); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused restore wrote: %v", after)
	}
	// A small archive fits.
	fits, want := boltArchive(t, dir, "fits", nil)
	if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, fits, etcdstore.Target(st), backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := logicalDump(t, st); got != want {
		t.Errorf("after the restore that fits: %s", got)
	}
}

// TestRestoreEtcdProduct restores while a product watches the store: the
// product moves to the new generation, reads the restored data there, and
// its writes land in the current generation.
func TestRestoreEtcdProduct(t *testing.T) {
	c := cluster(t)
	cli := c.Client(t)
	dir := t.TempDir()
	arc, want := boltArchive(t, dir, "new", func(tx store.Tx) error {
		return puts(tx, "sessions", []byte("s1"), []byte("restored"))
	})
	prefix := etcdtest.Prefix(t)
	st := openEtcd(t, c.Endpoints, prefix)
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := puts(tx, "sessions", []byte("s1"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	switched := make(chan int64, 4)
	p, err := etcd.OpenProduct(t.Context(), cli, prefix, func(g int64) { switched <- g })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Put(t.Context(), "sessions", []byte("s2"), []byte("before")); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-switched:
		if g != 2 {
			t.Fatalf("the product switched to generation %d, want 2", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the product did not notice the restore")
	}
	v, err := p.Get(t.Context(), "sessions", []byte("s1"))
	if err != nil || string(v) != "restored" {
		t.Fatalf("the product reads %q, %v after the restore", v, err)
	}
	if got := logicalDump(t, st); got != want {
		t.Fatalf("after the restore: %s", got)
	}
	if err := p.Put(t.Context(), "sessions", []byte("s3"), []byte("after")); err != nil {
		t.Fatal(err)
	}
	tx, err = st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tb, err := tx.Table("sessions")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tb.Get([]byte("s3")); err != nil || string(v) != "after" {
		t.Errorf("the product's write after the restore: %q, %v", v, err)
	}
	if _, err := tb.Get([]byte("s2")); err == nil {
		t.Error("the product's write before the restore survived it")
	}
	if gens, cur := generationsLeft(t, cli, prefix); cur != "2" || len(gens) != 1 {
		t.Errorf("generations %v, current %s", gens, cur)
	}
}

// TestRestoreEtcdCanceled: a canceled restore leaves the old data current
// and nothing else.
func TestRestoreEtcdCanceled(t *testing.T) {
	c := cluster(t)
	cli := c.Client(t)
	arc, _ := boltArchive(t, t.TempDir(), "new", nil)
	prefix := etcdtest.Prefix(t)
	st := openEtcd(t, c.Endpoints, prefix)
	before := rawKeys(t, cli, prefix)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := backup.RestoreEtcd(ctx, generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{})
	if !errors.Is(err, backup.ErrInterrupted) {
		t.Fatalf("canceled restore: %v, want ErrInterrupted", err)
	}
	if after := rawKeys(t, cli, prefix); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the canceled restore left %v", after)
	}
}

// exampleBoltDB builds the example product's store of release 5.0.1 at
// path and opens it with bbolt itself, as a product (or a test adding what
// the store API would not write) does; the caller closes it.
func exampleBoltDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := example.Build(context.Background(), st, generated.Registry, "5.0.1", example.Small); err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// failingFinish is a cluster store whose restores fail at Finish and
// cannot remove their generation at Abort, as with a cluster that stopped
// answering between the two.
type failingFinish struct{ backup.ClusterStore }

func (s failingFinish) BeginRestore() (backup.ClusterRestore, error) {
	r, err := s.ClusterStore.BeginRestore()
	return failingRestore{r}, err
}

type failingRestore struct{ backup.ClusterRestore }

func (r failingRestore) Finish() error { return errors.New("no answer at Finish") }

func (r failingRestore) Abort() error {
	r.ClusterRestore.Abort()
	return errors.New("the unfinished generation stays: no answer at Abort")
}

// TestRestoreEtcdSaysWhatAbortLeft: a restore that fails says what its
// Abort could not do (the generation it leaves to the next writable
// open) rather than drop it.
func TestRestoreEtcdSaysWhatAbortLeft(t *testing.T) {
	c := cluster(t)
	arc, _ := boltArchive(t, t.TempDir(), "a", nil)
	st := openEtcd(t, c.Endpoints, etcdtest.Prefix(t))
	_, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, failingFinish{etcdstore.Target(st)}, backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "no answer at Finish") || !strings.Contains(err.Error(), "the unfinished generation stays: no answer at Abort") {
		t.Errorf("RestoreEtcd = %v, want Finish's error and Abort's", err)
	}
}
