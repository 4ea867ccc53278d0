package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

// countingStore opens a writable store at the test's prefix through a
// client whose KV requests c counts (and l may lose, when not nil).
func countingStore(t *testing.T, c *etcdtest.RPCCounter, l *lossy) *Store {
	t.Helper()
	ics := []grpc.UnaryClientInterceptor{c.Intercept}
	if l != nil {
		ics = append(ics, l.intercept)
	}
	return open(t, Options{Client: cluster.Client(t, ics...)})
}

func put(t *testing.T, tx store.Tx, path []string, k, v string) {
	t.Helper()
	tb, err := hook.OpenPath(tx, path...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte(k), []byte(v)); err != nil {
		t.Fatal(err)
	}
}

func commitBegin(t *testing.T, tx store.Tx) store.Tx {
	t.Helper()
	next, committed, err := tx.(store.Chainer).CommitBegin()
	if err != nil || !committed {
		t.Fatalf("CommitBegin: committed %v, %v", committed, err)
	}
	t.Cleanup(func() { next.Rollback() })
	return next
}

// TestCommitBeginOneRequest: a chain of transactions, each writing one
// record and committed with CommitBegin, costs one request per
// transaction, the commit: the next transaction reads at the commit's
// revision, sees what the commit wrote, and finds its tables (top-level
// and nested, with their sequences) without a request.
func TestCommitBeginOneRequest(t *testing.T) {
	c := &etcdtest.RPCCounter{}
	st := countingStore(t, c, nil)
	storetest.Put(t, st, "t", "k0", "v")
	setup := begin(t, st, true)
	if _, err := hook.CreatePath(setup, "t", "inner"); err != nil {
		t.Fatal(err)
	}
	if err := setup.Commit(); err != nil {
		t.Fatal(err)
	}

	tx := begin(t, st, true)
	const n = 5
	commits0, pins0, ranges0 := c.Counts()
	for i := 1; i <= n; i++ {
		put(t, tx, []string{"t"}, fmt.Sprintf("k%d", i), "v")
		inner, err := hook.OpenPath(tx, "t", "inner")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inner.NextSequence(); err != nil {
			t.Fatal(err)
		}
		tx = commitBegin(t, tx)
		if rev := tx.(*Tx).Revision(); rev != c.LastCommitRev() {
			t.Errorf("transaction %d reads at revision %d, want the commit's %d", i, rev, c.LastCommitRev())
		}
		// What the commit wrote, read without a request: the
		// sequence is the nested table's marker.
		inner, err = hook.OpenPath(tx, "t", "inner")
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := inner.Sequence(); err != nil || seq != uint64(i) {
			t.Errorf("transaction %d: sequence %d, %v, want %d", i, seq, err, i)
		}
	}
	commits, pins, ranges := c.Counts()
	if commits-commits0 != n || pins != pins0 || ranges != ranges0 {
		t.Errorf("%d chained transactions sent %d commits, %d pins and %d ranges, want %d commits and nothing else",
			n, commits-commits0, pins-pins0, ranges-ranges0, n)
	}
	// The records themselves are read at the commit's revision.
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n + 1 {
		if v, err := tb.Get(fmt.Appendf(nil, "k%d", i)); err != nil || string(v) != "v" {
			t.Errorf("k%d: %q, %v", i, v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Records(t, st, "t"); len(got) != n+2 { // n+1 records and "inner"
		t.Errorf("records %q, want k0..k%d and the nested table", got, n)
	}
}

// TestCommitBeginFenced: whatever another client does between a chained
// commit and the next transaction's commit is caught by the next commit,
// as after a fresh Begin: a product's write to a key it writes, a table
// the product created, a generation switch, the lock taken away. The
// refused commit writes nothing.
func TestCommitBeginFenced(t *testing.T) {
	for _, c := range []struct {
		name  string
		other func(t *testing.T, cli *clientv3.Client, p string, st *Store)
		write func(t *testing.T, tx store.Tx)
		want  error
	}{
		{"product write", func(t *testing.T, cli *clientv3.Client, p string, _ *Store) {
			if _, err := cli.Put(context.Background(), p+"/g/1/t/t/a", "product"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, tx store.Tx) {
			tb, err := tx.Table("t")
			if err != nil {
				t.Fatal(err)
			}
			// The snapshot is the commit's: the product's value
			// is not seen, and the write over it is refused.
			if v, err := tb.Get([]byte("a")); err != nil || string(v) != "1" {
				t.Errorf("read a: %q, %v, want the commit's \"1\"", v, err)
			}
			if err := tb.Put([]byte("a"), []byte("hook")); err != nil {
				t.Fatal(err)
			}
		}, ErrConflict},
		{"product delete of a scanned record", func(t *testing.T, cli *clientv3.Client, p string, _ *Store) {
			if _, err := cli.Delete(context.Background(), p+"/g/1/t/t/b"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, tx store.Tx) {
			tb, err := tx.Table("t")
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Scan(nil, func(k, v []byte) error { return tb.Put(k, []byte("hook")) }); err != nil {
				t.Fatal(err)
			}
		}, ErrConflict},
		{"product table", func(t *testing.T, cli *clientv3.Client, p string, _ *Store) {
			if _, err := cli.Put(context.Background(), p+"/g/1/m/new", "7"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, tx store.Tx) {
			// Not seen at the commit's revision: created again.
			tb, err := tx.CreateTable("new")
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Put([]byte("x"), []byte("hook")); err != nil {
				t.Fatal(err)
			}
		}, ErrConflict},
		{"generation switch", func(t *testing.T, cli *clientv3.Client, p string, _ *Store) {
			if _, err := cli.Txn(context.Background()).Then(
				clientv3.OpPut(p+"/gen/2", ""), clientv3.OpPut(p+"/g/2/m/t", ""), clientv3.OpPut(p+"/current", "2"),
			).Commit(); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, tx store.Tx) { put(t, tx, []string{"t"}, "c", "hook") }, ErrGenerationChanged},
		{"lock taken away", func(t *testing.T, cli *clientv3.Client, p string, st *Store) {
			if _, err := cli.Delete(context.Background(), st.mu.Key()); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, tx store.Tx) { put(t, tx, []string{"t"}, "c", "hook") }, ErrLockLost},
	} {
		t.Run(c.name, func(t *testing.T) {
			cnt := &etcdtest.RPCCounter{}
			st := countingStore(t, cnt, nil)
			cli := client(t, cluster)
			p := prefix(t)
			storetest.Put(t, st, "t", "a", "0", "b", "0")
			tx := begin(t, st, true)
			put(t, tx, []string{"t"}, "a", "1")
			_, pins0, _ := cnt.Counts()
			tx = commitBegin(t, tx)
			if rev := tx.(*Tx).Revision(); rev != cnt.LastCommitRev() {
				t.Fatalf("the transaction after CommitBegin reads at %d, not at the commit's revision %d: the test tests nothing", rev, cnt.LastCommitRev())
			}
			before := raw(t, cli, p+"/")
			c.other(t, cli, p, st)
			after := raw(t, cli, p+"/")
			c.write(t, tx)
			if err := tx.Commit(); !errors.Is(err, c.want) {
				t.Fatalf("commit after a %s: %v, want %v", c.name, err, c.want)
			}
			if _, pins, _ := cnt.Counts(); pins != pins0 {
				t.Fatalf("the transaction after CommitBegin read its own pin (%d pins): the test tests nothing", pins-pins0)
			}
			if got := raw(t, cli, p+"/"); fmt.Sprint(got) != fmt.Sprint(after) {
				t.Errorf("the refused commit wrote:\n%q\nbefore it:\n%q\n(before the %s: %q)", got, after, c.name, before)
			}
		})
	}
}

// TestCommitBeginLostAnswer: a chained commit whose answer was lost
// applies once, and the next transaction then reads a pin of its own (the
// reads that came with the commit are not known): it reads at or after
// the commit, and its own commit goes through.
func TestCommitBeginLostAnswer(t *testing.T) {
	for _, mode := range []int32{loseAnswer, loseRequest} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			c, l := &etcdtest.RPCCounter{}, &lossy{}
			st := countingStore(t, c, l)
			cli := client(t, cluster)
			storetest.Put(t, st, "t", "n", "1")
			key := prefix(t) + "/g/1/t/t/n"
			v0 := version(t, cli, key)
			tx := begin(t, st, true)
			put(t, tx, []string{"t"}, "n", "2")
			_, pins0, _ := c.Counts()
			l.mode.Store(mode)
			tx = commitBegin(t, tx)
			if l.mode.Load() != 0 {
				t.Fatal("the commit did not go through the lossy interceptor")
			}
			if v := version(t, cli, key); v != v0+1 {
				t.Errorf("the key was written %d times, want once", v-v0)
			}
			if _, pins, _ := c.Counts(); pins != pins0+1 {
				t.Errorf("after a lost answer the next transaction read %d pins of its own, want 1", pins-pins0)
			}
			if rev := tx.(*Tx).Revision(); rev != c.LastPin() {
				t.Errorf("the next transaction reads at %d, want its own pin's revision %d", rev, c.LastPin())
			}
			tb, err := tx.Table("t")
			if err != nil {
				t.Fatal(err)
			}
			if v, err := tb.Get([]byte("n")); err != nil || string(v) != "2" {
				t.Errorf("n: %q, %v, want the commit's \"2\"", v, err)
			}
			if err := tb.Put([]byte("n"), []byte("3")); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := storetest.Records(t, st, "t"); got["n"] != "3" {
				t.Errorf("records %q", got)
			}
		})
	}
}
