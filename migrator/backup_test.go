package migrator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/migrator"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// envMigrator makes the test binary run as the migrator (with the registry
// it names: see testRegistry), so that tests run the real command in real
// child processes, and the offline upgrade re-executes the same binary.
const envMigrator = "HOOKREG_TEST_MIGRATOR"

func init() {
	if name := os.Getenv(envMigrator); name != "" {
		setFailpoint(os.Getenv(envFailpoint))
		os.Exit(migrator.Main(testRegistry(name), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// testRegistry returns the example registry, or with name "fail",
// "crash", "slow" or "stuck" the example registry of a release 5.2.0 with a
// hook 101 that fails, kills its own process, sleeps, or never returns.
func testRegistry(name string) *hook.Registry {
	if name == "example" {
		return generated.Registry
	}
	r := *generated.Registry
	r.Release = "5.2.0"
	fn := func(ctx context.Context, tx hook.Tx) error { return errors.New("boom") }
	switch name {
	case "crash":
		fn = func(ctx context.Context, tx hook.Tx) error {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	case "slow":
		fn = func(ctx context.Context, tx hook.Tx) error {
			time.Sleep(100 * time.Millisecond)
			return nil
		}
	case "stuck":
		// A hook that ignores its context: it tells that it runs by
		// creating $STUCK_READY, then never returns.
		fn = func(ctx context.Context, tx hook.Tx) error {
			os.WriteFile(os.Getenv("STUCK_READY"), nil, 0o600)
			select {}
		}
	case "hold":
		// An online hook that holds the lock until the run ends.
		fn = func(ctx context.Context, tx hook.Tx) error {
			os.Stdout.WriteString("ready\n")
			<-ctx.Done()
			return ctx.Err()
		}
	}
	r.Hooks = append(slices.Clone(r.Hooks), hook.Hook{Num: 101, IntroducedIn: "5.2.0", Name: "Upgrade" + name, Digest: "h1:test", Func: fn, AllowOnline: name == "hold"})
	r.Digest = r.ComputeDigest()
	return &r
}

// migratorCmd returns the migrator with registry name as a child process;
// leading arguments "env:NAME=VALUE" set its environment.
func migratorCmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), envMigrator+"="+name)
	for len(args) > 0 && strings.HasPrefix(args[0], "env:") {
		env = append(env, strings.TrimPrefix(args[0], "env:"))
		args = args[1:]
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	return cmd
}

// runMigrator runs the migrator and returns its exit status and output.
func runMigrator(t testing.TB, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := migratorCmd(t, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// buildStore writes the example data of release into a new store file.
func buildStore(t testing.TB, path, release string, size example.Size) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := example.Build(context.Background(), st, generated.Registry, release, size); err != nil {
		t.Fatal(err)
	}
}

// dirDigest digests the files, modes and contents below dir.
func dirDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%q\n", data)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// names lists the entries of dir.
func names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestBackupRoundTripBinary backs up tables of arbitrary binary records
// (empty values, all byte values, large values) and a configuration
// directory with nested files and modes, restores them, and checks both
// bit-exactly.
func TestBackupRoundTripBinary(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	st, err := bolt.Open(src, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := upgrade.Init(st, generated.Registry); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bin", "empty-values", "big", "no-records"} {
		tb, err := tx.CreateTable(name)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{"bin": 3000, "empty-values": 100, "big": 3}[name]
		for range n {
			k := make([]byte, 1+rng.IntN(40))
			for i := range k {
				k[i] = byte(rng.UintN(256))
			}
			v := []byte{}
			switch name {
			case "bin":
				v = make([]byte, rng.IntN(300))
			case "big":
				v = make([]byte, 5<<20+rng.IntN(1000))
			}
			for i := range v {
				v[i] = byte(rng.UintN(256))
			}
			if err := tb.Put(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "etc")
	for p, mode := range map[string]fs.FileMode{"broker.json": 0o644, "certs/key.pem": 0o600, "certs/ca/root.pem": 0o640, "bin/hook.sh": 0o755, "empty": 0o444} {
		path := filepath.Join(cfg, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("content of "+p+"\x00\xff"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "b.tar.zst")
	m, err := backup.WriteFile(context.Background(), st, generated.Registry, out, backup.Options{ConfigDir: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(m.Config) != 5 || m.TableCount != 5 {
		t.Fatalf("manifest has %d config files and %d tables, want 5 and 5", len(m.Config), m.TableCount)
	}
	dst, dstCfg := filepath.Join(dir, "dst.db"), filepath.Join(dir, "etc2")
	if _, err := backup.Restore(context.Background(), generated.Registry, out, dst, backup.RestoreOptions{ConfigDir: dstCfg}); err != nil {
		t.Fatal(err)
	}
	want, err := example.Digest(src)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := example.Digest(dst); err != nil || got != want {
		t.Errorf("restored store digest %s (%v), want %s", got, err, want)
	}
	want, _ = dirDigest(cfg)
	if got, err := dirDigest(dstCfg); err != nil || got != want {
		t.Errorf("restored configuration differs (%v)", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"b.tar.zst", "dst.db", "etc", "etc2", "src.db"}) {
		t.Errorf("directory holds %q: litter from the backup or restore", got)
	}
}

// TestBackupRefusesSymlink checks that a link in the configuration
// directory is refused and that no file is left behind.
func TestBackupRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	st, err := bolt.Open(src, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := upgrade.Init(st, generated.Registry); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "etc")
	os.Mkdir(cfg, 0o755)
	if err := os.Symlink("/etc/passwd", filepath.Join(cfg, "passwd")); err != nil {
		t.Fatal(err)
	}
	_, err = backup.WriteFile(context.Background(), st, generated.Registry, filepath.Join(dir, "b.tar"), backup.Options{ConfigDir: cfg})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("passwd is a symbolic link")) {
		t.Fatalf("backup error %v, want a refused symbolic link", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"etc", "src.db"}) {
		t.Errorf("directory holds %q after a failed backup", got)
	}
}

// TestBackupConcurrentWriters backs up a store while writers keep changing
// two tables together in one transaction each; the restored copy must keep
// the invariant (both tables equal), the writers must keep going during the
// backup, and the test reports their longest stall.
func TestBackupConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "src.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := upgrade.Init(st, generated.Registry); err != nil {
		t.Fatal(err)
	}
	put := func(i int, v []byte) error {
		tx, err := st.Begin(true)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, name := range []string{"left", "right"} {
			tb, err := tx.CreateTable(name)
			if err != nil {
				return err
			}
			if err := tb.Put(fmt.Appendf(nil, "%08d", i), v); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
	// Preload: a backup that takes long enough to overlap many writes.
	const preload = 100000
	for b := 0; b < preload; b += 10000 {
		tx, err := st.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"left", "right"} {
			tb, _ := tx.CreateTable(name)
			for i := b; i < b+10000; i++ {
				if err := tb.Put(fmt.Appendf(nil, "%08d", i), bytes.Repeat([]byte{'x'}, 100)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var (
		stop     atomic.Bool
		inBackup atomic.Bool
		writes   atomic.Int64 // writes committed while the backup ran
		maxStall atomic.Int64
		wg       sync.WaitGroup
		werr     = make(chan error, 2)
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				i := w*1000000 + n%20000
				start := time.Now()
				if err := put(i, fmt.Appendf(nil, "writer %d round %d", w, n)); err != nil {
					werr <- err
					return
				}
				if inBackup.Load() {
					writes.Add(1)
					d := int64(time.Since(start))
					for old := maxStall.Load(); d > old && !maxStall.CompareAndSwap(old, d); old = maxStall.Load() {
					}
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	out := filepath.Join(dir, "b.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inBackup.Store(true)
	start := time.Now()
	// The first write (the manifest) comes after the read transaction
	// began: hold it until the writers have committed, so that they
	// certainly write during the backup.
	m, err := backup.Backup(st, generated.Registry, &gateWriter{w: f, wait: func() {
		deadline := time.Now().Add(10 * time.Second)
		for writes.Load() < 20 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}}, backup.Options{Compression: archive.None})
	took := time.Since(start)
	inBackup.Store(false)
	stop.Store(true)
	wg.Wait()
	close(werr)
	for err := range werr {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var records int64
	for _, tb := range m.Tables {
		records += tb.Records
	}
	t.Logf("backup of %d records took %s; %d writes committed meanwhile; longest writer stall %s",
		records, took.Round(time.Millisecond), writes.Load(), time.Duration(maxStall.Load()).Round(time.Microsecond))
	if writes.Load() < 20 {
		t.Errorf("%d writes committed during the backup, want 20: writers were blocked", writes.Load())
	}
	dst := filepath.Join(dir, "dst.db")
	if _, err := backup.Restore(context.Background(), generated.Registry, out, dst, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	rst, err := bolt.Open(dst, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	tx, err := rst.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var digests [2]string
	for i, name := range []string{"left", "right"} {
		tb, err := tx.Table(name)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		tb.Scan(nil, func(k, v []byte) error {
			fmt.Fprintf(h, "%q %q\n", k, v)
			return nil
		})
		digests[i] = hex.EncodeToString(h.Sum(nil))
	}
	if digests[0] != digests[1] {
		t.Errorf("restored tables left and right differ: the backup was not one snapshot")
	}
}

// gateWriter calls wait before its first write.
type gateWriter struct {
	w    io.Writer
	wait func()
	once sync.Once
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(g.wait)
	return g.w.Write(p)
}
