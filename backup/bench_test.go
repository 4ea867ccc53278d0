package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// BenchmarkBackupRestore measures backup and restore of a store of
// records records (200-byte values: 5,000,000 make a store of 1.2 GB),
// built inside the benchmark, beside references measured in the same run
// on the same files, file removal outside every timed region:
//   - floor: reading the store file and hashing it with SHA-256, what a
//     checksummed copy cannot beat; backup (plain) / floor, goal <= 1.3;
//   - copy floor: a checksummed copy of the store file with the backup's
//     sync policy (read, SHA-256, write to a new file, one fsync), the like
//     for like of a plain backup: backup (plain) / copy floor;
//   - the zstd command, "zstd -1 -T2" of the plain archive's bytes;
//     backup (zstd) / zstd, goal <= 1.25; and the same bytes compressed
//     by the zstd library the archive uses, at its level and window on
//     two goroutines (zstd_lib): the library's own cost beside the
//     command's;
//   - the bbolt command built from the bbolt module of go.mod: "bbolt
//     compact --tx-max-size 16777216 --no-sync" (big transactions, no
//     sync at all), restore / compact, goal <= 0.8; the same followed by
//     one fsync of its output (the restore's sync policy: a restored
//     store is durable before it is swapped in); the same followed by
//     "bbolt check" of its output, and by the fsync and the check (the
//     like for like of a restore, which syncs the store it wrote and
//     checks it, bbolt's own check beside its page check: see
//     compactReference); and with the command's defaults (64 KiB
//     transactions, synced); beside the times,
//     the CPU time (user and system) of the restore and of the tuned
//     compact (and of the compact with the check, and with the fsync
//     and the check): a restore decodes and checks on one core while bbolt
//     loads on the other, so on a busy machine its time depends on
//     getting the second core, which its CPU time does not;
//   - cp of the store file, for scale;
//   - the peak anonymous memory (RssAnon: heap and runtime, not the
//     mmap'd store pages) of backup and restore, which must stay under
//     100 MB at every size.
//
// Run it with make bench, or for one size, three times:
//
//	go test -run '^$' -bench 'BackupRestore/records=1000000' -benchtime 1x -count 3 ./backup
func BenchmarkBackupRestore(b *testing.B) {
	tools := referenceTools(b)
	for _, records := range []int{1_000_000, 5_000_000} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
			for range b.N {
				benchBackupRestore(b, tools, records)
			}
		})
	}
}

// tools are the reference commands.
type tools struct{ bbolt, zstd string }

// referenceTools builds the bbolt command from the bbolt module that go.mod
// requires (offline, from the module cache: in a scratch module with this
// module's go.mod and go.sum, so that this go.sum stays as it is) and finds
// the zstd command.
func referenceTools(b *testing.B) tools {
	b.Helper()
	dir := b.TempDir()
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		b.Fatal(err)
	}
	sum, err := os.ReadFile("../go.sum")
	if err != nil {
		b.Fatal(err)
	}
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module bbolttool"))
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), mod, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		b.Fatal(err)
	}
	t := tools{bbolt: filepath.Join(dir, "bbolt")}
	cmd := exec.Command("go", "build", "-o", t.bbolt, "go.etcd.io/bbolt/cmd/bbolt")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the bbolt command from the module cache: %v\n%s", err, out)
	}
	if t.zstd, err = exec.LookPath("zstd"); err != nil {
		b.Fatal("the zstd command is needed as a reference (apt-get install zstd): ", err)
	}
	return t
}

func benchBackupRestore(b *testing.B, tools tools, records int) {
	b.StopTimer()
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	buildBig(b, src, records)
	info, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(info.Size())/1e6, "store_MB")
	run := func(name string, args ...string) func() error {
		return func() error {
			if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", name, err, out)
			}
			return nil
		}
	}

	cp := timed(b, func() error {
		if err := run("cp", src, filepath.Join(dir, "cp.db"))(); err != nil {
			return err
		}
		return syncFile(filepath.Join(dir, "cp.db"))
	})
	os.Remove(filepath.Join(dir, "cp.db"))
	floor := timed(b, func() error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(sha256.New(), f)
		return err
	})

	copyFloor := timed(b, func() error { return checksummedCopy(src, filepath.Join(dir, "copy.db")) })
	os.Remove(filepath.Join(dir, "copy.db"))

	st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	plain, zst := filepath.Join(dir, "b.tar"), filepath.Join(dir, "b.tar.zst")
	var backupTime time.Duration
	backupRSS := peakRSSAnon(b, func() {
		backupTime = timed(b, func() error {
			_, err := backup.WriteFile(context.Background(), st, generated.Registry, plain, backup.Options{Compression: archive.None})
			return err
		})
	})
	var zstdTime time.Duration
	zstdRSS := peakRSSAnon(b, func() {
		zstdTime = timed(b, func() error {
			_, err := backup.WriteFile(context.Background(), st, generated.Registry, zst, backup.Options{Compression: archive.Zstd})
			return err
		})
	})
	st.Close()
	zstdCLI := timed(b, func() error {
		if err := run(tools.zstd, "-q", "-1", "-T2", "-f", plain, "-o", filepath.Join(dir, "cli.zst"))(); err != nil {
			return err
		}
		return syncFile(filepath.Join(dir, "cli.zst"))
	})
	os.Remove(filepath.Join(dir, "cli.zst"))
	zstdLib := timed(b, func() error { return compressLib(plain, filepath.Join(dir, "lib.zst")) })
	os.Remove(filepath.Join(dir, "lib.zst"))

	compact := timed(b, run(tools.bbolt, "compact", "-o", filepath.Join(dir, "c.db"), src))
	os.Remove(filepath.Join(dir, "c.db"))
	children := cpuTime(b, syscall.RUSAGE_CHILDREN)
	compactTuned := timed(b, run(tools.bbolt, "compact", "--tx-max-size", "16777216", "--no-sync", "-o", filepath.Join(dir, "t.db"), src))
	compactTunedCPU := cpuTime(b, syscall.RUSAGE_CHILDREN) - children
	os.Remove(filepath.Join(dir, "t.db"))
	// The like for like of a restore, which writes, syncs and checks the
	// new store: the tuned compact, an fsync of its output, and the bbolt
	// check command on it, one after the other.
	ref := compactReference(b, tools.bbolt, src, filepath.Join(dir, "s.db"))
	os.Remove(filepath.Join(dir, "s.db"))
	compactTunedSync := ref.compact.wall + ref.fsync.wall
	// The floor of a restore through bbolt: the same records, made in
	// memory, through the restore's own loader, nothing else.
	loadFloor := timed(b, func() error { return loadRecords(filepath.Join(dir, "l.db"), records) })
	os.Remove(filepath.Join(dir, "l.db"))
	var restore, restoreZstd, restoreCPU time.Duration
	restoreRSS := peakRSSAnon(b, func() {
		self := cpuTime(b, syscall.RUSAGE_SELF)
		restore = timed(b, func() error {
			_, err := backup.Restore(context.Background(), generated.Registry, plain, filepath.Join(dir, "r.db"), backup.RestoreOptions{})
			return err
		})
		restoreCPU = cpuTime(b, syscall.RUSAGE_SELF) - self
	})
	os.Remove(filepath.Join(dir, "r.db"))
	restoreZstdRSS := peakRSSAnon(b, func() {
		restoreZstd = timed(b, func() error {
			_, err := backup.Restore(context.Background(), generated.Registry, zst, filepath.Join(dir, "z.db"), backup.RestoreOptions{})
			return err
		})
	})

	b.ReportMetric(floor.Seconds(), "floor_s")
	b.ReportMetric(cp.Seconds(), "cp_s")
	b.ReportMetric(backupTime.Seconds(), "backup_s")
	b.ReportMetric(backupTime.Seconds()/floor.Seconds(), "backup/floor")
	b.ReportMetric(copyFloor.Seconds(), "copy_floor_s")
	b.ReportMetric(backupTime.Seconds()/copyFloor.Seconds(), "backup/copy_floor")
	b.ReportMetric(zstdTime.Seconds(), "backup_zstd_s")
	b.ReportMetric(zstdCLI.Seconds(), "zstd_cli_s")
	b.ReportMetric(zstdTime.Seconds()/zstdCLI.Seconds(), "backup_zstd/zstd_cli")
	b.ReportMetric(zstdLib.Seconds(), "zstd_lib_s")
	b.ReportMetric(zstdLib.Seconds()/zstdCLI.Seconds(), "zstd_lib/zstd_cli")
	b.ReportMetric(zstdTime.Seconds()/zstdLib.Seconds(), "backup_zstd/zstd_lib")
	b.ReportMetric(restore.Seconds(), "restore_s")
	b.ReportMetric(restoreZstd.Seconds(), "restore_zstd_s")
	b.ReportMetric(compactTuned.Seconds(), "compact_tuned_s")
	b.ReportMetric(restore.Seconds()/compactTuned.Seconds(), "restore/compact_tuned")
	b.ReportMetric(restoreCPU.Seconds(), "restore_cpu_s")
	b.ReportMetric(compactTunedCPU.Seconds(), "compact_tuned_cpu_s")
	b.ReportMetric(restoreCPU.Seconds()/compactTunedCPU.Seconds(), "restore_cpu/compact_tuned_cpu")
	b.ReportMetric(compactTunedSync.Seconds(), "compact_tuned_fsync_s")
	b.ReportMetric(restore.Seconds()/compactTunedSync.Seconds(), "restore/compact_tuned_fsync")
	checked, full := ref.compact.add(ref.check), ref.compact.add(ref.fsync).add(ref.check)
	b.ReportMetric(checked.wall.Seconds(), "compact_tuned_check_s")
	b.ReportMetric(restore.Seconds()/checked.wall.Seconds(), "restore/compact_tuned_check")
	b.ReportMetric(restoreCPU.Seconds()/checked.cpu.Seconds(), "restore_cpu/compact_tuned_check_cpu")
	b.ReportMetric(full.wall.Seconds(), "compact_tuned_fsync_check_s")
	b.ReportMetric(restore.Seconds()/full.wall.Seconds(), "restore/compact_tuned_fsync_check")
	b.ReportMetric(restoreCPU.Seconds()/full.cpu.Seconds(), "restore_cpu/compact_tuned_fsync_check_cpu")
	b.ReportMetric(loadFloor.Seconds(), "load_floor_s")
	b.ReportMetric(loadFloor.Seconds()/compactTuned.Seconds(), "load_floor/compact_tuned")
	b.ReportMetric(restore.Seconds()/loadFloor.Seconds(), "restore/load_floor")
	b.ReportMetric(compact.Seconds(), "compact_s")
	b.ReportMetric(restore.Seconds()/compact.Seconds(), "restore/compact")
	b.ReportMetric(max(backupRSS, zstdRSS)/1e6, "backup_peak_anon_MB")
	b.ReportMetric(max(restoreRSS, restoreZstdRSS)/1e6, "restore_peak_anon_MB")
}

// compressLib compresses the file src into dst, synced, with the zstd
// library the archive uses, at the archive's level and window, on two
// goroutines (the library's own concurrency): what compression alone
// costs with this library, without reading a store, hashing or taring.
func compressLib(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(4<<20), zstd.WithEncoderConcurrency(2))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, in); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Sync()
}

// buildBig writes records records of 16-byte keys and 200-byte values to
// a new store, with the metadata of a fresh install.
func buildBig(b *testing.B, path string, records int) {
	if err := loadRecords(path, records); err != nil {
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

// loadRecords writes the records buildBig writes (without the upgrade
// metadata), made in memory as they are loaded, into the new store file
// path through bolt.Loader, as a restore loads them (the same batches,
// pages filled, one sync at the end), and nothing else: no archive read,
// no check of the new store. It is the floor of a restore that writes
// through bbolt.
func loadRecords(path string, records int) error {
	l, err := bolt.NewLoader(path)
	if err != nil {
		return err
	}
	defer l.Abort()
	if err := l.Table([]string{"messages"}, 0); err != nil {
		return err
	}
	value := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 6)[:200]
	key, v := []byte("msg-000000000000"), make([]byte, 0, 220)
	for i := range records {
		if i > 0 { // the next key, "msg-%012d" of i, without formatting it
			for d := len(key) - 1; ; d-- {
				if key[d]++; key[d] <= '9' {
					break
				}
				key[d] = '0'
			}
		}
		v = append(strconv.AppendInt(v[:0], int64(i), 10), value...)[:200]
		if err := l.Record(key, v); err != nil {
			return err
		}
	}
	if want := fmt.Sprintf("msg-%012d", records-1); string(key) != want {
		return fmt.Errorf("the last key loaded is %s, not %s", key, want)
	}
	return l.Finish()
}

// checksummedCopy copies src to the new file dst through SHA-256, in
// 1 MiB reads and writes, and syncs dst once: what a plain backup does
// with the bytes of the store, without the archive.
func checksummedCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := out.Write(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	h.Sum(nil)
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// cost is the wall time and CPU time of a step.
type cost struct{ wall, cpu time.Duration }

func (c cost) add(d cost) cost { return cost{c.wall + d.wall, c.cpu + d.cpu} }

// compactRef is the cost of each step of compactReference.
type compactRef struct{ compact, fsync, check cost }

// compactReference does what a restore does to the store it writes, with
// the bbolt command: "bbolt compact --tx-max-size 16777216 --no-sync" of
// src into out (the restore's writing), one fsync of out in this process
// (its sync), then "bbolt check" of out (bbolt's own check of the new
// store, which a restore runs beside its page check). The CPU time of the
// commands is their own (children's), the fsync's this process's. A
// restore overlaps its check with its sync, the reference runs them one
// after the other: their wall times add up, their CPU times alike.
func compactReference(b *testing.B, bboltCmd, src, out string) compactRef {
	b.Helper()
	var ref compactRef
	step := func(who int, fn func() error) cost {
		c0 := cpuTime(b, who)
		wall := timed(b, fn)
		return cost{wall, cpuTime(b, who) - c0}
	}
	command := func(args ...string) func() error {
		return func() error {
			if out, err := exec.Command(bboltCmd, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("bbolt %s: %v: %s", args[0], err, out)
			}
			return nil
		}
	}
	ref.compact = step(syscall.RUSAGE_CHILDREN, command("compact", "--tx-max-size", "16777216", "--no-sync", "-o", out, src))
	ref.fsync = step(syscall.RUSAGE_SELF, func() error { return syncFile(out) })
	ref.check = step(syscall.RUSAGE_CHILDREN, command("check", out))
	return ref
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// cpuTime returns the user and system CPU time used so far by this
// process (who is syscall.RUSAGE_SELF) or by its children that were
// waited for (syscall.RUSAGE_CHILDREN).
func cpuTime(b *testing.B, who int) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkManyChunks verifies and restores an archive of 1,000,000
// one-record chunks (a million members: what a hostile or unlucky writer
// can make) and reports the peak anonymous memory of each, which must
// stay under 100 MB: a reader keeps 8 bytes a member, not its name.
func BenchmarkManyChunks(b *testing.B) {
	const records = 1_000_000
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	l, err := bolt.NewLoader(src)
	if err != nil {
		b.Fatal(err)
	}
	for i := range records {
		if err := l.Put("events", fmt.Appendf(nil, "e%07d", i), []byte("x")); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Finish(); err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(src, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := upgrade.Init(st, generated.Registry); err != nil {
		b.Fatal(err)
	}
	var normal bytes.Buffer
	if _, err := backup.Backup(st, generated.Registry, &normal, backup.Options{}); err != nil {
		b.Fatal(err)
	}
	st.Close()
	chunked := filepath.Join(dir, "chunks.tar.zst")
	rechunk(b, normal.Bytes(), chunked)
	info, err := os.Stat(chunked)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		verifyRSS := peakRSSAnon(b, func() {
			f, err := os.Open(chunked)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if _, err := backup.Verify(f, chunked); err != nil {
				b.Fatal(err)
			}
		})
		restored := filepath.Join(dir, "r.db")
		restoreRSS := peakRSSAnon(b, func() {
			if _, err := backup.Restore(context.Background(), generated.Registry, chunked, restored, backup.RestoreOptions{}); err != nil {
				b.Fatal(err)
			}
		})
		os.Remove(restored)
		b.ReportMetric(verifyRSS/1e6, "verify_peak_anon_MB")
		b.ReportMetric(restoreRSS/1e6, "restore_peak_anon_MB")
	}
	b.ReportMetric(float64(info.Size())/1e6, "archive_MB")
}

// rechunk rewrites an archive with one record a chunk.
func rechunk(b *testing.B, data []byte, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var w *archive.Writer
	_, err = archive.Read(bytes.NewReader(data), archive.Handler{
		Manifest: func(m archive.Manifest) (err error) {
			w, err = archive.NewWriter(f, m, archive.Options{ChunkSize: 1})
			return err
		},
		Table:  func(t archive.TableInfo) error { return w.Table(t.Path()...) },
		Record: func(key, value []byte) error { return w.Record(key, value) },
		Config: func(c archive.ConfigFile, data []byte) error { return w.Config(c.Path, c.Mode, data) },
	})
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
}

// buildNested builds a store of records like buildBig's, the same keys
// and values, split into tables of perTable records nested in the
// top-level table "messages" (records/perTable of them).
func buildNested(b *testing.B, path string, records, perTable int) {
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	value := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 6)[:200]
	for start := 0; start < records; start += 100 * perTable {
		tx, err := st.Begin(true)
		if err != nil {
			b.Fatal(err)
		}
		top, err := tx.CreateTable("messages")
		if err != nil {
			b.Fatal(err)
		}
		for i := start; i < min(records, start+100*perTable); i++ {
			if i%perTable == 0 {
				if top, err = tx.Table("messages"); err == nil {
					_, err = top.CreateTable(fmt.Sprintf("b-%08d", i/perTable))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			t, err := top.Table(fmt.Sprintf("b-%08d", i/perTable))
			if err != nil {
				b.Fatal(err)
			}
			v := append(strconv.AppendInt(nil, int64(i), 10), value...)[:200]
			if err := t.Put(fmt.Appendf(nil, "msg-%012d", i), v); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if err := upgrade.Init(st, generated.Registry); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNested compares backup, verify and restore of 1,000,000
// records in 100,000 nested tables with the same records in one table
// (CPU of this process; goal <= 1.25 each), the restore's CPU with that
// of "bbolt compact --tx-max-size 16777216 --no-sync" of the same store in
// the same run (the bbolt command built from the bbolt module of go.mod,
// as BenchmarkBackupRestore does; goal <= 1.0 on the nested store), the
// plain archive's size with the records' (goal <= 1.1) and the peak
// anonymous memory of the nested restore (goal < 100 MB). The restore
// also syncs the store it wrote and checks it, which the compact does not:
// beside the plain compact, the same compact followed by "bbolt check" of
// its output, and by an fsync of it and the check (compactReference), of
// each store, are the like for like of its CPU. Beside them, the
// CPU of a bare bbolt walk of each store (bareWalk: what bbolt itself
// costs to visit every bucket and record once; a backup walks twice, to
// count and to copy) and how much of the nested backup's extra CPU over
// the flat one two such walks account for (2walks-gap/backup-gap), the
// least nested/flat ratio of any backup that reads through bbolt (the
// flat backup's CPU plus the walks' extra on the nested store: two walks
// in this format, one in a format with the totals at the end), and
// the compact's CPU on the nested store over the flat one's (what bbolt
// itself pays for writing nested data, beside the restore's ratio).
//
//	go test -run '^$' -bench 'Nested' -benchtime 1x -count 3 ./backup
func BenchmarkNested(b *testing.B) {
	const records, perTable = 1_000_000, 10
	tools := referenceTools(b)
	dir := b.TempDir()
	flat, nested := filepath.Join(dir, "flat.db"), filepath.Join(dir, "nested.db")
	buildBig(b, flat, records)
	buildNested(b, nested, records, perTable)
	recordBytes := int64(records) * (16 + 200)
	for range b.N {
		cpu := map[string][2]time.Duration{}
		var sizes [2]int64
		var rss float64
		for i, src := range []string{flat, nested} {
			out := filepath.Join(dir, fmt.Sprintf("b%d.tar", i))
			os.Remove(out)
			st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			c0 := cpuTime(b, syscall.RUSAGE_SELF)
			if _, err := backup.WriteFile(b.Context(), st, generated.Registry, out, backup.Options{Compression: archive.None}); err != nil {
				b.Fatal(err)
			}
			c1 := cpuTime(b, syscall.RUSAGE_SELF)
			st.Close()
			f, err := os.Open(out)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := backup.Verify(f, out); err != nil {
				b.Fatal(err)
			}
			f.Close()
			c2 := cpuTime(b, syscall.RUSAGE_SELF)
			dst := filepath.Join(dir, fmt.Sprintf("r%d.db", i))
			os.Remove(dst)
			restore := func() {
				if _, err := backup.Restore(b.Context(), generated.Registry, out, dst, backup.RestoreOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			if i == 1 {
				rss = peakRSSAnon(b, restore)
			} else {
				restore()
			}
			c3 := cpuTime(b, syscall.RUSAGE_SELF)
			for what, d := range map[string]time.Duration{"backup": c1 - c0, "verify": c2 - c1, "restore": c3 - c2} {
				v := cpu[what]
				v[i] = d
				cpu[what] = v
			}
			info, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			sizes[i] = info.Size()
		}
		var compactCPU, checkedCPU, fullCPU [2]time.Duration
		for i, src := range []string{flat, nested} {
			out := filepath.Join(dir, fmt.Sprintf("c%d.db", i))
			os.Remove(out)
			ref := compactReference(b, tools.bbolt, src, out)
			compactCPU[i] = ref.compact.cpu
			checkedCPU[i] = ref.compact.cpu + ref.check.cpu
			fullCPU[i] = ref.compact.cpu + ref.fsync.cpu + ref.check.cpu
			os.Remove(out)
		}
		// What bbolt itself costs to visit every bucket and record once,
		// in key order (a backup walks the store twice: to count, then
		// to copy).
		var walkCPU [2]time.Duration
		for i, src := range []string{flat, nested} {
			walkCPU[i] = bareWalk(b, src)
		}
		for what, v := range cpu {
			b.ReportMetric(float64(v[1])/float64(v[0]), what+"-nested/flat")
			b.ReportMetric(v[0].Seconds(), what+"-flat-cpu-s")
			b.ReportMetric(v[1].Seconds(), what+"-nested-cpu-s")
		}
		b.ReportMetric(walkCPU[0].Seconds(), "walk-flat-cpu-s")
		b.ReportMetric(walkCPU[1].Seconds(), "walk-nested-cpu-s")
		// The share of the nested backup's extra CPU that two bare walks
		// of bbolt's account for (1: all of it).
		b.ReportMetric(float64(2*(walkCPU[1]-walkCPU[0]))/float64(cpu["backup"][1]-cpu["backup"][0]), "2walks-gap/backup-gap")
		// The least nested/flat ratio of a backup that reads the store
		// through bbolt and does nothing else more for nested data than
		// the flat backup does: its walks' extra CPU on the nested store
		// over the flat backup's CPU. With the totals first, as this
		// format has them, it walks twice; a format with the totals at
		// the end could walk once.
		gap, flatBackup := walkCPU[1]-walkCPU[0], cpu["backup"][0]
		b.ReportMetric(float64(flatBackup+2*gap)/float64(flatBackup), "backup-floor-2walks-nested/flat")
		b.ReportMetric(float64(flatBackup+gap)/float64(flatBackup), "backup-floor-1walk-nested/flat")
		b.ReportMetric(compactCPU[0].Seconds(), "compact-flat-cpu-s")
		// bbolt's own cost of nested data, for the restore's ratio.
		b.ReportMetric(float64(compactCPU[1])/float64(compactCPU[0]), "compact-nested/flat")
		b.ReportMetric(compactCPU[1].Seconds(), "compact-nested-cpu-s")
		b.ReportMetric(float64(cpu["restore"][1])/float64(compactCPU[1]), "restore-nested/compact-nested")
		b.ReportMetric(float64(cpu["restore"][0])/float64(compactCPU[0]), "restore-flat/compact-flat")
		// Like for like: the restore syncs and checks the store it
		// writes; the compact then "bbolt check", and with an fsync of
		// the compacted file between them.
		b.ReportMetric(float64(checkedCPU[1])/float64(checkedCPU[0]), "compact+check-nested/flat")
		b.ReportMetric(float64(fullCPU[1])/float64(fullCPU[0]), "compact+fsync+check-nested/flat")
		b.ReportMetric(float64(cpu["restore"][1])/float64(checkedCPU[1]), "restore-nested/compact+check-nested")
		b.ReportMetric(float64(cpu["restore"][0])/float64(checkedCPU[0]), "restore-flat/compact+check-flat")
		b.ReportMetric(float64(cpu["restore"][1])/float64(fullCPU[1]), "restore-nested/compact+fsync+check-nested")
		b.ReportMetric(float64(cpu["restore"][0])/float64(fullCPU[0]), "restore-flat/compact+fsync+check-flat")
		b.ReportMetric(checkedCPU[1].Seconds(), "compact+check-nested-cpu-s")
		b.ReportMetric(checkedCPU[0].Seconds(), "compact+check-flat-cpu-s")
		b.ReportMetric(float64(sizes[1])/float64(recordBytes), "nested-archive/records")
		b.ReportMetric(float64(sizes[0])/float64(recordBytes), "flat-archive/records")
		b.ReportMetric(rss, "nested-restore-RssAnon-bytes")
	}
}

// bareWalk returns the CPU time of a plain bbolt walk of the store file
// path, with nothing but bbolt: every bucket at every depth opened and
// every record read once, in key order, with one cursor a level, in one
// read-only transaction: the floor of each of a backup's two walks.
func bareWalk(b *testing.B, path string) time.Duration {
	b.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var records int
	var walk func(bk *bbolt.Bucket)
	walk = func(bk *bbolt.Bucket) {
		c := bk.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				walk(bk.Bucket(k))
				continue
			}
			records++
		}
	}
	c0 := cpuTime(b, syscall.RUSAGE_SELF)
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, bk *bbolt.Bucket) error {
			walk(bk)
			return nil
		})
	})
	d := cpuTime(b, syscall.RUSAGE_SELF) - c0
	if err != nil {
		b.Fatal(err)
	}
	if records < 1_000_000 {
		b.Fatalf("the walk of %s read %d records", path, records)
	}
	return d
}

// BenchmarkManyTablesStore backs up, verifies, restores and upgrades
// offline (backup.UpgradeFile: a restore, the upgrade, a zstd backup) a
// bbolt store of ten million tables (HOOKREG_BENCH_TABLES sets another
// number, rounded to the thousand), through bbolt for real, and reports
// the time and the peak anonymous memory (RssAnon) of each, which must
// stay under 100 MB: memory is bounded by the batch sizes and the depth
// of nesting, never by the number of tables. The store: a top-level table
// "t" holding groups of 1,000 tables, each group with a record before its
// tables and one after them, every other table with one record and the
// rest empty. With ten million tables it takes several minutes:
//
//	go test -run '^$' -bench 'ManyTablesStore' -benchtime 1x ./backup
func BenchmarkManyTablesStore(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("HOOKREG_BENCH_TABLES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("HOOKREG_BENCH_TABLES=%q: want a number of at least 1000", v)
		}
	}
	const perGroup = 1000
	groups := n / perGroup
	tables := 1 + groups + groups*perGroup
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	start := time.Now()
	buildManyTables(b, src, groups, perGroup)
	b.ReportMetric(time.Since(start).Seconds(), "build_s")
	info, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(info.Size())/1e6, "store_MB")
	for range b.N {
		ctx := context.Background()
		arch := filepath.Join(dir, "b.tar.zst")
		os.Remove(arch)
		phase := func(name string, fn func() error) {
			var d time.Duration
			rss := peakRSSAnon(b, func() { d = timed(b, fn) })
			b.ReportMetric(d.Seconds(), name+"_s")
			b.ReportMetric(rss/1e6, name+"_peak_anon_MB")
		}
		phase("backup", func() error {
			st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			defer st.Close()
			m, err := backup.WriteFile(ctx, st, generated.Registry, arch, backup.Options{})
			if err == nil && m.TableCount != int64(tables)+1 { // and the metadata table
				err = fmt.Errorf("the backup holds %d tables, want %d", m.TableCount, tables+1)
			}
			return err
		})
		phase("verify", func() error {
			f, err := os.Open(arch)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = backup.Verify(f, arch)
			return err
		})
		restored := filepath.Join(dir, "r.db")
		os.Remove(restored)
		phase("restore", func() error {
			_, err := backup.Restore(ctx, generated.Registry, arch, restored, backup.RestoreOptions{})
			return err
		})
		os.Remove(restored)
		work := filepath.Join(dir, "work")
		os.RemoveAll(work)
		if err := os.Mkdir(work, 0o700); err != nil {
			b.Fatal(err)
		}
		upgraded := filepath.Join(dir, "u.tar.zst")
		os.Remove(upgraded)
		phase("upgrade_offline", func() error {
			_, err := backup.UpgradeFile(ctx, generated.Registry, arch, upgraded, work, backup.UpgradeOptions{})
			return err
		})
		os.RemoveAll(work)
		if info, err := os.Stat(arch); err == nil {
			b.ReportMetric(float64(info.Size())/1e6, "archive_MB")
		}
	}
	b.ReportMetric(float64(tables), "tables")
}

// buildManyTables writes the store of BenchmarkManyTablesStore: groups
// groups of perGroup tables in the top-level table "t".
func buildManyTables(b *testing.B, path string, groups, perGroup int) {
	l, err := bolt.NewLoader(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Abort()
	value := []byte("0123456789abcdef")
	top := []string{"t"}
	if err := l.Table(top, 0); err != nil {
		b.Fatal(err)
	}
	for g := range groups {
		group := []string{"t", fmt.Sprintf("g%06d", g)}
		if err := l.Table(group, uint64(g)); err != nil {
			b.Fatal(err)
		}
		if err := l.Record([]byte("a"), value); err != nil {
			b.Fatal(err)
		}
		for i := range perGroup {
			if err := l.Table([]string{group[0], group[1], fmt.Sprintf("n%04d", i)}, 0); err != nil {
				b.Fatal(err)
			}
			if i%2 == 1 {
				if err := l.Record([]byte("k"), value); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := l.Table(group, 0); err != nil { // back to the group
			b.Fatal(err)
		}
		if err := l.Record([]byte("z"), value); err != nil {
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
