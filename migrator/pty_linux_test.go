package migrator_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/example"
	"golang.org/x/sys/unix"
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

// TestProgressOnTerminal runs verify with its standard error on a real
// pseudo-terminal (stopped at a failpoint long enough for a progress
// line), and again on a pipe: progress appears on the terminal only, and
// ends with a complete line.
func TestProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, archivePath, "4.4.0", example.Small)

	controller, term := openPTY(t)
	defer controller.Close()
	cmd := migratorCmd(t, "example", "env:"+envFailpoint+"=backup.read=pause", "verify", archivePath)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, term
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
			if strings.Contains(b.String(), "failpoint backup.read") && stdin != nil {
				// Stay at the failpoint long enough for a progress line
				// (at most two a second).
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
		t.Fatalf("verify on a terminal: %v", err)
	}
	shown := <-seen
	if !strings.Contains(shown, "\rverifying "+archivePath+": ") || !strings.Contains(shown, "\rverifying "+archivePath+": 100%\r\n") {
		t.Errorf("the terminal shows %q, want progress ending with a complete line at 100%%", shown)
	}
	if !strings.HasPrefix(stdout.String(), archivePath+": good archive") {
		t.Errorf("stdout %q", stdout.String())
	}

	code, _, stderr := runMigrator(t, "example", "verify", archivePath)
	if code != 0 || stderr != "" {
		t.Errorf("verify on a pipe: exit %d, stderr %q; want no progress", code, stderr)
	}
}
