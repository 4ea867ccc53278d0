package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

func newStore(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func registry(release string, hooks ...hook.Hook) *hook.Registry {
	r := &hook.Registry{Product: "p", Release: release, Hooks: hooks}
	r.Digest = r.ComputeDigest()
	return r
}

// putHook returns a hook that writes key=value into table "t".
func putHook(num int, version string, online bool, key string) hook.Hook {
	return hook.Hook{Num: num, IntroducedIn: version, AllowOnline: online, Name: fmt.Sprintf("Hook%d", num), Digest: fmt.Sprintf("h1:%d", num),
		Func: func(ctx context.Context, tx hook.Tx) error {
			t, err := tx.CreateTable("t")
			if err != nil {
				return err
			}
			return t.Put([]byte(key), []byte(tx.Info().To))
		}}
}

func meta(t *testing.T, st store.Store) upgrade.Metadata {
	t.Helper()
	m, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dump(t *testing.T, st store.Store) string {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var b strings.Builder
	names, _ := tx.Tables()
	for _, n := range names {
		tb, _ := tx.Table(n)
		fmt.Fprintf(&b, "%s:", n)
		tb.Scan(nil, func(k, v []byte) error {
			fmt.Fprintf(&b, " %s=%s", k, v)
			return nil
		})
		b.WriteString("\n")
	}
	return b.String()
}

func initAt(t testing.TB, st store.Store, release string, hooks ...hook.Hook) {
	t.Helper()
	if err := upgrade.Init(st, registry(release, hooks...)); err != nil {
		t.Fatal(err)
	}
}

func TestRunAdvancesDataVersion(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0")
	hooks := []hook.Hook{
		putHook(1, "2.0.0", false, "a"),
		putHook(2, "2.0.0", true, "b"),
		putHook(3, "2.0.1", true, "c"),
		putHook(4, "2.1.0", false, "d"),
	}
	var versions []string
	for i := range hooks {
		f := hooks[i].Func
		hooks[i].Func = func(ctx context.Context, tx hook.Tx) error {
			m, err := upgrade.ReadStoreMetadata(st)
			if err == nil {
				versions = append(versions, m.DataVersion)
			}
			return f(ctx, tx)
		}
	}
	reg := registry("2.2.0", hooks...)
	p, err := upgrade.PlanFor(reg, meta(t, st))
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for _, h := range p.Pending {
		after = append(after, h.DataVersionAfter)
	}
	if got := strings.Join(after, " "); got != "1.0.0 2.0.0 2.0.1 2.2.0" || p.OnlineOK {
		t.Errorf("planned versions %s, online ok %v", got, p.OnlineOK)
	}
	res, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(versions, " "); got != "1.0.0 1.0.0 2.0.0 2.0.1" {
		t.Errorf("data versions seen by the hooks: %s", got)
	}
	m := meta(t, st)
	if m.DataVersion != "2.2.0" || *m.LastUpgradeHook != 4 || len(m.Applied) != 4 || res.From != "1.0.0" || res.To != "2.2.0" {
		t.Errorf("after the run: %+v, result %+v", m, res)
	}
	if a := m.Applied[3]; a.Num != 4 || a.Digest != "h1:4" || a.Release != "2.2.0" || a.Mode != upgrade.Offline || !strings.HasSuffix(a.AppliedAt, "Z") {
		t.Errorf("applied record %+v", a)
	}
	if got := dump(t, st); !strings.Contains(got, "t: a=2.0.0 b=2.0.0 c=2.0.1 d=2.1.0") {
		t.Errorf("store:\n%s", got)
	}
	// A second run has nothing to do.
	if res, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{}); err != nil || len(res.Applied) != 0 {
		t.Errorf("second run: %+v, %v", res, err)
	}
}

func TestPendingWithoutLastHook(t *testing.T) {
	reg := registry("3.0.0", putHook(1, "1.0.0", true, "a"), putHook(2, "2.0.0", true, "b"), putHook(3, "3.0.0", true, "c"))
	p, err := upgrade.PlanFor(reg, upgrade.Metadata{DataVersion: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pending) != 1 || p.Pending[0].Num != 3 {
		t.Errorf("pending %+v, want hook 3 only", p.Pending)
	}
	last := 1
	p, err = upgrade.PlanFor(reg, upgrade.Metadata{DataVersion: "2.0.0", LastUpgradeHook: &last})
	if err != nil || len(p.Pending) != 2 || p.Pending[0].Num != 2 {
		t.Errorf("pending after hook 1: %+v, %v", p.Pending, err)
	}
	// Data at the release with nothing pending records the release.
	p, err = upgrade.PlanFor(registry("3.1.0"), upgrade.Metadata{DataVersion: "3.0.0"})
	if err != nil || len(p.Pending) != 0 || p.TargetVersion != "3.1.0" {
		t.Errorf("plan %+v, %v", p, err)
	}
}

func TestRefusals(t *testing.T) {
	three := 3
	reg := registry("2.0.0", putHook(1, "1.0.0", true, "a"), putHook(2, "2.0.0", false, "b"))
	reg.MinDataVersion = "1.0.0"
	for _, tc := range []struct {
		name string
		meta upgrade.Metadata
		want string
	}{
		{"product", upgrade.Metadata{Product: "q", DataVersion: "1.0.0"}, `the data belongs to product "q", this migrator upgrades "p"`},
		{"newer", upgrade.Metadata{DataVersion: "2.0.1"}, "the data version 2.0.1 is newer than this migrator's release 2.0.0: use the migrator of release 2.0.1 or later"},
		{"downgrade", upgrade.Metadata{DataVersion: "2.0.0", LastUpgradeHook: &three}, "the data has applied hook 3, but the last hook this migrator (release 2.0.0) knows is 2: a downgrade"},
		{"min", upgrade.Metadata{DataVersion: "0.9.0"}, "the data version 0.9.0 is older than 1.0.0, the oldest this release 2.0.0 upgrades: upgrade through release 1.0.0 first"},
		{"bad version", upgrade.Metadata{DataVersion: "v1"}, `the data version "v1" is not a semantic version`},
	} {
		_, err := upgrade.PlanFor(reg, tc.meta)
		var r *upgrade.Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("%s: got %v, want a refusal containing %q", tc.name, err, tc.want)
		}
	}
	one := 1
	p, err := upgrade.PlanFor(reg, upgrade.Metadata{DataVersion: "1.0.0", LastUpgradeHook: &one, Applied: []upgrade.Applied{{Num: 1, Digest: "h1:old"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false, false); err == nil || !strings.Contains(err.Error(), "hook 1 (Hook1): applied with digest h1:old, this migrator has h1:1") {
		t.Errorf("digest mismatch: %v", err)
	}
	if err := p.Check(false, true); err != nil {
		t.Errorf("digest mismatch allowed: %v", err)
	}
	if err := p.Check(true, true); err == nil || !strings.Contains(err.Error(), "hook 2 (Hook2, introduced in 2.0.0)") {
		t.Errorf("online with an offline hook: %v", err)
	}
}

// TestHookIdentity: an applied hook is known by number, function and
// digest. A data's hook 2 that is another function than the migrator's
// hook 2 (a hook of a maintenance branch under a number main used) is
// refused as exactly that, with or without --allow-digest-mismatch, and
// nothing runs; the applied records name the function.
func TestHookIdentity(t *testing.T) {
	st := newStore(t)
	branch := putHook(2, "1.1.0", true, "branch")
	branch.Name, branch.Digest = "FixBranch", "h2:branch"
	initAt(t, st, "1.0.0", putHook(1, "1.0.0", true, "a"))
	if _, err := upgrade.Run(context.Background(), st, registry("1.1.0", putHook(1, "1.0.0", true, "a"), branch), upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	if a := meta(t, st).Applied; len(a) != 1 || a[0].Name != "FixBranch" {
		t.Fatalf("applied records %+v, want hook 2 named FixBranch", a)
	}
	before := dump(t, st)
	main := registry("1.2.0", putHook(1, "1.0.0", true, "a"), putHook(2, "1.2.0", true, "main"), putHook(3, "1.2.0", true, "c"))
	for _, allow := range []bool{false, true} {
		_, err := upgrade.Run(context.Background(), st, main, upgrade.Options{AllowDigestMismatch: allow})
		var r *upgrade.Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "the data's hook 2 is FixBranch (applied by release 1.1.0), but this migrator's hook 2 is Hook2: two different hooks under one number") {
			t.Errorf("allow digest mismatch %v: %v, want the identity refusal", allow, err)
		}
	}
	if after := dump(t, st); after != before {
		t.Errorf("the refused upgrade changed the data:\n%s\nwant\n%s", after, before)
	}
}

func TestHookFailureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   hook.Func
		want string
	}{
		{"error", func(ctx context.Context, tx hook.Tx) error {
			t, _ := tx.CreateTable("t")
			t.Put([]byte("half"), []byte("done"))
			return errors.New("broken record")
		}, "hook 2 (Bad) failed, its transaction was rolled back: broken record"},
		{"panic", func(ctx context.Context, tx hook.Tx) error {
			t, _ := tx.CreateTable("t")
			t.Put([]byte("half"), []byte("done"))
			var m map[string]int
			m["x"] = 1
			return nil
		}, "hook 2 (Bad) failed, its transaction was rolled back: panic: assignment to entry in nil map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			initAt(t, st, "1.0.0")
			reg := registry("2.0.0", putHook(1, "1.1.0", false, "a"), hook.Hook{Num: 2, IntroducedIn: "2.0.0", Name: "Bad", Func: tc.fn}, putHook(3, "2.0.0", false, "c"))
			res, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{})
			var he *upgrade.HookError
			if !errors.As(err, &he) || he.Num != 2 || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if len(res.Applied) != 1 || res.To != "1.1.0" {
				t.Errorf("result %+v", res)
			}
			if got := dump(t, st); !strings.Contains(got, "t: a=1.1.0\n") {
				t.Errorf("store after the failure:\n%s", got)
			}
			if m := meta(t, st); *m.LastUpgradeHook != 1 || m.DataVersion != "1.1.0" {
				t.Errorf("metadata after the failure: %+v", m)
			}
		})
	}
}

func TestCancelStopsBetweenHooks(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	first := putHook(1, "2.0.0", false, "a")
	f := first.Func
	first.Func = func(ctx context.Context, tx hook.Tx) error {
		cancel()
		return f(ctx, tx)
	}
	_, err := upgrade.Run(ctx, st, registry("2.0.0", first, putHook(2, "2.0.0", false, "b")), upgrade.Options{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before hook 2") {
		t.Fatalf("got %v", err)
	}
	if m := meta(t, st); *m.LastUpgradeHook != 1 {
		t.Errorf("last hook %d, want 1", *m.LastUpgradeHook)
	}
}

func TestHookTx(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0")
	var progressSeen []byte
	calls := 0
	h := hook.Hook{Num: 1, IntroducedIn: "2.0.0", Name: "Steps", Func: func(ctx context.Context, tx hook.Tx) error {
		calls++
		if _, err := tx.Table(store.MetaTable); !errors.Is(err, store.ErrBadName) {
			return fmt.Errorf("opening the metadata table: %v", err)
		}
		if _, err := tx.CreateTable("_mine"); !errors.Is(err, store.ErrBadName) {
			return fmt.Errorf("creating a reserved table: %v", err)
		}
		if names, _ := tx.Tables(); len(names) != 0 && calls == 1 {
			return fmt.Errorf("tables %v, want none visible", names)
		}
		p, ok, err := tx.Progress("step")
		if err != nil {
			return err
		}
		if ok {
			progressSeen = p
		}
		t1, err := tx.CreateTable("t")
		if err != nil {
			return err
		}
		if err := t1.Put([]byte("k1"), []byte("v1")); err != nil {
			return err
		}
		if err := t1.Scan(nil, func(k, v []byte) error { return tx.Checkpoint("x", nil) }); err == nil {
			return errors.New("a checkpoint inside a scan succeeded")
		}
		if err := tx.Checkpoint("step", []byte("one")); err != nil {
			return err
		}
		// The handle stays valid after the checkpoint.
		if err := t1.Put([]byte("k2"), []byte("v2")); err != nil {
			return err
		}
		if err := tx.Config().WriteFile("app.conf", []byte("x=1"), 0o600); err != nil {
			return err
		}
		if calls == 1 {
			return errors.New("crash after the checkpoint")
		}
		return nil
	}}
	reg := registry("2.0.0", h)
	if _, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{}); err == nil {
		t.Fatal("the first run succeeded")
	}
	if got := dump(t, st); !strings.Contains(got, "t: k1=v1\n") || strings.Contains(got, "k2") || strings.Contains(got, "app.conf") {
		t.Errorf("after the failed run, the checkpointed work only:\n%s", got)
	}
	if _, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	if string(progressSeen) != "one" {
		t.Errorf("progress seen by the second run: %q", progressSeen)
	}
	got := dump(t, st)
	if !strings.Contains(got, "t: k1=v1 k2=v2\n") || !strings.Contains(got, "app.conf=") || strings.Contains(got, "progress/") {
		t.Errorf("after the second run:\n%s", got)
	}
}

func TestOnlineConfigIsReadOnly(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0")
	dir := t.TempDir()
	var read string
	h := hook.Hook{Num: 7, IntroducedIn: "1.0.1", AllowOnline: true, Name: "WritesConfig", Func: func(ctx context.Context, tx hook.Tx) error {
		data, err := tx.Config().ReadFile("missing.conf")
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading a missing file: %q, %v", data, err)
		}
		if list, err := tx.Config().List(); err != nil || len(list) != 0 {
			return fmt.Errorf("listing: %v, %v", list, err)
		}
		read = "ok"
		return tx.Config().WriteFile("app.conf", nil, 0o600)
	}}
	_, err := upgrade.Run(context.Background(), st, registry("1.0.1", h), upgrade.Options{Online: true, Config: upgrade.DirConfig(dir)})
	if !errors.Is(err, hook.ErrReadOnlyConfig) || !strings.Contains(err.Error(), "hook 7 (WritesConfig): writing configuration file app.conf: configuration is read-only in an online upgrade; make the hook offline") {
		t.Fatalf("got %v", err)
	}
	if read != "ok" {
		t.Error("the hook did not read the configuration")
	}
}

func TestInitRefusesTwice(t *testing.T) {
	st := newStore(t)
	if _, err := upgrade.ReadStoreMetadata(st); !errors.Is(err, upgrade.ErrNotInitialized) {
		t.Fatalf("metadata of an empty store: %v", err)
	}
	if _, err := upgrade.Run(context.Background(), st, registry("1.0.0"), upgrade.Options{}); !errors.Is(err, upgrade.ErrNotInitialized) {
		t.Fatalf("upgrading an empty store: %v", err)
	}
	initAt(t, st, "1.0.0", putHook(5, "1.0.0", true, "a"))
	if m := meta(t, st); m.Product != "p" || m.DataVersion != "1.0.0" || *m.LastUpgradeHook != 5 {
		t.Errorf("metadata %+v", m)
	}
	var r *upgrade.Refusal
	if err := upgrade.Init(st, registry("1.0.0")); !errors.As(err, &r) {
		t.Errorf("second init: %v", err)
	}
}

// TestBaseline adopts data written before hookreg: the baseline records
// the version without a last upgrade hook, so exactly the hooks introduced
// after it run.
func TestBaseline(t *testing.T) {
	hooks := []hook.Hook{putHook(1, "1.0.0", true, "a"), putHook(2, "1.1.0", true, "b"), putHook(3, "2.0.0", true, "c")}
	reg := registry("2.0.0", hooks...)
	st := newStore(t)
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	legacy, _ := tx.CreateTable("legacy")
	legacy.Put([]byte("k"), []byte("v"))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var r *upgrade.Refusal
	for _, bad := range []string{"2.1.0", "1.0", ""} {
		if err := upgrade.Baseline(st, reg, bad); !errors.As(err, &r) {
			t.Errorf("baseline %q: %v, want a refusal", bad, err)
		}
	}
	if _, err := upgrade.ReadStoreMetadata(st); !errors.Is(err, upgrade.ErrNotInitialized) {
		t.Fatalf("a refused baseline wrote metadata: %v", err)
	}
	if err := upgrade.Baseline(st, reg, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if m := meta(t, st); m.Product != "p" || m.DataVersion != "1.0.0" || m.LastUpgradeHook != nil {
		t.Errorf("metadata %+v", m)
	}
	if err := upgrade.Baseline(st, reg, "1.0.0"); !errors.As(err, &r) {
		t.Errorf("second baseline: %v", err)
	}
	res, err := upgrade.Run(context.Background(), st, reg, upgrade.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 2 || res.Applied[0].Num != 2 || res.To != "2.0.0" {
		t.Errorf("applied %+v, to %s; want hooks 2 and 3, to 2.0.0", res.Applied, res.To)
	}
	if got := dump(t, st); !strings.Contains(got, "legacy: k=v") || strings.Contains(got, "a=") {
		t.Errorf("store:\n%s", got)
	}
}

// TestStartFreshWithEmptyTables: a product that creates its tables before
// migrating (empty, nested, no sequence) starts as a fresh install; a
// record or a sequence anywhere, at any depth, is data from before the
// product adopted hookreg, refused naming the table.
func TestStartFreshWithEmptyTables(t *testing.T) {
	reg := registry("1.0.0", putHook(1, "1.0.0", true, "a"))
	for _, c := range []struct {
		name  string
		build func(tx store.Tx) error
		want  string // the refusal; empty: initialized
	}{
		{"empty tables", func(tx store.Tx) error {
			_, err := hook.CreatePath(tx, "users", "by-id")
			if err == nil {
				_, err = tx.CreateTable("sessions")
			}
			return err
		}, ""},
		{"a record deep", func(tx store.Tx) error {
			t, err := hook.CreatePath(tx, "users", "by-id")
			if err == nil {
				err = t.Put([]byte("k"), []byte("v"))
			}
			return err
		}, "table users/by-id is not empty"},
		{"a sequence", func(tx store.Tx) error {
			t, err := hook.CreatePath(tx, "users", "by-id")
			if err == nil {
				err = t.SetSequence(3)
			}
			return err
		}, "table users/by-id is not empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t)
			tx, err := st.Begin(true)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.build(tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			_, err = upgrade.Start(context.Background(), st, reg, upgrade.StartOptions{})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Start = %v, want a fresh install", err)
			case c.want == "":
				if m := meta(t, st); m.DataVersion != "1.0.0" || m.LastUpgradeHook == nil || *m.LastUpgradeHook != 1 {
					t.Errorf("metadata %+v, want a fresh install of 1.0.0", m)
				}
			case err == nil || !strings.Contains(err.Error(), c.want):
				t.Errorf("Start = %v, want a refusal naming %q", err, c.want)
			}
		})
	}
}

// TestHookErrorLockLost: a hook stopped because the store lost its lock
// (a cluster store's lease expired while the migrator was paused) is not
// reported as the hook's failure.
func TestHookErrorLockLost(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0")
	_, err := upgrade.Run(context.Background(), st, registry("1.0.1", hook.Hook{Num: 1, IntroducedIn: "1.0.1", Name: "Copy", Func: func(ctx context.Context, tx hook.Tx) error {
		return fmt.Errorf("checkpoint: %w", store.ErrLockLost)
	}}), upgrade.Options{})
	var he *upgrade.HookError
	if !errors.As(err, &he) || !errors.Is(err, store.ErrLockLost) || !strings.Contains(err.Error(), "hook 1 (Copy) stopped because this migrator lost its lock on the store") || strings.Contains(err.Error(), "failed") {
		t.Errorf("Run = %v", err)
	}
}
