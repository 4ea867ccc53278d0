package migrator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/hook"
)

// TestEtcdOnlineUpgradeQuotaWarning: `migrator upgrade --online` of a
// store whose cluster's database is past half its quota succeeds and
// warns on stderr, once, with the figures; on the same cluster below half
// of it, it does not warn.
func TestEtcdOnlineUpgradeQuotaWarning(t *testing.T) {
	t.Parallel()
	const quota = 16 << 20
	url, cli := quotaStore(t, quota, "quota")
	code, _, stderr := migratorMain(shopRegistry(false), "upgrade", "--online", "--store", url)
	if code != 0 || strings.Contains(stderr, "warning") {
		t.Fatalf("upgrade of an empty cluster: exit %d, want 0 and no warning\n%s", code, stderr)
	}
	// Grow the database past half the quota, below the whole of it.
	value := strings.Repeat("x", 512<<10)
	for i := 0; ; i++ {
		s, err := cli.Status(context.Background(), cli.Endpoints()[0])
		if err != nil {
			t.Fatal(err)
		}
		if s.DbSize > quota/2 {
			break
		}
		if i == 24 {
			t.Fatalf("the database is %d bytes after 12 MiB of values", s.DbSize)
		}
		if _, err := cli.Put(context.Background(), fmt.Sprintf("/filler/%d", i), value); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // DbSize follows the backend's commits
	}
	next := shopRegistry(false)
	next.Release = "1.2.0"
	next.Hooks = append(next.Hooks, hook.Hook{Num: 2, IntroducedIn: "1.2.0", AllowOnline: true, Name: "Touch",
		Func: func(ctx context.Context, tx hook.Tx) error {
			t, err := tx.CreateTable("touched")
			if err != nil {
				return err
			}
			return t.Put([]byte("k"), []byte("v"))
		}})
	next.Digest = next.ComputeDigest()
	code, _, stderr = migratorMain(next, "upgrade", "--online", "--store", url)
	want := fmt.Sprintf("of its %d-byte quota (--quota-backend-bytes", quota)
	if code != 0 || strings.Count(stderr, "warning:") != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "past half of it") {
		t.Errorf("upgrade past half the quota: exit %d, want 0 and one warning with %q\n%s", code, want, stderr)
	}
	t.Logf("stderr: %s", stderr)
}
