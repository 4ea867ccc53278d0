package migrator

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookreg/hookreg/backup"
)

// TestFollowReport: on a terminal, the parent shows the hook the child
// is running as a phase, from the growing report, and ends its line.
func TestFollowReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.jsonl")
	var out syncBuffer
	stop := followReport(path, backup.NewProgress(&out))
	time.Sleep(300 * time.Millisecond) // no report yet: nothing shown
	lines := `{"event":"start","num":98,"name":"libfoo.UpgradeLibFoo","introduced_in":"5.0.0"}
{"event":"end","num":98,"name":"libfoo.UpgradeLibFoo","introduced_in":"5.0.0"}
{"event":"start","num":99,"name":"libbar.UpgradeLibBar","introduced_in":"5.0.1"}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // hook 99 runs long enough to be shown
	stop()
	shown := out.String()
	if !strings.Contains(shown, "\rupgrade: running hook 99 (libbar.UpgradeLibBar, 5.0.1)… ") ||
		!strings.Contains(shown, "\rupgrade: running hook 99 (libbar.UpgradeLibBar, 5.0.1): done in ") ||
		!strings.HasSuffix(shown, "\n") || strings.Contains(shown, "hook 98") {
		t.Errorf("shown: %q, want hook 99 as a phase (hook 98, quick, not shown), ending its line", shown)
	}
	followReport(path, nil)() // not a terminal: nothing to follow
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
