package backup_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/migrator/etcdstore"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// BenchmarkBackupEtcd backs up an etcd store of 100k × 200 B records (and
// the example product's small data) on a three-member cluster on
// loopback, beside the reference: Maintenance.Snapshot of the same
// cluster, streamed into a file and synced, as the backup's archive is.
// The backup reads through linearizable range reads at one revision, the
// snapshot copies the member's database file. The cluster is the
// benchmark's own, compacted and defragmented once the data is in, so
// that the snapshot copies the live data the backup reads and nothing
// else: the package's shared cluster holds whatever the tests that ran
// before left (go test -bench . runs them first), which made the
// snapshot larger than the data. Both sides write a file and fsync it;
// the rounds interleave them, so that a change of the machine's load
// touches both. ratio = backup / snapshot in seconds, for a plain and a
// zstd archive, each from the fastest of five rounds; median-ratio is
// the ratio of the medians (goal <= 3). The backup is CPU-bound (range
// reads on the members, which run in this process, protobuf, SHA-256),
// the snapshot mostly copies, so the ratio grows with the machine's load.
// The second reference is what `etcdctl snapshot save` runs
// (snapshot.SaveWithVersion of the etcd client module in go.mod: a new
// client of one member, the snapshot into a file, fsync, rename), beside
// what `migrator backup` runs (a read-only Open, the plain backup, Close):
// etcdctl-ratio = migrator / etcdctl from the fastest of five rounds of
// each (goal <= 1.5), etcdctl-median-ratio from the medians,
// etcdctl-cpu-ratio in the process's CPU time of all rounds (the members,
// in this process, included).
func BenchmarkBackupEtcd(b *testing.B) {
	c, err := etcdtest.Start(etcdtest.Config{Members: 3})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	dir := b.TempDir()
	arc, _ := boltArchive(b, dir, "bench", func(tx store.Tx) error {
		return fillTable(tx, "users", restoreBenchRecords)
	})
	prefix := etcdtest.Prefix(b)
	w, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := backup.RestoreEtcd(context.Background(), generated.Registry, arc, etcdstore.Target(w), backup.RestoreOptions{}); err != nil {
		b.Fatal(err)
	}
	w.Close()
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var dbSize int64
	cli := st.Client()
	resp, err := cli.Get(context.Background(), "/")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		b.Fatal(err)
	}
	for _, ep := range c.Endpoints {
		if _, err := cli.Defragment(context.Background(), ep); err != nil {
			b.Fatal(err)
		}
		s, err := cli.Status(context.Background(), ep)
		if err != nil {
			b.Fatal(err)
		}
		dbSize = max(dbSize, s.DbSize)
	}
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
	snapshotFile := func(path string) error {
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
	// What `etcdctl snapshot save` runs (snapshot.SaveWithVersion): a new
	// client of one member, the snapshot into a .part file, fsync,
	// rename; beside what `migrator backup` runs: a read-only Open, the
	// backup, Close.
	etcdctl := func(path string) error {
		_, err := snapshot.SaveWithVersion(context.Background(), zap.NewNop(), clientv3.Config{Endpoints: c.Endpoints[:1]}, path)
		return err
	}
	migratorBackup := func(path string) error {
		st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, ReadOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{}); err != nil {
			return err
		}
		return st.Close()
	}
	// cpu runs f like timed and adds the process's CPU time meanwhile
	// (the members run in this process) to *total.
	cpu := func(total *time.Duration, f func(path string) error) time.Duration {
		before := cpuTime(b, syscall.RUSAGE_SELF)
		d := timed(f)
		*total += cpuTime(b, syscall.RUSAGE_SELF) - before
		return d
	}
	const rounds = 5
	var plain, zstd, snap, ctl, mig []time.Duration
	var ctlCPU, migCPU time.Duration
	b.ResetTimer()
	for range b.N * rounds {
		snap = append(snap, timed(snapshotFile))
		plain = append(plain, timed(backupTo(archive.None)))
		zstd = append(zstd, timed(backupTo(archive.Zstd)))
		ctl = append(ctl, cpu(&ctlCPU, etcdctl))
		mig = append(mig, cpu(&migCPU, migratorBackup))
	}
	b.StopTimer()
	minimum := func(d []time.Duration) float64 { return slices.Min(d).Seconds() }
	median := func(d []time.Duration) float64 {
		d = slices.Sorted(slices.Values(d))
		return d[len(d)/2].Seconds()
	}
	b.ReportMetric(minimum(plain), "backup-s")
	b.ReportMetric(minimum(zstd), "backup-zstd-s")
	b.ReportMetric(minimum(snap), "snapshot-s")
	b.ReportMetric(float64(dbSize)/1e6, "db-MB")
	b.ReportMetric(minimum(plain)/minimum(snap), "ratio")
	b.ReportMetric(median(plain)/median(snap), "median-ratio")
	b.ReportMetric(minimum(zstd)/minimum(snap), "zstd-ratio")
	b.ReportMetric(minimum(ctl), "etcdctl-s")
	b.ReportMetric(minimum(mig), "migrator-s")
	b.ReportMetric(minimum(mig)/minimum(ctl), "etcdctl-ratio")
	b.ReportMetric(median(mig)/median(ctl), "etcdctl-median-ratio")
	b.ReportMetric(migCPU.Seconds()/ctlCPU.Seconds(), "etcdctl-cpu-ratio")
}
