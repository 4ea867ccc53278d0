package migrator_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/failpoint"
)

// envFailpoint names failpoints and what the migrator run by the test
// binary does there, "NAME=ACTION[,NAME=ACTION...]", where NAME may be
// "FIRST>NAME" (NAME once FIRST was reached) or "NAME#N" (the Nth time NAME
// is reached): kill (SIGKILL itself), fail (the step returns an error),
// pause (say "failpoint NAME" on stderr and wait until standard input
// closes), interrupt (pause, then wait until the command's context is
// cancelled, for a test that signals the process while it is paused: the
// signal is handled by a goroutine of its own, and the command must not go
// on before it was). Otherwise only the first time NAME is reached counts. The
// offline upgrade's child inherits it, so a point only the child reaches
// kills the child.
const envFailpoint = "HOOKREG_TEST_FAILPOINT"

func setFailpoint(spec string) {
	actions := map[string]string{}
	for _, p := range strings.Split(spec, ",") {
		if name, action, ok := strings.Cut(p, "="); ok {
			actions[name] = action
		}
	}
	if len(actions) == 0 {
		return
	}
	reached := map[string]int{}
	// Points are reached from more than one goroutine (backup.read from
	// the zstd decoder's, while a restore loads on its own).
	var mu sync.Mutex
	failpoint.Hook = func(point string) error {
		mu.Lock()
		defer mu.Unlock()
		reached[point]++
		key := point
		if nth := fmt.Sprintf("%s#%d", point, reached[point]); actions[nth] != "" {
			key = nth
		}
		for k := range actions {
			if first, name, ok := strings.Cut(k, ">"); ok && name == point && reached[first] > 0 {
				key = k
			}
		}
		action := actions[key]
		delete(actions, key)
		switch action {
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		case "fail":
			return fmt.Errorf("failpoint %s", point)
		case "pause", "interrupt":
			fmt.Fprintf(os.Stderr, "failpoint %s\n", point)
			io.Copy(io.Discard, os.Stdin)
			if ctx := failpoint.Command(); action == "interrupt" && ctx != nil {
				// Bounded only for a command that never sees the
				// signal (a bug): the test then fails on its output.
				select {
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
		}
		return nil
	}
}

// withFailpoint sets the failpoint spec of cmd (see envFailpoint).
func withFailpoint(cmd *exec.Cmd, spec string) *exec.Cmd {
	cmd.Env = append(cmd.Env, envFailpoint+"="+spec)
	return cmd
}

// paused is a migrator stopped at a pause failpoint.
type paused struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *strings.Builder
	done   chan struct{}
}

// startPaused starts cmd with a pause at point and returns once it is
// there. It fails the test if cmd ends first.
func startPaused(t *testing.T, cmd *exec.Cmd, point string) *paused {
	t.Helper()
	return startAt(t, cmd, point, "pause")
}

// interrupt starts cmd, sends it sig once it is paused at point, and
// returns its exit status and standard error: it goes on from point once
// it has handled the signal.
func interrupt(t *testing.T, cmd *exec.Cmd, point string, sig syscall.Signal) (int, string) {
	t.Helper()
	p := startAt(t, cmd, point, "interrupt")
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.resume(t)
}

// startAt starts cmd with action (pause or interrupt) at point and returns
// once it is there. It fails the test if cmd ends first.
func startAt(t *testing.T, cmd *exec.Cmd, point, action string) *paused {
	t.Helper()
	withFailpoint(cmd, point+"="+action)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &paused{cmd: cmd, stdin: stdin, stderr: &strings.Builder{}, done: make(chan struct{})}
	reached := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		said := false
		for sc.Scan() {
			if !said && sc.Text() == "failpoint "+point {
				said = true
				reached <- true
				continue
			}
			p.stderr.WriteString(sc.Text() + "\n")
		}
		if !said {
			reached <- false
		}
		close(p.done)
	}()
	select {
	case ok := <-reached:
		if !ok {
			cmd.Wait()
			t.Fatalf("%v ended before the failpoint %s: %s", cmd.Args, point, p.stderr)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%v did not reach the failpoint %s", cmd.Args, point)
	}
	return p
}

// resume lets the paused migrator go on and waits for it: its exit status
// and standard error.
func (p *paused) resume(t *testing.T) (int, string) {
	t.Helper()
	p.stdin.Close()
	<-p.done
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode(), p.stderr.String()
}

// withFailpointArgs returns args for runMigrator with the failpoints spec
// set (see envFailpoint): runMigrator passes "env:" arguments as
// environment variables.
func withFailpointArgs(spec string, args ...string) []string {
	return append([]string{"env:" + envFailpoint + "=" + spec}, args...)
}
