package hooks_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/hooks"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// size spans several batches of hook.EachBatch in the 5.1.0 hook.
var size = example.Size{Users: 50, Rules: 2*hook.DefaultBatchSize + 123}

// upgradeTo builds the data of from in a new bbolt file, checks it, and
// upgrades it with the registry of release to.
func upgradeTo(t *testing.T, from, to string, opts upgrade.Options) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := example.Build(context.Background(), st, generated.Registry, from, size); err != nil {
		t.Fatal(err)
	}
	check(t, st, func(tx store.Tx) error { return example.Verify(tx, from, size) })
	reg, err := example.Registry(generated.Registry, to)
	if err != nil {
		t.Fatal(err)
	}
	res, err := upgrade.Run(context.Background(), st, reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 1 || res.To != to {
		t.Fatalf("upgrade %s -> %s applied %v, data version %s", from, to, res.Applied, res.To)
	}
	return st
}

func check(t *testing.T, st store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		t.Fatal(err)
	}
}

func get(tx store.Tx, table, key string) string {
	tb, err := tx.Table(table)
	if err != nil {
		return err.Error()
	}
	v, err := tb.Get([]byte(key))
	if err != nil {
		return err.Error()
	}
	return string(v)
}

func TestUpgradeLibFoo(t *testing.T) {
	st := upgradeTo(t, "4.4.0", "5.0.0", upgrade.Options{})
	check(t, st, func(tx store.Tx) error {
		if got, want := get(tx, "users", "mqtt:acme@device-000004"), string(example.UserValue(4, "4.4.0")); got != want {
			t.Errorf("users[mqtt:acme@device-000004] = %s, want %s", got, want)
		}
		if got := get(tx, "users", "acme@device-000004"); !strings.Contains(got, "not found") {
			t.Errorf("the old key is still there: %s", got)
		}
		cfg, err := store.ConfigView(tx).ReadFile("broker.json")
		if err != nil {
			return err
		}
		if !strings.Contains(string(cfg), `"authorization": {
    "no_match": "deny"
  }`) || strings.Contains(string(cfg), "acl_nomatch") {
			t.Errorf("broker.json:\n%s", cfg)
		}
		return example.Verify(tx, "5.0.0", size)
	})
}

func TestUpgradeLibBar(t *testing.T) {
	st := upgradeTo(t, "5.0.0", "5.0.1", upgrade.Options{Online: true, Config: upgrade.DirConfig(t.TempDir())})
	check(t, st, func(tx store.Tx) error {
		got := get(tx, "users", "mqtt:device-000003")
		if !strings.Contains(got, `"password_hash_algorithm":"sha256"`) {
			t.Errorf("users[mqtt:device-000003] = %s", got)
		}
		return example.Verify(tx, "5.0.1", size)
	})
}

func TestUpgradeLibBaz(t *testing.T) {
	st := upgradeTo(t, "5.0.1", "5.1.0", upgrade.Options{})
	check(t, st, func(tx store.Tx) error {
		names, err := tx.Tables()
		if err != nil {
			return err
		}
		if got := strings.Join(names, " "); got != "_config _hookreg acl.acme acl.default acl.globex acl.initech users" {
			t.Errorf("tables after the split: %s", got)
		}
		if got, want := get(tx, "acl.globex", "00000003"), string(example.RuleValue(3, size)); got != want {
			t.Errorf("acl.globex[00000003] = %s, want %s", got, want)
		}
		return example.Verify(tx, "5.1.0", size)
	})
}

// TestUpgradeLibBazResumes interrupts the split after its first batch: the
// source table is intact, and a second run completes it.
func TestUpgradeLibBazResumes(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"), bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := example.Build(ctx, st, generated.Registry, "5.0.1", size); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop after one batch")
	batches := 0
	interrupted := &hook.Registry{Product: generated.Registry.Product, Release: "5.1.0", Hooks: []hook.Hook{{
		Num: 100, IntroducedIn: "5.1.0", Name: "UpgradeLibBaz",
		Func: func(ctx context.Context, tx hook.Tx) error {
			return hooks.UpgradeLibBaz(ctx, stopAfter{Tx: tx, n: &batches, err: stop})
		},
	}}}
	interrupted.Hooks = append(generated.Registry.Hooks[:2:2], interrupted.Hooks...)
	if _, err := upgrade.Run(ctx, st, interrupted, upgrade.Options{}); !errors.Is(err, stop) {
		t.Fatalf("interrupted run: %v", err)
	}
	check(t, st, func(tx store.Tx) error {
		meta, err := upgrade.ReadMetadata(tx)
		if err != nil {
			return err
		}
		if *meta.LastUpgradeHook != 99 || meta.DataVersion != "5.0.1" {
			t.Errorf("after the interruption: last hook %d, data version %s", *meta.LastUpgradeHook, meta.DataVersion)
		}
		acme, err := tx.Table("acl.acme")
		if err != nil {
			return err
		}
		n := 0
		if err := acme.Scan(nil, func(k, v []byte) error { n++; return nil }); err != nil {
			return err
		}
		if n == 0 {
			t.Error("the first batch was not committed")
		}
		return example.VerifyInterrupted(tx, size)
	})
	reg, err := example.Registry(generated.Registry, "5.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := upgrade.Run(ctx, st, reg, upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	check(t, st, func(tx store.Tx) error { return example.Verify(tx, "5.1.0", size) })
}

// stopAfter fails the checkpoint after the first one.
type stopAfter struct {
	hook.Tx
	n   *int
	err error
}

func (s stopAfter) Checkpoint(key string, progress []byte) error {
	if *s.n++; *s.n > 1 {
		return s.err
	}
	return s.Tx.Checkpoint(key, progress)
}
