package backup_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
)

// TestPipeRoundTrip writes a backup to a pipe and restores it from one:
// the store comes back exactly; a pipe cut short anywhere writes nothing.
func TestPipeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := oddStore(t, dir)
	want := rawDump(t, src, nil)
	st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := backup.WriteTo(t.Context(), st, generated.Registry, pw, backup.Options{})
		pw.CloseWithError(err)
	}()
	var full bytes.Buffer
	restored := filepath.Join(dir, "r.db")
	if _, err := backup.RestoreReader(t.Context(), generated.Registry, io.TeeReader(pr, &full), "pipe", restored, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if got := rawDump(t, restored, nil); !bytes.Equal(got, want) {
		t.Fatalf("restored store differs:\n%s", diff(want, got))
	}

	for _, n := range []int{0, 100, full.Len() / 2, full.Len() - 1} {
		dst := filepath.Join(t.TempDir(), "cut.db")
		_, err := backup.RestoreReader(t.Context(), generated.Registry, bytes.NewReader(full.Bytes()[:n]), "pipe", dst, backup.RestoreOptions{})
		if !errors.Is(err, archive.ErrInvalid) {
			t.Errorf("cut at %d of %d bytes: err = %v, want a refusal", n, full.Len(), err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 0 {
			t.Errorf("cut at %d of %d bytes: left %v", n, full.Len(), entries)
		}
	}
}

// TestSpoolPipe checks that a spooled pipe reads back whole and has no name.
func TestSpoolPipe(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("spooled "), 100_000)
	f, err := backup.Spool(t.Context(), bytes.NewReader(data), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the spool has a name: %v", entries)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes (%v), want %d", len(got), err, len(data))
	}
}
