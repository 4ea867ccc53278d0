package upgrade_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// TestEtcdOnlineBatchOneRequest: each batch of an online EachBatch hook
// on etcd costs one Txn, its commit: the next batch's transaction is
// pinned by the commit's own answer (etcd.Tx.CommitBegin), so the Txns
// that only read do not grow with the batches.
func TestEtcdOnlineBatchOneRequest(t *testing.T) {
	cluster = etcdtest.Shared(t)
	c := &etcdtest.RPCCounter{}
	cli := cluster.Client(t, c.Intercept)
	st, err := etcd.Open(context.Background(), etcd.Options{Client: cli, Prefix: etcdtest.Prefix(t), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const n = 2000
	fill(t, st, n, func(i int) []byte { return fmt.Appendf(nil, "value %d", i) })

	commits0, reads0, _ := c.Counts()
	log := &lineCounter{match: "checkpoint"}
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", batchHook(1, func([]byte) int { return 0 })), upgrade.Options{Online: true, Log: log}); err != nil {
		t.Fatal(err)
	}
	commits, reads, _ := c.Counts()
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
