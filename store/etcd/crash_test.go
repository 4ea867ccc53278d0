package etcd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

// TestLeaderKilled SIGKILLs the leader of a cluster of member processes
// while a migrator commits transactions that each read a counter, write it
// plus one and rewrite 60 records with the new value. After every commit
// the store must show it applied exactly once when Commit succeeded, not at
// all when Commit failed with anything but ErrOutcomeUnknown, and never
// half: every record carries the counter.
func TestLeaderKilled(t *testing.T) {
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 3 * time.Second})
	storetest.Put(t, st, "c", "n", "0")
	killed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		leader, err := c.Leader(context.Background())
		if err == nil {
			err = c.Kill(leader)
		}
		killed <- err
	}()
	n, ok, failed := 0, 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 60 || len(killed) == 0 && time.Now().Before(deadline); i++ {
		err := increment(t, st)
		got := counter(t, st)
		switch {
		case err == nil:
			ok++
			if got != n+1 {
				t.Fatalf("commit %d succeeded: counter %d, want %d", i, got, n+1)
			}
		case errors.Is(err, ErrOutcomeUnknown):
			failed++
			if got != n && got != n+1 {
				t.Fatalf("commit %d of unknown outcome: counter %d, want %d or %d", i, got, n, n+1)
			}
		default:
			failed++
			if got != n {
				t.Fatalf("commit %d failed (%v): counter %d, want %d", i, err, got, n)
			}
		}
		n = got
	}
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	if n == 0 || ok < 50 {
		t.Errorf("only %d of the commits succeeded", ok)
	}
	t.Logf("%d commits applied, %d failed cleanly around the leader's death", ok, failed)
}

// increment is one migrator transaction: the counter plus one, and 60
// records set to the new value.
func increment(t *testing.T, st *Store) error {
	t.Helper()
	tx, err := st.Begin(true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tb, err := tx.Table("c")
	if err != nil {
		return err
	}
	v, err := tb.Get([]byte("n"))
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		t.Fatal(err)
	}
	next := []byte(strconv.Itoa(n + 1))
	if err := tb.Put([]byte("n"), next); err != nil {
		return err
	}
	for i := range 60 {
		if err := tb.Put(fmt.Appendf(nil, "r%02d", i), next); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// counter reads the counter and checks that every record carries it. The
// read is retried while the cluster elects a new leader.
func counter(t *testing.T, st *Store) int {
	t.Helper()
	var recs map[string]string
	var err error
	for range 50 {
		if recs, err = storetest.TryRecords(st, "c"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("reading the counter: %v", err)
	}
	n, err := strconv.Atoi(recs["n"])
	if err != nil {
		t.Fatalf("counter %q: %v", recs["n"], err)
	}
	for k, v := range recs {
		if k != "n" && v != recs["n"] {
			t.Fatalf("half-applied transaction: %s = %s, counter %s", k, v, recs["n"])
		}
	}
	return n
}

// The paused migrator: a child process that opens the store, writes a
// record in a transaction, says "ready", and commits when told to,
// printing the outcome.
const (
	migratorEnv = "HOOKREG_ETCD_TEST_MIGRATOR" // endpoints and prefix, separated by a space
	migratorTTL = 2 * time.Second
)

func migratorMain() {
	spec := os.Getenv(migratorEnv)
	if spec == "" {
		return
	}
	endpoints, prefix, _ := strings.Cut(spec, " ")
	st, err := Open(context.Background(), Options{Endpoints: strings.Split(endpoints, ","), Prefix: prefix, Create: true, LockTTL: migratorTTL})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	tx, err := st.Begin(true)
	if err == nil {
		var tb store.Table
		if tb, err = tx.CreateTable("t"); err == nil {
			err = tb.Put([]byte("k"), []byte("paused"))
		}
	}
	if err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	fmt.Println("commit:", tx.Commit())
	os.Exit(0)
}

// TestPausedMigrator SIGSTOPs a migrator holding the lock past its lease,
// lets a second migrator take over, resumes the first and has it commit:
// the commit is refused and the second migrator's data stands.
func TestPausedMigrator(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), migratorEnv+"="+strings.Join(cluster.Endpoints, ",")+" "+prefix(t))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the migrator said %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A second migrator waits for the paused one's lease to expire.
	start := time.Now()
	b, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), Create: true, Timeout: 4 * migratorTTL})
	if err != nil {
		t.Fatalf("open while the holder is paused: %v", err)
	}
	defer b.Close()
	t.Logf("took the lock over after %s", time.Since(start).Round(time.Millisecond))
	storetest.Put(t, b, "t", "k", "second")
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(stdin)
	line, _ := out.ReadString('\n')
	if !strings.Contains(line, ErrLockLost.Error()) {
		t.Errorf("the resumed migrator's commit: %q, want %q", line, ErrLockLost)
	}
	if got := storetest.Records(t, b, "t"); got["k"] != "second" {
		t.Errorf("after the resumed migrator's commit: %q", got)
	}
}
