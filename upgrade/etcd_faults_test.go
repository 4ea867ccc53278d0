package upgrade_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store/etcd"
	"github.com/hookreg/hookreg/upgrade"
)

// faultTests runs the fault tests, which take a minute or more: make
// test-faults sets it (CI runs it); make test leaves them out.
func faultTests(t *testing.T) {
	t.Helper()
	if os.Getenv("HOOKREG_FAULT_TESTS") == "" {
		t.Skip("a fault test of member processes: run it with HOOKREG_FAULT_TESTS=1 (make test-faults)")
	}
}

// TestEtcdFaults: an online upgrade (an EachBatch hook rewriting 10,000
// records of a cluster of three member processes) while the product
// writes another table through etcd.Product, with one fault each: the
// leader SIGKILLed, a follower SIGKILLed, a follower SIGSTOPped for 15 s,
// the leader SIGSTOPped for 15 s, once a tenth of the records are done.
// The upgrade completes in one run, every record rewritten exactly once,
// the hook recorded once, and the product's table holds exactly what its
// acknowledged writes wrote.
func TestEtcdFaults(t *testing.T) {
	faultTests(t)
	for _, f := range []struct {
		name   string
		leader bool
		pause  time.Duration // 0: SIGKILL
	}{
		{"leader killed", true, 0},
		{"follower killed", false, 0},
		{"follower paused 15s", false, 15 * time.Second},
		{"leader paused 15s", true, 15 * time.Second},
	} {
		t.Run(f.name, func(t *testing.T) {
			c, err := etcdtest.Start(etcdtest.Config{Members: 3, Processes: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			fault := func() (string, error) {
				find := c.Follower
				if f.leader {
					find = c.Leader
				}
				i, err := find(context.Background())
				if err != nil {
					return "", err
				}
				if f.pause == 0 {
					return c.Endpoints[i], c.Kill(i)
				}
				t.Logf("%s pausing member %d", time.Now().Format("15:04:05.000"), i)
				if err := c.Stop(i); err != nil {
					return "", err
				}
				time.Sleep(f.pause)
				return c.Endpoints[i], c.Cont(i)
			}
			onlineUnderFault(t, c, fault)
		})
	}
}

// onlineUnderFault runs the online upgrade and the product beside it on
// c, calls fault once a tenth of the records are done, and checks the
// data.
func onlineUnderFault(t *testing.T, c *etcdtest.Cluster, fault func() (string, error)) {
	const n, keys = 10000, 200
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: "/faults", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	value := func(i int) []byte { return fmt.Appendf(nil, "value %d", i) }
	fill(t, st, n, value)
	storetest.Put(t, st, "prod", "-", "")

	// The product: its own client, with the keepalive a product on a
	// cluster should have, writing and deleting keys of its table at
	// random, each write retried until acknowledged (puts and deletes
	// of the same value are idempotent, so the model is exact).
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: etcd.DefaultKeepAliveTime, DialKeepAliveTimeout: etcd.DefaultKeepAliveTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	p, err := etcd.OpenProduct(context.Background(), cli, "/faults", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	model := map[string]string{"-": ""}
	var acked, retried atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("p%03d", rand.IntN(keys))
			v := fmt.Sprintf("w%d", i)
			del := rand.IntN(10) == 0
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var werr error
				if del {
					werr = p.Delete(ctx, "prod", []byte(k))
				} else {
					werr = p.Put(ctx, "prod", []byte(k), []byte(v))
				}
				cancel()
				if werr == nil {
					break
				}
				retried.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
			acked.Add(1)
			if del {
				delete(model, k)
			} else {
				model[k] = v
			}
			time.Sleep(2 * time.Millisecond)
		}
	})

	// The hook, slowed down around the fault so that the upgrade spans
	// it.
	var done atomic.Int64
	var slow atomic.Bool
	var faultErr error
	var faulted string
	var faultWG sync.WaitGroup
	var once sync.Once
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Bang", Digest: "h1:bang",
		Func: func(ctx context.Context, tx hook.Tx) error {
			src, err := tx.Table("src")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "bang", "src", 10000, func(k, v []byte) error {
				if done.Add(1) == n/10 {
					once.Do(func() {
						slow.Store(true)
						faultWG.Go(func() {
							faulted, faultErr = fault()
							time.Sleep(2 * time.Second)
							slow.Store(false)
						})
					})
				}
				if slow.Load() && done.Load()%100 == 0 {
					time.Sleep(200 * time.Millisecond)
				}
				return src.Put(k, append(bytes.Clone(v), '!'))
			})
		}}
	var log bytes.Buffer
	start := time.Now()
	_, err = upgrade.Run(context.Background(), st, registry("2.0.0", h), upgrade.Options{Online: true, Log: &log})
	took := time.Since(start)
	faultWG.Wait()
	close(stop)
	wg.Wait()
	if faultErr != nil {
		t.Fatal(faultErr)
	}
	if err != nil {
		t.Fatalf("online upgrade with member %s faulted: %v\n%s", faulted, err, tail(log.String(), 5))
	}
	t.Logf("fault on %s: the upgrade took %s; the product's writes: %d acknowledged, %d attempts failed and were retried", faulted, took.Round(time.Millisecond), acked.Load(), retried.Load())
	if done.Load() < n {
		t.Errorf("the hook visited %d records, want at least %d", done.Load(), n)
	}

	got := storetest.Records(t, st, "src")
	if len(got) != n {
		t.Errorf("%d records, want %d", len(got), n)
	}
	for i := range n {
		k := fmt.Sprintf("%06d", i)
		if want := string(value(i)) + "!"; got[k] != want {
			t.Fatalf("record %s = %q, want %q (rewritten exactly once)", k, got[k], want)
		}
	}
	m := meta(t, st)
	if m.DataVersion != "2.0.0" || m.LastUpgradeHook == nil || *m.LastUpgradeHook != 1 || len(m.Applied) != 1 || m.Applied[0].Num != 1 {
		t.Errorf("metadata %+v, want data version 2.0.0 and hook 1 applied once", m)
	}
	prod := storetest.Records(t, st, "prod")
	for k, v := range model {
		if prod[k] != v {
			t.Errorf("product record %s = %q, want %q (its last acknowledged write)", k, prod[k], v)
		}
	}
	for k := range prod {
		if _, ok := model[k]; !ok {
			t.Errorf("product record %s = %q, deleted by its last acknowledged write", k, prod[k])
		}
	}
}

// TestEtcdHookClusterFails: the cluster loses its quorum while an online
// EachBatch hook runs; the run fails within the request timeout saying
// that the cluster failed (not the hook), which members answered, and
// that running again resumes from the last checkpoint; with the members
// back, the next run resumes there and completes.
func TestEtcdHookClusterFails(t *testing.T) {
	faultTests(t)
	const n = 3000
	c, err := etcdtest.Start(etcdtest.Config{Members: 3, Processes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: "/lost", Create: true, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	value := func(i int) []byte { return fmt.Appendf(nil, "value %d", i) }
	fill(t, st, n, value)
	var visited atomic.Int64
	var killErr error
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Bang", Digest: "h1:bang",
		Func: func(ctx context.Context, tx hook.Tx) error {
			src, err := tx.Table("src")
			if err != nil {
				return err
			}
			return hook.EachBatch(ctx, tx, "bang", "src", 10000, func(k, v []byte) error {
				if visited.Add(1) == n/2 {
					if killErr = c.Kill(1); killErr == nil {
						killErr = c.Kill(2)
					}
				}
				return src.Put(k, append(bytes.Clone(v), '!'))
			})
		}}
	reg := registry("2.0.0", h)
	start := time.Now()
	_, err = upgrade.Run(context.Background(), st, reg, upgrade.Options{Online: true})
	took := time.Since(start)
	if killErr != nil {
		t.Fatal(killErr)
	}
	if err == nil || !strings.Contains(err.Error(), "hook 1 (Bang) stopped because the store's cluster failed, not the hook") ||
		!strings.Contains(err.Error(), "no leader: 1 of 3 members answered") || !strings.Contains(err.Error(), "running the command again resumes from there") {
		t.Fatalf("the run without quorum: %v", err)
	}
	t.Logf("without quorum the run failed after %s: %v", took.Round(time.Millisecond), err)
	for _, i := range []int{1, 2} {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st, err = etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: "/lost", Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	before := visited.Load()
	if _, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{Online: true}); err != nil {
		t.Fatalf("the run with the members back: %v", err)
	}
	if again := visited.Load() - before; again >= n {
		t.Errorf("the second run visited %d records, want fewer than %d (resumed from the checkpoint)", again, n)
	}
	got := storetest.Records(t, st, "src")
	for i := range n {
		k := fmt.Sprintf("%06d", i)
		if want := string(value(i)) + "!"; got[k] != want {
			t.Fatalf("record %s = %q, want %q", k, got[k], want)
		}
	}
}
