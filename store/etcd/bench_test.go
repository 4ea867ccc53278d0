package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// benchRecords is the number of records the rewrite benchmark rewrites.
const benchRecords = 100_000

// BenchmarkRewrite rewrites every record of a table of 100k × 200 B
// records through the store the way hook.EachBatch does online (a Scan of
// the pinned snapshot, a Put per record, a progress record per commit,
// commits as large as Tx.Room allows), beside the reference: a plain loop
// of range reads and fenced txns of 128 puts on the same three-member
// cluster. ratio = store / plain loop in records per second (goal >= 0.7),
// from the fastest of two rounds of each.
func BenchmarkRewrite(b *testing.B) {
	st := open(b, Options{})
	load(b, st, benchRecords)
	const rounds = 2
	storeTime, plainTime := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := range b.N * rounds {
		if i%2 == 0 {
			plainTime = min(plainTime, timed(b, func() int { return rewritePlain(b, st) }))
			storeTime = min(storeTime, timed(b, func() int { return rewriteStore(b, st) }))
		} else {
			storeTime = min(storeTime, timed(b, func() int { return rewriteStore(b, st) }))
			plainTime = min(plainTime, timed(b, func() int { return rewritePlain(b, st) }))
		}
	}
	storeRate := benchRecords / storeTime.Seconds()
	plainRate := benchRecords / plainTime.Seconds()
	b.ReportMetric(storeRate, "store-records/s")
	b.ReportMetric(plainRate, "plain-records/s")
	b.ReportMetric(storeRate/plainRate, "ratio")
}

// timed runs f, checks it rewrote every record and returns its duration.
func timed(b *testing.B, f func() int) time.Duration {
	b.Helper()
	start := time.Now()
	if n := f(); n != benchRecords {
		b.Fatalf("rewrote %d records, want %d", n, benchRecords)
	}
	return time.Since(start)
}

func rewrite(v []byte) []byte {
	out := bytes.Clone(v)
	out[0]++
	return out
}

// load writes n records of 200 bytes into table "users".
func load(b *testing.B, st *Store, n int) {
	b.Helper()
	for i := 0; i < n; {
		tx := begin(b, st, true)
		tb, err := tx.CreateTable("users")
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 100 && i < n; i, j = i+1, j+1 {
			if err := tb.Put(fmt.Appendf(nil, "user%08d", i), bytes.Repeat([]byte{'a'}, 200)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// rewriteStore is EachBatch's work through the store API.
func rewriteStore(b *testing.B, st *Store) int {
	b.Helper()
	var start []byte
	total := 0
	for {
		tx, err := st.begin(true)
		if err != nil {
			b.Fatal(err)
		}
		tb, err := tx.Table("users")
		if err != nil {
			b.Fatal(err)
		}
		meta, err := tx.CreateTable(store.MetaTable)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		var last []byte
		err = tb.Scan(start, func(k, v []byte) error {
			// Room for this record and the progress record.
			if w, room := tx.Room(); w < 2 || room < 2*len(k)+len(v)+64 {
				return hook.ErrStop
			}
			last = append(last[:0], k...)
			n++
			return tb.Put(k, rewrite(v))
		})
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			tx.Rollback()
			return total
		}
		if err := meta.Put([]byte("progress/bench"), last); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		total += n
		start = append(last, 0)
	}
}

// rewritePlain is the reference: range reads of 128 records and a txn of
// 128 puts fenced on the store's lock for each.
func rewritePlain(b *testing.B, st *Store) int {
	b.Helper()
	ctx := context.Background()
	g, err := st.begin(false)
	if err != nil {
		b.Fatal(err)
	}
	g.Rollback()
	prefix := st.lay.records(g.gen, []string{"users"})
	end := prefixEnd(prefix)
	from := prefix
	total := 0
	for {
		resp, err := st.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(DefaultMaxTxnOps))
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return total
		}
		ops := make([]clientv3.Op, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			ops[i] = clientv3.OpPut(string(kv.Key), string(rewrite(kv.Value)))
		}
		tresp, err := st.cli.Txn(ctx).If(st.mu.IsOwner()).Then(ops...).Commit()
		if err != nil {
			b.Fatal(err)
		}
		if !tresp.Succeeded {
			b.Fatal(errors.New("lock lost"))
		}
		total += len(resp.Kvs)
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// BenchmarkOpenStale opens a store where a killed restore left a
// generation of 100k × 200 B records, which the writable Open removes,
// beside the reference: a plain loop of DeleteRanges of DefaultPageSize
// keys each, whose bounds it knows without reading (the least a removal in
// chunks can do; one DeleteRange of the whole generation timed out on a
// loaded machine). ratio = Open / plain loop in time, from the fastest of
// two rounds of each.
func BenchmarkOpenStale(b *testing.B) {
	cli := client(b, cluster)
	const rounds = 2
	openTime, plainTime := time.Duration(1<<62), time.Duration(1<<62)
	b.StopTimer()
	for i := range b.N * rounds {
		p := fmt.Sprintf("%s/%d", prefix(b), i)
		leaveGeneration(b, open(b, Options{Prefix: p + "/open"}), "t", benchRecords)
		leaveGeneration(b, open(b, Options{Prefix: p + "/plain"}), "t", benchRecords)
		b.StartTimer()
		start := time.Now()
		st, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: p + "/open"})
		if err != nil {
			b.Fatal(err)
		}
		openTime = min(openTime, time.Since(start))
		st.Close()
		start = time.Now()
		deletePlain(b, cli, p+"/plain/g/2/t/t/")
		plainTime = min(plainTime, time.Since(start))
		b.StopTimer()
		if n := len(raw(b, cli, p+"/open/g/2/")); n != 0 {
			b.Fatalf("%d keys left after Open", n)
		}
	}
	b.ReportMetric(openTime.Seconds(), "open-s")
	b.ReportMetric(plainTime.Seconds(), "plain-s")
	b.ReportMetric(openTime.Seconds()/plainTime.Seconds(), "ratio")
}

// deletePlain deletes the records "%08d" of leaveGeneration under p,
// DefaultPageSize keys per DeleteRange.
func deletePlain(b *testing.B, cli *clientv3.Client, p string) {
	for i := 0; i < benchRecords; i += DefaultPageSize {
		from, to := fmt.Sprintf("%s%08d", p, i), fmt.Sprintf("%s%08d", p, i+DefaultPageSize)
		if _, err := cli.Delete(context.Background(), from, clientv3.WithRange(to)); err != nil {
			b.Fatal(err)
		}
	}
}
