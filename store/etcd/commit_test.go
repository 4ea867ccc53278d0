package etcd

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

// version returns the number of writes etcd counted on key.
func version(t testing.TB, cli *clientv3.Client, key string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Version
}

func TestConflictWithProductWrites(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "users", "alice", "1", "bob", "1", "carol", "1")
	rec := prefix(t) + "/g/1/t/users/"
	for _, c := range []struct {
		name    string
		product clientv3.Op
		hook    func(tb store.Table) error
	}{
		{"product write, blind hook write", clientv3.OpPut(rec+"alice", "product"), func(tb store.Table) error {
			return tb.Put([]byte("alice"), []byte("hook"))
		}},
		{"product write, hook read then write", clientv3.OpPut(rec+"alice", "product"), func(tb store.Table) error {
			if _, err := tb.Get([]byte("alice")); err != nil {
				return err
			}
			return tb.Put([]byte("alice"), []byte("hook"))
		}},
		{"product delete", clientv3.OpDelete(rec + "bob"), func(tb store.Table) error {
			if _, err := tb.Get([]byte("bob")); err != nil {
				return err
			}
			return tb.Put([]byte("bob"), []byte("hook"))
		}},
		{"product create", clientv3.OpPut(rec+"dave", "product"), func(tb store.Table) error {
			return tb.Put([]byte("dave"), []byte("hook"))
		}},
		{"product write, hook delete", clientv3.OpPut(rec+"carol", "product"), func(tb store.Table) error {
			return tb.Delete([]byte("carol"))
		}},
		{"product write, hook scan rewrite", clientv3.OpPut(rec+"carol", "product"), func(tb store.Table) error {
			return tb.Scan(nil, func(k, v []byte) error { return tb.Put(k, []byte("hook")) })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := storetest.Records(t, st, "users")
			tx := begin(t, st, true)
			tb, err := tx.Table("users")
			if err != nil {
				t.Fatal(err)
			}
			other, err := tx.CreateTable("other")
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Put([]byte("x"), []byte("hook")); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Do(context.Background(), c.product); err != nil {
				t.Fatal(err)
			}
			after := storetest.Records(t, st, "users")
			if err := c.hook(tb); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); !errors.Is(err, ErrConflict) {
				t.Fatalf("commit after a %s: %v, want ErrConflict", c.name, err)
			}
			if got := storetest.Records(t, st, "users"); len(got) != len(after) || got["alice"] != after["alice"] {
				t.Errorf("records %q after the refused commit, want the product's %q (before: %q)", got, after, before)
			}
			check := begin(t, st, false)
			if _, err := check.Table("other"); !errors.Is(err, hook.ErrNoTable) {
				t.Errorf("the refused commit created a table: %v", err)
			}
		})
	}
}

func TestConflictOnDroppedTableAndMetadata(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "old", "a", "1")
	storetest.Put(t, st, store.MetaTable, "last_upgrade_hook", "98")
	p := prefix(t)

	tx := begin(t, st, true)
	if err := tx.DropTable("old"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), p+"/g/1/t/old/b", "product"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("dropping a table a product wrote to: %v, want ErrConflict", err)
	}

	// A hook's transaction reads the metadata; another migrator's commit
	// (here a raw write) changes it before this one commits.
	tx = begin(t, st, true)
	meta, err := tx.Table(store.MetaTable)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := meta.Get([]byte("last_upgrade_hook")); err != nil || string(v) != "98" {
		t.Fatalf("metadata: %q, %v", v, err)
	}
	users, err := tx.CreateTable("users")
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Put([]byte("alice"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), p+"/g/1/t/_hookreg/last_upgrade_hook", "99"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("commit after the metadata it read changed: %v, want ErrConflict", err)
	}
}

func TestGenerationChanged(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "t", "k", "1")
	tx := begin(t, st, true)
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	// A restore switches to generation 2.
	p := prefix(t)
	if _, err := cli.Txn(context.Background()).Then(
		clientv3.OpPut(p+"/gen/2", ""), clientv3.OpPut(p+"/g/2/m/t", ""), clientv3.OpPut(p+"/current", "2"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrGenerationChanged) {
		t.Fatalf("commit after a switch of generation: %v, want ErrGenerationChanged", err)
	}
	if got := raw(t, cli, p+"/g/1/t/t/k"); got[p+"/g/1/t/t/k"] != "1" {
		t.Errorf("the old generation was written: %q", got)
	}
}

// TestReplayedCommitRefused sends the txn of a commit a second time, as a
// client does when the answer to the first was lost: the second must not
// apply.
func TestReplayedCommitRefused(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "t", "n", "1")
	tx := begin(t, st, true).(*Tx)
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("n"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	p, err := tx.plan()
	if err != nil {
		t.Fatal(err)
	}
	key := prefix(t) + "/g/1/t/t/n"
	v0 := version(t, cli, key)
	if err := st.commit(p, tx.gen); err != nil {
		t.Fatal(err)
	}
	if err := st.commit(p, tx.gen); !errors.Is(err, ErrConflict) {
		t.Errorf("replayed commit: %v, want ErrConflict", err)
	}
	if v := version(t, cli, key); v != v0+1 {
		t.Errorf("the key was written %d times, want once", v-v0)
	}
}

// lossy drops the answer to (or the request of) the next writing Txn.
type lossy struct{ mode atomic.Int32 }

const (
	loseAnswer  = 1
	loseRequest = 2
)

func (l *lossy) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*pb.TxnRequest); ok && method == "/etcdserverpb.KV/Txn" && len(r.Compare) > 0 {
		switch l.mode.Swap(0) {
		case loseAnswer:
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "test: answer lost")
		case loseRequest:
			return status.Error(codes.Unavailable, "test: request lost")
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func TestLostAnswerAppliesOnce(t *testing.T) {
	l := &lossy{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cluster.Endpoints,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(l.intercept)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st := open(t, Options{Client: cli})
	storetest.Put(t, st, "t", "n", "1")
	key := prefix(t) + "/g/1/t/t/n"
	for _, mode := range []int32{loseAnswer, loseRequest} {
		v0 := version(t, cli, key)
		tx := begin(t, st, true)
		tb, err := tx.Table("t")
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Put([]byte("n"), []byte("2")); err != nil {
			t.Fatal(err)
		}
		l.mode.Store(mode)
		if err := tx.Commit(); err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
		if l.mode.Load() != 0 {
			t.Fatal("the commit did not go through the lossy interceptor")
		}
		if v := version(t, cli, key); v != v0+1 {
			t.Errorf("mode %d: the key was written %d times, want once", mode, v-v0)
		}
	}
}

func TestOneMigratorAtATime(t *testing.T) {
	a := open(t, Options{})
	start := time.Now()
	_, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), Timeout: 500 * time.Millisecond})
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second writable open: %v, want store.ErrInUse", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second open took %s to fail", d)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open after the holder closed: %v", err)
	}
	b.Close()
}

// TestLockTakeover: a holder whose lease expired (revoked here) loses the
// lock to the next migrator and has its commits refused.
func TestLockTakeover(t *testing.T) {
	cli := client(t, cluster)
	a := open(t, Options{LockTTL: 2 * time.Second})
	storetest.Put(t, a, "t", "k", "a1")
	tx := begin(t, a, true)
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("k"), []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(context.Background(), a.Lease()); err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open after the holder's lease expired: %v", err)
	}
	defer b.Close()
	if err := tx.Commit(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("commit by the old holder: %v, want ErrLockLost", err)
	}
	storetest.Put(t, b, "t", "k", "b1")
	if got := storetest.Records(t, b, "t"); got["k"] != "b1" {
		t.Errorf("after the takeover: %q", got)
	}
	// The old holder's session notices the lost lease; from then on it
	// refuses to begin writing.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tx, err := a.Begin(true)
		if errors.Is(err, ErrLockLost) {
			break
		}
		if err == nil {
			tx.Rollback()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Begin(true) by the old holder: %v, want ErrLockLost", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := version(t, cli, prefix(t)+"/g/1/t/t/k"); v != 2 {
		t.Errorf("the key was written %d times, want twice (a1, b1)", v)
	}
	if !strings.HasPrefix(b.Name(), "etcd://") {
		t.Errorf("Name() = %q", b.Name())
	}
}
