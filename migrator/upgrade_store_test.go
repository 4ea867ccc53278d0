package migrator_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/migrator"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// envStoreUpgrade makes the test binary run as the migrator of
// storeUpgradeRegistry.
const envStoreUpgrade = "HOOKREG_TEST_STORE_UPGRADE"

// envStoreUpgradeConfig names the configuration file that hook 101 of
// storeUpgradeRegistry writes (broker.json when unset).
const envStoreUpgradeConfig = "HOOKREG_TEST_STORE_UPGRADE_CONFIG"

func init() {
	if os.Getenv(envStoreUpgrade) != "" {
		setFailpoint(os.Getenv(envFailpoint))
		p := &migrator.Program{Registry: storeUpgradeRegistry(), Name: "migrator"}
		os.Exit(p.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// storeUpgradeRegistry is the example registry of a release 5.2.0 whose
// offline hook 101 adds a table and rewrites the configuration file, so
// that old and upgraded data differ in both.
func storeUpgradeRegistry() *hook.Registry {
	r := *generated.Registry
	r.Release = "5.2.0"
	r.Hooks = append(slices.Clone(r.Hooks), hook.Hook{Num: 101, IntroducedIn: "5.2.0", Name: "AddSessions", Digest: "h1:test", Func: func(ctx context.Context, tx hook.Tx) error {
		time.Sleep(20 * time.Millisecond)
		t, err := tx.CreateTable("sessions")
		if err != nil {
			return err
		}
		if err := t.Put([]byte("s1"), []byte("v")); err != nil {
			return err
		}
		name := "broker.json"
		if n := os.Getenv(envStoreUpgradeConfig); n != "" {
			name = n
		}
		return tx.Config().WriteFile(name, []byte(`{"new":true}`), 0o600)
	}})
	r.Digest = r.ComputeDigest()
	return &r
}

func storeUpgradeCmd(args ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envStoreUpgrade+"=1")
	return cmd
}

// storeState describes a store and configuration directory as "old" or
// "new" in each part, or "mixed" when the store's metadata disagrees with
// its data.
func storeState(t *testing.T, db, cfg, oldData, newData, oldCfg, newCfg string) (string, string) {
	t.Helper()
	data, err := example.Digest(db, "_hookreg")
	if err != nil {
		t.Fatalf("the store does not open or is damaged: %v", err)
	}
	st, err := bolt.Open(db, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := upgrade.ReadStoreMetadata(st)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := "mixed"
	switch {
	case data == oldData && meta.DataVersion == "5.1.0" && *meta.LastUpgradeHook == 100:
		s = "old"
	case data == newData && meta.DataVersion == "5.2.0" && *meta.LastUpgradeHook == 101:
		s = "new"
	}
	c, err := dirDigest(cfg)
	if err != nil {
		t.Fatalf("the configuration directory: %v", err)
	}
	cs := "neither old nor new"
	switch c {
	case oldCfg:
		cs = "old"
	case newCfg:
		cs = "new"
	}
	return s, cs
}

// killPoint is a moment of "upgrade --offline --store", told from what the
// directory shows: each is seen by a poller, which then kills the
// migrator after a delay.
type killPoint struct {
	name string
	// reached reports the moment has come, given the directory's names
	// and what the poller saw so far.
	reached func(w *watch) bool
}

// watch is what the poller saw of the directory.
type watch struct {
	dir, db, cfg   string
	names          []string
	dbIno, cfgIno  uint64
	sawMarker      bool
	sawStoreBuild  bool
	sawConfigBuild bool
	storeSwapped   bool
	configSwapped  bool
}

func (w *watch) has(prefix string) bool {
	for _, n := range w.names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

func inode(path string) uint64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func (w *watch) poll() {
	entries, _ := os.ReadDir(w.dir)
	w.names = w.names[:0]
	for _, e := range entries {
		w.names = append(w.names, e.Name())
	}
	w.sawMarker = w.sawMarker || w.has(".broker.db.upgraded.tar.zst")
	w.sawStoreBuild = w.sawStoreBuild || w.has(".broker.db.restore-")
	w.sawConfigBuild = w.sawConfigBuild || w.has(".etc.restore-")
	w.storeSwapped = w.storeSwapped || inode(w.db) != w.dbIno
	w.configSwapped = w.configSwapped || inode(w.cfg) != w.cfgIno
}

var killPoints = []killPoint{
	{"pre-upgrade backup started", func(w *watch) bool { return w.has(".broker.db.pre-upgrade-") || w.has("broker.db.pre-upgrade-") }},
	{"pre-upgrade backup renamed into place", func(w *watch) bool { return w.has("broker.db.pre-upgrade-") }},
	{"child started", func(w *watch) bool { return w.has("..broker.db.upgraded.tar.zst.offline-") || w.sawMarker }},
	{"upgraded backup renamed into place", func(w *watch) bool { return w.sawMarker }},
	{"new store being built", func(w *watch) bool { return w.sawStoreBuild }},
	{"new configuration being built", func(w *watch) bool { return w.sawConfigBuild }},
	{"store swapped", func(w *watch) bool { return w.storeSwapped }},
	{"store swapped (seen without delay)", nil},
	{"configuration swapped", func(w *watch) bool { return w.configSwapped }},
	{"old store removed", func(w *watch) bool { return w.storeSwapped && w.sawStoreBuild && !w.has(".broker.db.restore-") }},
	{"upgraded backup removed", func(w *watch) bool { return w.sawMarker && !w.has(".broker.db.upgraded.tar.zst") }},
}

// dropConfigTable removes the configuration table of the store at path:
// templateStore builds dir/template.db, a store of release 5.1.0 of size
// without the table _config (its configuration goes in a directory), to
// copy before each run of an offline upgrade of a store.
func templateStore(t *testing.T, dir string, size example.Size) string {
	t.Helper()
	template := filepath.Join(dir, "template.db")
	buildStore(t, template, "5.1.0", size)
	dropConfigTable(t, template)
	return template
}

// its configuration lives in a directory.
func dropConfigTable(t *testing.T, path string) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.DropTable(store.ConfigTable); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls w until p is reached or done is closed. The point
// without a function is the store's swap, watched in a busy loop on the
// store's inode alone once the new configuration is being built, to kill
// between the swaps of the store and the configuration.
func waitFor(w *watch, p killPoint, done <-chan struct{}) {
	if p.reached == nil {
		waitFor(w, killPoints[slices.IndexFunc(killPoints, func(p killPoint) bool { return p.name == "new configuration being built" })], done)
		for inode(w.db) == w.dbIno {
			select {
			case <-done:
				return
			default:
			}
		}
		return
	}
	for w.poll(); !p.reached(w); w.poll() {
		select {
		case <-done:
			return
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// TestOfflineStoreUpgradeCrash kills "upgrade --offline --store S --config
// DIR" with SIGKILL just at and after each step seen in the directory
// (each rename and swap), and just before each from the timing of an
// uninterrupted run. After every kill the store is entirely the old one or
// entirely the upgraded one (data and metadata together), the
// configuration is old or new but never new beside an old store, and
// running the command again completes the upgrade of both.
func TestOfflineStoreUpgradeCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	template := templateStore(t, dir, example.Size{Users: 3000, Rules: 3000})
	work := filepath.Join(dir, "w")
	db, cfg := filepath.Join(work, "broker.db"), filepath.Join(work, "etc")
	reset := func() {
		os.RemoveAll(work)
		os.Mkdir(work, 0o755)
		oldState(t, db, cfg, template)
	}
	args := []string{"upgrade", "--offline", "--store", db, "--config", cfg}

	// One uninterrupted run gives the new state and the timing of each
	// kill point.
	reset()
	oldData, _ := example.Digest(db, "_hookreg")
	oldCfg, _ := dirDigest(cfg)
	at := make([]time.Duration, len(killPoints))
	cmd := storeUpgradeCmd(args...)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	w := &watch{dir: work, db: db, cfg: cfg, dbIno: inode(db), cfgIno: inode(cfg)}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	next := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the uninterrupted run: %v\n%s", err, output.String())
			}
			running = false
		default:
		}
		w.poll()
		for next < len(killPoints) && (killPoints[next].reached == nil || killPoints[next].reached(w)) {
			at[next] = time.Since(start)
			next++
		}
		time.Sleep(100 * time.Microsecond)
	}
	newData, _ := example.Digest(db, "_hookreg")
	newCfg, _ := dirDigest(cfg)
	if s, c := storeState(t, db, cfg, oldData, newData, oldCfg, newCfg); s != "new" || c != "new" || newData == oldData || newCfg == oldCfg {
		t.Fatalf("the uninterrupted run left a %s store and %s configuration", s, c)
	}
	took := time.Since(start)

	// Kill at each point and 2ms after it; and 1ms before it, timed
	// from the start as in the uninterrupted run.
	type kill struct {
		point  int
		before bool
		delay  time.Duration
	}
	var kills []kill
	for i := range killPoints {
		kills = append(kills, kill{i, false, 0}, kill{i, false, 2 * time.Millisecond})
		if at[i] > time.Millisecond {
			kills = append(kills, kill{i, true, at[i] - time.Millisecond})
		}
	}
	counts := map[string]int{}
	finished := 0
	for n, k := range kills {
		reset()
		cmd := storeUpgradeCmd(args...)
		w := &watch{dir: work, db: db, cfg: cfg, dbIno: inode(db), cfgIno: inode(cfg)}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		what := killPoints[k.point].name
		if k.before {
			what = "before " + what
			time.Sleep(k.delay - time.Since(start))
		} else {
			waitFor(w, killPoints[k.point], done)
			time.Sleep(k.delay)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if cmd.ProcessState.Success() {
			finished++
		}
		s, c := storeState(t, db, cfg, oldData, newData, oldCfg, newCfg)
		if s == "mixed" {
			t.Fatalf("kill %d (%s + %s): the store's data and metadata are a mix of old and new", n, what, k.delay)
		}
		if c != "old" && c != "new" {
			t.Fatalf("kill %d (%s + %s): the configuration is %s", n, what, k.delay, c)
		}
		if s == "old" && c == "new" {
			t.Fatalf("kill %d (%s + %s): the configuration was swapped before the store", n, what, k.delay)
		}
		counts[s+" store, "+c+" config"]++
		t.Logf("kill %d (%s + %s): %s store, %s config", n, what, k.delay, s, c)
		// Running again completes the upgrade.
		out, err := storeUpgradeCmd(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kill %d (%s + %s): the re-run failed: %v\n%s", n, what, k.delay, err, out)
		}
		if s, c := storeState(t, db, cfg, oldData, newData, oldCfg, newCfg); s != "new" || c != "new" {
			t.Fatalf("kill %d (%s + %s): the re-run left a %s store and %s configuration:\n%s", n, what, k.delay, s, c, out)
		}
		if _, err := os.Stat(filepath.Join(work, ".broker.db.upgraded.tar.zst")); err == nil {
			t.Fatalf("kill %d (%s + %s): the re-run left the upgraded backup", n, what, k.delay)
		}
	}
	if len(kills) < 20 {
		t.Fatalf("only %d kills", len(kills))
	}
	t.Logf("an uninterrupted run takes %s; %d kills (%d after the run finished): %v", took.Round(time.Millisecond), len(kills), finished, counts)
}

// TestOfflineStoreChangedUnderneath: the one-command offline upgrade swaps
// its result in only over the store it backed up. A restore that lands
// after the upgrade's backup, while the child's result waits (issue: the
// restore was undone), and the old product writing after a killed run (a
// stale resume) each make the upgrade refuse, leaving the store as it is
// and saying how to start over; a restore discards a waiting result,
// saying so, and the upgrade then upgrades what the restore put in place.
func TestOfflineStoreChangedUnderneath(t *testing.T) {
	dir := t.TempDir()
	template := templateStore(t, dir, example.Small)
	other := filepath.Join(dir, "other.tar.zst")
	writeBackup(t, other, "5.0.0", example.Small)
	work := filepath.Join(dir, "w")
	db, cfg := filepath.Join(work, "broker.db"), filepath.Join(work, "etc")
	intent := filepath.Join(work, ".broker.db.upgraded.tar.zst")
	args := []string{"upgrade", "--offline", "--store", db, "--config", cfg}
	reset := func() {
		os.RemoveAll(work)
		os.Mkdir(work, 0o755)
		oldState(t, db, cfg, template)
	}
	dataVersion := func() string {
		t.Helper()
		return metadataOfStore(t, db).DataVersion
	}

	t.Run("a restore while the result waits", func(t *testing.T) {
		reset()
		p := startPaused(t, storeUpgradeCmd(args...), "offline-store.intent")
		code, _, stderr := runMigrator(t, "example", "restore", other, "--store", db, "--config", cfg)
		if code != 0 {
			t.Fatalf("the restore beside the upgrade: exit %d: %s", code, stderr)
		}
		if !strings.Contains(stderr, "discarded "+intent) {
			t.Errorf("the restore did not say it discarded the waiting result: %q", stderr)
		}
		code, stderr = p.resume(t)
		if code != 1 || !strings.Contains(stderr, "changed after the upgrade backed it up") {
			t.Errorf("the upgrade: exit %d, stderr %q; want the refusal of a changed store", code, stderr)
		}
		if v := dataVersion(); v != "5.0.0" {
			t.Errorf("the store holds data version %s, want the restore's 5.0.0", v)
		}
	})

	t.Run("the old product writes after a kill", func(t *testing.T) {
		reset()
		out, err := withFailpoint(storeUpgradeCmd(args...), "offline-store.intent=kill").CombinedOutput()
		if err == nil {
			t.Fatalf("the killed run succeeded: %s", out)
		}
		if _, err := os.Stat(intent); err != nil {
			t.Fatalf("the killed run left no result waiting: %v", err)
		}
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := st.Begin(true)
		users, _ := tx.CreateTable("users")
		users.Put([]byte("written-after"), []byte("by the old product"))
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		st.Close()
		out, err = storeUpgradeCmd(args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "changed after the upgrade backed it up") || !strings.Contains(string(out), "remove "+intent) {
			t.Fatalf("the resume over a changed store: %v\n%s", err, out)
		}
		if v := dataVersion(); v != "5.1.0" {
			t.Errorf("the refused resume changed the store to %s", v)
		}
		os.Remove(intent)
		if out, err := storeUpgradeCmd(args...).CombinedOutput(); err != nil {
			t.Fatalf("the upgrade after removing the result: %v\n%s", err, out)
		}
		if v := dataVersion(); v != "5.2.0" {
			t.Errorf("data version %s, want 5.2.0", v)
		}
		st, err = bolt.Open(db, bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rtx, _ := st.Begin(false)
		defer rtx.Rollback()
		u, err := rtx.Table("users")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := u.Get([]byte("written-after")); err != nil || string(v) != "by the old product" {
			t.Errorf("the product's write after the kill: %q, %v", v, err)
		}
	})
}

// TestOfflineStoreRemovesStaleBackupTemps: the temporary file of a
// pre-upgrade backup that a killed run left is removed by the next run,
// once it is older than backup.StaleAge; a fresh one (a live run's) stays.
func TestOfflineStoreRemovesStaleBackupTemps(t *testing.T) {
	dir := t.TempDir()
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")
	template := templateStore(t, t.TempDir(), example.Small)
	oldState(t, db, cfg, template)
	stale := filepath.Join(dir, ".broker.db.pre-upgrade-5.1.0-20260101T000000Z.tar.zst.tmp-1")
	fresh := filepath.Join(dir, ".broker.db.pre-upgrade-5.1.0-20260101T000001Z.tar.zst.tmp-2")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial backup"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ageLeftovers(t, dir)
	if err := os.Chtimes(fresh, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if out, err := storeUpgradeCmd("upgrade", "--offline", "--store", db, "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file of a killed pre-upgrade backup is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}

// TestOfflineStoreWithoutConfig: for a store that keeps no configuration
// files, the suggested offline command names --config (its offline hooks
// may rewrite configuration files), and an upgrade run without it says
// which files the hooks wrote into the store's table _config instead.
func TestOfflineStoreWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "5.1.0", example.Small)
	dropConfigTable(t, db)
	out, err := storeUpgradeCmd("plan", "--store", db).CombinedOutput()
	if !strings.Contains(string(out), "upgrade --offline --store "+db+" --config DIR") || !strings.Contains(string(out), "DIR: the product's configuration directory") {
		t.Errorf("plan: %v\n%s\nwant the offline command with --config DIR", err, out)
	}
	out, err = storeUpgradeCmd("upgrade", "--online", "--store", db).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--store "+db+" --config DIR") {
		t.Errorf("the refused online upgrade: %v\n%s\nwant the offline command with --config DIR", err, out)
	}
	out, err = storeUpgradeCmd("upgrade", "--offline", "--store", db).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "the hooks wrote configuration files into the store's table _config, since no --config was given: broker.json") {
		t.Errorf("the upgrade without --config did not say where the hook's file went:\n%s", out)
	}
	out, err = storeUpgradeCmd("upgrade", "--offline", "--store", db, "--json").CombinedOutput()
	if err != nil || strings.Contains(string(out), "config_in_store") {
		t.Errorf("an upgrade with nothing to do: %v\n%s", err, out)
	}
}
