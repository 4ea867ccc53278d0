package upgrade_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/upgrade"
)

// BenchmarkEtcdEachBatch copies 100k × 200 B records online on a
// three-member cluster at etcd's default limits through the engine: a hook
// whose hook.EachBatch asks for batches of 10,000 and so checkpoints as
// the limits require. The reference, in the same run on the same cluster:
// a plain loop of range reads of 128 records and one txn of their 128 puts
// (fenced on the generation, as a product's writes are). ratio = engine /
// plain loop in records per second (goal >= 0.7), from the fastest of two
// rounds of each.
func BenchmarkEtcdEachBatch(b *testing.B) {
	const n = 100_000
	st, prefix := openEtcd(b)
	fill(b, st, n, func(i int) []byte { return bytes.Repeat([]byte{'a' + byte(i%26)}, 200) })
	p := product(b, prefix)
	cli := etcdClient(b)
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Copy", Digest: "h1:copy",
		Func: func(ctx context.Context, tx hook.Tx) error {
			out, err := tx.CreateTable("out")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "copy", "src", 10000, func(k, v []byte) error {
				return out.Put(k, rewrite(v))
			})
		}}
	engine := func() {
		if err := upgrade.RunHook(context.Background(), st, h, "1.0.0", upgrade.Options{Online: true}); err != nil {
			b.Fatal(err)
		}
	}
	plain := func() {
		ctx := context.Background()
		from, end := p.Key("src", nil), p.Key("src", nil)+"\xff"
		total := 0
		for {
			resp, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(128))
			if err != nil {
				b.Fatal(err)
			}
			if len(resp.Kvs) == 0 {
				break
			}
			ops := make([]clientv3.Op, len(resp.Kvs))
			for i, kv := range resp.Kvs {
				ops[i] = clientv3.OpPut(p.Key("plain", kv.Key[len(p.Key("src", nil)):]), string(rewrite(kv.Value)))
			}
			tresp, err := cli.Txn(ctx).If(p.Fence()).Then(ops...).Commit()
			if err != nil {
				b.Fatal(err)
			}
			if !tresp.Succeeded {
				b.Fatal(errors.New("the generation changed"))
			}
			total += len(resp.Kvs)
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		if total != n {
			b.Fatal(fmt.Errorf("the plain loop copied %d records, want %d", total, n))
		}
	}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	const rounds = 2
	engineTime, plainTime := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := range b.N * rounds {
		if i%2 == 0 {
			plainTime = min(plainTime, timed(plain))
			engineTime = min(engineTime, timed(engine))
		} else {
			engineTime = min(engineTime, timed(engine))
			plainTime = min(plainTime, timed(plain))
		}
	}
	if got := len(storetest.Records(b, st, "out")); got != n {
		b.Fatalf("the hook copied %d records, want %d", got, n)
	}
	b.ReportMetric(n/engineTime.Seconds(), "engine-records/s")
	b.ReportMetric(n/plainTime.Seconds(), "plain-records/s")
	b.ReportMetric(plainTime.Seconds()/engineTime.Seconds(), "ratio")
}
