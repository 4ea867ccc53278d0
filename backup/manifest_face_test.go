package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/failpoint"
)

// TestManifestInconsistentOnItsFace: a format 2 archive whose manifest
// records a data version but lists no metadata table is refused from the
// manifest alone, naming the missing table, before any record is loaded.
func TestManifestInconsistentOnItsFace(t *testing.T) {
	record := binary.AppendUvarint(nil, 1)
	record = append(record, 'k')
	record = binary.AppendUvarint(record, 1)
	record = append(record, 'v')
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	manifest := fmt.Sprintf(`{"format":2,"created":"2026-01-01T00:00:00Z","product":%q,"release":"5.0.0","registry_digest":"h1:x","data_version":"5.0.0","applied":[],"tables":[{"path":"users","records":1,"bytes":%d}],"config":[]}`,
		generated.Registry.Product, len(record))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var sums strings.Builder
	for _, m := range []struct {
		name string
		data []byte
	}{{"MANIFEST.json", []byte(manifest)}, {"tables/users/000001.rec", record}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(m.data), m.name)
	}
	tw.WriteHeader(&tar.Header{Name: "SHA256SUMS", Mode: 0o644, Size: int64(sums.Len()), ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	tw.Write([]byte(sums.String()))
	tw.Close()
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar")
	if err := os.WriteFile(archivePath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var built bool
	failpoint.Hook = func(point string) error {
		built = built || point == "restore.checked" // the build starts after it
		return nil
	}
	t.Cleanup(func() { failpoint.Hook = nil })
	_, err := backup.Restore(context.Background(), generated.Registry, archivePath, filepath.Join(dir, "s.db"), backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), `"_hookreg"`) {
		t.Fatalf("restore = %v, want the refusal of a manifest without the metadata table", err)
	}
	if built {
		t.Error("the restore started building the new store from a manifest inconsistent on its face")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the refused restore left files: %v", entries)
	}
}
