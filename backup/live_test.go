package backup_test

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
)

// liveDB builds the example product's store of this release with bulk
// records (so that a backup takes a while), and opens it as the running
// product does.
func liveDB(t *testing.T) *bbolt.DB {
	t.Helper()
	db := exampleBoltDB(t, filepath.Join(t.TempDir(), "live.db"))
	t.Cleanup(func() { db.Close() })
	err := db.Update(func(tx *bbolt.Tx) error {
		bulk, err := tx.CreateBucket([]byte("bulk"))
		if err != nil {
			return err
		}
		value := make([]byte, 200)
		for i := range 50_000 {
			if err := bulk.Put(fmt.Appendf(nil, "%08d", i), value); err != nil {
				return err
			}
		}
		for _, name := range []string{"ledger-a", "ledger-b"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// write writes to db until stop is closed: each transaction adds entry n
// to both ledgers, so a consistent snapshot has equal ledgers. It returns
// the number of transactions committed.
func write(db *bbolt.DB, stop <-chan struct{}, committed *atomic.Int64) error {
	for n := uint64(0); ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		err := db.Update(func(tx *bbolt.Tx) error {
			key := binary.BigEndian.AppendUint64(nil, n)
			for _, name := range []string{"ledger-a", "ledger-b"} {
				if err := tx.Bucket([]byte(name)).Put(key, key); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		committed.Add(1)
	}
}

// TestHandlerUnderWriteLoad backs up a product's open store through
// Handler while a goroutine writes to it: the archive verifies, and
// restores to one consistent snapshot (both ledgers equal and gap-free).
func TestHandlerUnderWriteLoad(t *testing.T) {
	db := liveDB(t)
	srv := httptest.NewServer(backup.Handler(db, generated.Registry, backup.Options{}))
	defer srv.Close()

	stop := make(chan struct{})
	var committed atomic.Int64
	werr := make(chan error, 1)
	go func() { werr <- write(db, stop, &committed) }()
	for committed.Load() < 10 {
	}
	before := committed.Load()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", resp.Status)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	m, err := backup.RestoreReader(t.Context(), generated.Registry, resp.Body, "response", restored, backup.RestoreOptions{})
	during := committed.Load() - before
	close(stop)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if during == 0 {
		t.Fatal("no write committed during the backup: the test proves nothing")
	}
	rdb, err := bbolt.Open(restored, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	err = rdb.View(func(tx *bbolt.Tx) error {
		a, b := tx.Bucket([]byte("ledger-a")), tx.Bucket([]byte("ledger-b"))
		na, nb := a.Stats().KeyN, b.Stats().KeyN
		if na != nb || na == 0 {
			return fmt.Errorf("ledgers of %d and %d entries: not one snapshot", na, nb)
		}
		k, _ := a.Cursor().Last()
		if last := binary.BigEndian.Uint64(k); last != uint64(na-1) {
			return fmt.Errorf("last entry %d of %d: a gap", last, na)
		}
		if n := tx.Bucket([]byte("bulk")).Stats().KeyN; n != 50_000 {
			return fmt.Errorf("bulk holds %d records, want 50000", n)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if m.DataVersion != "5.0.1" {
		t.Errorf("data version %s, want 5.0.1", m.DataVersion)
	}
	t.Logf("%d writes committed during the backup", during)
}

// TestHandlerRefusesPost wants GET only.
func TestHandlerRefusesPost(t *testing.T) {
	db := liveDB(t)
	rec := httptest.NewRecorder()
	backup.Handler(db, generated.Registry, backup.Options{}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/backup", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}
