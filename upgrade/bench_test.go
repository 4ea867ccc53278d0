package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// benchStore writes a store of n records in table "t" (key: 8 digits,
// value: 64 bytes) with its upgrade metadata at release 1.0.0.
func benchStore(b *testing.B, path string, n int) {
	b.Helper()
	l, err := bolt.NewLoader(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Abort()
	value := bytes.Repeat([]byte("v"), 64)
	for i := range n {
		if err := l.Put("t", fmt.Appendf(nil, "%08d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Finish(); err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := upgrade.Init(st, registry("1.0.0")); err != nil {
		b.Fatal(err)
	}
}

// rewrite is the change both sides of BenchmarkRewrite make to a record.
func rewrite(v []byte) []byte {
	out := make([]byte, len(v)+1)
	copy(out, v)
	out[len(v)] = '!'
	return out
}

// BenchmarkRewrite times a hook rewriting every record of a
// 1,000,000-record table in one transaction, through the engine and the
// store API, beside a hand-written bbolt loop doing the same on an
// identical file in the same run; ratio = hook / bbolt (goal <= 1.2), from
// the fastest of three rounds of each.
func BenchmarkRewrite(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	base := filepath.Join(dir, "base.db")
	benchStore(b, base, n)
	reg := registry("2.0.0", hook.Hook{Num: 1, IntroducedIn: "2.0.0", Name: "Rewrite", Func: func(ctx context.Context, tx hook.Tx) error {
		t, err := tx.Table("t")
		if err != nil {
			return err
		}
		return t.Scan(nil, func(k, v []byte) error { return t.Put(k, rewrite(v)) })
	}})
	// The machine is shared: each side runs rounds times per iteration,
	// alternating which goes first, and the fastest round of each counts.
	const rounds = 3
	hookTime, boltTime := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := range b.N * rounds {
		b.StopTimer()
		hookPath, boltPath := filepath.Join(dir, "hook.db"), filepath.Join(dir, "bolt.db")
		copyFile(b, base, hookPath)
		copyFile(b, base, boltPath)
		// The copies are synced so that neither side flushes them.
		syncFile(b, hookPath)
		syncFile(b, boltPath)
		b.StartTimer()
		if i%2 == 0 {
			boltTime = min(boltTime, rewriteBolt(b, boltPath))
			hookTime = min(hookTime, rewriteHook(b, hookPath, reg))
		} else {
			hookTime = min(hookTime, rewriteHook(b, hookPath, reg))
			boltTime = min(boltTime, rewriteBolt(b, boltPath))
		}
	}
	b.ReportMetric(hookTime.Seconds(), "hook-s")
	b.ReportMetric(boltTime.Seconds(), "bbolt-s")
	b.ReportMetric(hookTime.Seconds()/boltTime.Seconds(), "ratio")
}

// rewriteBolt is the reference of BenchmarkRewrite: a hand-written bbolt
// loop.
func rewriteBolt(b *testing.B, path string) time.Duration {
	start := time.Now()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, InitialMmapSize: bolt.DefaultInitialMmapSize})
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte("t"))
		c := bk.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			// The key is copied: bbolt keeps it until the commit,
			// which may remap the pages it points into.
			if err := bk.Put(bytes.Clone(k), rewrite(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rewriteHook runs the rewriting hook of BenchmarkRewrite with the engine.
func rewriteHook(b *testing.B, path string, reg *hook.Registry) time.Duration {
	start := time.Now()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{}); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func syncFile(b *testing.B, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBatchedMemory runs a hook that copies every record of a table
// with hook.EachBatch into another table, then drops the source, on N and
// on 10N records, and reports the peak heap above the baseline of each
// (the Go heap, not the store's memory map): it stays flat as the table
// grows, ratio = peak(10N) / peak(N).
func BenchmarkBatchedMemory(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	reg := registry("2.0.0", hook.Hook{Num: 1, IntroducedIn: "2.0.0", Name: "Copy", Func: func(ctx context.Context, tx hook.Tx) error {
		dst, err := tx.CreateTable("t2")
		if err != nil {
			return err
		}
		if err := hook.EachBatch(ctx, tx, "copy", "t", 0, func(k, v []byte) error {
			return dst.Put(k, rewrite(v))
		}); err != nil {
			return err
		}
		return tx.DropTable("t")
	}})
	peaks := map[int]float64{}
	for _, size := range []int{n, 10 * n} {
		base := filepath.Join(dir, fmt.Sprint("base", size))
		benchStore(b, base, size)
		var peak float64
		for i := range b.N {
			path := filepath.Join(dir, fmt.Sprint("run", size, "-", i))
			copyFile(b, base, path)
			st, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			p := peakHeap(func() {
				if _, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{}); err != nil {
					b.Fatal(err)
				}
			})
			peak = max(peak, p)
			st.Close()
		}
		peaks[size] = peak
	}
	b.ReportMetric(peaks[n]/(1<<20), "heap-MB-N")
	b.ReportMetric(peaks[10*n]/(1<<20), "heap-MB-10N")
	b.ReportMetric(peaks[10*n]/peaks[n], "ratio")
}

// peakHeap runs fn and returns the peak of the heap's live and unswept
// objects above the level before fn, sampled every millisecond.
func peakHeap(fn func()) float64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() float64 {
		metrics.Read(sample)
		return float64(sample[0].Value.Uint64())
	}
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := uint64(read()); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	return max(float64(peak.Load())-base, 0)
}
