package backup

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProgress: a quick phase shows nothing; a long counted one shows its
// rate and ETA, then a complete line; a write goes on a line of its own;
// a nil Progress does nothing.
func TestProgress(t *testing.T) {
	var out lockedBuffer
	p := NewProgress(&out)
	if NewProgress(p) != p || NewProgress(nil) != nil {
		t.Fatal("NewProgress does not reuse a Progress, or makes one on nil")
	}
	p.Phase("quick")
	p.Done()
	if out.String() != "" {
		t.Fatalf("a quick phase shows %q", out.String())
	}
	p.Count("test: loading", "records", 100)
	p.Add(40)
	time.Sleep(700 * time.Millisecond)
	p.Write([]byte("a line\n"))
	p.Add(60)
	p.Done()
	shown := out.String()
	for _, want := range []string{"\rtest: loading: 40/100 records (40%), ", " records/s, ETA ", "\x1b[K\na line\n", "\rtest: loading: 100/100 records (100%), ", ", done in "} {
		if !strings.Contains(shown, want) {
			t.Errorf("shown %q, want %q in it", shown, want)
		}
	}
	if !strings.HasSuffix(shown, "\x1b[K\n") {
		t.Errorf("shown %q, want a complete last line", shown)
	}
	var none *Progress
	none.Count("x", "bytes", 1)
	none.Add(1)
	none.Done()
	none.Write([]byte("x"))
}
