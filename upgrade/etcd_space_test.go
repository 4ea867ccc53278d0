package upgrade_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// logBuffer is a strings.Builder safe for a hook to read while the engine
// writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEtcdOnlineQuotaWarning: on a cluster with a 32 MiB quota, an online
// hook writing little does not warn; one that writes 100 kB per
// checkpoint until the database passes half the quota gets one warning,
// with the figures, while it runs (the hook sees it and stops at its next
// checkpoint), not one per commit, and before the hook is applied.
func TestEtcdOnlineQuotaWarning(t *testing.T) {
	const quota = 32 << 20
	c, err := etcdtest.Start(etcdtest.Config{Members: 1, QuotaBackendBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: etcdtest.Prefix(t), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	initAt(t, st, "1.0.0")
	log := &logBuffer{}
	small := putHook(1, "2.0.0", true, "a")
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", small), upgrade.Options{Online: true, Log: log, Warn: log}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "warning") {
		t.Fatalf("a small upgrade of an empty cluster warned:\n%s", log)
	}
	value := bytes.Repeat([]byte("q"), 2000)
	commits := 0
	big := hook.Hook{Num: 2, IntroducedIn: "2.1.0", AllowOnline: true, Name: "Grow", Digest: "h1:grow",
		Func: func(ctx context.Context, tx hook.Tx) error {
			tb, err := tx.CreateTable("big")
			if err != nil {
				return err
			}
			for !strings.Contains(log.String(), "warning") {
				size, _, err := st.Space()
				if err != nil {
					return err
				}
				if size > quota*8/10 {
					return fmt.Errorf("no warning with the database at %d bytes of %d, after %d commits", size, quota, commits)
				}
				for i := range 50 {
					if err := tb.Put(fmt.Appendf(nil, "%06d-%02d", commits, i), value); err != nil {
						return err
					}
				}
				if err := tx.Checkpoint("grow", fmt.Appendf(nil, "%d", commits)); err != nil {
					return err
				}
				commits++
			}
			return nil
		}}
	if _, err := upgrade.Run(context.Background(), st, registry("2.1.0", small, big), upgrade.Options{Online: true, Log: log, Warn: log}); err != nil {
		t.Fatal(err)
	}
	out := log.String()
	t.Logf("%d commits of 100 kB; log:\n%s", commits, out[strings.Index(out, "running hook 2"):][:200]+"\n...\n"+out[strings.LastIndex(out, "checkpoint"):])
	if n := strings.Count(out, "warning"); n != 1 {
		t.Errorf("%d warnings, want one per run", n)
	}
	w := out[strings.Index(out, "warning"):]
	w = w[:strings.IndexByte(w, '\n')]
	if !strings.Contains(w, fmt.Sprintf("of its %d-byte quota", quota)) || !strings.Contains(w, "past half of it") {
		t.Errorf("warning %q: want the figures", w)
	}
	if strings.Index(out, "warning") > strings.Index(out, "applied hook 2") {
		t.Errorf("the warning came after the hook was applied, not while it ran:\n%s", out)
	}
}

// spaceCounter is a store with a quota whose Space calls are counted.
type spaceCounter struct {
	*bolt.Store
	calls int
}

func (s *spaceCounter) Space() (size, quota int64, err error) {
	s.calls++
	return 0, 1 << 30, nil
}

// TestSpaceNotCheckedAfterUnavailable: a run that a cluster without a
// leader stopped does not ask the members for the database's size on its
// way out (the check when the run starts is the only one). That probe
// (a second for members that do not answer) came on top of the request
// timeout that had already passed, so a command without quorum failed
// seconds later than --etcd-timeout plus a second.
func TestSpaceNotCheckedAfterUnavailable(t *testing.T) {
	st := &spaceCounter{Store: newStore(t)}
	initAt(t, st, "1.0.0")
	down := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Down", Digest: "h1:down",
		Func: func(ctx context.Context, tx hook.Tx) error {
			return fmt.Errorf("committing: %w", store.ErrUnavailable)
		}}
	_, err := upgrade.Run(context.Background(), st, registry("2.0.0", down), upgrade.Options{Online: true, Warn: &logBuffer{}})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the run: %v, want store.ErrUnavailable", err)
	}
	if st.calls != 1 {
		t.Errorf("Space was called %d times, want once (when the run starts)", st.calls)
	}
	st.calls = 0
	if _, err := upgrade.Run(context.Background(), st, registry("2.0.0", putHook(1, "2.0.0", true, "k")), upgrade.Options{Online: true, Warn: &logBuffer{}}); err != nil {
		t.Fatal(err)
	}
	if st.calls != 2 {
		t.Errorf("a run that succeeded called Space %d times, want twice (when it starts and ends)", st.calls)
	}
}
