package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// crashSize is the example data of the crash test: 50,000 records.
var crashSize = example.Size{Users: 10000, Rules: 40000}

// minKills is the number of SIGKILLs the crash test delivers, at least.
const minKills = 50

const crashChildEnv = "HOOKREG_CRASH_CHILD"

// TestCrashSafety upgrades a 4.4.0 store of 50,000 records through every
// example hook in a child process (this test binary re-executed) and kills
// it with SIGKILL at random moments. After every kill the store must open
// and pass bbolt's check, and its data must be exactly the data of the
// release its metadata names: every hook fully applied or not at all (the
// split of hook 100 may have committed batches, which only add copies). The
// killed upgrade is then run again, until it completes, and its final
// content must equal an uninterrupted run's, metadata included.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.db")
	st, err := bolt.Open(base, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := example.Load(st, generated.Registry, crashSize); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The reference: an uninterrupted run, timed: the child reports when
	// each hook is applied, so that kills can be spread over the work
	// that remains.
	ref := filepath.Join(dir, "ref.db")
	copyFile(t, base, ref)
	start := time.Now()
	out, err := child(ref).Output()
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	full := time.Since(start)
	appliedAt := map[int]time.Duration{}
	for _, line := range strings.Split(string(out), "\n") {
		var d time.Duration
		var num int
		if _, err := fmt.Sscanf(line, "%d applied hook %d", &d, &num); err == nil {
			appliedAt[num] = d
		}
	}
	if len(appliedAt) != len(generated.Registry.Hooks) {
		t.Fatalf("the uninterrupted run reported %v", appliedAt)
	}
	want := digestOf(t, ref)
	checkState(t, ref)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("uninterrupted run: %s; seed %d", full.Round(time.Millisecond), seed)
	kills, completed := 0, 0
	work := filepath.Join(dir, "work.db")
	copyFile(t, base, work)
	remaining := full
	states := map[string]int{} // kills by the last hook applied
	for kills < minKills {
		cmd := child(work)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run after %d kills: %v\n%s", kills, err, stderr.Bytes())
			}
			if got := digestOf(t, work); got != want {
				t.Fatalf("after %d kills, the completed upgrade differs from an uninterrupted run", kills)
			}
			completed++
			copyFile(t, base, work)
			remaining = full
			continue
		case <-time.After(time.Duration(rng.Int64N(int64(remaining)))):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		if err := <-done; err == nil {
			// It finished in the meantime: that is a completed run.
			continue
		}
		kills++
		remaining = full
		last := checkState(t, work)
		if last != nil {
			remaining -= appliedAt[*last]
			states[fmt.Sprint("after hook ", *last)]++
		} else {
			states["before hook 98"]++
		}
	}
	t.Logf("%d kills (%v), %d completed upgrades", kills, states, completed)
}

func child(path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	return cmd
}

// crashChild is the process the crash test kills: the offline upgrade of
// the store at path with the example registry, at a fixed time so that
// runs compare equal. It reports on stdout when each hook is applied, as
// the time since it started followed by the log line.
func crashChild(t *testing.T, path string) {
	start := time.Now()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := upgrade.Run(context.Background(), st, generated.Registry, upgrade.Options{
		Now: func() time.Time { return example.Time },
		Log: sinceWriter{start: start, w: os.Stdout},
	}); err != nil {
		t.Fatal(err)
	}
}

// sinceWriter prefixes every write with the nanoseconds since start.
type sinceWriter struct {
	start time.Time
	w     io.Writer
}

func (s sinceWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(s.w, "%d %s", time.Since(s.start), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// checkState checks that the store at path opens, passes bbolt's check and
// holds exactly the data of the release its metadata names, and returns the
// last upgrade hook.
func checkState(t *testing.T, path string) *int {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening the store after a kill: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	m, err := upgrade.ReadMetadata(tx)
	if err != nil {
		t.Fatal(err)
	}
	release := "4.4.0"
	if m.LastUpgradeHook != nil {
		for _, h := range generated.Registry.Hooks {
			if h.Num == *m.LastUpgradeHook {
				release = h.IntroducedIn
			}
		}
	}
	if m.DataVersion != release {
		t.Fatalf("last upgrade hook %v with data version %s", m.LastUpgradeHook, m.DataVersion)
	}
	err = example.Verify(tx, release, crashSize)
	if err != nil && release == "5.0.1" && hasProgress(t, tx, 100) {
		err = example.VerifyInterrupted(tx, crashSize)
	}
	if err != nil {
		t.Fatalf("data version %s after a kill: %v", release, err)
	}
	return m.LastUpgradeHook
}

func hasProgress(t *testing.T, tx store.Tx, num int) bool {
	meta, err := tx.Table(store.MetaTable)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("progress/%010d/", num)
	found := false
	err = meta.Scan([]byte(prefix), func(k, _ []byte) error {
		found = strings.HasPrefix(string(k), prefix)
		return hook.ErrStop
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// digestOf is the sha256 of the logical dump of the store at path.
func digestOf(t *testing.T, path string) string {
	t.Helper()
	d, err := example.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
