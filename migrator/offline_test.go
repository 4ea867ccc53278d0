package migrator_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// fixtures lists the committed release fixtures.
func fixtures(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "testdata", "releases", "*.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < len(example.Releases) {
		t.Fatalf("found fixtures %q, want one per release of %q (make release VERSION=X.Y.Z writes the missing one)", paths, example.Releases)
	}
	return paths
}

// TestOfflineUpgradeFixtures is the fixture upgrade matrix: every release
// fixture is upgraded offline, in a child process, to this release, and the
// result must be exactly the example data upgraded in-process through all
// hooks. The input must not change.
func TestOfflineUpgradeFixtures(t *testing.T) {
	dir := t.TempDir()
	expected := filepath.Join(dir, "expected.db")
	buildStore(t, expected, generated.Registry.Release, example.Small)
	want, err := example.Digest(expected, store.MetaTable)
	if err != nil {
		t.Fatal(err)
	}
	for _, fixture := range fixtures(t) {
		release := strings.TrimSuffix(filepath.Base(fixture), ".tar.zst")
		t.Run(release, func(t *testing.T) {
			before := fileSum(t, fixture)
			out := filepath.Join(t.TempDir(), "out.tar.zst")
			code, stdout, stderr := runMigrator(t, "example", "upgrade", "--offline", "--in", fixture, "--out", out)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			if got := fileSum(t, fixture); got != before {
				t.Errorf("the fixture changed")
			}
			p, err := upgrade.PlanFor(generated.Registry, metadataOf(t, fixture))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range p.Pending {
				if !strings.Contains(stdout, "hook "+strconv.Itoa(h.Num)+" ") {
					t.Errorf("the report does not name hook %d:\n%s", h.Num, stdout)
				}
			}
			got := filepath.Join(t.TempDir(), "got.db")
			if _, err := backup.Restore(context.Background(), generated.Registry, out, got, backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			st, err := bolt.Open(got, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tx, err := st.Begin(false)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := example.Verify(tx, generated.Registry.Release, example.Small); err != nil {
				t.Error(err)
			}
			if d, err := example.TxDigest(tx, store.MetaTable); err != nil || d != want {
				t.Errorf("upgraded data differ from the example data upgraded in-process (%v)", err)
			}
			meta, err := upgrade.ReadMetadata(tx)
			if err != nil {
				t.Fatal(err)
			}
			var nums, want []int
			for _, a := range meta.Applied {
				nums = append(nums, a.Num)
			}
			for _, h := range generated.Registry.Hooks {
				want = append(want, h.Num)
			}
			release, last := generated.Registry.Release, want[len(want)-1]
			if meta.DataVersion != release || meta.LastUpgradeHook == nil || *meta.LastUpgradeHook != last || !slices.Equal(nums, want) {
				t.Errorf("metadata %+v, want data version %s, last hook %d, hooks %v applied", meta, release, last, want)
			}
		})
	}
}

// metadataOf returns the metadata a backup's manifest records.
func metadataOf(t *testing.T, path string) upgrade.Metadata {
	t.Helper()
	dir := t.TempDir()
	if _, err := backup.Restore(context.Background(), generated.Registry, path, filepath.Join(dir, "m.db"), backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(dir, "m.db"), bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	meta, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// TestOfflineHookFailure: a failing hook and a hook that kills the child
// are reported with the hook named, exit status 1, no output and nothing
// left beside it.
func TestOfflineHookFailure(t *testing.T) {
	in := fixtures(t)[0]
	for name, want := range map[string]string{
		"fail":  "hook 101 (Upgradefail) failed, its transaction was rolled back: boom; nothing was written to",
		"crash": "the child process crashed (signal: killed) while running hook 101 (Upgradecrash); nothing was written to",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.tar.zst")
			code, stdout, stderr := runMigrator(t, name, "upgrade", "--offline", "--in", in, "--out", out)
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
			}
			if !strings.Contains(stdout, "hook 100 (UpgradeLibBaz, 5.1.0): applied") {
				t.Errorf("stdout does not report the hooks applied before:\n%s", stdout)
			}
			if got := names(t, dir); len(got) != 0 {
				t.Errorf("left %q beside the output", got)
			}
		})
	}
}

// TestOfflineStuckHookInterrupted: SIGTERM during a hook that never
// returns (it ignores its context) ends the offline upgrade when the
// child's grace period is over, saying it was interrupted, not that the
// child crashed, and leaving nothing beside the output.
func TestOfflineStuckHookInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the child's grace period (30 s)")
	}
	t.Parallel()
	in := fixtures(t)[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "out.tar.zst")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	cmd := migratorCmd(t, "stuck", "env:STUCK_READY="+ready, "upgrade", "--offline", "--in", in, "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("the migrator exited before the hook ran: %v\n%s", cmd.ProcessState, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	want := "interrupted while running hook 101 (Upgradestuck): the child process was stopped (signal: killed), the hook not having returned within 30s of the interrupt; nothing was written to"
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr.String(), want)
	}
	if got := names(t, filepath.Dir(out)); len(got) != 0 {
		t.Errorf("left %q beside the output", got)
	}
}

// TestOfflineCrash kills "upgrade --offline" with SIGKILL: the parent at
// many moments, and the child at each of its steps (failpoints). The input
// never changes and there is never a partial output file. A child left without
// its parent removes the private directory; a parent whose child was
// killed removes it; only a parent killed before it started its child
// leaves it, and the next run removes it.
func TestOfflineCrash(t *testing.T) {
	t.Parallel()
	in := fixtures(t)[0]
	before := fileSum(t, in)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.tar.zst")
	args := []string{"upgrade", "--offline", "--in", in, "--out", out}
	took := timeRun(t, migratorCmd(t, "slow", args...))
	if err := os.Remove(out); err != nil {
		t.Fatalf("the uninterrupted run left no output: %v", err)
	}
	// rerun runs the upgrade again after a killed one: it completes and
	// removes the private directory a killed parent left.
	rerun := func(what string) {
		t.Helper()
		ageLeftovers(t, dir)
		if b, err := migratorCmd(t, "slow", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: the upgrade run again: %v\n%s", what, err, b)
		}
		if got := names(t, dir); !slices.Equal(got, []string{"out.tar.zst"}) {
			t.Fatalf("%s: the upgrade run again left %q", what, got)
		}
		os.Remove(out)
	}

	// The child killed at each step: the parent fails, writes nothing and
	// leaves nothing.
	for _, point := range []string{"offline.child-started", "restore.before-swap", "backup.written", "backup.committed"} {
		code, _, stderr := runMigrator(t, "slow", withFailpointArgs(point+"=kill", args...)...)
		if code == 0 || !strings.Contains(stderr, "nothing was written to "+out) {
			t.Fatalf("child killed at %s: exit %d, stderr %s", point, code, stderr)
		}
		if got := names(t, dir); len(got) != 0 {
			t.Fatalf("child killed at %s: the parent left %q", point, got)
		}
	}
	// The parent killed before it starts the child.
	if code, _, stderr := runMigrator(t, "slow", withFailpointArgs("offline.private-dir=kill", args...)...); code == 0 {
		t.Fatalf("the parent killed before its child succeeded: %s", stderr)
	}
	if litter := settle(t, dir, out); litter != 1 {
		t.Fatalf("the parent killed before its child left %d private directories, want 1", litter)
	}
	rerun("parent killed before its child")
	// The parent killed once its child runs: the child removes the
	// private directory.
	if code, _, stderr := runMigrator(t, "slow", withFailpointArgs("offline.child-running=kill", args...)...); code == 0 {
		t.Fatalf("the parent killed while its child runs succeeded: %s", stderr)
	}
	if litter := settle(t, dir, out); litter != 0 {
		t.Fatalf("the parent killed while its child runs left %d private directories", litter)
	}

	const kills = 10
	finished, litter := 0, 0
	for i := range kills {
		delay := took * time.Duration(i) / kills
		if killAfter(t, migratorCmd(t, "slow", args...), delay) {
			finished++
			os.Remove(out)
			continue
		}
		if _, err := os.Stat(out); err == nil {
			// Killed after the rename: the output must be whole.
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			_, err = archive.Verify(f)
			f.Close()
			if err != nil {
				t.Fatalf("kill %d after %s: a partial output file: %v", i, delay, err)
			}
			os.Remove(out)
		}
		if n := settle(t, dir, out); n > 0 {
			litter += n
			rerun(fmt.Sprintf("kill %d after %s", i, delay))
		}
	}
	if got := fileSum(t, in); got != before {
		t.Errorf("the input changed")
	}
	t.Logf("%d kills over %s (an uninterrupted run), %d runs finished first, %d private directories left by a parent killed before its child started or after it ended, removed by the next run", kills, took.Round(time.Millisecond), finished, litter)
}

// timeRun runs cmd and returns how long it took.
func timeRun(t *testing.T, cmd *exec.Cmd) time.Duration {
	t.Helper()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return time.Since(start)
}

// killAfter starts cmd and kills it with SIGKILL after d; it reports
// whether cmd finished first.
func killAfter(t *testing.T, cmd *exec.Cmd, d time.Duration) bool {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState.Success()
	case <-time.After(d):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return cmd.ProcessState.Success()
}

// settle waits until the child of a killed parent has removed the private
// directory beside out (it does when its standard input closes while it
// runs), and returns how many private directories are left: only those of
// a parent killed before it started its child (no child report in them)
// or after its child had finished (the report ends) may be.
func settle(t *testing.T, dir, out string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for len(names(t, dir)) > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	left := names(t, dir)
	for _, name := range left {
		if !strings.HasPrefix(name, "."+filepath.Base(out)+".offline-") {
			t.Fatalf("%s holds %q", dir, left)
		}
		report, err := os.ReadFile(filepath.Join(dir, name, "report.jsonl"))
		if err == nil && !bytes.Contains(report, []byte(`{"event":"done"`)) && !bytes.Contains(report, []byte(`{"event":"failed"`)) {
			t.Fatalf("the child of a killed parent left its private directory %s:\n%s", name, report)
		}
	}
	return len(left)
}
