package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/upgrade"
)

// lineCounter is an io.Writer counting the lines holding a string.
type lineCounter struct {
	mu    sync.Mutex
	match string
	n     int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += strings.Count(string(p), c.match)
	c.mu.Unlock()
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestEtcdFaultsProductLoad: an online EachBatch hook rewrites every
// record of a 20,000-record table in place while the product writes
// random records of the same table through etcd.Product, paced at 500
// writes/s (8 writers, each its own keys, so that the acknowledged order
// of a key's writes is known). The upgrade completes in one run, and the
// table is exact: a record the product never wrote holds the hook's
// rewrite of its original value; a record the product wrote holds the
// product's last acknowledged value, either as the product wrote it (the
// product wrote it behind the hook's cursor, which does not revisit it) or
// rewritten once by the hook (written before the hook's batch read it);
// never a rewrite of an older value, never rewritten twice. The achieved
// rate is logged (go test -v), as are the conflicts the hook met. It
// takes a few seconds, so it runs in make test too (and in make
// test-faults, by its name).
func TestEtcdFaultsProductLoad(t *testing.T) {
	const (
		n       = 20_000
		rate    = 500 // product writes per second
		writers = 8
	)
	st, prefix := openEtcd(t)
	original := func(i int) []byte { return fmt.Appendf(nil, "orig-%06d", i) }
	fill(t, st, n, original)
	rewrite := func(v []byte) []byte { return append(bytes.Clone(v), '!') }
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Rewrite", Digest: "h1:rewrite",
		Func: func(ctx context.Context, tx hook.Tx) error {
			src, err := tx.Table("src")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "rewrite", "src", 10000, func(k, v []byte) error {
				return src.Put(k, rewrite(v))
			})
		}}
	p := product(t, prefix)

	// Stopping the writers does not cancel a write in flight, so that
	// every write's outcome is known.
	done := make(chan struct{})
	stop := sync.OnceFunc(func() { close(done) })
	defer stop()
	last := make([]map[int][]byte, writers) // per writer: key -> last acknowledged value
	failed := make([]error, writers)
	var writes [writers]int
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		last[w] = map[int][]byte{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 22))
			interval := time.Second * writers / rate
			next := time.Now()
			for seq := 0; ; seq++ {
				next = next.Add(interval)
				select {
				case <-done:
					return
				case <-time.After(time.Until(next)):
				}
				i := rng.IntN(n/writers)*writers + w // this writer's keys only
				v := fmt.Appendf(nil, "product-%d-%d", w, seq)
				if err := p.Put(context.Background(), "src", fmt.Appendf(nil, "%06d", i), v); err != nil {
					failed[w] = fmt.Errorf("product write %d of writer %d: %w", seq, w, err)
					return
				}
				last[w][i] = v
				writes[w]++
			}
		}()
	}
	conflicts := &lineCounter{match: "conflicted"}
	_, err := upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true, Log: conflicts})
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	total := 0
	for w := range writers {
		if failed[w] != nil {
			t.Error(failed[w])
		}
		total += writes[w]
	}
	t.Logf("product: %d acknowledged writes in %v, %.0f writes/s (goal %d); the hook met %d conflicts",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), rate, conflicts.count())
	if err != nil {
		t.Fatalf("the online upgrade under product load did not complete in one run: %v", err)
	}

	got := storetest.Records(t, st, "src")
	if len(got) != n {
		t.Errorf("src has %d records, want %d", len(got), n)
	}
	kinds := map[string]int{}
	bad := 0
	for i := range n {
		k := fmt.Sprintf("%06d", i)
		v, ok := got[k]
		var allowed [][]byte
		pv, written := last[i%writers][i]
		if written {
			allowed = [][]byte{pv, rewrite(pv)}
		} else {
			allowed = [][]byte{rewrite(original(i))}
		}
		switch {
		case ok && bytes.Equal([]byte(v), allowed[0]):
			kinds[map[bool]string{true: "product's, behind the cursor", false: "rewritten"}[written]]++
		case ok && len(allowed) > 1 && bytes.Equal([]byte(v), allowed[1]):
			kinds["product's, rewritten"]++
		default:
			if bad++; bad <= 10 {
				t.Errorf("record %s = %q (present %v), want one of %q", k, v, ok, allowed)
			}
		}
	}
	t.Logf("records: %v", kinds)
}
