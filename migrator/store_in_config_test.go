package migrator_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/layout"
)

// The layout of these tests: a product that keeps its store inside its
// data directory, data/app.db beside data/broker.json, data/certs/key.pem
// and data/tunnel/x.conf, named with --config data.

// configDigest digests the configuration in dir, the store named base
// lying in it: every entry but the store's own files (layout.Owned).
func configDigest(t *testing.T, dir, base string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range names(t, dir) {
		if layout.Owned(base, name) {
			continue
		}
		p := filepath.Join(dir, name)
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			d, err := dirDigest(p)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s/ %s\n", name, d)
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v %q\n", name, info.Mode(), data)
	}
	return b.String()
}

// configState names the state of the configuration in data (the store
// app.db lying in it) against the one before a swap, oldConfig, and the
// one after, newConfig: "old config", "new config" or, while the journal
// of a swap is there, "half-swapped config", followed by " (journal)"
// while it is. A mix of old and new without the journal fails the test.
func configState(t *testing.T, what, data, oldConfig, newConfig string) string {
	t.Helper()
	_, err := os.Stat(filepath.Join(data, ".app.db.config-swap"))
	pending := err == nil
	var st string
	switch c := configDigest(t, data, "app.db"); {
	case c == oldConfig:
		st = "old config"
	case c == newConfig:
		st = "new config"
	case pending:
		st = "half-swapped config"
	default:
		t.Fatalf("%s: the configuration is a mix of old and new without a journal:\n%s", what, c)
	}
	if pending {
		st += " (journal)"
	}
	return st
}

// oldDataDir writes the old state of the layout: the store copied from
// template and an old configuration (an old key, a file the backup does
// not have, no tunnel).
func oldDataDir(t *testing.T, data, template string) {
	t.Helper()
	os.RemoveAll(data)
	if err := os.MkdirAll(filepath.Join(data, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, template, filepath.Join(data, "app.db"))
	for name, content := range map[string]string{"broker.json": `{"old":true}`, "certs/key.pem": "old key", "old.conf": "old"} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreCrashStoreInConfig kills "migrator restore --store
// data/app.db --config data" with SIGKILL at each step of the store's
// swap and of the configuration's swap, which replaces the entries of
// data one by one under a journal since the directory holding the store
// cannot be swapped whole. After every kill the store is entirely old or
// new, and the configuration is entirely old or new, or, while the
// journal is there, half swapped with nothing lost: a backup refuses it,
// and the next command holding the store (backup.FinishConfigSwap, which
// a restore and an upgrade run first) completes it to the new
// configuration. Running the restore again then leaves exactly the new
// store and configuration and nothing of the killed run.
func TestRestoreCrashStoreInConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	template := templateStore(t, dir, example.Small)

	// The archive: the 4.4.0 example data restored into src/app.db with
	// src as its configuration, certs and tunnel added, backed up.
	archivePath := filepath.Join(dir, "b.tar.zst")
	{
		src, first := filepath.Join(dir, "src"), filepath.Join(dir, "first.tar.zst")
		writeBackup(t, first, "4.4.0", crashSize)
		os.Mkdir(src, 0o755)
		if code, _, stderr := runMigrator(t, "example", "restore", first, "--store", filepath.Join(src, "app.db"), "--config", src); code != 0 {
			t.Fatalf("restoring the source: %s", stderr)
		}
		os.MkdirAll(filepath.Join(src, "certs"), 0o755)
		os.MkdirAll(filepath.Join(src, "tunnel"), 0o755)
		os.WriteFile(filepath.Join(src, "certs", "key.pem"), []byte("new key"), 0o600)
		os.WriteFile(filepath.Join(src, "tunnel", "x.conf"), []byte("endpoint = new"), 0o644)
		if code, _, stderr := runMigrator(t, "example", "backup", "--store", filepath.Join(src, "app.db"), "--config", src, "--out", archivePath); code != 0 {
			t.Fatalf("backing up the source: %s", stderr)
		}
		os.RemoveAll(src)
		os.Remove(first)
	}

	data := filepath.Join(dir, "data")
	db := filepath.Join(data, "app.db")
	args := []string{"restore", archivePath, "--store", db, "--config", data}
	oldDataDir(t, data, template)
	oldStore, _ := example.Digest(db)
	oldConfig := configDigest(t, data, "app.db")
	took := timeRun(t, migratorCmd(t, "example", args...))
	newStore, _ := example.Digest(db)
	newConfig := configDigest(t, data, "app.db")
	if newStore == oldStore || newConfig == oldConfig {
		t.Fatal("the restore changed nothing")
	}
	cleanData := []string{"app.db", "broker.json", "certs", "tunnel"}
	if got := names(t, data); !slices.Equal(got, cleanData) {
		t.Fatalf("the restore left %q in the data directory", got)
	}

	state := func(what string) string {
		t.Helper()
		s, err := example.Digest(db)
		if err != nil {
			t.Fatalf("%s: the store does not open: %v", what, err)
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
		st += ", " + configState(t, what, data, oldConfig, newConfig)
		if strings.HasPrefix(st, "old store") && st != "old store, old config" {
			t.Fatalf("%s: %s: the configuration was touched before the store was swapped", what, st)
		}
		return st
	}
	// complete runs what the next command does with a journal: a backup
	// refuses; the completion leaves the new configuration.
	complete := func(what string, viaRestore bool) {
		t.Helper()
		code, _, stderr := runMigrator(t, "example", "backup", "--store", db, "--config", data, "--out", filepath.Join(dir, "during.tar.zst"))
		if code != 2 || !strings.Contains(stderr, "half swapped by a restore that was killed") {
			t.Fatalf("%s: a backup of the half-swapped configuration: exit %d: %s", what, code, stderr)
		}
		if viaRestore {
			// A restore completes the swap as soon as it holds the
			// store, before anything else (killed just after that).
			if code, _, stderr := runMigrator(t, "example", withFailpointArgs("restore.locked=kill", args...)...); code == 0 {
				t.Fatalf("%s: the restore killed at restore.locked succeeded: %s", what, stderr)
			}
		} else if err := backup.FinishConfigSwap(db, data); err != nil {
			t.Fatalf("%s: completing the swap: %v", what, err)
		}
		if st := state(what + ", completed"); st != "new store, new config" {
			t.Fatalf("%s: completing the swap left %s", what, st)
		}
	}
	rerun := func(what string) {
		t.Helper()
		ageLeftovers(t, data)
		if out, err := migratorCmd(t, "example", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: the restore run again: %v\n%s", what, err, out)
		}
		if st := state(what + ", run again"); st != "new store, new config" {
			t.Fatalf("%s: the restore run again left %s", what, st)
		}
		if got := names(t, data); !slices.Equal(got, cleanData) {
			t.Fatalf("%s: the restore run again left %q", what, got)
		}
	}

	for i, c := range []struct {
		failpoints string
		want       string
	}{
		{"restore.locked=kill", "old store, old config"},
		{"restore.batch#10=kill", "old store, old config"},
		{"restore.before-swap=kill", "old store, old config"},
		{"restore.store-swapped=kill", "new store, old config"},
		{"restore.config-swap=fail", "old store, old config"},
		{"restore.config-swap=fail,restore.undone=kill", "old store, old config"},
		{"restore.config-journal=kill", "new store, old config (journal)"},
		// The old entries moved out one by one (broker.json, certs,
		// old.conf), then the new ones in (broker.json, certs, tunnel).
		{"restore.config-out#2=kill", "new store, half-swapped config (journal)"},
		{"restore.config-out#3=kill", "new store, half-swapped config (journal)"},
		{"restore.config-in#1=kill", "new store, half-swapped config (journal)"},
		{"restore.config-in#3=kill", "new store, half-swapped config (journal)"},
		{"restore.config-moved=kill", "new store, new config (journal)"},
		{"restore.config-out#2=fail", "new store, half-swapped config (journal)"},
		{"restore.swapped=kill", "new store, new config"},
	} {
		oldDataDir(t, data, template)
		code, _, stderr := runMigrator(t, "example", withFailpointArgs(c.failpoints, args...)...)
		if code == 0 {
			t.Fatalf("%s: the restore succeeded", c.failpoints)
		}
		got := state(c.failpoints)
		if got != c.want {
			t.Fatalf("%s: left %s, want %s (exit %d: %s)", c.failpoints, got, c.want, code, stderr)
		}
		if strings.HasSuffix(got, "(journal)") {
			complete(c.failpoints, i%2 == 0)
		}
		rerun(c.failpoints)
	}

	// A kill inside the journal's atomic write leaves its temporary
	// file, and nothing else changed: the next restore removes it.
	oldDataDir(t, data, template)
	if err := os.WriteFile(filepath.Join(data, "..app.db.config-swap.tmp-1"), []byte(".app.db.restore-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rerun("the journal's temporary file")

	// Kills at moments spread over the run, more of them near the end.
	counts := map[string]int{}
	for i := range 6 {
		oldDataDir(t, data, template)
		delay := took * time.Duration(i+2) / 8
		what := fmt.Sprintf("kill %d after %s", i, delay)
		finished := killAfter(t, migratorCmd(t, "example", args...), delay)
		st := state(what)
		if finished && st != "new store, new config" {
			t.Fatalf("%s: a finished restore left %s", what, st)
		}
		counts[st]++
		if strings.HasSuffix(st, "(journal)") {
			complete(what, i%2 == 0)
		}
		rerun(what)
	}
	t.Logf("restore takes %s; after 6 timed kills: %v", took, counts)
}

// TestOfflineStoreUpgradeCrashStoreInConfig kills "upgrade --offline
// --store data/app.db --config data" with SIGKILL at each step of its
// swap (the intent written, the store swapped, the journal written, the
// configuration's entries moved out and in, the journal removed). After
// every kill the store is entirely old or entirely upgraded, and the
// configuration old or new or, with the journal there, half swapped; the
// next run completes the upgrade of both and leaves nothing hidden in the
// directory, and the pre-upgrade backup beside the store is no
// configuration.
func TestOfflineStoreUpgradeCrashStoreInConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	template := templateStore(t, dir, example.Size{Users: 3000, Rules: 3000})
	data := filepath.Join(dir, "data")
	db := filepath.Join(data, "app.db")
	empty := t.TempDir()
	args := []string{"upgrade", "--offline", "--store", db, "--config", data}

	oldDataDir(t, data, template)
	oldData, _ := example.Digest(db, "_hookreg")
	oldConfig := configDigest(t, data, "app.db")
	if out, err := storeUpgradeCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("the uninterrupted run: %v\n%s", err, out)
	}
	newData, _ := example.Digest(db, "_hookreg")
	newConfig := configDigest(t, data, "app.db")
	if newData == oldData || newConfig == oldConfig {
		t.Fatal("the upgrade changed nothing")
	}
	state := func(what string) string {
		t.Helper()
		s, _ := storeState(t, db, empty, oldData, newData, "", "")
		if s == "mixed" {
			t.Fatalf("%s: the store's data and metadata are a mix of old and new", what)
		}
		return s + " store, " + configState(t, what, data, oldConfig, newConfig)
	}
	for _, c := range []struct {
		failpoints string
		want       string
	}{
		{"offline-store.intent=kill", "old store, old config"},
		{"offline-store.intent>restore.before-swap=kill", "old store, old config"},
		{"offline-store.intent>restore.store-swapped=kill", "new store, old config"},
		{"offline-store.intent>restore.config-journal=kill", "new store, old config (journal)"},
		{"offline-store.intent>restore.config-in=kill", "new store, half-swapped config (journal)"},
		{"offline-store.intent>restore.config-moved=kill", "new store, new config (journal)"},
		{"offline-store.intent>restore.swapped=kill", "new store, new config"},
	} {
		oldDataDir(t, data, template)
		cmd := withFailpoint(storeUpgradeCmd(args...), c.failpoints)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%s: the upgrade succeeded", c.failpoints)
		}
		if got := state(c.failpoints); got != c.want {
			t.Fatalf("%s: left %s, want %s (%v: %s)", c.failpoints, got, c.want, err, out)
		}
		ageLeftovers(t, data)
		if out, err := storeUpgradeCmd(args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: the re-run failed: %v\n%s", c.failpoints, err, out)
		}
		if got := state(c.failpoints + ", run again"); got != "new store, new config" {
			t.Fatalf("%s: the re-run left %s", c.failpoints, got)
		}
		for _, name := range names(t, data) {
			if strings.HasPrefix(name, ".") {
				t.Fatalf("%s: the re-run left %s in the data directory", c.failpoints, name)
			}
		}
	}
}

// TestMountPointBesideStore: a configuration entry that is another file
// system (a secret mounted at data/certs) cannot be replaced by a rename
// within data: restore and the one-command offline upgrade refuse it
// before writing anything, naming it. The mount is made in a private
// mount namespace (unshare); the test is skipped where there is none.
func TestMountPointBesideStore(t *testing.T) {
	needMountNamespace(t)
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	template := templateStore(t, dir, example.Small)
	data := filepath.Join(dir, "data")
	db := filepath.Join(data, "app.db")
	for _, args := range [][]string{
		{"restore", archivePath, "--store", db, "--config", data},
		{"upgrade", "--offline", "--store", db, "--config", data},
	} {
		oldDataDir(t, data, template)
		before := configDigest(t, data, "app.db")
		storeBefore, _ := example.Digest(db)
		m := migratorCmd(t, "example", args...)
		cmd := exec.Command("unshare", append([]string{"-rm", "sh", "-c", `mount -t tmpfs none "$1" && shift && exec "$@"`, "sh", filepath.Join(data, "certs"), m.Path}, args...)...)
		cmd.Env = m.Env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "data/certs is another file system (a mount point) inside the configuration directory") {
			t.Fatalf("%s: %v: %s", args[0], err, out)
		}
		after, _ := example.Digest(db)
		if configDigest(t, data, "app.db") != before || after != storeBefore {
			t.Fatalf("%s: the refusal changed the data directory", args[0])
		}
		for _, name := range names(t, data) {
			if strings.HasPrefix(name, ".") || strings.Contains(name, "pre-upgrade") {
				t.Fatalf("%s: the refusal left %s", args[0], name)
			}
		}
	}
}

// TestMountPointInConfig: a configuration directory that is a mount point
// cannot be replaced by a rename, and one that holds a mount point (a
// secret mounted at etc/certs, or deeper beside a store lying in the
// directory) would have that file system emptied by the removal of the
// old configuration once replaced: restore and the one-command offline
// upgrade refuse both before writing anything, naming the mount point,
// and the mounted file survives. Before, the restore deleted the files
// of a mount inside the directory, and failed at the swap, after reading
// the whole archive, with "device or resource busy" for a directory that
// is one. Skipped where there is no private mount namespace.
func TestMountPointInConfig(t *testing.T) {
	needMountNamespace(t)
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	for _, c := range []struct {
		name, store, config, mount, want string
		args                             []string
		bind                             bool // a bind mount of a directory of the same file system
	}{
		{"restore, inside", "app.db", "etc", "etc/certs", "etc/certs is another file system (a mount point) inside the configuration directory", nil, false},
		{"restore, a bind mount inside", "app.db", "etc", "etc/certs", "etc/certs is another file system (a mount point) inside the configuration directory", nil, true},
		{"restore, a bind mount beside the store", "data/app.db", "data", "data/certs", "data/certs is another file system (a mount point) inside the configuration directory", nil, true},
		{"restore, the directory a bind mount", "app.db", "etc", "etc", "etc is a mount point", nil, true},
		{"restore, deeper beside the store", "data/app.db", "data", "data/sub/certs", "data/sub/certs is another file system (a mount point) inside the configuration directory", nil, false},
		{"restore, the directory", "app.db", "etc", "etc", "etc is a mount point", nil, false},
		{"offline upgrade, inside", "app.db", "etc", "etc/certs", "etc/certs is another file system (a mount point) inside the configuration directory", []string{"upgrade", "--offline"}, false},
	} {
		root := filepath.Join(t.TempDir(), "x")
		db, config, mount := filepath.Join(root, c.store), filepath.Join(root, c.config), filepath.Join(root, c.mount)
		os.MkdirAll(filepath.Dir(db), 0o755)
		if out, err := migratorCmd(t, "example", "restore", archivePath, "--store", db, "--config", config).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, out)
		}
		os.MkdirAll(mount, 0o755)
		storeBefore, _ := example.Digest(db)
		args := []string{"restore", archivePath, "--store", db, "--config", config}
		if c.args != nil {
			args = append(c.args, "--store", db, "--config", config)
		}
		m := migratorCmd(t, "example", args...)
		// Mount a file system at mount with a file in it, run the
		// command, and print the file after it.
		script := `mount -t tmpfs none "$1" && echo secret > "$1/key.pem" && shift && "$@"; rc=$?; cat "$0/key.pem"; exit $rc`
		if c.bind {
			// The bound directory lies beside root, on the same file
			// system: only the mount table tells it is mounted.
			src := filepath.Join(filepath.Dir(root), "secrets")
			os.MkdirAll(src, 0o755)
			script = `mount --bind "` + src + `" "$1" && echo secret > "$1/key.pem" && shift && "$@"; rc=$?; cat "$0/key.pem"; exit $rc`
		}
		cmd := exec.Command("unshare", append([]string{"-rm", "sh", "-c", script, mount, mount, m.Path}, args...)...)
		cmd.Env = m.Env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v: %s", c.name, err, out)
		}
		if !strings.HasSuffix(string(out), "secret\n") {
			t.Errorf("%s: the file on the mounted file system is gone: %s", c.name, out)
		}
		if after, _ := example.Digest(db); after != storeBefore {
			t.Errorf("%s: the refusal changed the store", c.name)
		}
	}
}

// TestOfflineStoreUpgradeHookWritesStoreName: in "upgrade --offline
// --store data/app.db --config data", a hook that writes a configuration
// file named like one of the store's own files fails, naming the store,
// and the run stops there: the store and the directory are as they were
// (the restore at the end of the run, which would refuse the result, is
// never reached).
func TestOfflineStoreUpgradeHookWritesStoreName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	template := templateStore(t, dir, example.Size{Users: 10, Rules: 10})
	data := filepath.Join(dir, "data")
	db := filepath.Join(data, "app.db")
	for _, name := range []string{"app.db", "app.db/notes.txt", "app.db.pre-upgrade-x/notes.txt"} {
		t.Run(name, func(t *testing.T) {
			oldDataDir(t, data, template)
			oldData, _ := example.Digest(db, "_hookreg")
			oldConfig := configDigest(t, data, "app.db")
			cmd := storeUpgradeCmd("upgrade", "--offline", "--store", db, "--config", data)
			cmd.Env = append(cmd.Env, envStoreUpgradeConfig+"="+name)
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			want := "writing configuration file " + name + ": the name belongs to the store app.db, which lies in the configuration directory"
			if !strings.Contains(string(out), want) || !strings.Contains(string(out), "hook 101") {
				t.Errorf("the output does not name the hook and the store's name:\n%s", out)
			}
			if d, _ := example.Digest(db, "_hookreg"); d != oldData {
				t.Error("the store's data changed")
			}
			if c := configDigest(t, data, "app.db"); c != oldConfig {
				t.Errorf("the configuration changed:\n%s\nwas\n%s", c, oldConfig)
			}
		})
	}
}

// needMountNamespace skips the test where unshare cannot make a private
// mount namespace, in which the test mounts file systems.
func needMountNamespace(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		t.Skipf("no private mount namespace: %v %s", err, out)
	}
}

// TestSymlinkToMountInConfig: a configuration entry that is a symbolic
// link to a mount point elsewhere (a secret linked from a tmpfs) is not a
// mount inside the directory: the restore replaces the directory, link
// included, and the mounted file stays where it is.
func TestSymlinkToMountInConfig(t *testing.T) {
	needMountNamespace(t)
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	root := filepath.Join(t.TempDir(), "x")
	// The store in the directory, whose entries a restore checks one
	// by one.
	db, config, secrets := filepath.Join(root, "data", "app.db"), filepath.Join(root, "data"), filepath.Join(root, "secrets")
	os.MkdirAll(config, 0o755)
	if out, err := migratorCmd(t, "example", "restore", archivePath, "--store", db, "--config", config).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.MkdirAll(secrets, 0o755)
	if err := os.Symlink(secrets, filepath.Join(config, "certs")); err != nil {
		t.Fatal(err)
	}
	m := migratorCmd(t, "example", "restore", archivePath, "--store", db, "--config", config)
	script := `mount -t tmpfs none "$1" && echo secret > "$1/key.pem" && shift && "$@"; rc=$?; cat "$0/key.pem"; exit $rc`
	cmd := exec.Command("unshare", append([]string{"-rm", "sh", "-c", script, secrets, secrets, m.Path}, "restore", archivePath, "--store", db, "--config", config)...)
	cmd.Env = m.Env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "secret\n") {
		t.Errorf("restore with a link to a mount in the configuration: %v: %s", err, out)
	}
}
