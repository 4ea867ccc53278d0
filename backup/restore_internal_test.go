package backup

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// exampleBackup writes a backup of the example data of release 4.4.0 with
// the configuration directory cfg (the store's own configuration table
// dropped) and returns its path.
func exampleBackup(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "src.db")
	st, err := bolt.Open(db, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := example.Build(context.Background(), st, generated.Registry, "4.4.0", example.Small); err != nil {
		t.Fatal(err)
	}
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if tables, _ := tx.Tables(); slices.Contains(tables, store.ConfigTable) {
		if err := tx.DropTable(store.ConfigTable); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.tar.zst")
	if _, err := WriteFile(context.Background(), st, generated.Registry, out, Options{ConfigDir: cfg}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestoreFreeSpace: a restore whose declared data would not fit in the
// free space of the destination (with margin) is refused before anything
// is written.
func TestRestoreFreeSpace(t *testing.T) {
	archivePath := exampleBackup(t, "")
	dir := t.TempDir()
	db := filepath.Join(dir, "broker.db")
	real := freeSpace
	t.Cleanup(func() { freeSpace = real })
	for _, c := range []struct {
		avail uint64
		ok    bool
	}{{spaceMargin, false}, {spaceMargin + 1<<20, true}} {
		freeSpace = func(dir string) (uint64, fsID, error) {
			_, fsid, err := real(dir)
			return c.avail, fsid, err
		}
		_, err := Restore(context.Background(), generated.Registry, archivePath, db, RestoreOptions{})
		if c.ok != (err == nil) {
			t.Fatalf("%d bytes free: %v", c.avail, err)
		}
		if !c.ok {
			if !strings.Contains(err.Error(), "not enough free space in "+dir) {
				t.Errorf("%d bytes free: %v", c.avail, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused restore left %d files", len(entries))
			}
		}
	}
}

// TestRestoreSyncsEachDirectoryOnce: the configuration directories created
// by a restore are each synced once, not once per file below them.
func TestRestoreSyncsEachDirectoryOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc")
	b, err := newBuild(filepath.Join(dir, "broker.db"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.discard()
	paths := []string{"a/b/c/1", "a/b/c/2", "a/b/c/3", "a/b/4", "a/5", "d/6", "d/7"}
	for _, p := range paths {
		if err := b.config(archiveConfig(p, 0o644), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	got := slices.Clone(b.dirs)
	slices.Sort(got)
	want := []string{"a", "a/b", "a/b/c", "d"}
	if !slices.Equal(got, want) {
		t.Errorf("directories to sync: %q, want each of %q once", got, want)
	}
}

// TestRestoreClampsModes: configuration files restore with their recorded
// permissions clamped: never world-writable, always readable by the owner.
func TestRestoreClampsModes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etc")
	os.Mkdir(src, 0o755)
	modes := map[string]struct{ recorded, want fs.FileMode }{
		"open.json":   {0o777, 0o775},
		"closed.json": {0o000, 0o400},
		"secret.pem":  {0o600, 0o600},
		"shared.json": {0o644, 0o644},
		"group.json":  {0o660, 0o660},
	}
	for name, m := range modes {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m.recorded); err != nil {
			t.Fatal(err)
		}
	}
	archivePath := exampleBackup(t, src)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc")
	if _, err := Restore(context.Background(), generated.Registry, archivePath, filepath.Join(dir, "broker.db"), RestoreOptions{ConfigDir: cfg}); err != nil {
		t.Fatal(err)
	}
	for name, m := range modes {
		info, err := os.Stat(filepath.Join(cfg, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != m.want {
			t.Errorf("%s recorded %v restored %v, want %v", name, m.recorded, info.Mode().Perm(), m.want)
		}
	}
}

// TestBackupConfigFIFO: a FIFO swapped into the configuration directory
// between the listing and the reading of a backup is refused, without
// blocking on it.
func TestBackupConfigFIFO(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "broker.json")
	if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	d := dirConfig{root: root, dir: dir}
	files, err := d.list()
	if err != nil || len(files) != 1 {
		t.Fatalf("list: %v, %v", files, err)
	}
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.read(files[0])
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the file changed during the backup") {
			t.Errorf("reading a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocks")
	}
}

func archiveConfig(p string, mode fs.FileMode) archive.ConfigFile {
	return archive.ConfigFile{Path: p, Mode: mode, Size: int64(len(p))}
}

// TestRemoveStale: only the temporary files of the same command beside
// the path, old enough and not locked by a live run, are removed.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * StaleAge)
	create := func(name string, age time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, age, age); err != nil {
			t.Fatal(err)
		}
		return p
	}
	create(".b.tar.tmp-1", old)                           // stale: removed
	os.Mkdir(filepath.Join(dir, ".b.tar.tmp-dir"), 0o700) // a stale directory: removed
	os.Chtimes(filepath.Join(dir, ".b.tar.tmp-dir"), old, old)
	create(".b.tar.tmp-2", time.Now())  // a run that just started: kept
	live := create(".b.tar.tmp-3", old) // a live run's (locked): kept
	create(".c.tar.tmp-4", old)         // another output's: kept
	create(".b.tar.restore-5", old)     // another command's: kept
	create("b.tar", old)                // the output: kept
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Lock(f); err != nil {
		t.Fatal(err)
	}
	RemoveStale(filepath.Join(dir, "b.tar"), ".tmp-")
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{".b.tar.restore-5", ".b.tar.tmp-2", ".b.tar.tmp-3", ".c.tar.tmp-4", "b.tar"}
	if !slices.Equal(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
}
