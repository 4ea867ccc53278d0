package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/migrator/etcdstore"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// dbSizes polls the largest database size of the members of c until stop
// is closed, and returns the largest it saw.
func dbSizes(c *etcdtest.Cluster, st *etcd.Store, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			for _, ep := range c.Endpoints {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				if r, err := st.Client().Status(ctx, ep); err == nil {
					peak = max(peak, r.DbSize)
				}
				cancel()
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

// Archives of different shapes, written by these fills (beside the
// example product's data).
var (
	smallRecords = func(tx store.Tx) error {
		tb, err := tx.CreateTable("small")
		if err != nil {
			return err
		}
		for i := range 10000 {
			if err := tb.Put(fmt.Appendf(nil, "key%06d", i), fmt.Appendf(nil, "a small value of record %06d", i)); err != nil {
				return err
			}
		}
		return nil
	}
	largeValues = func(tx store.Tx) error {
		tb, err := tx.CreateTable("large")
		if err != nil {
			return err
		}
		for i := range 12 {
			if err := tb.Put(fmt.Appendf(nil, "blob%02d", i), bytes.Repeat([]byte{byte('a' + i)}, 600<<10)); err != nil {
				return err
			}
		}
		return nil
	}
	manyTables = func(tx store.Tx) error {
		for i := range 400 {
			tb, err := tx.CreateTable(fmt.Sprintf("table %03d ä", i))
			if err != nil {
				return err
			}
			for j := range 5 {
				if err := tb.Put(fmt.Appendf(nil, "k%d", j), bytes.Repeat([]byte{'v'}, 100)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	exampleOnly = func(store.Tx) error { return nil }
)

// TestEtcdSpaceNeeded restores archives of several shapes into a new
// cluster, one after the other (the old generation stays until the new one
// is current, and its removal writes a tombstone per key), and compares
// the growth of the database size (etcd's DbSize, which its quota checks)
// with EtcdSpaceNeeded: the estimate must cover the largest growth seen
// during the restore and stay within maxSpaceRatio of it.
func TestEtcdSpaceNeeded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fills []func(store.Tx) error
	}{
		{"small records", []func(store.Tx) error{smallRecords, smallRecords}},
		{"large values", []func(store.Tx) error{largeValues, largeValues}},
		{"many tables", []func(store.Tx) error{manyTables, manyTables}},
		{"small over many", []func(store.Tx) error{smallRecords, exampleOnly}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := etcdtest.Start(etcdtest.Config{Members: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			st := openEtcd(t, c.Endpoints, etcdtest.Prefix(t))
			for i, fill := range tc.fills {
				arc, _ := boltArchive(t, t.TempDir(), "shape", fill)
				before, err := st.Status()
				if err != nil {
					t.Fatal(err)
				}
				m := verifyEtcd(t, arc, st)
				need, err := backup.EtcdSpaceNeeded(etcdstore.Target(st), m)
				if err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				peak := dbSizes(c, st, stop)
				if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
				// etcd commits its backend every 100 ms
				// (--backend-batch-interval); DbSize follows.
				time.Sleep(300 * time.Millisecond)
				close(stop)
				grew := <-peak - before.DBSize
				var data int64
				for _, tb := range m.Tables {
					data += tb.Bytes
				}
				t.Logf("restore %d: %d bytes of records; the database grew by %d (%d to %d), estimate %d (%.2fx)", i+1, data, grew, before.DBSize, before.DBSize+grew, need, float64(need)/float64(max(grew, 1)))
				if need < grew {
					t.Errorf("restore %d: the database grew by %d bytes, more than the estimate %d", i+1, grew, need)
				}
				if need > maxSpaceRatio*grew {
					t.Errorf("restore %d: the estimate %d is more than %dx the growth %d", i+1, need, maxSpaceRatio, grew)
				}
			}
		})
	}
}

// maxSpaceRatio bounds the estimate against the real growth: the estimate
// adds a quarter and 1 MiB as margin, and counts 128 bytes per record
// where etcd uses about 60, so a restore of a few hundred kB (where the
// 1 MiB dominates) comes out near 3x, a larger one below 2.5x.
const maxSpaceRatio = 4

// verifyEtcd checks the archive at path for the store st and returns its
// manifest.
func verifyEtcd(t testing.TB, path string, st *etcd.Store) *archive.Manifest {
	t.Helper()
	f, err := backup.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.VerifyEtcd(f, path, etcdstore.Target(st))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEtcdSpaceQuota: in a cluster with a small quota, filled so that a
// restore over the current data just fits the estimate (less than 512 kB
// to spare), the restore succeeds without raising the NOSPACE alarm; with
// a little more data in the cluster, the estimate refuses it before
// anything is written. The restore past half the quota warns, with the
// figures; the first, into an empty cluster, does not.
func TestEtcdSpaceQuota(t *testing.T) {
	const quota, spare = 16 << 20, 512 << 10
	c, err := etcdtest.Start(etcdtest.Config{Members: 1, QuotaBackendBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	st := openEtcd(t, c.Endpoints, etcdtest.Prefix(t))
	cli := st.Client()
	arc, want := boltArchive(t, t.TempDir(), "small", smallRecords)
	var warned strings.Builder
	if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{Warn: &warned}); err != nil {
		t.Fatal(err)
	}
	if warned.Len() > 0 {
		t.Errorf("a restore into an empty cluster warned: %s", warned.String())
	}
	need, err := backup.EtcdSpaceNeeded(etcdstore.Target(st), verifyEtcd(t, arc, st))
	if err != nil {
		t.Fatal(err)
	}
	// pad grows the database, beside the store, until the restore has
	// less than room bytes to spare under the quota.
	pads := 0
	pad := func(room int64) int64 {
		t.Helper()
		for {
			time.Sleep(300 * time.Millisecond) // DbSize follows the backend's commits
			s, err := st.Status()
			if err != nil {
				t.Fatal(err)
			}
			left := quota - s.DBSize - need
			if left < room {
				return s.DBSize
			}
			// A quarter of what is left, in values of 1,000 bytes, 100
			// a txn: they grow the database by up to twice their size
			// (fewer fit a page than their size says).
			v := strings.Repeat("p", 1000)
			for n := int64(0); n < max(left/4, 1<<10); n += 100 * int64(len(v)) {
				var ops []clientv3.Op
				for range 100 {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("/pad/%08d", pads), v))
					pads++
				}
				if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	before := pad(spare)
	if before+need > quota {
		t.Fatalf("padded too far: %d + %d > %d", before, need, quota)
	}
	if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{Warn: &warned}); err != nil {
		t.Fatalf("a restore the estimate allows (%d bytes needed on %d of %d): %v", need, before, quota, err)
	}
	if !strings.Contains(warned.String(), fmt.Sprintf("of its %d-byte quota", quota)) || !strings.Contains(warned.String(), "past half of it") {
		t.Errorf("a restore past half the quota: warned %q, want the figures", warned.String())
	}
	if got := logicalDump(t, st); got != want {
		t.Fatalf("after the restore: %.200s", got)
	}
	time.Sleep(300 * time.Millisecond)
	after, err := st.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Alarms) > 0 {
		t.Fatalf("the restore raised alarms: %v", after.Alarms)
	}
	t.Logf("%d bytes needed on %d of %d: the database went to %d", need, before, quota, after.DBSize)

	// Now the estimate no longer fits: refused, nothing written.
	need, err = backup.EtcdSpaceNeeded(etcdstore.Target(st), verifyEtcd(t, arc, st))
	if err != nil {
		t.Fatal(err)
	}
	if after.DBSize+need <= quota {
		t.Fatalf("the database grew to %d only: the next restore (%d bytes needed) still fits", after.DBSize, need)
	}
	_, err = backup.RestoreEtcd(t.Context(), generated.Registry, arc, etcdstore.Target(st), backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("a restore needing %d bytes on %d of %d: %v, want the quota refusal", need, after.DBSize, quota, err)
	}
	if s, err := st.Status(); err != nil || s.Revision != after.Revision {
		t.Errorf("the refused restore wrote: revision %d, then %d (%v)", after.Revision, s.Revision, err)
	}
}
