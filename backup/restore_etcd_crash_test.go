package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/migrator/etcdstore"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// The restore child: the test binary run again with restoreChildEnv set to
// a JSON restoreChild. It restores the archive into the store and SIGKILLs
// itself when it reaches failpoint Point for the Hit-th time, or, with
// Point empty, restores to the end and prints how often it reached each
// failpoint.
const restoreChildEnv = "HOOKREG_TEST_ETCD_RESTORE"

type restoreChild struct {
	Endpoints []string
	Prefix    string
	Archive   string
	Point     string
	Hit       int
}

// restoreChildPageSize makes the old generation's removal take several
// chunks.
const restoreChildPageSize = 100

func restoreChildMain() {
	spec := os.Getenv(restoreChildEnv)
	if spec == "" {
		return
	}
	var c restoreChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Println("spec:", err)
		os.Exit(1)
	}
	hits := map[string]int{}
	failpoint.Hook = func(point string) error {
		n := func() int {
			restoreChildMu <- struct{}{}
			defer func() { <-restoreChildMu }()
			hits[point]++
			return hits[point]
		}()
		if point == c.Point && n == c.Hit {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: c.Prefix, PageSize: restoreChildPageSize, LockTTL: time.Second})
	if err == nil {
		_, err = backup.RestoreEtcd(context.Background(), generated.Registry, c.Archive, etcdstore.Target(st), backup.RestoreOptions{})
	}
	if err != nil {
		fmt.Println("restore:", err)
		os.Exit(1)
	}
	st.Close()
	out, _ := json.Marshal(hits)
	fmt.Println(string(out))
	os.Exit(0)
}

var restoreChildMu = make(chan struct{}, 1)

// runRestoreChild runs a restore child and returns its output, and whether
// it was killed.
func runRestoreChild(t *testing.T, c restoreChild) (string, bool) {
	t.Helper()
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+string(spec))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return out.String(), true
		}
	}
	if err != nil {
		t.Fatalf("restore child: %v: %s", err, out.String())
	}
	return out.String(), false
}

// TestRestoreEtcdCrash SIGKILLs a restore into etcd at every dangerous
// moment: before the first write, before and after the first, second,
// middle and last batches, just before and just after the switch of
// generation, and before and after chunks of the old generation's
// removal. After each kill the current generation must be complete and
// equal to the old data (killed before the switch) or to the archive
// (after it), the store must check clean, and once the next migrator
// holds the lock, no other generation may remain.
func TestRestoreEtcdCrash(t *testing.T) {
	c := cluster(t)
	cli := c.Client(t)
	dir := t.TempDir()
	oldArc, oldDump := boltArchive(t, dir, "old", func(tx store.Tx) error {
		return fillTable(tx, "old", 300)
	})
	newArc, newDump := boltArchive(t, dir, "new", func(tx store.Tx) error {
		if err := oddTables(tx); err != nil {
			return err
		}
		return fillTable(tx, "new", 500)
	})
	// setup makes a store holding the old data, in a generation of its
	// own, as a restored store does.
	setup := func(t *testing.T) string {
		prefix := etcdtest.Prefix(t)
		st := openEtcd(t, c.Endpoints, prefix)
		if _, err := backup.RestoreEtcd(t.Context(), generated.Registry, oldArc, etcdstore.Target(st), backup.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		return prefix
	}

	// A run to the end counts the failpoints.
	prefix := setup(t)
	out, killed := runRestoreChild(t, restoreChild{Endpoints: c.Endpoints, Prefix: prefix, Archive: newArc})
	if killed {
		t.Fatal("killed without a failpoint")
	}
	var hits map[string]int
	if err := json.Unmarshal([]byte(out), &hits); err != nil {
		t.Fatalf("the child said %q: %v", out, err)
	}
	type kill struct {
		point       string
		hit         int
		afterSwitch bool
	}
	var kills []kill
	for _, p := range []struct {
		name        string
		afterSwitch bool
	}{
		{"restore.checked", false},
		{"etcd.restore.batch", false},
		{"etcd.restore.batch-sent", false},
		{"etcd.restore.verified", false},
		{"etcd.restore.flipped", true},
		{"etcd.restore.delete", true},
		{"etcd.restore.deleted", true},
	} {
		n := hits[p.name]
		if n == 0 {
			t.Fatalf("the restore never reached %s: %v", p.name, hits)
		}
		var at []int
		for _, h := range []int{1, 2, n / 2, n - 1, n} {
			if h >= 1 && h <= n && !slices.Contains(at, h) {
				at = append(at, h)
			}
		}
		for _, h := range at {
			kills = append(kills, kill{p.name, h, p.afterSwitch})
		}
	}
	if len(kills) < 20 {
		t.Fatalf("only %d kill points: %v", len(kills), hits)
	}
	t.Logf("%d kill points, failpoints reached by a whole restore: %v", len(kills), hits)
	for _, k := range kills {
		name := k.point + "#" + strconv.Itoa(k.hit)
		t.Run(name, func(t *testing.T) {
			prefix := setup(t)
			if out, killed := runRestoreChild(t, restoreChild{Endpoints: c.Endpoints, Prefix: prefix, Archive: newArc, Point: k.point, Hit: k.hit}); !killed {
				t.Fatalf("the restore was not killed: %s", out)
			}
			ro, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			want, wantName := oldDump, "the old data"
			if k.afterSwitch {
				want, wantName = newDump, "the archive"
			}
			switch got := logicalDump(t, ro); got {
			case want:
			case oldDump:
				t.Fatalf("killed at %s: the old data is current, want %s", name, wantName)
			case newDump:
				t.Fatalf("killed at %s: the archive is current, want %s", name, wantName)
			default:
				t.Fatalf("killed at %s: the current generation is neither the old data nor the archive:\n%s", name, got)
			}
			if err := ro.Check(); err != nil {
				t.Fatal(err)
			}
			// The next migrator: the killed one's lease revoked, as
			// its expiry would.
			revokeLocks(t, cli, prefix)
			next, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints, Prefix: prefix, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			gens, cur := generationsLeft(t, cli, prefix)
			if len(gens) != 1 || !gens[cur] {
				t.Errorf("killed at %s: after the next open, generations %v remain, current %s", name, gens, cur)
			}
			if got := logicalDump(t, next); got != want {
				t.Errorf("killed at %s: after the next open the data changed", name)
			}
		})
	}
}

// fillTable writes n records of 200 bytes into table.
func fillTable(tx store.Tx, table string, n int) error {
	tb, err := tx.CreateTable(table)
	if err != nil {
		return err
	}
	for i := range n {
		if err := tb.Put(fmt.Appendf(nil, "key%06d", i), bytes.Repeat([]byte{byte('a' + i%26)}, 200)); err != nil {
			return err
		}
	}
	return nil
}

// revokeLocks revokes the leases of the lock holders of the store at
// prefix, as their expiry would.
func revokeLocks(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"/lock/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(kv.Lease)); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatal(err)
		}
	}
}
