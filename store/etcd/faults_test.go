package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/store"
)

// TestRetryable: etcd's transient errors, as the client returns them
// (rpctypes.EtcdError, whose gRPC code is Unknown), and Unavailable are
// retried; refusals are not.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rpctypes.Error(rpctypes.ErrGRPCLeaderChanged), true},
		{rpctypes.Error(rpctypes.ErrGRPCNoLeader), true},
		{rpctypes.Error(rpctypes.ErrGRPCTimeout), true},
		{rpctypes.Error(rpctypes.ErrGRPCTimeoutDueToLeaderFail), true},
		{rpctypes.Error(rpctypes.ErrGRPCStopped), true},
		{rpctypes.Error(rpctypes.ErrGRPCRequestTooManyRequests), true},
		{fmt.Errorf("reading: %w", rpctypes.Error(rpctypes.ErrGRPCLeaderChanged)), true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{rpctypes.Error(rpctypes.ErrGRPCCompacted), false},
		{rpctypes.Error(rpctypes.ErrGRPCNoSpace), false},
		{rpctypes.Error(rpctypes.ErrGRPCTooManyOps), false},
		{rpctypes.Error(rpctypes.ErrGRPCPermissionDenied), false},
		{context.Canceled, false},
		{errors.New("boom"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestScanResumes: the member streaming a Scan dies after its first
// chunk (the stream fails with Unavailable); the Scan opens the stream
// again after the last key it gave, at the same revision, and visits every
// record exactly once.
func TestScanResumes(t *testing.T) {
	var streams, broken atomic.Int64
	cli, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			cs, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil || method != "/etcdserverpb.KV/RangeStream" {
				return cs, err
			}
			streams.Add(1)
			return &dyingStream{ClientStream: cs, broken: &broken}, nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := open(t, Options{Client: cli})
	const n = 300
	value := bytes.Repeat([]byte("v"), 20000) // 6 MB: several chunks
	for i := 0; i < n; i += 50 {
		tx := begin(t, st, true)
		tb, err := tx.CreateTable("t")
		if err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+50; j++ {
			if err := tb.Put(fmt.Appendf(nil, "%04d", j), value); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	tx := begin(t, st, false)
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	streams.Store(0)
	i := 0
	err = tb.Scan(nil, func(k, v []byte) error {
		if want := fmt.Sprintf("%04d", i); string(k) != want || !bytes.Equal(v, value) {
			return fmt.Errorf("record %d: key %q (%d bytes), want %q", i, k, len(v), want)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("scan through a dying stream: %v after %d records, want %d", err, i, n)
	}
	if broken.Load() != 1 || streams.Load() < 2 {
		t.Errorf("%d streams, %d broken: want the first broken and another opened", streams.Load(), broken.Load())
	}
}

// dyingStream fails the first stream of the test after its first message,
// as when the member serving it dies.
type dyingStream struct {
	grpc.ClientStream
	broken *atomic.Int64
	msgs   int
}

func (s *dyingStream) RecvMsg(m any) error {
	if s.msgs == 1 && s.broken.CompareAndSwap(0, 1) {
		return status.Error(codes.Unavailable, "test: the member died")
	}
	s.msgs++
	return s.ClientStream.RecvMsg(m)
}

// TestFaultNoQuorum, on a cluster of three member processes two of which
// are killed: a commit fails within the request timeout (plus a second to
// ask the members) with ErrUnavailable naming the members; an Open fails
// the same way; an Open whose context ends returns at once.
func TestFaultNoQuorum(t *testing.T) {
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 2 * time.Second})
	for _, i := range []int{0, 1} {
		if err := c.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	tx, err := st.Begin(true)
	if err == nil {
		var tb store.Table
		if tb, err = tx.CreateTable("t"); err == nil {
			if err = tb.Put([]byte("k"), []byte("v")); err == nil {
				err = tx.Commit()
			}
		}
		tx.Rollback()
	}
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no leader: 1 of 3 members answered") || took > 3500*time.Millisecond {
		t.Errorf("a transaction without quorum: %v after %s, want ErrUnavailable within 2 s + 1.5 s", err, took)
	}
	t.Logf("a transaction without quorum failed after %s: %v", took.Round(time.Millisecond), err)

	start = time.Now()
	_, err = Open(context.Background(), Options{Endpoints: c.Endpoints, Prefix: prefix(t), RequestTimeout: 2 * time.Second})
	took = time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "members answered") || took > 3500*time.Millisecond {
		t.Errorf("Open without quorum: %v after %s, want ErrUnavailable within 2 s + 1.5 s", err, took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	_, err = Open(ctx, Options{Endpoints: c.Endpoints, Prefix: prefix(t)})
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "interrupted") || took > 2*time.Second {
		t.Errorf("Open without quorum, its context canceled after 300 ms: %v after %s, want interrupted within 2 s", err, took)
	}
}

// TestFaultSilentMember, on a cluster of three member processes one of
// which is paused (SIGSTOP): the first attempt that gets no answer in
// time has the store take the paused member out of its client's
// endpoints, every commit meanwhile succeeds and lands exactly once, and
// the member is put back once it answers again. Without taking it out,
// gRPC keeps sending to it until its keepalive closes the connection
// (13 s), and a commit whose attempts land there runs out of time.
func TestFaultSilentMember(t *testing.T) {
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints})
	i, err := c.Follower(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(i); err != nil {
		t.Fatal(err)
	}
	paused := c.Endpoints[i]
	const n = 30
	for k := range n {
		if err := putN(t, st, fmt.Sprintf("t%02d", k), 1, 10); err != nil {
			t.Fatalf("commit %d with member %s paused: %v", k, paused, err)
		}
	}
	if slices.Contains(st.cli.Endpoints(), paused) {
		// Each commit goes to one of three members: 30 that all
		// missed the paused one are a (2/3)^30 chance.
		t.Errorf("after %d commits the client still sends to the paused member %s: endpoints %v", n, paused, st.cli.Endpoints())
	}
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	names, err := tx.Tables()
	tx.Rollback()
	names = slices.DeleteFunc(names, func(name string) bool { return !strings.HasPrefix(name, "t") })
	if err != nil || len(names) != n {
		t.Fatalf("tables %v (%v), want the %d committed", names, err, n)
	}
	if err := c.Cont(i); err != nil {
		t.Fatal(err)
	}
	// Put back within seconds; the bound only keeps a broken readmit
	// from hanging the test.
	for range 600 {
		if slices.Contains(st.cli.Endpoints(), paused) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the member %s answers again but was not put back: endpoints %v", paused, st.cli.Endpoints())
}

// TestFaultNoQuorumPaused is TestFaultNoQuorum with the two members
// paused (SIGSTOP: frozen machines, a partition) rather than killed: they
// refuse no connection, every attempt waits its whole time, and a commit
// still fails within the request timeout (plus a second to ask the
// members) with ErrUnavailable naming them.
func TestFaultNoQuorumPaused(t *testing.T) {
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 2 * time.Second})
	tx := begin(t, st, true)
	defer tx.Rollback()
	tb, err := tx.CreateTable("t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	pauseQuorum(t, c)
	start := time.Now()
	err = tx.Commit()
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "1 of 3 members answered") || took > 3500*time.Millisecond {
		t.Errorf("a commit with two of three members paused: %v after %s, want ErrUnavailable within 2 s + 1.5 s", err, took)
	}
	t.Logf("a commit with two of three members paused failed after %s: %v", took.Round(time.Millisecond), err)
}

// TestFaultRestoreAbortNoQuorumPaused: a restore stopped by a cluster
// that lost its quorum (two of three members paused) fails within the
// request timeout plus a second, as every request does, and leaves its
// unfinished generation to the next writable Open:
//   - Abort's removal of the generation, whose stream of keys waited for
//     the cluster (until the server's own timeout, or forever when its
//     member is paused), gives up after the request timeout;
//   - Finish failing because the cluster did not answer, Abort does not
//     ask it again.
func TestFaultRestoreAbortNoQuorumPaused(t *testing.T) {
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 2 * time.Second})
	for _, finish := range []bool{false, true} {
		r, err := st.BeginRestore()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Table("t"); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if err := r.Put(fmt.Appendf(nil, "k%05d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // every full batch sent
		paused := pauseQuorum(t, c)
		start := time.Now()
		if finish {
			if err := r.Finish(); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Finish with two of three members paused: %v, want ErrUnavailable", err)
			}
		}
		err = r.Abort()
		took := time.Since(start)
		for _, i := range paused {
			c.Cont(i)
		}
		if took > 3500*time.Millisecond || err == nil {
			t.Errorf("finish %v, then Abort, with two of three members paused: %v after %s, want an error within the 2 s request timeout + 1.5 s", finish, err, took)
		}
		t.Logf("finish %v, then Abort, with two of three members paused: %v after %s", finish, err, took.Round(time.Millisecond))
		if _, err := c.Leader(context.Background()); err != nil {
			time.Sleep(2 * time.Second)
		}
	}
}

// TestFaultScanNoQuorumPaused: a scan that gets no answer because two
// of three members are paused fails within the request timeout plus a
// second, with ErrUnavailable naming the members, as any request does.
func TestFaultScanNoQuorumPaused(t *testing.T) {
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 2 * time.Second})
	if err := putN(t, st, "t", 100, 10); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, st, false)
	defer tx.Rollback()
	tb, err := tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	pauseQuorum(t, c)
	start := time.Now()
	err = tb.Scan(nil, func(k, v []byte) error { return nil })
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || took > 3500*time.Millisecond {
		t.Errorf("a scan with two of three members paused: %v after %s, want ErrUnavailable within 2 s + 1.5 s", err, took)
	}
	t.Logf("a scan with two of three members paused: %v after %s", err, took.Round(time.Millisecond))
}

// pauseQuorum pauses (SIGSTOP) the leader of the three members of c and
// the member after it, so that the cluster has no quorum, and returns
// them; they continue when the test ends.
func pauseQuorum(t *testing.T, c *etcdtest.Cluster) []int {
	t.Helper()
	l, err := c.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	paused := []int{l, (l + 1) % 3}
	for _, i := range paused {
		if err := c.Stop(i); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Cont(i) })
	}
	return paused
}
