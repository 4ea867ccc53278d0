package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// BenchmarkEtcdOnlineFenced rewrites 50k × 200 B records in place, online,
// on the three-member cluster at etcd's default limits, two ways in the
// same run on the same table:
//
//   - the engine: upgrade.Run of a hook whose hook.EachBatch rewrites each
//     record (batches as large as the transaction's Room allows);
//   - the reference: a plain loop of the same fenced txns, one after the
//     other as the engine's (no pipelining either side): the next batch
//     (as many records as the engine's batches) read as the engine reads
//     it, from a range stream opened at the cursor and closed once the
//     batch is in, then one txn with the engine's compares (the lock
//     key's create revision, P/current naming the generation, each
//     record's mod revision as read, the progress record's) and
//     operations (the records, the progress record, the commit tag into
//     the lock key). A range read with a limit would make etcd count the
//     keys to the end of the table at every batch, quadratic in the
//     table's size.
//
// ratio = engine / plain loop in time (goal <= 1.2), from the fastest of
// three rounds of each, alternated; cpu-ratio the same in the process's
// CPU time (the members run in it), which a busy machine moves less.
func BenchmarkEtcdOnlineFenced(b *testing.B) {
	const n = 50_000
	st, prefix := openEtcd(b)
	fill(b, st, n, func(i int) []byte { return bytes.Repeat([]byte{'a' + byte(i%26)}, 200) })
	p := product(b, prefix)
	cli := etcdClient(b)
	ctx := context.Background()
	bump := func(v []byte) []byte {
		out := bytes.Clone(v)
		out[0] = 'a' + (out[0]-'a'+1)%26
		return out
	}

	var hooks []hook.Hook
	batches := 0
	engine := func() {
		num := len(hooks) + 1
		hooks = append(hooks, hook.Hook{Num: num, IntroducedIn: fmt.Sprintf("2.0.%d", num), AllowOnline: true,
			Name: fmt.Sprintf("Bump%d", num), Digest: fmt.Sprintf("h1:bump%d", num),
			Func: func(ctx context.Context, tx hook.Tx) error {
				src, err := tx.Table("src")
				if err != nil {
					return err
				}
				return hook.EachBatch(ctx, tx, "bump", "src", 10000, func(k, v []byte) error {
					return src.Put(k, bump(v))
				})
			}})
		log := &lineCounter{match: "checkpoint"}
		if _, err := upgrade.Run(ctx, st, registry(hooks[len(hooks)-1].IntroducedIn, hooks...), upgrade.Options{Online: true, Log: log}); err != nil {
			b.Fatal(err)
		}
		batches = log.count()
	}

	// The lock key, its create revision, and the commit tag's holder
	// information, as the store wrote them.
	locks, err := cli.Get(ctx, prefix+"/lock/", clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	var lock *struct {
		key    string
		create int64
		holder string
	}
	for _, kv := range locks.Kvs {
		if clientv3.LeaseID(kv.Lease) == st.Lease() {
			lock = &struct {
				key    string
				create int64
				holder string
			}{string(kv.Key), kv.CreateRevision, string(kv.Value[min(16, len(kv.Value)):])}
		}
	}
	if lock == nil {
		b.Fatal("no lock key of the store's lease")
	}
	progress := p.Key(store.MetaTable, []byte("progress/0000000000/batch:plain"))
	seq := uint64(1) << 40
	plain := func(size int) {
		from, end := p.Key("src", nil), p.Key("src", nil)+"\xff"
		total := 0
		pr, err := cli.Get(ctx, progress)
		if err != nil {
			b.Fatal(err)
		}
		progressRev := int64(0)
		if len(pr.Kvs) > 0 {
			progressRev = pr.Kvs[0].ModRevision
		}
		for {
			kvs := readBatch(b, cli, from, end, size)
			if len(kvs) == 0 {
				break
			}
			cmps := make([]clientv3.Cmp, 0, len(kvs)+3)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(lock.key), "=", lock.create), p.Fence())
			ops := make([]clientv3.Op, 0, len(kvs)+2)
			for _, kv := range kvs {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				ops = append(ops, clientv3.OpPut(string(kv.Key), string(bump(kv.Value))))
			}
			last := kvs[len(kvs)-1].Key
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(progress), "=", progressRev))
			seq++
			ops = append(ops, clientv3.OpPut(progress, "\x01"+string(last[len(p.Key("src", nil)):])),
				clientv3.OpPut(lock.key, fmt.Sprintf("%016x%s", seq, lock.holder), clientv3.WithIgnoreLease()))
			tresp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(lock.key), clientv3.OpGet(prefix+"/current")).Commit()
			if err != nil {
				b.Fatal(err)
			}
			if !tresp.Succeeded {
				b.Fatal("the plain loop's txn was refused")
			}
			progressRev = tresp.Header.Revision
			total += len(kvs)
			from = string(last) + "\x00"
		}
		if total != n {
			b.Fatalf("the plain loop rewrote %d records, want %d", total, n)
		}
	}
	// timed runs f and returns its time and the process's CPU time
	// meanwhile (the members run in this process): the CPU time tells the
	// work done from the machine's load.
	timed := func(f func()) (time.Duration, time.Duration) {
		cpu0 := cpuTime(b)
		start := time.Now()
		f()
		return time.Since(start), cpuTime(b) - cpu0
	}
	const rounds = 3
	engineTime, plainTime := time.Duration(1<<62), time.Duration(1<<62)
	engineCPU, plainCPU := time.Duration(1<<62), time.Duration(1<<62)
	runEngine := func() {
		d, cpu := timed(engine)
		engineTime, engineCPU = min(engineTime, d), min(engineCPU, cpu)
	}
	runPlain := func() {
		size := (n + batches - 1) / batches
		d, cpu := timed(func() { plain(size) })
		plainTime, plainCPU = min(plainTime, d), min(plainCPU, cpu)
	}
	b.ResetTimer()
	for i := range b.N * rounds {
		if i%2 == 0 || batches == 0 {
			runEngine()
			runPlain()
		} else {
			runPlain()
			runEngine()
		}
	}
	b.StopTimer()
	// Every record was bumped once per round by each side.
	want := byte(2 * b.N * rounds % 26)
	for k, v := range storetest.Records(b, st, "src") {
		var i int
		fmt.Sscanf(k, "%d", &i)
		if v[0] != 'a'+(byte(i%26)+want)%26 || len(v) != 200 || strings.Trim(v[1:], v[1:2]) != "" {
			b.Fatalf("record %s = %.10q..., want it bumped %d times", k, v, want)
		}
	}
	b.ReportMetric(float64((n+batches-1)/batches), "records/batch")
	b.ReportMetric(n/engineTime.Seconds(), "engine-records/s")
	b.ReportMetric(n/plainTime.Seconds(), "plain-records/s")
	b.ReportMetric(engineTime.Seconds()/plainTime.Seconds(), "ratio")
	b.ReportMetric(engineCPU.Seconds()/plainCPU.Seconds(), "cpu-ratio")
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readBatch reads the first size records of [from, end) through a range
// stream, which it closes then.
func readBatch(b *testing.B, cli *clientv3.Client, from, end string, size int) []*mvccpb.KeyValue {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := cli.GetStream(ctx, from, clientv3.WithRange(end))
	if err != nil {
		b.Fatal(err)
	}
	var kvs []*mvccpb.KeyValue
	for resp := range ch {
		if err := resp.Err(); err != nil {
			b.Fatal(err)
		}
		kvs = append(kvs, resp.Kvs...)
		if len(kvs) >= size {
			kvs = kvs[:size]
			break
		}
	}
	cancel()
	for range ch {
	}
	return kvs
}
