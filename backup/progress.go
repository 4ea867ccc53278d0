package backup

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress shows the phases of long work on a terminal, one line each, in
// one style:
//
//	restore: loading: 120000/500000 records (24%), 81000 records/s, ETA 5s
//	restore: syncing and checking… 2.5s
//
// A phase is refreshed twice a second, from its start, rate and ETA where
// its total is known, and ends with a complete line ("…, done in 4.4s")
// once it has been shown; a phase done within half a second shows
// nothing. Progress is also an io.Writer: what is written to it goes out
// on a line of its own, after the shown phase's line. A nil *Progress
// does nothing.
type Progress struct {
	w io.Writer
	n atomic.Int64

	mu     sync.Mutex
	name   string // the phase, "" between phases
	unit   string // "records", "bytes" or "" for a phase without a count
	total  int64
	start  time.Time
	timer  *time.Timer
	shown  bool // a line of the phase was shown
	open   bool // the terminal's cursor is at the end of that line
	serial int  // which phase the timer belongs to
}

// progressEvery is how often a phase is refreshed.
const progressEvery = 500 * time.Millisecond

// NewProgress returns a Progress on w (a terminal), or nil when w is nil.
// A w that is a *Progress is returned as it is, so that work started
// from other work continues its lines.
func NewProgress(w io.Writer) *Progress {
	switch w := w.(type) {
	case nil:
		return nil
	case *Progress:
		return w
	}
	return &Progress{w: w}
}

// Phase starts a phase without a count, ending the current one.
func (p *Progress) Phase(name string) { p.Count(name, "", 0) }

// Count starts a phase that counts its unit ("records" or "bytes") up to
// total (0 when unknown), ending the current one.
func (p *Progress) Count(name, unit string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	p.name, p.unit, p.total = name, unit, total
	p.n.Store(0)
	p.start = time.Now()
	p.shown = false
	p.serial++
	serial := p.serial
	p.timer = time.AfterFunc(progressEvery, func() { p.tick(serial) })
}

// Add counts n more units of the current phase.
func (p *Progress) Add(n int64) {
	if p != nil {
		p.n.Add(n)
	}
}

// Done ends the current phase.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
}

// Write writes b on lines of its own.
func (p *Progress) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\n")
		p.open = false
	}
	return p.w.Write(b)
}

func (p *Progress) tick(serial int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if serial != p.serial || p.name == "" {
		return
	}
	p.show(false)
	p.timer.Reset(progressEvery)
}

// end ends the current phase, with a complete line if it was shown.
func (p *Progress) end() {
	if p.name == "" {
		return
	}
	p.timer.Stop()
	p.serial++
	if p.shown {
		p.show(true)
	}
	p.name = ""
}

// show shows the line of the current phase; final ends it.
func (p *Progress) show(final bool) {
	elapsed := time.Since(p.start)
	n := p.n.Load()
	var b strings.Builder
	b.WriteString("\r")
	b.WriteString(p.name)
	switch {
	case p.unit == "" && final:
		fmt.Fprintf(&b, ": done in %s", roundDuration(elapsed))
	case p.unit == "":
		fmt.Fprintf(&b, "… %s", roundDuration(elapsed))
	default:
		b.WriteString(": ")
		b.WriteString(amount(p.unit, n, p.total))
		rate := float64(n) / max(elapsed.Seconds(), 1e-3)
		fmt.Fprintf(&b, ", %s/s", amount(p.unit, int64(rate), 0))
		switch {
		case final:
			fmt.Fprintf(&b, ", done in %s", roundDuration(elapsed))
		case p.total > 0 && n > 0:
			eta := time.Duration(float64(max(p.total-n, 0)) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
		}
	}
	b.WriteString("\x1b[K") // the rest of a longer line before
	if final {
		b.WriteString("\n")
	}
	io.WriteString(p.w, b.String())
	p.shown = true
	p.open = !final
}

// amount is n of total (0: unknown) in unit: "120/500 records (24%)",
// "12.0/40.0 MiB (30%)".
func amount(unit string, n, total int64) string {
	num := func(v int64) string { return fmt.Sprint(v) }
	if unit == "bytes" {
		unit = "MiB"
		num = func(v int64) string { return fmt.Sprintf("%.1f", float64(v)/(1<<20)) }
	}
	if total <= 0 {
		return num(n) + " " + unit
	}
	return fmt.Sprintf("%s/%s %s (%d%%)", num(n), num(total), unit, 100*min(n, total)/total)
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
