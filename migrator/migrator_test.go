package migrator_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/migrator"
	"github.com/hookreg/hookreg/store/bolt"
)

// waitRegistry has one online hook that writes a record, says "ready" on
// stdout and waits for its context to end.
var waitRegistry = &hook.Registry{Product: "p", Release: "1.0.1", Hooks: []hook.Hook{{
	Num: 1, IntroducedIn: "1.0.1", AllowOnline: true, Name: "Wait",
	Func: func(ctx context.Context, tx hook.Tx) error {
		t, err := tx.CreateTable("t")
		if err != nil {
			return err
		}
		if err := t.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		os.Stdout.WriteString("ready\n")
		<-ctx.Done()
		return ctx.Err()
	},
}}}

func run(args ...string) (int, string, string) {
	return migratorMain(waitRegistry, args...)
}

// initAt records an install of release 1.0.0 of waitRegistry's product.
func initAt(t *testing.T, path string) {
	t.Helper()
	old := &hook.Registry{Product: "p", Release: "1.0.0"}
	if code, _, stderr := migratorMain(old, "init", "--store", path); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
}

func migratorMain(reg *hook.Registry, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	p := &migrator.Program{Registry: reg, Name: "migrator"}
	code := p.Main(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// heldStore returns the path of an initialized store that this process
// holds open, with its lock, until the test ends.
func heldStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	initAt(t, path)
	holder, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	return path
}

// TestStoreInUse: a second migrator on a store fails after its wait for
// the lock, saying so, instead of waiting for the first (which holds the
// store to the end of the test: a command that waited for it would never
// return). A command that would write the store says what to do.
func TestStoreInUse(t *testing.T) {
	t.Parallel()
	path := heldStore(t)
	backupFile := filepath.Join(t.TempDir(), "b.tar.zst")
	other := filepath.Join(t.TempDir(), "other.db")
	initAt(t, other)
	if code, _, stderr := run("backup", "--store", other, "--out", backupFile); code != 0 {
		t.Fatalf("backup: %d %s", code, stderr)
	}
	const advice = "stop the process that holds it (the running product, or another migrator) and run the command again"
	for _, c := range []struct {
		args   []string
		advice bool
	}{
		{[]string{"upgrade", "--online", "--store", path}, true},
		{[]string{"restore", backupFile, "--store", path}, true},
		{[]string{"status", "--store", path}, false},
	} {
		code, _, stderr := run(c.args...)
		if code != 1 || !strings.Contains(stderr, "store is in use by another process (waited ") || strings.Contains(stderr, advice) != c.advice {
			t.Errorf("%s: exit %d, %s", c.args[0], code, stderr)
		}
	}
	// A backup names the way to back up a running product.
	code, _, stderr := run("backup", "--store", path, "--out", filepath.Join(t.TempDir(), "b.tar.zst"))
	if code != 1 || !strings.Contains(stderr, "store is in use by another process") || !strings.Contains(stderr, "backup.Handler") {
		t.Errorf("backup: exit %d, %s", code, stderr)
	}
}

// TestSignalWhileWaitingForLock: a command waiting for the lock of a
// store in use (up to 2 s) stops at SIGTERM, saying it was interrupted
// (exit 1), rather than waiting the lock's time out and saying the store
// is in use: a signal during start-up is not lost.
func TestSignalWhileWaitingForLock(t *testing.T) {
	t.Parallel()
	path := heldStore(t)
	for _, args := range [][]string{
		{"status", "--store", path},
		{"upgrade", "--online", "--store", path},
		{"backup", "--store", path, "--out", filepath.Join(t.TempDir(), "b.tar.zst")},
	} {
		// Signalled once it found the lock taken, within the lock's
		// 2 s wait.
		code, stderr := interrupt(t, migratorCmd(t, "example", args...), "bolt.lock-wait", syscall.SIGTERM)
		if code != 1 || !strings.Contains(stderr, "interrupted while waiting for its lock") {
			t.Errorf("%s, SIGTERM while it waits for the lock: exit %d, %s", args[0], code, stderr)
		}
	}
}

const signalChildEnv = "HOOKREG_SIGNAL_CHILD"

// TestSignalStopsCleanly sends SIGTERM and SIGINT to a migrator process in
// the middle of a hook: it exits 1 naming the hook, the hook's transaction
// is rolled back, and a later run finds the hook still pending.
func TestSignalStopsCleanly(t *testing.T) {
	if path := os.Getenv(signalChildEnv); path != "" {
		p := &migrator.Program{Registry: waitRegistry, Name: "migrator"}
		os.Exit(p.Main([]string{"upgrade", "--online", "--store", path}, os.Stdin, os.Stdout, os.Stderr))
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			initAt(t, path)
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalStopsCleanly$", "-test.count=1")
			cmd.Env = append(os.Environ(), signalChildEnv+"="+path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "ready\n" {
				cmd.Process.Kill()
				t.Fatalf("the child said %q, %v", line, err)
			}
			cmd.Process.Signal(sig)
			err = cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("the child ended with %v", err)
			}
			want := "migrator: upgrade: " + path + ": hook 1 (Wait) failed, its transaction was rolled back: context canceled; what is committed stays, run the upgrade again to resume\n"
			if stderr.String() != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
			}
			code, out, _ := run("status", "--store", path)
			if code != 0 || !strings.Contains(out, "data version 1.0.0, last upgrade hook none") || !strings.Contains(out, "hook   1  1.0.1  online   Wait") {
				t.Errorf("status after the signal: %d\n%s", code, out)
			}
		})
	}
}

// TestUpgradeStoppedWithinRelease: an online run that applies a hook of a
// release and stops at the next one says which hooks it applied and that
// the data version stays, not that it upgraded from a version to itself.
func TestUpgradeStoppedWithinRelease(t *testing.T) {
	reg := &hook.Registry{Product: "p", Release: "1.0.1", Hooks: []hook.Hook{
		{Num: 1, IntroducedIn: "1.0.1", AllowOnline: true, Name: "First", Func: func(ctx context.Context, tx hook.Tx) error {
			_, err := tx.CreateTable("t")
			return err
		}},
		{Num: 2, IntroducedIn: "1.0.1", AllowOnline: true, Name: "Second", Func: func(ctx context.Context, tx hook.Tx) error {
			return errors.New("not yet")
		}},
	}}
	path := filepath.Join(t.TempDir(), "s.db")
	if code, _, stderr := migratorMain(reg, "init", "--store", path, "--data-version", "1.0.0"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	code, stdout, stderr := migratorMain(reg, "upgrade", "--online", "--store", path)
	if want := "applied to " + path + ": hook 1; data version still 1.0.0\n"; code != 1 || stdout != want || !strings.Contains(stderr, "hook 2 (Second)") {
		t.Errorf("exit %d, stdout %q, want %q; stderr %s", code, stdout, want, stderr)
	}
}
