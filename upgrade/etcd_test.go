package upgrade_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// cluster is the process's shared etcd cluster (etcdtest.Shared, etcd's
// default limits), once a test has asked for a store on it; each test
// works under its own prefix.
var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	etcdtest.MemberMain() // a member process of TestEtcdFollowerKilled
	code := m.Run()
	etcdtest.CloseShared()
	os.Exit(code)
}

// openEtcd opens a new writable store on the shared cluster.
func openEtcd(t testing.TB) (*etcd.Store, string) {
	t.Helper()
	cluster = etcdtest.Shared(t)
	prefix := etcdtest.Prefix(t)
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: cluster.Endpoints, Prefix: prefix, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, prefix
}

// etcdClient is a plain client of the cluster, as a product has.
func etcdClient(t testing.TB) *clientv3.Client { return cluster.Client(t) }

// product opens the product's own access to the store at prefix.
func product(t testing.TB, prefix string) *etcd.Product {
	t.Helper()
	p, err := etcd.OpenProduct(context.Background(), etcdClient(t), prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// copyStore copies every table of src into the empty store dst, in
// transactions as large as dst's Room allows.
func copyStore(t *testing.T, src, dst store.Store) {
	t.Helper()
	in, err := src.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Rollback()
	names, err := in.Tables()
	if err != nil {
		t.Fatal(err)
	}
	out, err := dst.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { out.Rollback() }()
	for _, name := range names {
		tb, err := in.Table(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := out.CreateTable(name); err != nil {
			t.Fatal(err)
		}
		err = tb.Scan(nil, func(k, v []byte) error {
			if w, b := out.(store.Roomer).Room(); w < 2 || b < len(k)+len(v) {
				if err := out.Commit(); err != nil {
					return err
				}
				if out, err = dst.Begin(true); err != nil {
					return err
				}
			}
			to, err := out.CreateTable(name)
			if err != nil {
				return err
			}
			return to.Put(k, v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
}

// exampleOnEtcd returns a store on the cluster holding the example data of
// release, built on bbolt and copied.
func exampleOnEtcd(t *testing.T, release string, size example.Size) (*etcd.Store, string) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "example.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := example.Build(context.Background(), b, generated.Registry, release, size); err != nil {
		t.Fatal(err)
	}
	st, prefix := openEtcd(t)
	copyStore(t, b, st)
	return st, prefix
}

// TestEtcdHookTooLarge: hook 99 of the example rewrites every user in one
// transaction; on a cluster at default limits it is refused, naming the
// hook, its writes and the ways out, before anything is written.
func TestEtcdHookTooLarge(t *testing.T) {
	size := example.Size{Users: 300, Rules: 10}
	st, _ := exampleOnEtcd(t, "5.0.0", size)
	before := dump(t, st)
	reg, err := example.Registry(generated.Registry, "5.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = upgrade.Run(context.Background(), st, reg, upgrade.Options{Online: true})
	var le *upgrade.LimitError
	if !errors.As(err, &le) || le.Num != 99 || !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("online upgrade of %d users: %v, want an *upgrade.LimitError of hook 99", size.Users, err)
	}
	for _, want := range []string{"hook 99 (libbar.UpgradeLibBar)", "nothing of it was written", " writes, ", "--max-txn-ops", "--max-request-bytes", "migrator upgrade --offline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if after := dump(t, st); after != before {
		t.Errorf("the refused hook wrote:\nbefore: %.300s\nafter:  %.300s", before, after)
	}
}

// TestEtcdEachBatch: hook 100 of the example asks EachBatch for its
// default batch of 10,000 records; on a cluster at default limits (126
// writes per transaction) it checkpoints as often as the limits require and
// the upgrade completes with the data of the release.
func TestEtcdEachBatch(t *testing.T) {
	size := example.Size{Users: 50, Rules: 3000}
	st, _ := exampleOnEtcd(t, "5.0.1", size)
	var log bytes.Buffer
	res, err := upgrade.Run(context.Background(), st, generated.Registry, upgrade.Options{Log: &log})
	if err != nil {
		t.Fatalf("offline upgrade of %d rules on etcd: %v", size.Rules, err)
	}
	if res.To != "5.1.0" || len(res.Applied) != 1 {
		t.Fatalf("result %+v, want hook 100 applied, data version 5.1.0", res)
	}
	if n := strings.Count(log.String(), "checkpoint"); n < size.Rules/126 {
		t.Errorf("%d checkpoints for %d records, want at least %d", n, size.Rules, size.Rules/126)
	}
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := example.Verify(tx, "5.1.0", size); err != nil {
		t.Error(err)
	}
}

// batchHook is an online hook that copies table "src" to "dst" with
// EachBatch at batch size 10,000, writing per record the copy and as many
// extra records as extra gives.
func batchHook(num int, extra func(key []byte) int) hook.Hook {
	return hook.Hook{Num: num, IntroducedIn: "2.0.0", AllowOnline: true, Name: "CopySrc", Digest: "h1:copy",
		Func: func(ctx context.Context, tx hook.Tx) error {
			dst, err := tx.CreateTable("dst")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "copy", "src", 10000, func(k, v []byte) error {
				if err := dst.Put(k, v); err != nil {
					return err
				}
				for i := range extra(k) {
					if err := dst.Put(fmt.Appendf(nil, "%s/%d", k, i), v); err != nil {
						return err
					}
				}
				return nil
			})
		}}
}

// fill writes n records into table "src" of st, the i-th with the value
// value(i), and the metadata of a 1.0.0 install.
func fill(t testing.TB, st store.Store, n int, value func(i int) []byte) {
	t.Helper()
	initAt(t, st, "1.0.0")
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { tx.Rollback() }()
	for i := range n {
		k, v := fmt.Appendf(nil, "%06d", i), value(i)
		if w, b := tx.(store.Roomer).Room(); w < 2 || b < len(k)+len(v) {
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if tx, err = st.Begin(true); err != nil {
				t.Fatal(err)
			}
		}
		src, err := tx.CreateTable("src")
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdEachBatchOnline: an online EachBatch hook asking for 10,000
// records per batch completes at default limits, records of several writes
// and large values included; a record whose writes cannot fit an empty
// transaction fails with the limit error, naming the hook.
func TestEtcdEachBatchOnline(t *testing.T) {
	st, _ := openEtcd(t)
	const n = 1500
	// Every third value is 40 kB, so that 126 writes exceed the 1.5 MiB
	// of a request; every tenth record needs four writes.
	value := func(i int) []byte {
		if i%3 == 0 {
			return bytes.Repeat([]byte{'a' + byte(i%26)}, 40000)
		}
		return fmt.Appendf(nil, "value %d", i)
	}
	fill(t, st, n, value)
	h := batchHook(1, func(k []byte) int {
		if k[len(k)-1] == '7' {
			return 3
		}
		return 0
	})
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true}); err != nil {
		t.Fatalf("online EachBatch of %d records: %v", n, err)
	}
	want := map[string][]byte{}
	for i := range n {
		k := fmt.Sprintf("%06d", i)
		want[k] = value(i)
		if i%10 == 7 {
			for j := range 3 {
				want[fmt.Sprintf("%s/%d", k, j)] = value(i)
			}
		}
	}
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	dst, err := tx.Table("dst")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	if err := dst.Scan(nil, func(k, v []byte) error {
		if w, ok := want[string(k)]; !ok || !bytes.Equal(v, w) {
			return fmt.Errorf("record %q: a %d-byte value, want %d bytes (present %v)", k, len(v), len(w), ok)
		}
		count++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if count != len(want) {
		t.Errorf("%d records copied, want %d", count, len(want))
	}

	st2, _ := openEtcd(t)
	fill(t, st2, 10, func(int) []byte { return []byte("v") })
	huge := batchHook(1, func([]byte) int { return 200 })
	_, err = upgrade.Run(context.Background(), st2, registry("2.0.0", huge), upgrade.Options{Online: true})
	var le *upgrade.LimitError
	if !errors.As(err, &le) || le.Num != 1 || !strings.Contains(err.Error(), "hook 1 (CopySrc)") {
		t.Errorf("a record of 201 writes: %v, want the limit error of hook 1", err)
	}
}

// TestEtcdConflictReruns: a product writes and deletes keys that a running
// hook rewrites; the hook's commit conflicts, the hook runs again on the
// product's data, and the product's changes are never overwritten.
func TestEtcdConflictReruns(t *testing.T) {
	st, prefix := openEtcd(t)
	initAt(t, st, "1.0.0")
	put := func(kv ...string) {
		tx, err := st.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		tb, err := tx.CreateTable("t")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(kv); i += 2 {
			if err := tb.Put([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "a", "b", "b", "c", "c", "d", "d")
	p := product(t, prefix)
	runs := 0
	// The hook appends "!" to every value of "t"; during its first run,
	// after it read and rewrote everything, the product changes b and
	// deletes c.
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Bang", Digest: "h1:bang",
		Func: func(ctx context.Context, tx hook.Tx) error {
			runs++
			tb, err := tx.Table("t")
			if err != nil {
				return err
			}
			var keys, values [][]byte
			if err := tb.Scan(nil, func(k, v []byte) error {
				keys, values = append(keys, bytes.Clone(k)), append(values, append(bytes.Clone(v), '!'))
				return nil
			}); err != nil {
				return err
			}
			for i, k := range keys {
				if err := tb.Put(k, values[i]); err != nil {
					return err
				}
			}
			if runs == 1 {
				if err := p.Put(ctx, "t", []byte("b"), []byte("product")); err != nil {
					return err
				}
				if err := p.Delete(ctx, "t", []byte("c")); err != nil {
					return err
				}
			}
			return nil
		}}
	var log bytes.Buffer
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true, Log: &log}); err != nil {
		t.Fatalf("upgrade racing a product: %v", err)
	}
	if runs != 2 {
		t.Errorf("the hook ran %d times, want 2 (once more after the conflict)", runs)
	}
	if !strings.Contains(log.String(), "conflicted") {
		t.Errorf("the log does not tell of the conflict:\n%s", log.String())
	}
	if got, want := dump(t, st), "t: a=a! b=product! d=d!"; !strings.Contains(got, want+"\n") {
		t.Errorf("after the upgrade:\n%s\nwant the table %q", got, want)
	}
	if m := meta(t, st); m.LastUpgradeHook == nil || *m.LastUpgradeHook != 1 || len(m.Applied) != 1 {
		t.Errorf("metadata %+v, want hook 1 applied once", m)
	}
}

// TestEtcdConflictGivesUp: a product that writes a key of the hook during
// every run makes the upgrade give up after a bounded number of runs, with
// an error naming the hook and the conflicts, and nothing written.
func TestEtcdConflictGivesUp(t *testing.T) {
	st, prefix := openEtcd(t)
	initAt(t, st, "1.0.0")
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CreateTable("t"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	p := product(t, prefix)
	runs := 0
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Busy", Digest: "h1:busy",
		Func: func(ctx context.Context, tx hook.Tx) error {
			runs++
			tb, err := tx.Table("t")
			if err != nil {
				return err
			}
			if err := tb.Put([]byte("k"), []byte("hook")); err != nil {
				return err
			}
			return p.Put(ctx, "t", []byte("k"), fmt.Appendf(nil, "product %d", runs))
		}}
	_, err = upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true})
	var ce *upgrade.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("hook 1 (Busy): gave up after %d conflicts", runs)) {
		t.Fatalf("a product writing during every run: %v, want a ConflictError naming hook 1", err)
	}
	if runs < 2 || runs > 20 {
		t.Errorf("the hook ran %d times, want a few", runs)
	}
	if got, want := dump(t, st), fmt.Sprintf("t: k=product %d\n", runs); !strings.Contains(got, want) {
		t.Errorf("after giving up:\n%s\nwant %q", got, want)
	}
	if m := meta(t, st); m.LastUpgradeHook != nil && *m.LastUpgradeHook != 0 || len(m.Applied) != 0 {
		t.Errorf("metadata %+v, want no hook applied", m)
	}
}

// TestHookTxRoom: the hook's transaction is a hook.Roomer exactly when the
// store bounds transactions: on etcd, not on bbolt.
func TestHookTxRoom(t *testing.T) {
	st, _ := openEtcd(t)
	for _, tc := range []struct {
		name string
		st   store.Store
		want bool
	}{{"bolt", newStore(t), false}, {"etcd", st, true}} {
		initAt(t, tc.st, "1.0.0")
		var writes int
		var ok bool
		h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", Name: "Room", Digest: "h1:room", Func: func(ctx context.Context, tx hook.Tx) error {
			var r hook.Roomer
			if r, ok = tx.(hook.Roomer); ok {
				writes, _ = r.Room()
			}
			return nil
		}}
		if _, err := upgrade.Run(context.Background(), tc.st, registry("2.0.0", h), upgrade.Options{}); err != nil {
			t.Fatal(err)
		}
		if ok != tc.want || ok && (writes < 100 || writes > 126) {
			t.Errorf("%s: the hook's tx is a hook.Roomer: %v (room for %d writes), want %v", tc.name, ok, writes, tc.want)
		}
	}
}

// TestEtcdConflictAtCheckpoint: a product write to a key that an EachBatch
// hook writes makes the batch's checkpoint conflict; the hook runs again
// from its last committed checkpoint (not from the start), reads the
// product's record and keeps it.
func TestEtcdConflictAtCheckpoint(t *testing.T) {
	st, prefix := openEtcd(t)
	const n = 600
	fill(t, st, n, func(i int) []byte { return fmt.Appendf(nil, "value %d", i) })
	p := product(t, prefix)
	calls := map[string]int{}
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "CopyIfAbsent", Digest: "h1:copy",
		Func: func(ctx context.Context, tx hook.Tx) error {
			dst, err := tx.CreateTable("dst")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "copy", "src", 10000, func(k, v []byte) error {
				calls[string(k)]++
				if string(k) == "000400" && calls[string(k)] == 1 {
					if err := p.Put(ctx, "dst", k, []byte("product")); err != nil {
						return err
					}
				}
				if _, err := dst.Get(k); err == nil || !errors.Is(err, hook.ErrNotFound) {
					return err
				}
				return dst.Put(k, v)
			})
		}}
	// The product needs the table to exist before the hook runs.
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CreateTable("dst"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true}); err != nil {
		t.Fatalf("upgrade racing a product: %v", err)
	}
	again := 0
	for i := range n {
		switch c := calls[fmt.Sprintf("%06d", i)]; {
		case c == 2:
			again++
		case c != 1:
			t.Fatalf("record %06d visited %d times", i, c)
		}
	}
	if calls["000400"] != 2 || again == 0 || again > 126 {
		t.Errorf("%d records visited again (000400: %d times), want the records since the last checkpoint before 000400", again, calls["000400"])
	}
	got := storetest.Records(t, st, "dst")
	if len(got) != n || got["000400"] != "product" || got["000401"] != "value 401" {
		t.Errorf("dst has %d records, 000400=%q 000401=%q; want %d, the product's 000400", len(got), got["000400"], got["000401"], n)
	}
}

// TestEtcdConflictsWithProgress: a product that writes a key of every
// batch of an online EachBatch hook once (twenty conflicts in all, more
// than the bound of conflicts in a row) does not make the upgrade give up:
// each run commits a batch before the next conflict, and the hook
// completes in one upgrade, every record rewritten once.
func TestEtcdConflictsWithProgress(t *testing.T) {
	st, prefix := openEtcd(t)
	initAt(t, st, "1.0.0")
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	src, err := tx.CreateTable("src")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := src.Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.CreateTable("dst"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	p := product(t, prefix)
	written := map[string]bool{}
	conflicts := 0
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Copy", Digest: "h1:copy",
		Func: func(ctx context.Context, tx hook.Tx) error {
			dst, err := tx.Table("dst")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "copy", "src", 1, func(k, v []byte) error {
				if !written[string(k)] {
					// The product writes the key the batch writes, once.
					written[string(k)] = true
					conflicts++
					if err := p.Put(ctx, "dst", k, []byte("product")); err != nil {
						return err
					}
				}
				return dst.Put(k, append(v, '!'))
			})
		}}
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true}); err != nil {
		t.Fatalf("after %d conflicts, each followed by a committed batch: %v", conflicts, err)
	}
	if conflicts != 20 {
		t.Errorf("%d conflicts, want one a record", conflicts)
	}
	got := dump(t, st)
	for i := range 20 {
		if want := fmt.Sprintf(" k%02d=v!", i); !strings.Contains(got, want) {
			t.Errorf("after the upgrade:\n%s\nwant %q in dst", got, want)
			break
		}
	}
}
