package migrator_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hookreg/hookreg/internal/example"
)

// openPTY opens a pseudo-terminal pair: the controller (what a terminal
// emulator reads) and the terminal itself (what the program writes to).
func openPTY(t *testing.T) (controller, term *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(controller.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return controller, term
}

// onTerminal runs the migrator with its standard error on a real
// pseudo-terminal, stopped at the failpoint point long enough for a
// progress line (at most two a second are shown), and returns what the
// terminal shows.
func onTerminal(t *testing.T, point string, args ...string) string {
	t.Helper()
	controller, term := openPTY(t)
	defer controller.Close()
	cmd := migratorCmd(t, "example", append([]string{"env:" + envFailpoint + "=" + point + "=pause"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = term
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	term.Close()
	seen := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := controller.Read(buf)
			b.Write(buf[:n])
			_, name, _ := strings.Cut(point, ">")
			if name == "" {
				name = point
			}
			if stdin != nil && strings.Contains(b.String(), "failpoint "+name) {
				time.Sleep(600 * time.Millisecond)
				stdin.Close()
				stdin = nil
			}
			if err != nil {
				seen <- b.String()
				return
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%q on a terminal: %v", args, err)
	}
	return <-seen
}

// TestProgressOnTerminal runs verify, backup, restore and the offline
// upgrades with standard error on a real pseudo-terminal, and again on a
// pipe: progress appears on the terminal only, as phases, with a rate and
// an ETA where the total is known, each shown phase ending with a complete
// line; $HOOKREG_PROGRESS=0 turns it off on the terminal.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "4.4.0", crashSize)
	out := filepath.Join(dir, "out.tar")
	big := filepath.Join(dir, "big.tar.zst")
	writeBackup(t, big, "4.4.0", crashSize)
	old := filepath.Join(dir, "old.db")
	buildStore(t, old, "4.4.0", crashSize)
	for _, c := range []struct {
		name, point string
		args        []string
		want        []string // what the terminal shows, in this order
	}{
		{"verify", "backup.read", []string{"verify", big}, []string{
			"\rverify: reading " + big + ": ", " MiB (100%), ", " MiB/s, done in ", "\x1b[K\r\n",
		}},
		{"backup", "backup.write", []string{"backup", "--store", db, "--out", out, "--compress", "none"}, []string{
			"\rbackup: writing: ", " records (", "%), ", " records/s, ETA ", "\rbackup: writing: ", " records (100%), ", " records/s, done in ", "\x1b[K\r\n",
		}},
		// Stopped at the first read of the load, after the check.
		{"restore loading", "restore.checked>backup.read", []string{"restore", big, "--store", filepath.Join(dir, "restored.db")}, []string{
			"\rrestore: loading: ", " records (100%), ", " records/s, done in ", "\x1b[K\r\n",
		}},
		// Stopped once the records are in, before the sync and checks.
		{"restore syncing", "restore.loaded", []string{"restore", big, "--store", filepath.Join(dir, "restored2.db")}, []string{
			"\rrestore: syncing and checking… ", "\rrestore: syncing and checking: done in ", "\x1b[K\r\n",
		}},
		{"offline upgrade", "offline.child-running", []string{"upgrade", "--offline", "--in", big, "--out", filepath.Join(dir, "up.tar.zst")}, []string{
			"\rupgrade: loading " + big + " in a child process… ", "\rupgrade: ", ": done in ", "\x1b[K\r\n",
		}},
		{"offline store upgrade", "offline.child-running", []string{"upgrade", "--offline", "--store", old}, []string{
			"upgrade: backing up " + old + " to ", "\rupgrade: loading ", " in a child process… ", "upgrade: swapping in the upgraded data at " + old + "\r\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			shown := onTerminal(t, c.point, c.args...)
			rest := shown
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("the terminal shows %q, want %q in it, in order", shown, c.want)
				}
				rest = rest[i+len(w):]
			}
			code, _, stderr := runMigrator(t, "example", c.args...)
			if code != 0 || stderr != "" {
				t.Errorf("on a pipe: exit %d, stderr %q; want no progress", code, stderr)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		shown := onTerminal(t, "backup.write", "env:HOOKREG_PROGRESS=0", "backup", "--store", db, "--out", out, "--compress", "none")
		if strings.Contains(shown, "backup: ") {
			t.Errorf("with $HOOKREG_PROGRESS=0 the terminal shows %q, want no progress", shown)
		}
	})
}
