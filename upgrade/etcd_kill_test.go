package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// followerKiller watches the commits (the writing Txns) of a client. From
// the commit numbered at, the first one that the follower answered and
// applied SIGKILLs the follower and loses the answer, as when the member
// dies between applying a checkpoint and answering it: the worst moment for
// the migrator, which cannot tell whether its checkpoint applied.
type followerKiller struct {
	c        *etcdtest.Cluster
	follower int
	addr     string // the follower's host:port
	at       int64

	commits  atomic.Int64
	killed   atomic.Bool
	killedAt int64 // the commit whose answer was lost
	mu       sync.Mutex
	err      error          // of the kill
	after    map[string]int // commits answered after the kill, by member
}

func (f *followerKiller) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var p peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
	r, ok := req.(*pb.TxnRequest)
	if method != "/etcdserverpb.KV/Txn" || !ok || !writes(r) || err != nil || p.Addr == nil {
		return err
	}
	n := f.commits.Add(1)
	if f.killed.Load() {
		f.mu.Lock()
		f.after[p.Addr.String()]++
		f.mu.Unlock()
		return nil
	}
	if n < f.at || !reply.(*pb.TxnResponse).Succeeded {
		return nil
	}
	if p.Addr.String() != f.addr {
		// The client picks members in turn, and an EachBatch round
		// (its read, its commit, which also pins the next round's
		// transaction) may take a multiple of the members' number of
		// picks, so that every commit goes to the same one: zero to
		// two more reads, at random, shift the turn whatever a round
		// takes.
		for range rand.IntN(3) {
			cc.Invoke(ctx, "/etcdserverpb.KV/Range", &pb.RangeRequest{Key: []byte("/"), Serializable: true}, &pb.RangeResponse{})
		}
		return nil
	}
	f.killed.Store(true)
	f.mu.Lock()
	f.killedAt = n
	f.err = f.c.Kill(f.follower)
	f.mu.Unlock()
	return status.Error(codes.Unavailable, "test: the member was killed before answering")
}

// TestEtcdFollowerKilled: an online EachBatch hook rewrites every record of
// a cluster of three member processes, appending "!"; once a fifth of the
// checkpoints are done, a follower (one of the client's endpoints) is
// SIGKILLed right after applying a checkpoint and before answering it. The
// client fails over to the other members, the migrator finds out that the
// checkpoint applied, and the upgrade completes: every record rewritten
// exactly once, the hook recorded once.
func TestEtcdFollowerKilled(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 3000
	}
	c, err := etcdtest.Start(etcdtest.Config{Members: 3, Processes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	follower, err := c.Follower(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := &followerKiller{c: c, follower: follower, addr: strings.TrimPrefix(c.Endpoints[follower], "http://"), at: math.MaxInt64, after: map[string]int{}}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(f.intercept)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st, err := etcd.Open(context.Background(), etcd.Options{Client: cli, Prefix: "/killed", Create: true, RequestTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	value := func(i int) []byte { return fmt.Appendf(nil, "value %d", i) }
	fill(t, st, n, value)

	// At default limits a checkpoint carries at most 126 writes.
	f.at = f.commits.Load() + int64(n/126/5)
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Bang", Digest: "h1:bang",
		Func: func(ctx context.Context, tx hook.Tx) error {
			src, err := tx.Table("src")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "bang", "src", 10000, func(k, v []byte) error {
				return src.Put(k, append(bytes.Clone(v), '!'))
			})
		}}
	var log bytes.Buffer
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true, Log: &log}); err != nil {
		t.Fatalf("online upgrade with a follower killed: %v\n%s", err, tail(log.String(), 5))
	}
	f.mu.Lock()
	killErr, after, at := f.err, maps.Clone(f.after), f.killedAt
	f.mu.Unlock()
	if !f.killed.Load() || killErr != nil {
		t.Fatalf("the follower was not killed (%v) after %d commits", killErr, f.commits.Load())
	}
	if len(after) == 0 || after[f.addr] != 0 {
		t.Errorf("commits answered after the kill, by member: %v; want some, none by the dead %s", after, f.addr)
	}
	t.Logf("killed follower %s at commit %d (the first the follower answered from %d on); commits after it, by member: %v", f.addr, at, f.at, after)

	got := storetest.Records(t, st, "src")
	if len(got) != n {
		t.Errorf("%d records, want %d", len(got), n)
	}
	for i := range n {
		k := fmt.Sprintf("%06d", i)
		if want := string(value(i)) + "!"; got[k] != want {
			t.Fatalf("record %s = %q, want %q (rewritten exactly once)", k, got[k], want)
		}
	}
	m := meta(t, st)
	if m.DataVersion != "2.0.0" || m.LastUpgradeHook == nil || *m.LastUpgradeHook != 1 || len(m.Applied) != 1 || m.Applied[0].Num != 1 {
		t.Errorf("metadata %+v, want data version 2.0.0 and hook 1 applied once", m)
	}
}

// writes reports whether r is a commit: a Txn that writes when it
// succeeds.
func writes(r *pb.TxnRequest) bool {
	for _, op := range r.Success {
		if op.GetRequestPut() != nil || op.GetRequestDeleteRange() != nil {
			return true
		}
	}
	return false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
