package migrator_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/store/etcd"
)

// faultTests runs the fault tests of member processes only with
// HOOKREG_FAULT_TESTS set (make test-faults; CI runs it).
func faultTests(t *testing.T) {
	t.Helper()
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
}

// holding starts "upgrade --online" whose hook holds the lock until the
// run ends, and returns once the hook runs.
func holding(t *testing.T, url string) *exec.Cmd {
	t.Helper()
	cmd := migratorCmd(t, "hold", "upgrade", "--online", "--store", url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the holding migrator said %q (%v)\n%s", line, err, stderr.String())
	}
	return cmd
}

// timed runs the migrator and returns its exit status, stderr and time.
func timed(t *testing.T, args ...string) (int, string, string, time.Duration) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr := runMigrator(t, "hold", args...)
	return code, stdout, stderr, time.Since(start)
}

// TestEtcdClusterFaults, on a cluster of three member processes:
//   - status names the migrator holding the lock and its lease's expiry;
//   - SIGTERM ends a migrator holding the lock within 2 s, and the lock is
//     free at once (its lease revoked);
//   - a second migrator refused because a SIGKILLed holder's lease still
//     runs says in how many seconds it is free;
//   - with one member killed, status answers within 2 s naming it;
//   - without quorum, init fails within --etcd-timeout (plus a second to
//     ask the members) saying "no leader: 1 of 3 members answered", and
//     SIGTERM ends it within 2 s.
func TestEtcdClusterFaults(t *testing.T) {
	faultTests(t)
	c, err := etcdtest.Start(etcdtest.Config{Members: 3, Processes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var hosts []string
	for _, ep := range c.Endpoints {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	url := "etcd://" + strings.Join(hosts, ",") + "/faults"
	if code, _, stderr := runMigrator(t, "example", "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}

	holder := holding(t, url)
	code, stdout, stderr, took := timed(t, "status", "--store", url)
	if code != 0 || !regexp.MustCompile(`lock: held by a migrator \(pid \d+ on .* since .*\), lease expires in \d+ s`).MatchString(stdout) {
		t.Errorf("status beside the holder: exit %d after %s\n%s%s", code, took, stdout, stderr)
	}
	start := time.Now()
	holder.Process.Signal(syscall.SIGTERM)
	holder.Wait()
	stopped := time.Since(start)
	if stopped > 2*time.Second {
		t.Errorf("the holder took %s to end after SIGTERM, want at most 2 s", stopped)
	}
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: "/faults", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("the lock after the holder's SIGTERM: %v", err)
	}
	st.Close()
	t.Logf("SIGTERM ended the holder in %s, its lock released", stopped.Round(time.Millisecond))

	holder = holding(t, url)
	holder.Process.Kill()
	holder.Wait()
	code, _, stderr, took = timed(t, "upgrade", "--online", "--store", url)
	if code == 0 || !regexp.MustCompile(`the lock is free in \d+ s`).MatchString(stderr) {
		t.Errorf("a second migrator beside a killed holder's lease: exit %d after %s\n%s", code, took, stderr)
	}
	t.Logf("refused beside the killed holder's lease in %s: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))

	if err := c.Kill(2); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr, took = timed(t, "status", "--store", url)
	if code != 0 || took > 2*time.Second || !strings.Contains(stdout, "member "+hosts[2]+" is DOWN") || !strings.Contains(stdout, "2 of 3 members answered") {
		t.Errorf("status with member %s killed: exit %d after %s, want 0 within 2 s naming it\n%s%s", hosts[2], code, took, stdout, stderr)
	}
	t.Logf("status with a member dead took %s", took.Round(time.Millisecond))

	if err := c.Kill(1); err != nil {
		t.Fatal(err)
	}
	code, _, stderr, took = timed(t, "init", "--store", url, "--etcd-timeout", "3s")
	if code == 0 || took > 4500*time.Millisecond || !strings.Contains(stderr, "no leader: 1 of 3 members answered") {
		t.Errorf("init without quorum: exit %d after %s, want a failure within 3 s + 1.5 s saying no leader\n%s", code, took, stderr)
	}
	t.Logf("init without quorum failed in %s: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
	code, _, stderr, took = timed(t, "status", "--store", url, "--etcd-timeout", "3s")
	if code == 0 || took > 4500*time.Millisecond || !strings.Contains(stderr, "no leader: 1 of 3 members answered") {
		t.Errorf("status without quorum: exit %d after %s, want a failure within 3 s + 1.5 s saying no leader\n%s", code, took, stderr)
	}

	cmd := migratorCmd(t, "hold", "init", "--store", url)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	start = time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if stopped := time.Since(start); stopped > 2*time.Second || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("init without quorum took %s to end after SIGTERM, want at most 2 s, saying interrupted\n%s", stopped, errb.String())
	}
}
