package backup_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// BenchmarkBackupEtcd backs up an etcd store of 100k × 200 B records (and
// the example product's small data) on a three-member cluster on
// loopback, beside the reference: Maintenance.Snapshot of the same
// cluster, streamed into a file and synced, as the backup's archive is.
// The backup reads through linearizable range reads at one revision, the
// snapshot copies the member's database file. ratio = backup / snapshot
// in seconds, for a plain and a zstd archive, each from the fastest of
// three rounds (goal <= 3).
func BenchmarkBackupEtcd(b *testing.B) {
	c := cluster(b)
	dir := b.TempDir()
	arc, _ := boltArchive(b, dir, "bench", func(tx store.Tx) error {
		return fillTable(tx, "users", restoreBenchRecords)
	})
	prefix := etcdtest.Prefix(b)
	w, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := backup.RestoreEtcd(context.Background(), generated.Registry, arc, w, backup.RestoreOptions{}); err != nil {
		b.Fatal(err)
	}
	w.Close()
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	timed := func(f func(path string) error) time.Duration {
		path := filepath.Join(dir, "out")
		start := time.Now()
		if err := f(path); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		os.Remove(path)
		return d
	}
	backupTo := func(comp archive.Compression) func(string) error {
		return func(path string) error {
			_, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{Compression: comp})
			return err
		}
	}
	snapshot := func(path string) error {
		r, err := st.Client().Snapshot(context.Background())
		if err != nil {
			return err
		}
		defer r.Close()
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return err
		}
		return f.Sync()
	}
	const rounds = 3
	plain, zstd, snap := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for range b.N * rounds {
		snap = min(snap, timed(snapshot))
		plain = min(plain, timed(backupTo(archive.None)))
		zstd = min(zstd, timed(backupTo(archive.Zstd)))
	}
	b.ReportMetric(plain.Seconds(), "backup-s")
	b.ReportMetric(zstd.Seconds(), "backup-zstd-s")
	b.ReportMetric(snap.Seconds(), "snapshot-s")
	b.ReportMetric(plain.Seconds()/snap.Seconds(), "ratio")
	b.ReportMetric(zstd.Seconds()/snap.Seconds(), "zstd-ratio")
}
