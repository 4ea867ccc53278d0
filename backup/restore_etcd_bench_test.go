package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// restoreBenchRecords is the number of 200-byte records the etcd restore
// benchmark restores.
const restoreBenchRecords = 100_000

// BenchmarkRestoreEtcd restores an archive of 100k × 200 B records (and
// the example product's small data) into an etcd store on a three-member
// cluster on loopback, beside the reference: a plain loop of txns of 128
// puts, each fenced on one compare, writing the same records to the same
// cluster one txn after the other. A restore's time is all of it: both
// passes over the archive, the checks, the writes, the read-back
// verification and the switch; "restore" restores into a new store,
// "replace" restores again over the first restore's 100k records, so it
// also deletes them. ratio = restore / plain loop in records per second
// (goal >= 0.8) and replace-ratio = replace / plain loop, each from the
// fastest of two rounds.
func BenchmarkRestoreEtcd(b *testing.B) {
	c := cluster(b)
	arc, _ := boltArchive(b, b.TempDir(), "bench", func(tx store.Tx) error {
		return fillTable(tx, "users", restoreBenchRecords)
	})
	const rounds = 2
	restoreTime, replaceTime, plainTime := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for range b.N * rounds {
		prefix := newPrefix(b)
		st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, Create: true})
		if err != nil {
			b.Fatal(err)
		}
		restore := func() time.Duration {
			start := time.Now()
			if _, err := backup.RestoreEtcd(context.Background(), generated.Registry, arc, st, backup.RestoreOptions{}); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		plainTime = min(plainTime, plainLoop(b, st.Client(), prefix))
		restoreTime = min(restoreTime, restore())
		replaceTime = min(replaceTime, restore())
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	rate := func(d time.Duration) float64 { return restoreBenchRecords / d.Seconds() }
	b.ReportMetric(rate(restoreTime), "restore-records/s")
	b.ReportMetric(rate(replaceTime), "replace-records/s")
	b.ReportMetric(rate(plainTime), "plain-records/s")
	b.ReportMetric(rate(restoreTime)/rate(plainTime), "ratio")
	b.ReportMetric(rate(replaceTime)/rate(plainTime), "replace-ratio")
}

// plainLoop writes the benchmark's records under prefix/plain/ in txns of
// 128 puts fenced on P/current existing, and returns how long it took.
func plainLoop(b *testing.B, cli *clientv3.Client, prefix string) time.Duration {
	b.Helper()
	fence := clientv3.Compare(clientv3.CreateRevision(prefix+"/current"), ">", 0)
	ops := make([]clientv3.Op, 0, 128)
	start := time.Now()
	for i := 0; i < restoreBenchRecords; {
		ops = ops[:0]
		for ; len(ops) < 128 && i < restoreBenchRecords; i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/plain/users/key%06d", prefix, i), string(bytes.Repeat([]byte{byte('a' + i%26)}, 200))))
		}
		resp, err := cli.Txn(context.Background()).If(fence).Then(ops...).Commit()
		if err != nil {
			b.Fatal(err)
		}
		if !resp.Succeeded {
			b.Fatal("the fence failed")
		}
	}
	return time.Since(start)
}
