package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/migrator/etcdstore"
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
	phases := newPhaseClock()
	restoreTime, replaceTime, plainTime := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for range b.N * rounds {
		prefix := etcdtest.Prefix(b)
		st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, Create: true})
		if err != nil {
			b.Fatal(err)
		}
		restore := func() time.Duration {
			start := time.Now()
			ph := phases.start()
			if _, err := backup.RestoreEtcd(context.Background(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{}); err != nil {
				b.Fatal(err)
			}
			phases.end(ph)
			return time.Since(start)
		}
		plainTime = min(plainTime, plainLoop(b, st.Client(), prefix))
		restoreTime = min(restoreTime, restore())
		replaceTime = min(replaceTime, restore())
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range restorePhases {
		b.ReportMetric(phases.total[p.name].Seconds()/float64(phases.n), p.name+"-s/restore")
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

// restorePhases are the failpoints that end each phase of a restore.
var restorePhases = []struct{ name, end string }{
	{"check", "restore.checked"},
	{"write", "etcd.restore.last-batch"},
	{"verify", "etcd.restore.verified"},
	{"remove", ""},
}

// phaseClock times the phases of restores from their failpoints: the
// first pass and checks, the writes, the verification and the switch, and
// the removal of the old generation.
type phaseClock struct {
	mu    sync.Mutex
	last  time.Time // the last batch sent
	seen  map[string]time.Time
	total map[string]time.Duration
	n     int
}

func newPhaseClock() *phaseClock {
	c := &phaseClock{total: map[string]time.Duration{}}
	failpoint.Hook = func(point string) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if point == "etcd.restore.batch-sent" {
			c.last = time.Now()
		} else if _, ok := c.seen[point]; !ok && c.seen != nil {
			c.seen[point] = time.Now()
		}
		return nil
	}
	return c
}

func (c *phaseClock) start() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = map[string]time.Time{}
	return time.Now()
}

func (c *phaseClock) end(start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen["etcd.restore.last-batch"] = c.last
	from := start
	for _, p := range restorePhases {
		to := time.Now()
		if p.end != "" {
			to = c.seen[p.end]
		}
		c.total[p.name] += to.Sub(from)
		from = to
	}
	c.n++
	c.seen = nil
}
