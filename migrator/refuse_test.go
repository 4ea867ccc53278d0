package migrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/dirtest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// runBounded runs the migrator like runMigrator, but fails the test if it
// does not end within 20 seconds (a refusal that hangs on a FIFO).
func runBounded(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return waitBounded(t, migratorCmd(t, "example", args...), 20*time.Second)
}

// waitBounded runs cmd and returns its exit status and standard error; a
// cmd still running after bound (far beyond what it takes) is killed and
// fails the test as hanging.
func waitBounded(t *testing.T, cmd *exec.Cmd, bound time.Duration) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	cmd.Wait()
	stop()
	if ctx.Err() != nil {
		t.Fatalf("%q hangs: %s", cmd.Args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// refusal is one command that must be refused, naming why, and change
// nothing.
type refusal struct {
	name string
	args []string
	code int
	want string
}

func checkRefusals(t *testing.T, dir string, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := dirtest.Snapshot(t, dir)
			code, stderr := runBounded(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("migrator %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
			}
			if after := dirtest.Snapshot(t, dir); after != before {
				t.Errorf("migrator %q changed the files:\nbefore:\n%s\nafter:\n%s", c.args, before, after)
			}
		})
	}
}

// TestLayoutRefusals: a store in a subdirectory of the configuration
// directory (a restore would have to keep the store inside a directory of
// the configuration it replaces) is refused by every command that takes
// both, also when a symbolic link hides it; so is the store named as the
// configuration directory. A store directly in the configuration
// directory is allowed (testdata/script/config_beside_store.txtar).
func TestLayoutRefusals(t *testing.T) {
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	app := filepath.Join(dir, "app")
	os.MkdirAll(filepath.Join(app, "var"), 0o755)
	db := filepath.Join(app, "var", "broker.db")
	buildStore(t, db, "5.1.0", example.Small)
	os.WriteFile(filepath.Join(app, "broker.json"), []byte(`{"old":true}`), 0o644)
	os.Symlink("app", filepath.Join(dir, "etc"))
	const inside = "is in a subdirectory of the configuration directory"
	checkRefusals(t, dir, []refusal{
		{"restore", []string{"restore", archivePath, "--store", db, "--config", app}, 2, inside},
		{"restore through a link", []string{"restore", archivePath, "--store", db, "--config", filepath.Join(dir, "etc")}, 2, inside},
		{"restore of the store as config", []string{"restore", archivePath, "--store", db, "--config", db}, 2, "not a directory"},
		{"backup", []string{"backup", "--store", db, "--config", app, "--out", filepath.Join(dir, "out.tar.zst")}, 2, inside},
		{"upgrade", []string{"upgrade", "--online", "--store", db, "--config", filepath.Join(dir, "etc")}, 2, inside},
		{"offline upgrade", []string{"upgrade", "--offline", "--store", db, "--config", app}, 2, inside},
	})
}

// TestOutputRefusals: backup --out and upgrade --offline --out refuse a
// destination that exists and is not a regular file (a FIFO, a
// directory, a symbolic link: never replaced, never followed), the store
// itself under any name (compared by identity), the store's temporary
// files, and a place inside the configuration directory.
func TestOutputRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "5.1.0", example.Small)
	in := filepath.Join(dir, "in.tar.zst")
	writeBackup(t, in, "5.0.0", example.Small)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	os.WriteFile(filepath.Join(dir, "target"), []byte("precious"), 0o644)
	os.Symlink("target", filepath.Join(dir, "link"))
	os.Link(db, filepath.Join(dir, "alias.db"))
	cfg := filepath.Join(dir, "etc")
	os.Mkdir(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "broker.json"), []byte(`{}`), 0o644)
	backupTo := func(out string, more ...string) []string {
		return append([]string{"backup", "--store", db, "--out", out}, more...)
	}
	offlineTo := func(out string) []string {
		return []string{"upgrade", "--offline", "--in", in, "--out", out}
	}
	checkRefusals(t, dir, []refusal{
		{"backup to a FIFO", backupTo(fifo), 2, "exists and is a named pipe (FIFO): refusing to replace it"},
		{"backup to a directory", backupTo(filepath.Join(dir, "adir")), 2, "is a directory: name the archive file to write"},
		{"backup to a link", backupTo(filepath.Join(dir, "link")), 2, "is a symbolic link"},
		{"backup to the store", backupTo(db), 2, "is the store"},
		{"backup to a hard link of the store", backupTo(filepath.Join(dir, "alias.db")), 2, "is the store"},
		{"backup to the store's temporary file", backupTo(filepath.Join(dir, ".broker.db.restore-1")), 2, "temporary file of the store"},
		{"backup into the configuration", backupTo(filepath.Join(cfg, "b.tar.zst"), "--config", cfg), 2, "is inside"},
		{"offline to a FIFO", offlineTo(fifo), 2, "exists and is a named pipe (FIFO): refusing to replace it"},
		{"offline to a link", offlineTo(filepath.Join(dir, "link")), 2, "is a symbolic link"},
	})
}

// TestFIFORefusals: a FIFO given as an archive is refused at once, never
// read (a restore reads its archive twice; a FIFO without a writer would
// block forever).
func TestFIFORefusals(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "b.tar.zst")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "broker.db")
	const want = "b.tar.zst is a named pipe (FIFO)"
	checkRefusals(t, dir, []refusal{
		{"verify", []string{"verify", fifo}, 2, want},
		{"plan", []string{"plan", "--backup", fifo}, 2, want},
		{"restore", []string{"restore", fifo, "--store", db}, 2, want},
		{"offline", []string{"upgrade", "--offline", "--in", fifo, "--out", filepath.Join(dir, "out.tar.zst")}, 2, want},
		{"backup of a FIFO store", []string{"backup", "--store", fifo, "--out", filepath.Join(dir, "out.tar")}, 2, "b.tar.zst is a named pipe (FIFO): name the store's file"},
	})
}

// TestBlockingOpens: a FIFO or a directory given as the store of a
// restore, and a FIFO, a device or a huge file given as an etcd secret, are
// refused at once (exit 2), never opened: a FIFO blocks open(2) until a
// writer comes, /dev/zero never ends.
func TestBlockingOpens(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.zst")
	writeBackup(t, good, "5.0.0", example.Small)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	adir := filepath.Join(dir, "adir")
	os.Mkdir(adir, 0o755)
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	etcdStatus := func(file string) []string {
		return []string{"status", "--store", "etcd://127.0.0.1:1/x", "--etcd-user", "u", "--etcd-password-file", file}
	}
	checkRefusals(t, dir, []refusal{
		{"restore into a FIFO", []string{"restore", good, "--store", fifo}, 2, "fifo is a named pipe (FIFO)"},
		{"restore into a directory", []string{"restore", good, "--store", adir}, 2, "adir is a directory: a restore replaces a bbolt store file"},
		{"password file a FIFO", etcdStatus(fifo), 2, "fifo is a named pipe (FIFO)"},
		{"password file a device", etcdStatus("/dev/zero"), 2, "/dev/zero is a device, not a file"},
		{"password file of a megabyte", etcdStatus(huge), 2, "huge is larger than 65536 bytes"},
		{"CA file a FIFO", []string{"status", "--store", "etcd://127.0.0.1:1/x", "--etcd-cacert", fifo}, 2, "fifo is a named pipe (FIFO)"},
	})
}

// TestRestoreExclusive: a restore holds the store's exclusive lock from
// before it reads the archive to after both swaps, so a second restore of
// the same store is refused ("store is in use") instead of mixing one
// backup's store with the other's configuration.
func TestRestoreExclusive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar.zst"), filepath.Join(dir, "b.tar.zst")
	writeBackup(t, a, "4.4.0", example.Small)
	writeBackup(t, b, "5.0.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
	buildStore(t, db, "5.1.0", example.Small)
	os.Mkdir(cfg, 0o755)
	for _, c := range []struct {
		point   string
		missing bool // the store does not exist yet
	}{{"restore.locked", false}, {"restore.store-swapped", false}, {"restore.locked", true}, {"restore.store-swapped", true}} {
		point := c.point
		name := point
		if c.missing {
			name += " of a new store"
		}
		t.Run(name, func(t *testing.T) {
			if c.missing {
				os.Remove(db)
				os.RemoveAll(cfg)
			}
			first := startPaused(t, migratorCmd(t, "example", "restore", a, "--store", db, "--config", cfg), point)
			code, stderr := runBounded(t, "restore", b, "--store", db, "--config", cfg)
			if code != 1 || !strings.Contains(stderr, "store is in use by another process") {
				t.Errorf("the second restore: exit %d, stderr %q; want a refusal: store in use", code, stderr)
			}
			if code, stderr := first.resume(t); code != 0 {
				t.Fatalf("the first restore: exit %d: %s", code, stderr)
			}
			if m := metadataOfStore(t, db); m.DataVersion != "4.4.0" {
				t.Errorf("the store holds data version %s, want the first restore's 4.4.0", m.DataVersion)
			}
		})
	}
}

// TestRestoreSymlinks: a symbolic link as --store or --config is followed:
// the link's target is replaced and the link kept.
func TestRestoreSymlinks(t *testing.T) {
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	real := filepath.Join(dir, "srv")
	os.MkdirAll(filepath.Join(real, "etc"), 0o755)
	buildStore(t, filepath.Join(real, "broker.db"), "5.1.0", example.Small)
	os.Symlink(filepath.Join(real, "broker.db"), filepath.Join(dir, "broker.db"))
	os.Symlink(filepath.Join(real, "etc"), filepath.Join(dir, "etc"))
	code, stderr := runBounded(t, "restore", archivePath, "--store", filepath.Join(dir, "broker.db"), "--config", filepath.Join(dir, "etc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"broker.db", "etc"} {
		if info, err := os.Lstat(filepath.Join(dir, name)); err != nil || info.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link (%v)", name, err)
		}
	}
	if m := metadataOfStore(t, filepath.Join(real, "broker.db")); m.DataVersion != "4.4.0" {
		t.Errorf("the link's target holds data version %s, want 4.4.0", m.DataVersion)
	}
	if _, err := os.Stat(filepath.Join(real, "etc", "broker.json")); err != nil {
		t.Errorf("the configuration was not restored into the link's target: %v", err)
	}

	// What is only read is followed: a backup through both links carries
	// the targets' content.
	out := filepath.Join(dir, "again.tar.zst")
	code, stderr = runBounded(t, "backup", "--store", filepath.Join(dir, "broker.db"), "--config", filepath.Join(dir, "etc"), "--out", out)
	if code != 0 {
		t.Fatalf("backup through links: exit %d: %s", code, stderr)
	}
	f, err := backup.OpenArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.Verify(f, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.DataVersion != "4.4.0" || len(m.Config) != 1 || m.Config[0].Path != "broker.json" {
		t.Errorf("the backup through links holds data version %s and configuration files %v, want 4.4.0 and broker.json", m.DataVersion, m.Config)
	}
}

// TestRestoreRewrittenWhileRead: an archive rewritten in place while a
// restore reads it (stopped after its first batch of records went to the
// new store), with another good backup of the same size and creation
// time, is refused: restore reads the archive once and swaps nothing in
// before every checksum of what it read matched. Nothing changes and the
// new store is removed.
func TestRestoreRewrittenWhileRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(path, release string) {
		src := filepath.Join(t.TempDir(), "src.db")
		buildStore(t, src, release, crashSize)
		st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{Created: created, Compression: archive.None}); err != nil {
			t.Fatal(err)
		}
	}
	archivePath, other := filepath.Join(dir, "b.tar"), filepath.Join(t.TempDir(), "other.tar")
	write(archivePath, "4.4.0")
	write(other, "5.0.0")
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "5.1.0", example.Small)
	before, _ := example.Digest(db)
	p := startPaused(t, migratorCmd(t, "example", "restore", archivePath, "--store", db), "restore.batch")
	if got := names(t, dir); len(got) != 3 || !strings.HasPrefix(got[0], ".broker.db.restore-") {
		t.Errorf("while the restore loads, the directory holds %q; want its new store beside the old one", got)
	}
	data, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(archivePath, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.Close()
	code, stderr := p.resume(t)
	if code != 1 || !strings.Contains(stderr, "invalid archive") {
		t.Errorf("exit %d, stderr %q; want a refusal: invalid archive", code, stderr)
	}
	if after, _ := example.Digest(db); after != before {
		t.Errorf("the store changed")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"b.tar", "broker.db"}) {
		t.Errorf("left %q", got)
	}
}

// TestOfflineChildPrivateDir: the offline child refuses a --work directory
// that is not the private directory of an offline upgrade, so that it can
// never remove anything else when its standard input closes.
func TestOfflineChildPrivateDir(t *testing.T) {
	dir := t.TempDir()
	in := fixtures(t)[0]
	shared := filepath.Join(dir, "shared")
	os.Mkdir(shared, 0o755)
	os.WriteFile(filepath.Join(shared, "keep"), []byte("keep"), 0o644)
	named := filepath.Join(dir, ".out.offline-1")
	os.Mkdir(named, 0o755)
	os.WriteFile(filepath.Join(named, "keep"), []byte("keep"), 0o644)
	os.Symlink("shared", filepath.Join(dir, ".out.offline-2"))
	// The child is the program started with HOOKREG_OFFLINE_CHILD set and
	// the arguments of an offline upgrade.
	child := func(work string) []string {
		return childArgs(t, in, work, filepath.Join(work, "result.tar.zst"), "upgrade", "--offline", "--in", in, "--out", filepath.Join(dir, "out.tar.zst"))
	}
	checkRefusals(t, dir, []refusal{
		{"a shared directory", child(shared), 2, "is not named .NAME.offline-*"},
		{"a readable directory", child(named), 2, "has mode 0755, not 0700"},
		{"a link", child(filepath.Join(dir, ".out.offline-2")), 2, "is not a directory"},
	})
}

// childArgs returns the arguments that run the migrator with a child
// request for in, work and out in its environment, then args.
func childArgs(t *testing.T, in, work, out string, args ...string) []string {
	t.Helper()
	req, err := json.Marshal(map[string]string{"in": in, "out": out, "work": work,
		"report": filepath.Join(work, "report.jsonl"), "registry_digest": generated.Registry.Digest,
		"token_sha256": strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"env:HOOKREG_OFFLINE_CHILD=" + string(req)}, args...)
}

// TestOfflineChildTrust: only a process that an offline upgrade started
// acts as its child. $HOOKREG_OFFLINE_CHILD on any other command is
// refused without doing anything (an online upgrade does not exit 0 having
// done nothing); a request whose output is outside its private directory
// is refused; and a process without the parent's token on its standard
// input (a copy of the child's environment) is refused before it writes
// or removes anything, its private directory included.
func TestOfflineChildTrust(t *testing.T) {
	dir := t.TempDir()
	in := fixtures(t)[0]
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "4.4.0", example.Small)
	work := filepath.Join(dir, ".out.offline-1")
	os.Mkdir(work, 0o700)
	os.WriteFile(filepath.Join(work, "keep"), []byte("keep"), 0o600)
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	offline := []string{"upgrade", "--offline", "--in", in, "--out", filepath.Join(dir, "out.tar.zst")}
	checkRefusals(t, dir, []refusal{
		{"on version", childArgs(t, in, work, filepath.Join(work, "r.tar.zst"), "version"), 2, "which is not an offline upgrade"},
		{"on an online upgrade", childArgs(t, in, work, filepath.Join(work, "r.tar.zst"), "upgrade", "--online", "--store", db), 2, "which is not an offline upgrade"},
		{"an output outside", childArgs(t, in, work, victim, offline...), 2, "is not in its private directory"},
		{"no token", childArgs(t, in, work, filepath.Join(work, "r.tar.zst"), offline...), 2, "was not started by an offline upgrade"},
	})
	if m := metadataOfStore(t, db); m.DataVersion != "4.4.0" {
		t.Errorf("the store was upgraded to %s", m.DataVersion)
	}
}

// metadataOfStore reads the upgrade metadata of the store at path.
func metadataOfStore(t *testing.T, path string) upgrade.Metadata {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignals sends SIGINT or SIGTERM to backup, restore, verify and plan
// while they work (stopped at a failpoint, so the signal lands at a known
// step): each stops at its next safe point, exits 1 saying it was
// interrupted, removes its temporary files and leaves its target as it
// was.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
	buildStore(t, db, "5.1.0", example.Small)
	os.Mkdir(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "broker.json"), []byte(`{"old":true}`), 0o644)
	out := filepath.Join(dir, "out.tar")
	os.WriteFile(out, []byte("the previous backup"), 0o600)
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		point string
		args  []string
	}{
		{"backup while writing", syscall.SIGINT, "backup.write", []string{"backup", "--store", db, "--out", out}},
		{"backup before the rename", syscall.SIGTERM, "backup.written", []string{"backup", "--store", db, "--out", out}},
		{"restore while checking", syscall.SIGTERM, "backup.read", []string{"restore", archivePath, "--store", db, "--config", cfg}},
		{"restore while loading", syscall.SIGINT, "restore.checked", []string{"restore", archivePath, "--store", db, "--config", cfg}},
		{"restore before the swap", syscall.SIGTERM, "restore.before-swap", []string{"restore", archivePath, "--store", db, "--config", cfg}},
		{"verify", syscall.SIGINT, "backup.read", []string{"verify", archivePath}},
		{"plan", syscall.SIGTERM, "backup.read", []string{"plan", "--backup", archivePath}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := dirtest.Snapshot(t, dir)
			code, stderr := interrupt(t, migratorCmd(t, "example", c.args...), c.point, c.sig)
			if code != 1 || !strings.Contains(stderr, "interrupted") {
				t.Errorf("exit %d, stderr %q; want exit 1, interrupted", code, stderr)
			}
			if after := dirtest.Snapshot(t, dir); after != before {
				t.Errorf("the files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestWriteFailsMidLoad: when writing the new store fails in the middle
// of the load (here a file size limit, as a full disk after the
// free-space check or a quota would), restore and the one-command offline
// upgrade stop with the write's error, exit 1, and leave the store and
// the directory as they were: no hang waiting on the failed loader, no
// temporary store left filling the disk.
func TestWriteFailsMidLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "src.db")
	buildStore(t, src, "5.0.0", example.Size{Users: 40000, Rules: 40000})
	archivePath := filepath.Join(t.TempDir(), "b.tar.zst")
	if code, _, stderr := runMigrator(t, "example", "backup", "--store", src, "--out", archivePath); code != 0 {
		t.Fatalf("backup: %s", stderr)
	}
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "5.0.0", example.Small)
	for _, args := range [][]string{
		{"restore", archivePath, "--store", db},
		{"upgrade", "--offline", "--in", archivePath, "--out", filepath.Join(dir, "out.tar.zst")},
	} {
		t.Run(args[0], func(t *testing.T) {
			before := dirtest.Snapshot(t, dir)
			// The limit (in KiB) lets the small files of the run through
			// and stops the new store of the large backup.
			cmd := migratorCmd(t, "example")
			cmd.Args = append([]string{"sh", "-c", `ulimit -f 4096 && exec "$0" "$@"`, cmd.Path}, args...)
			cmd.Path = "/bin/sh"
			code, stderr := waitBounded(t, cmd, 2*time.Minute)
			if code != 1 || !strings.Contains(stderr, "file too large") {
				t.Errorf("exit %d, stderr %q; want exit 1 and the write's error", code, stderr)
			}
			if after := dirtest.Snapshot(t, dir); after != before {
				t.Errorf("the files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestLargeValuesMemory: restoring a store of large values (8 of 16 MiB)
// keeps the migrator's anonymous memory bounded by a few values, not by
// the data (it peaked at 585 MB for 16 such values, the collector letting
// bbolt's garbage of rewritten large values grow), and a SIGTERM in the
// middle of it ends the restore with nothing left.
func TestLargeValuesMemory(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes 256 MB")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	st, err := bolt.Open(src, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 16<<20)
	for i := range 8 {
		rand.NewChaCha8([32]byte{byte(i)}).Read(value)
		tx, _ := st.Begin(true)
		tb, _ := tx.CreateTable("blobs")
		if err := tb.Put([]byte{byte(i)}, value); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	archivePath := filepath.Join(dir, "b.tar")
	if code, _, stderr := runMigrator(t, "example", "backup", "--store", src, "--out", archivePath, "--compress", "none"); code != 0 {
		t.Fatalf("backup: %s", stderr)
	}
	os.Remove(src)
	cmd := migratorCmd(t, "example", "restore", archivePath, "--store", filepath.Join(dir, "dst.db"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	peak := 0
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(5 * time.Millisecond):
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			for _, line := range strings.Split(string(status), "\n") {
				var kb int
				if _, err := fmt.Sscanf(line, "RssAnon: %d kB", &kb); err == nil {
					peak = max(peak, kb)
				}
			}
		}
	}
	if !cmd.ProcessState.Success() {
		t.Fatalf("restore: %s", stderr.String())
	}
	t.Logf("peak RssAnon %d MB", peak>>10)
	if peak > 256<<10 {
		t.Errorf("restoring 8 values of 16 MiB peaked at %d MB of anonymous memory, want at most 256 MB", peak>>10)
	}
}

// TestNotInitializedAdvice: a store without metadata gets the advice init
// would follow: a fresh install's "init" when its tables are empty (the
// product created them before migrating), only "init --data-version V"
// once a table holds data, which a plain init refuses.
func TestNotInitializedAdvice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	writeBolt(t, path, func(tx store.Tx) error {
		_, err := createPath(tx, "users", "by-name")
		return err
	})

	code, _, stderr := run("status", "--store", path)
	if code != 1 || !strings.Contains(stderr, "the store has no hookreg metadata: run \"migrator init --store "+path+"\" for a fresh install") {
		t.Errorf("status of empty tables: %d %s", code, stderr)
	}

	writeBolt(t, path, func(tx store.Tx) error {
		names, err := createPath(tx, "users", "by-name")
		if err != nil {
			return err
		}
		return names.Put([]byte("ann"), []byte("1"))
	})

	code, _, stderr = run("status", "--store", path)
	want := "the store has no hookreg metadata, and holds data (table users/by-name is not empty): run \"migrator init --store " + path + " --data-version V\""
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "fresh install") {
		t.Errorf("status of a table with data: %d %s\nwant %s", code, stderr, want)
	}
}
