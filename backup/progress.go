package backup

import (
	"fmt"
	"io"
	"time"
)

// progress reports the records done of a long step, at most twice a
// second, to a terminal. A nil *progress does nothing.
type progress struct {
	w      io.Writer
	what   string
	total  int64
	n      int64
	last   time.Time
	shown  bool
	ticker int
}

// newProgress returns a progress on w, or nil when w is nil.
func newProgress(w io.Writer, what string, total int64) *progress {
	if w == nil {
		return nil
	}
	return &progress{w: w, what: what, total: total, last: time.Now()}
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.n += n
	if p.ticker++; p.ticker%4096 != 0 || time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r%s: %d/%d records (%d%%)", p.what, p.n, p.total, 100*p.n/max(p.total, 1))
}

func (p *progress) done() {
	if p != nil && p.shown {
		fmt.Fprintf(p.w, "\r%s: %d/%d records (100%%)\n", p.what, p.n, p.total)
	}
}
