package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/dirtest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// exampleBackup writes a backup of the example data of release 4.4.0 with
// the configuration directory cfg (the store's own configuration table
// dropped) and returns its path.
func exampleBackup(t *testing.T, cfg string) string {
	t.Helper()
	return exampleArchive(t, cfg, example.Small, archive.Zstd)
}

// exampleArchive is exampleBackup of the example data of size, compressed
// with c.
func exampleArchive(t *testing.T, cfg string, size example.Size, c archive.Compression) string {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "src.db")
	st, err := bolt.Open(db, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := example.Build(context.Background(), st, generated.Registry, "4.4.0", size); err != nil {
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
	out := filepath.Join(dir, "b.tar")
	if _, err := WriteFile(context.Background(), st, generated.Registry, out, Options{ConfigDir: cfg, Compression: c}); err != nil {
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
	m, err := Verify(mustOpen(t, archivePath), archivePath)
	if err != nil {
		t.Fatal(err)
	}
	need := storeSpace(&archiveSizes{tables: uint64(m.DataBytes), records: uint64(m.RecordCount), tableCount: uint64(m.TableCount)})
	if need > 4<<20 {
		t.Errorf("a backup of %d bytes of records needs %d bytes free: the estimate is not proportional to the data", m.DataBytes, need)
	}
	for _, c := range []struct {
		avail uint64
		ok    bool
	}{{need - 1, false}, {need, true}} {
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

// TestRestoreLateMismatch: a restore loads the records as it reads them,
// so a bad checksum found at the end of the archive (in the last table
// chunk, or a line of SHA256SUMS itself) comes after the records were
// written into the new store and the configuration files into the new
// directory: the error discards both and leaves the store and the
// configuration directory byte for byte as they were, with nothing beside
// them.
func TestRestoreLateMismatch(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etc")
	if err := os.MkdirAll(filepath.Join(src, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"broker.json": `{"new":true}`, "tls/key.pem": "new key"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good, err := os.ReadFile(exampleArchive(t, src, example.Size{Users: 20000, Rules: 20000}, archive.None))
	if err != nil {
		t.Fatal(err)
	}
	members := tarMembers(t, good)
	lastChunk := ""
	for _, m := range members {
		if strings.HasPrefix(m.name, archive.TablesDir) {
			lastChunk = m.name
		}
	}
	member := func(name string) tarMember {
		i := slices.IndexFunc(members, func(m tarMember) bool { return m.name == name })
		if i < 0 {
			t.Fatalf("no member %s", name)
		}
		return members[i]
	}
	// The end entry of the last table: 0, 2, its record count and size.
	endEntry := int64(2 + binary.PutUvarint(make([]byte, 10), 20000) + binary.PutUvarint(make([]byte, 10), usersBytes(t, good)))
	sums := member(archive.SumsName)
	lastLine := sums.start + int64(bytes.LastIndexByte(good[sums.start:sums.end-1], '\n')) + 1
	for _, c := range []struct {
		name string
		at   int64 // the byte of the archive changed, a hexadecimal digit or a value's
	}{
		// The last byte of the last record's value, in the last chunk,
		// before the end entry of the last table ("users").
		{"last table chunk", member(lastChunk).end - 1 - endEntry},
		// The first digit of the last line of SHA256SUMS, that of the
		// last configuration file.
		{"SHA256SUMS", lastLine},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := slices.Clone(good)
			if bad[c.at] == '0' {
				bad[c.at] = '1'
			} else {
				bad[c.at] = '0'
			}
			archivePath := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(archivePath, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
			oldTarget(t, db, cfg)
			before := dirtest.Snapshot(t, dir)

			// Watch the new store grow as the batches go to the loader.
			var batches int
			var written int64
			failpoint.Hook = func(point string) error {
				if point == "restore.batch" {
					batches++
					tmp, _ := filepath.Glob(filepath.Join(dir, ".broker.db"+restoreSuffix+"*"))
					for _, p := range tmp {
						if info, err := os.Stat(p); err == nil {
							written = max(written, info.Size())
						}
					}
				}
				return nil
			}
			t.Cleanup(func() { failpoint.Hook = nil })
			_, err := Restore(context.Background(), generated.Registry, archivePath, db, RestoreOptions{ConfigDir: cfg})
			failpoint.Hook = nil
			if !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Fatalf("restore: %v; want a checksum mismatch", err)
			}
			if batches < 10 || written < 1<<20 {
				t.Fatalf("%d batches loaded, the new store grew to %d bytes before the mismatch: the test needs a restore that writes first", batches, written)
			}
			if after := dirtest.Snapshot(t, dir); after != before {
				t.Errorf("the failed restore changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestRestoreManifestRefusal: an archive that its manifest alone refuses
// (another product's) creates nothing beside the store, and is still read
// to its end, so that the same archive damaged at its end (a line of
// SHA256SUMS) is reported as damaged rather than as another product's.
func TestRestoreManifestRefusal(t *testing.T) {
	good, err := os.ReadFile(exampleArchive(t, "", example.Small, archive.None))
	if err != nil {
		t.Fatal(err)
	}
	sums := tarMembers(t, good)
	damaged := slices.Clone(good)
	at := sums[len(sums)-1].start // the first digit of SHA256SUMS
	if damaged[at] == '0' {
		damaged[at] = '1'
	} else {
		damaged[at] = '0'
	}
	reg := *generated.Registry
	reg.Product = "smtp-relay"
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"good", good, "refused: the data belongs to product"},
		{"damaged at its end", damaged, "checksum mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			archivePath := filepath.Join(t.TempDir(), "b.tar")
			if err := os.WriteFile(archivePath, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
			oldTarget(t, db, cfg)
			before := dirtest.Snapshot(t, dir)
			var built []string
			failpoint.Hook = func(point string) error {
				if point == "restore.checked" || point == "restore.batch" {
					built = append(built, point)
				}
				return nil
			}
			t.Cleanup(func() { failpoint.Hook = nil })
			_, err := Restore(context.Background(), &reg, archivePath, db, RestoreOptions{ConfigDir: cfg})
			failpoint.Hook = nil
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore: %v; want %q", err, c.want)
			}
			if len(built) > 0 {
				t.Errorf("a refused archive reached %q: it started building", built)
			}
			if after := dirtest.Snapshot(t, dir); after != before {
				t.Errorf("the refused restore changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// tarMember is a member of a tar stream and where its data is.
type tarMember struct {
	name       string
	start, end int64
}

// tarMembers lists the members of the plain tar archive data.
func tarMembers(t *testing.T, data []byte) []tarMember {
	t.Helper()
	r := bytes.NewReader(data)
	tr := tar.NewReader(r)
	var members []tarMember
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return members
		}
		if err != nil {
			t.Fatal(err)
		}
		start := int64(len(data)) - int64(r.Len())
		members = append(members, tarMember{hdr.Name, start, start + hdr.Size})
	}
}

// oldTarget writes the store and configuration directory that a restore
// replaces: the example data of release 5.1.0 and two files.
func oldTarget(t *testing.T, db, cfg string) {
	t.Helper()
	st, err := bolt.Open(db, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	err = example.Build(context.Background(), st, generated.Registry, "5.1.0", example.Small)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cfg, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"broker.json": `{"old":true}`, "tls/key.pem": "old key"} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreSyncsEachDirectoryOnce: the configuration directories created
// by a restore are each synced once, not once per file below them.
func TestRestoreSyncsEachDirectoryOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc")
	b, err := newBuild(filepath.Join(dir, "broker.db"), cfg, "")
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

// usersBytes returns the size of the records of the table users in the
// archive data.
func usersBytes(t *testing.T, data []byte) uint64 {
	t.Helper()
	var size int64
	_, err := archive.Read(bytes.NewReader(data), archive.Handler{TableEnd: func(tb archive.TableInfo) error {
		if tb.Name == "users" {
			size = tb.Bytes
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return uint64(size)
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestStoreSpaceCovers: the free space a restore asks for covers the
// store it builds, for the shapes that cost the most beyond their encoded
// bytes: tiny records, and many small nested tables.
func TestStoreSpaceCovers(t *testing.T) {
	for _, c := range []struct {
		name string
		fill func(tx store.Tx) error
	}{
		{"tiny records", func(tx store.Tx) error {
			tb, err := tx.CreateTable("tiny")
			if err != nil {
				return err
			}
			for i := range 100000 {
				if err := tb.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), []byte{1}); err != nil {
					return err
				}
			}
			return nil
		}},
		{"many tables", func(tx store.Tx) error {
			top, err := tx.CreateTable("top")
			if err != nil {
				return err
			}
			for i := range 20000 {
				tb, err := top.CreateTable(fmt.Sprint(i))
				if err != nil {
					return err
				}
				if err := tb.Put([]byte("k"), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.db")
			st, err := bolt.Open(src, bolt.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			tx, _ := st.Begin(true)
			if err := c.fill(tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "b.tar")
			if _, err := WriteFile(context.Background(), st, generated.Registry, out, Options{}); err != nil {
				t.Fatal(err)
			}
			st.Close()
			m, err := Verify(mustOpen(t, out), out)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "dst.db")
			if _, err := Restore(context.Background(), generated.Registry, out, dst, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			need := storeSpace(&archiveSizes{tables: uint64(m.DataBytes), records: uint64(m.RecordCount), tableCount: uint64(m.TableCount)})
			if uint64(info.Size()) > need {
				t.Errorf("the restored store takes %d bytes; the restore asked for %d free (%d bytes of records declared)", info.Size(), need, m.DataBytes)
			}
			t.Logf("store %d bytes, estimate %d, records %d bytes: %.2fx", info.Size(), need, m.DataBytes, float64(need)/float64(info.Size()))
		})
	}
}

// TestRestoreConfigTree: configuration files in directories that the
// archive's path order visits out of depth-first order ("a-x" sorts
// between "a" and "a/b", files beside subdirectories, a deep chain) are
// written where they belong, through the restore's stack of open
// directories, with their modes.
func TestRestoreConfigTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etc")
	files := map[string]os.FileMode{
		"a/b/c/f1": 0o600, "a/b/c/f2": 0o640, "a-x/f": 0o644, "a/b/d/f": 0o600,
		"a/f": 0o600, "z": 0o644, strings.Repeat("deep/", 60) + "leaf": 0o600,
	}
	for name, mode := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	archivePath := exampleBackup(t, src)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc")
	if _, err := Restore(context.Background(), generated.Registry, archivePath, filepath.Join(dir, "s.db"), RestoreOptions{ConfigDir: cfg}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(cfg, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(cfg, p)
		mode, ok := files[filepath.ToSlash(rel)]
		data, _ := os.ReadFile(p)
		info, _ := d.Info()
		if !ok || string(data) != filepath.ToSlash(rel) || info.Mode().Perm() != mode {
			t.Errorf("restored %s: %q, mode %v", rel, data, info.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil || n != len(files) {
		t.Errorf("restored %d files of %d: %v", n, len(files), err)
	}
}

// TestRestoreReadOnlyConfigDir: a configuration directory without write
// permission (an operator's 0555 one) is restored, the new one getting its
// mode only once its files are written: built with that mode from the
// start, its files could not be created (but by root), and the restore
// failed with "writing configuration file broker.json: permission denied";
// nor is anything left beside it.
func TestRestoreReadOnlyConfigDir(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etc")
	os.Mkdir(src, 0o755)
	if err := os.WriteFile(filepath.Join(src, "broker.json"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	archivePath := exampleBackup(t, src)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc")
	os.Mkdir(cfg, 0o755)
	if err := os.WriteFile(filepath.Join(cfg, "broker.json"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(cfg, 0o555)
	t.Cleanup(func() { os.Chmod(cfg, 0o755) })

	b, err := newBuild(filepath.Join(dir, "broker.db"), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(b.newConfig)
	b.discard()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o200 == 0 {
		t.Errorf("the new configuration directory is built with mode %v: its owner cannot write its files", info.Mode().Perm())
	}

	if _, err := Restore(context.Background(), generated.Registry, archivePath, filepath.Join(dir, "broker.db"), RestoreOptions{ConfigDir: cfg}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(cfg, "broker.json")); string(data) != "new" {
		t.Errorf("broker.json holds %q, want the restored %q", data, "new")
	}
	if info, err := os.Stat(cfg); err != nil || info.Mode().Perm() != 0o555 {
		t.Errorf("the restored directory: %v, %v; want mode 0555", info, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), restoreSuffix) {
			t.Errorf("left beside the store: %s", e.Name())
		}
	}
}

// TestCheckSpaceHugeTotals: a manifest may declare totals up to the
// largest int64; the space they need, with its margin, saturates rather
// than wrapping around to a few bytes that any disk has free (which let an
// archive declaring 9e18 bytes of records past the check, to fill the
// disk before its totals were found wrong at its end).
func TestCheckSpaceHugeTotals(t *testing.T) {
	real := freeSpace
	t.Cleanup(func() { freeSpace = real })
	freeSpace = func(dir string) (uint64, fsID, error) {
		_, fsid, err := real(dir)
		return 1 << 50, fsid, err
	}
	dir := t.TempDir()
	const huge = math.MaxInt64
	for _, sizes := range []archiveSizes{
		{tables: huge, records: 146, tableCount: 6},
		{tables: 1 << 20, records: huge / 16, tableCount: 6},
		{tables: 1 << 20, records: 146, tableCount: huge / 64},
		{tables: 1 << 20, records: 146, tableCount: 6, config: huge, files: 1},
		{tables: 1 << 20, records: 146, tableCount: 6, config: 1, files: huge / 4096},
	} {
		if err := checkSpace(&sizes, dir, dir); err == nil || !strings.Contains(err.Error(), "not enough free space") {
			t.Errorf("%+v with 1 PiB free: %v, want not enough free space", sizes, err)
		}
	}
}

// TestRestoreLocksTheStoreItNames: a restore that waits for the lock of a
// store that another process replaces meanwhile (a restore finishing)
// takes the lock of the store the path names then, not of the replaced
// one: it waits for the new store's holder, here until it gives up.
// Before, it held the lock of the replaced file, and replaced the new
// store under the process that held it (a third restore ran alongside).
func TestRestoreLocksTheStoreItNames(t *testing.T) {
	archivePath := exampleBackup(t, "")
	dir := t.TempDir()
	db, next := filepath.Join(dir, "broker.db"), filepath.Join(dir, "next.db")
	for _, p := range []string{db, next} {
		if _, err := Restore(context.Background(), generated.Registry, archivePath, p, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Restore(context.Background(), generated.Registry, archivePath, db, RestoreOptions{})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the restore waits for held's lock
	// Another process replaces the store, and holds the new one.
	if err := os.Rename(next, db); err != nil {
		t.Fatal(err)
	}
	holder, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	before, _ := os.Stat(db)
	held.Close()
	err = <-done
	if !errors.Is(err, store.ErrInUse) {
		t.Errorf("a restore of a store another process holds: %v, want %v", err, store.ErrInUse)
	}
	if after, _ := os.Stat(db); !os.SameFile(before, after) {
		t.Errorf("the restore replaced the store another process holds")
	}
}
