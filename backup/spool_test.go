package backup_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// remoteStore is a bbolt store that says its reads are remote and counts
// the scans of each table; its transactions give top-level tables only,
// like etcd's.
type remoteStore struct {
	store.Store
	scans map[string]int
}

func (s *remoteStore) ReadsAreRemote() bool { return true }

func (s *remoteStore) Begin(writable bool) (store.Tx, error) {
	tx, err := s.Store.Begin(writable)
	if err != nil {
		return nil, err
	}
	return remoteTx{tx, s.scans}, nil
}

type remoteTx struct {
	store.Tx
	scans map[string]int
}

func (tx remoteTx) Table(name string) (hook.Table, error) {
	t, err := tx.Tx.Table(name)
	if err != nil {
		return nil, err
	}
	return countedTable{t, tx.scans}, nil
}

// innerTable names the embedded table of countedTable, whose own name
// would clash with the method Table.
type innerTable = hook.Table

type countedTable struct {
	innerTable
	scans map[string]int
}

func (t countedTable) Scan(start []byte, fn func(key, value []byte) error) error {
	t.scans[t.Name()]++
	return t.innerTable.Scan(start, fn)
}

// failingWriter fails once it has taken n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestSpool backs up a store whose reads are remote: with a spool
// directory every table is read once, without it twice, and both give the
// same bytes; the spool file is gone afterwards, also when the backup
// fails while copying from it.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	_, _ = boltArchive(t, dir, "src", func(tx store.Tx) error {
		big := bytes.Repeat([]byte("v"), 1<<20)
		if err := puts(tx, "blobs", []byte("a"), big, []byte("b"), []byte{}, []byte("c"), []byte("x")); err != nil {
			return err
		}
		var kv [][]byte
		for i := range 5000 {
			kv = append(kv, []byte(strings.Repeat("k", 1+i%300)+string(rune('a'+i%26))), []byte(strings.Repeat("v", i%500)))
		}
		return puts(tx, "many", kv...)
	})
	st, err := bolt.Open(filepath.Join(dir, "src.db"), bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spoolDir := t.TempDir()
	var archives [2][]byte
	for i, sd := range []string{spoolDir, ""} {
		rs := &remoteStore{Store: st, scans: map[string]int{}}
		var buf bytes.Buffer
		m, err := backup.Backup(rs, generated.Registry, &buf, backup.Options{Created: created, Compression: archive.None, SpoolDir: sd})
		if err != nil {
			t.Fatal(err)
		}
		archives[i] = buf.Bytes()
		want := 1
		if sd == "" {
			want = 2
		}
		for _, name := range []string{"blobs", "many"} {
			if got := rs.scans[name]; got != want {
				t.Errorf("spool dir %q: table %s read %d times, want %d", sd, name, got, want)
			}
		}
		if m.TableCount < 3 {
			t.Fatalf("the backup has %d tables", m.TableCount)
		}
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Errorf("the spooled backup (%d bytes) differs from the one read twice (%d bytes)", len(archives[0]), len(archives[1]))
	}
	if _, err := backup.Backup(&remoteStore{Store: st, scans: map[string]int{}}, generated.Registry, &failingWriter{n: 1 << 20},
		backup.Options{Compression: archive.None, SpoolDir: spoolDir}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("backup onto a failing writer: %v", err)
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("the spool directory holds %d files after the backups: %v", len(left), left[0].Name())
	}
}
