package upgrade_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// txnCounter counts a client's Txn requests: those that write (commits)
// and those that only read (a transaction's pin, read by Begin).
type txnCounter struct {
	mu             sync.Mutex
	commits, reads int
}

func (c *txnCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*pb.TxnRequest); ok {
		writes := false
		for _, op := range r.Success {
			writes = writes || op.GetRequestRange() == nil
		}
		c.mu.Lock()
		if writes {
			c.commits++
		} else {
			c.reads++
		}
		c.mu.Unlock()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *txnCounter) counts() (commits, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commits, c.reads
}

// TestEtcdOnlineBatchOneRequest: each batch of an online EachBatch hook
// on etcd costs one Txn, its commit: the next batch's transaction is
// pinned by the commit's own answer (etcd.Tx.CommitBegin), so the Txns
// that only read do not grow with the batches.
func TestEtcdOnlineBatchOneRequest(t *testing.T) {
	cluster = etcdtest.Shared(t)
	c := &txnCounter{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cluster.Endpoints,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.intercept)},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st, err := etcd.Open(context.Background(), etcd.Options{Client: cli, Prefix: etcdtest.Prefix(t), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const n = 2000
	fill(t, st, n, func(i int) []byte { return fmt.Appendf(nil, "value %d", i) })

	commits0, reads0 := c.counts()
	log := &lineCounter{match: "checkpoint"}
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", batchHook(1, func([]byte) int { return 0 })), upgrade.Options{Online: true, Log: log}); err != nil {
		t.Fatal(err)
	}
	commits, reads := c.counts()
	batches := log.count()
	commits, reads = commits-commits0, reads-reads0
	t.Logf("%d batches: %d Txns that write, %d that only read", batches, commits, reads)
	if batches < 10 {
		t.Fatalf("%d batches, want at least 10: the test tests nothing", batches)
	}
	if commits < batches {
		t.Errorf("%d commits for %d batches", commits, batches)
	}
	// The run's own transactions (reading the plan, the final
	// metadata) begin with a read: a few, whatever the batches.
	if reads >= batches/2 {
		t.Errorf("%d Txns that only read for %d batches, want a few (the batches' transactions pinned by their commits)", reads, batches)
	}
	if got := storetest.Records(t, st, "dst"); len(got) != n || got["001999"] != "value 1999" {
		t.Errorf("dst has %d records (001999=%q), want %d", len(got), got["001999"], n)
	}
}
