package migrator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// crashSize is the example data of the crash tests: big enough that a
// backup or a restore takes a while, small enough for many kills.
var crashSize = example.Size{Users: 20000, Rules: 20000}

// writeBackup backs up a store built with the example data of release.
func writeBackup(t *testing.T, path, release string, size example.Size) {
	t.Helper()
	writeBackupWith(t, path, release, size, backup.Options{})
}

// writeBackupWith is writeBackup with opts (encrypted, signed).
func writeBackupWith(t *testing.T, path, release string, size example.Size, opts backup.Options) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "b.db")
	buildStore(t, db, release, size)
	st, err := bolt.Open(db, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, opts); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// oldState writes the old store (the example data of 5.1.0 without its
// configuration table) and the old configuration directory.
func oldState(t *testing.T, db, cfg, template string) {
	t.Helper()
	copyFile(t, template, db)
	os.RemoveAll(cfg)
	if err := os.MkdirAll(filepath.Join(cfg, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"broker.json": `{"old":true}`, "tls/key.pem": "old key"} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// ageLeftovers makes the temporary files and directories in dir (names
// starting with ".") older than backup.StaleAge, as if the killed run had
// been long ago, so that the next run of the command removes them.
func ageLeftovers(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-2 * backup.StaleAge)
	for _, name := range names(t, dir) {
		if strings.HasPrefix(name, ".") {
			if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRestoreCrash kills "migrator restore" with SIGKILL at each step
// (failpoints in the middle of its single pass over the archive, once it
// is read whole, just before and after each swap, and in the undo of a
// failed configuration swap) and at random moments: afterwards the store is
// entirely the old one or entirely the new one (it opens, passes bbolt's
// check and holds exactly one of the two contents), and so is the
// configuration directory; the configuration is never swapped before the
// store; a failed configuration swap puts the old store back. After every
// kill, running the restore again completes it and removes what the killed
// run left.
func TestRestoreCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", crashSize)
	restoreCrash(t, dir, archivePath, []string{"b.tar.zst"})
}

// TestSealedRestoreCrash is TestRestoreCrash with an archive encrypted
// with age and signed, restored with --identity and --trusted-key: the
// decryption's goroutine changes nothing of what a kill leaves.
func TestSealedRestoreCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	identity, trusted := filepath.Join(dir, "age.key"), filepath.Join(dir, "ops.pub")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trusted, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(dir, "b.tar.zst.age")
	writeBackupWith(t, archivePath, "4.4.0", crashSize, backup.Options{Recipients: []age.Recipient{id.Recipient()}, Signer: signer})
	restoreCrash(t, dir, archivePath, []string{"age.key", "b.tar.zst.age", "ops.pub"}, "--identity", identity, "--trusted-key", trusted)
}

// restoreCrash is TestRestoreCrash of the archive at archivePath in dir,
// which holds the files keep besides, restored with the extra arguments.
func restoreCrash(t *testing.T, dir, archivePath string, keep []string, extra ...string) {
	template := filepath.Join(dir, "template.db")
	buildStore(t, template, "5.1.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
	clean := slices.Sorted(slices.Values(append(keep, "broker.db", "etc", "template.db")))

	oldState(t, db, cfg, template)
	oldStore, err := example.Digest(db)
	if err != nil {
		t.Fatal(err)
	}
	oldConfig, _ := dirDigest(cfg)
	restore := func() *exec.Cmd {
		return migratorCmd(t, "example", append([]string{"restore", archivePath, "--store", db, "--config", cfg}, extra...)...)
	}
	took := timeRun(t, restore())
	newStore, err := example.Digest(db)
	if err != nil {
		t.Fatal(err)
	}
	newConfig, _ := dirDigest(cfg)
	if newStore == oldStore || newConfig == oldConfig {
		t.Fatal("the restore changed nothing")
	}
	state := func(what string) string {
		t.Helper()
		s, err := example.Digest(db)
		if err != nil {
			t.Fatalf("%s: the store does not open: %v", what, err)
		}
		c, err := dirDigest(cfg)
		if err != nil {
			t.Fatalf("%s: the configuration directory: %v", what, err)
		}
		var st string
		switch s {
		case oldStore:
			st = "old store"
		case newStore:
			st = "new store"
		default:
			t.Fatalf("%s: the store is neither the old one nor the new one", what)
		}
		switch c {
		case oldConfig:
			st += ", old config"
		case newConfig:
			st += ", new config"
		default:
			t.Fatalf("%s: the configuration is neither the old one nor the new one", what)
		}
		if st == "old store, new config" {
			t.Fatalf("%s: the configuration was swapped before the store", what)
		}
		return st
	}
	// rerun runs the restore again after a killed one: it completes, and
	// removes the killed run's temporary files.
	rerun := func(what string) {
		t.Helper()
		ageLeftovers(t, dir)
		if out, err := restore().CombinedOutput(); err != nil {
			t.Fatalf("%s: the restore run again: %v\n%s", what, err, out)
		}
		if st := state(what + ", run again"); st != "new store, new config" {
			t.Fatalf("%s: the restore run again left %s", what, st)
		}
		if got := names(t, dir); !slices.Equal(got, clean) {
			t.Fatalf("%s: the restore run again left %q", what, got)
		}
	}

	for _, c := range []struct {
		failpoints string
		want       string
		building   bool // the killed run leaves its new store and directory
	}{
		{"restore.locked=kill", "old store, old config", false},
		{"restore.checked=kill", "old store, old config", false},
		// The tenth batch of records handed to the new store, in the
		// middle of the archive; then the whole archive read and checked,
		// before the new store is synced.
		{"restore.batch#10=kill", "old store, old config", true},
		{"restore.loaded=kill", "old store, old config", true},
		{"restore.before-swap=kill", "old store, old config", true},
		{"restore.store-swapped=kill", "new store, old config", false},
		{"restore.config-swap=fail", "old store, old config", false},
		{"restore.config-swap=fail,restore.undone=kill", "old store, old config", true},
		{"restore.swapped=kill", "new store, new config", false},
	} {
		oldState(t, db, cfg, template)
		code, _, stderr := runMigrator(t, "example", withFailpointArgs(c.failpoints, append([]string{"restore", archivePath, "--store", db, "--config", cfg}, extra...)...)...)
		if code == 0 {
			t.Fatalf("%s: the restore succeeded", c.failpoints)
		}
		if got := state(c.failpoints); got != c.want {
			t.Fatalf("%s: left %s, want %s (exit %d: %s)", c.failpoints, got, c.want, code, stderr)
		}
		if c.building {
			got := names(t, dir)
			if !slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, ".broker.db.restore-") }) ||
				!slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, ".etc.restore-") }) {
				t.Fatalf("%s: left %q, want the killed run's new store and directory beside the old ones", c.failpoints, got)
			}
		}
		rerun(c.failpoints)
	}

	const kills = 6
	rng := mrand.New(mrand.NewPCG(5, 6))
	counts := map[string]int{}
	for i := range kills {
		oldState(t, db, cfg, template)
		// Half the kills anywhere, half around the end, where the swaps are.
		delay := time.Duration(rng.Int64N(int64(took)))
		if i%2 == 1 {
			delay = took*3/4 + time.Duration(rng.Int64N(int64(took/2)))
		}
		what := fmt.Sprintf("kill %d after %s", i, delay)
		finished := killAfter(t, restore(), delay)
		st := state(what)
		if finished && st != "new store, new config" {
			t.Fatalf("a finished restore left %s", st)
		}
		counts[st]++
		rerun(what)
	}
	t.Logf("restore takes %s; after %d random kills: %v", took.Round(time.Millisecond), kills, counts)
}

// TestBackupCrash kills "migrator backup" with SIGKILL at random moments
// and just before and just after the rename of the new backup: the output
// file is always the previous complete backup or a new complete one,
// never partial; the next backup removes the temporary files killed runs
// left.
func TestBackupCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "4.4.0", crashSize)
	out, prev := filepath.Join(dir, "b.tar"), filepath.Join(dir, "prev.tar")
	writeBackup(t, prev, "5.1.0", example.Small)
	prevSum := fileSum(t, prev)
	args := []string{"backup", "--store", db, "--out", out, "--compress", "none"}
	took := timeRun(t, migratorCmd(t, "example", args...))

	// outcome reports whether out is the previous backup ("kept") or a
	// new complete one ("replaced"), and fails on anything else.
	outcome := func(what string) string {
		t.Helper()
		if fileSum(t, out) == prevSum {
			return "kept"
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := archive.Verify(f); err != nil {
			t.Fatalf("%s: the output is a partial backup: %v", what, err)
		}
		return "replaced"
	}
	litter := 0
	// rerun backs up again after a killed run: the killed run's temporary
	// file is gone afterwards.
	rerun := func(what string) {
		t.Helper()
		for _, name := range names(t, dir) {
			if strings.HasPrefix(name, ".") {
				litter++
			}
		}
		ageLeftovers(t, dir)
		if out, err := migratorCmd(t, "example", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: the backup run again: %v\n%s", what, err, out)
		}
		if got := names(t, dir); !slices.Equal(got, []string{"b.tar", "broker.db", "prev.tar"}) {
			t.Fatalf("%s: the backup run again left %q", what, got)
		}
	}

	for _, c := range []struct{ point, want string }{
		{"backup.written", "kept"},
		{"backup.committed", "replaced"},
	} {
		copyFile(t, prev, out)
		code, _, stderr := runMigrator(t, "example", withFailpointArgs(c.point+"=kill", args...)...)
		if code == 0 {
			t.Fatalf("%s: the backup succeeded: %s", c.point, stderr)
		}
		if got := outcome(c.point); got != c.want {
			t.Fatalf("killed at %s: the output was %s, want %s", c.point, got, c.want)
		}
		rerun(c.point)
	}

	const kills = 10
	rng := mrand.New(mrand.NewPCG(7, 8))
	counts := map[string]int{}
	for i := range kills {
		copyFile(t, prev, out)
		delay := time.Duration(rng.Int64N(int64(took)))
		what := fmt.Sprintf("kill %d after %s", i, delay)
		killAfter(t, migratorCmd(t, "example", args...), delay)
		counts[outcome(what)]++
		rerun(what)
	}
	t.Logf("backup takes %s; after %d random kills: %v; %d temporary files left by killed runs, all removed by the next run", took.Round(time.Millisecond), kills, counts, litter)
}

// TestRestoreRefusals: a damaged archive, another product's data, data
// newer than the release and a store in use are refused, and leave the
// old store and configuration exactly as they were.
func TestRestoreRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.zst")
	writeBackup(t, good, "4.4.0", example.Small)
	template := filepath.Join(dir, "template.db")
	buildStore(t, template, "5.1.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")

	truncated := filepath.Join(dir, "truncated.tar.zst")
	data, _ := os.ReadFile(good)
	os.WriteFile(truncated, data[:len(data)-100], 0o600)

	edited := func(name string, edit func(*upgrade.Metadata)) string {
		db := filepath.Join(dir, name+".db")
		buildStore(t, db, "5.0.0", example.Small)
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		tx, _ := st.Begin(true)
		m, err := upgrade.ReadMetadata(tx)
		if err != nil {
			t.Fatal(err)
		}
		edit(&m)
		if err := upgrade.WriteMetadata(tx, m); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".tar.zst")
		if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other := edited("other", func(m *upgrade.Metadata) { m.Product = "other-product" })
	newer := edited("newer", func(m *upgrade.Metadata) { m.DataVersion = "6.0.0" })
	// Archives whose manifest passes every refusal but whose metadata
	// table, which the restore writes, says otherwise.
	disagreeing := func(name string, meta [][2]string) string {
		path := filepath.Join(dir, name+".tar")
		if err := os.WriteFile(path, verifyArchive(t, archive.None, "mqtt-broker", "5.0.1", meta), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	applied := `{"num":99,"digest":"h1:x","release":"5.0.1","applied_at":"2026-01-01T00:00:00Z","mode":"online"}`
	tableOther := disagreeing("table-other", [][2]string{{"data_version", "5.0.1"}, {"last_upgrade_hook", "99"}, {"product", "other-product"}})
	tableFuture := disagreeing("table-future", metaRecords("7.0.0"))
	tableDowngrade := disagreeing("table-downgrade", [][2]string{{"data_version", "5.0.1"}, {"last_upgrade_hook", "1000"}, {"product", "mqtt-broker"}})
	tableApplied := disagreeing("table-applied", [][2]string{{"applied/0000000099", applied}, {"data_version", "5.0.1"}, {"last_upgrade_hook", "99"}, {"product", "mqtt-broker"}})

	for _, c := range []struct {
		name, archive string
		code          int
		want          string
	}{
		{"truncated", truncated, 1, "invalid archive"},
		{"other product", other, 1, `the data belongs to product "other-product"`},
		{"newer", newer, 1, "the data version 6.0.0 is newer than this migrator's release " + generated.Registry.Release},
		{"missing", filepath.Join(dir, "missing.tar.zst"), 2, "no such file"},
		{"table of another product", tableOther, 1, `the manifest disagrees with the data: the manifest records product "mqtt-broker", the table "_hookreg" product "other-product"`},
		{"table of a future version", tableFuture, 1, `the manifest disagrees with the data: the manifest records data version 5.0.1, the table "_hookreg" data version 7.0.0`},
		{"table of a downgrade", tableDowngrade, 1, `the manifest disagrees with the data: the manifest records last upgrade hook 99, the table "_hookreg" 1000`},
		{"table with applied hooks", tableApplied, 1, `the manifest disagrees with the data: the manifest records applied hooks none, the table "_hookreg" 99 (h1:x, 5.0.1, online)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			oldState(t, db, cfg, template)
			before, _ := example.Digest(db)
			beforeCfg, _ := dirDigest(cfg)
			entries := names(t, dir)
			code, _, stderr := runMigrator(t, "example", "restore", c.archive, "--store", db, "--config", cfg)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
			if after, _ := example.Digest(db); after != before {
				t.Errorf("the store changed")
			}
			if after, _ := dirDigest(cfg); after != beforeCfg {
				t.Errorf("the configuration changed")
			}
			if got := names(t, dir); !slices.Equal(got, entries) {
				t.Errorf("directory holds %q, before %q", got, entries)
			}
		})
	}

	t.Run("in use", func(t *testing.T) {
		oldState(t, db, cfg, template)
		before, _ := example.Digest(db)
		// This process holds the store, as a running product would.
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		code, _, stderr := runMigrator(t, "example", "restore", good, "--store", db, "--config", cfg)
		if code != 1 || !strings.Contains(stderr, "store is in use by another process") {
			t.Errorf("exit %d, stderr %q; want a refusal: store in use", code, stderr)
		}
		st.Close()
		if after, _ := example.Digest(db); after != before {
			t.Errorf("the store changed")
		}
	})
}
