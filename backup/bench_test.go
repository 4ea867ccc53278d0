package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// BenchmarkBackupRestore measures backup and restore of a store of
// records records (200-byte values: 5,000,000 make a store above 1 GB),
// built inside the benchmark, beside references measured in the same run:
//   - backup (uncompressed) against cp of the bbolt file (goal <= 2x);
//   - restore against bbolt compact of the store, with the defaults of the
//     bbolt command (64 KiB transactions, synced: the reference of the
//     goal, restore <= 1x), and tuned (16 MiB transactions, one sync);
//   - the peak anonymous memory (RssAnon: heap and runtime, not the
//     mmap'd store pages) of backup and restore, which must stay under
//     100 MB and flat from 500,000 to 5,000,000 records.
//
// Run it with make bench, or:
//
//	go test -run '^$' -bench BackupRestore -benchtime 1x ./migrator
func BenchmarkBackupRestore(b *testing.B) {
	for _, records := range []int{500_000, 5_000_000} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
			for range b.N {
				benchBackupRestore(b, records)
			}
		})
	}
}

func benchBackupRestore(b *testing.B, records int) {
	b.StopTimer()
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	buildBig(b, src, records)
	info, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(info.Size())/1e6, "store_MB")

	cp := timed(b, func() error {
		dst := filepath.Join(dir, "cp.db")
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		defer os.Remove(dst)
		return syncFile(dst)
	})

	st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	plain := filepath.Join(dir, "b.tar")
	var backupTime time.Duration
	backupRSS := peakRSSAnon(b, func() {
		backupTime = timed(b, func() error {
			_, err := backup.WriteFile(context.Background(), st, generated.Registry, plain, backup.Options{Compression: archive.None})
			return err
		})
	})
	zstd := timed(b, func() error {
		_, err := backup.WriteFile(context.Background(), st, generated.Registry, filepath.Join(dir, "b.tar.zst"), backup.Options{Compression: archive.Zstd})
		return err
	})
	st.Close()
	os.Remove(filepath.Join(dir, "b.tar.zst"))

	compact := timed(b, func() error { return compactTo(src, filepath.Join(dir, "c.db"), 65536, false) })
	compactTuned := timed(b, func() error { return compactTo(src, filepath.Join(dir, "t.db"), 16<<20, true) })
	var restore time.Duration
	restoreRSS := peakRSSAnon(b, func() {
		restore = timed(b, func() error {
			_, err := backup.Restore(context.Background(), generated.Registry, plain, filepath.Join(dir, "r.db"), backup.RestoreOptions{})
			return err
		})
	})

	b.ReportMetric(backupTime.Seconds(), "backup_s")
	b.ReportMetric(cp.Seconds(), "cp_s")
	b.ReportMetric(backupTime.Seconds()/cp.Seconds(), "backup/cp")
	b.ReportMetric(zstd.Seconds(), "backup_zstd_s")
	b.ReportMetric(restore.Seconds(), "restore_s")
	b.ReportMetric(compact.Seconds(), "compact_s")
	b.ReportMetric(restore.Seconds()/compact.Seconds(), "restore/compact")
	b.ReportMetric(compactTuned.Seconds(), "compact_tuned_s")
	b.ReportMetric(restore.Seconds()/compactTuned.Seconds(), "restore/compact_tuned")
	b.ReportMetric(backupRSS/1e6, "backup_peak_anon_MB")
	b.ReportMetric(restoreRSS/1e6, "restore_peak_anon_MB")
}

// buildBig writes records records of 16-byte keys and 200-byte values to
// a new store, with the metadata of a fresh install.
func buildBig(b *testing.B, path string, records int) {
	l, err := bolt.NewLoader(path)
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 6)[:200]
	for i := range records {
		v := append(strconv.AppendInt(nil, int64(i), 10), value...)[:200]
		if err := l.Put("messages", fmt.Appendf(nil, "msg-%012d", i), v); err != nil {
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
	if err := upgrade.Init(st, generated.Registry); err != nil {
		b.Fatal(err)
	}
}

// compactTo is "bbolt compact -o dst -tx-max-size txMax [-no-sync] src",
// in-process with the same calls as the command.
func compactTo(src, dst string, txMax int64, noSync bool) error {
	defer os.Remove(dst)
	s, err := bbolt.Open(src, 0o400, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := bbolt.Open(dst, 0o600, &bbolt.Options{NoSync: noSync})
	if err != nil {
		return err
	}
	if err := bbolt.Compact(d, s, txMax); err != nil {
		d.Close()
		return err
	}
	if noSync {
		if err := d.Sync(); err != nil {
			return err
		}
	}
	return d.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func timed(b *testing.B, fn func() error) time.Duration {
	b.Helper()
	start := time.Now()
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// peakRSSAnon runs fn and returns the largest RssAnon of this process
// sampled every 5 ms meanwhile, after returning free memory to the system
// first so that earlier work does not count.
func peakRSSAnon(b *testing.B, fn func()) float64 {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var peak atomic.Int64
	peak.Store(rssAnon(b))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := rssAnon(b); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return float64(peak.Load())
}

// rssAnon reads RssAnon from /proc/self/status, in bytes.
func rssAnon(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status: ", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Skip("no RssAnon in /proc/self/status")
	return 0
}
