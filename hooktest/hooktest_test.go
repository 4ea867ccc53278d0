package hooktest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/hooktest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

func digest(t *testing.T, st store.Store) string {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	d, err := example.TxDigest(tx, store.MetaTable)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRunAsTheEngine runs the example product's hooks one by one on a
// release fixture: the data ends exactly as an offline upgrade by the
// engine leaves it, configuration files included.
func TestRunAsTheEngine(t *testing.T) {
	fixture := "../testdata/releases/4.4.0.tar.zst"
	one := hooktest.Load(t, fixture)
	for _, h := range generated.Registry.Hooks {
		if err := one.Run(hooktest.Lookup(t, generated.Registry, h.Num)); err != nil {
			t.Fatal(err)
		}
	}
	all := hooktest.Load(t, fixture)
	if _, err := upgrade.Run(context.Background(), all.Store(), generated.Registry, upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	if a, b := digest(t, one.Store()), digest(t, all.Store()); a != b {
		t.Error("running the hooks one by one gives other data than the engine's upgrade")
	}
	if got := one.Applied(); len(got) != 3 || got[2].Num != 100 || got[2].Mode != upgrade.Offline {
		t.Errorf("applied records %+v", got)
	}
	if cfg, ok := one.Config("broker.json"); !ok || cfg == "" {
		t.Error("the configuration file is gone")
	}
}

// TestSeedRunRead seeds tables and a configuration file, runs a hook that
// changes both, and reads them back; the hook sees the versions.
func TestSeedRunRead(t *testing.T) {
	st := hooktest.New(t)
	st.SetDataVersion("1.0.0")
	st.Put("users", "ada", "Ada Lovelace")
	st.Put("users", "alan", "Alan Turing")
	st.WriteConfig("app/app.conf", "color=blue")
	var info hook.Info
	h := hook.Hook{Num: 7, IntroducedIn: "2.0.0", Name: "Split", Func: func(ctx context.Context, tx hook.Tx) error {
		info = tx.Info()
		users, err := tx.Table("users")
		if err != nil {
			return err
		}
		last, err := tx.CreateTable("last_names")
		if err != nil {
			return err
		}
		if err := users.Scan(nil, func(k, v []byte) error {
			return last.Put(k, v[len(v)-8:])
		}); err != nil {
			return err
		}
		return tx.Config().WriteFile("app/app.conf", []byte("colour=blue"), 0o600)
	}}
	if err := st.Run(h); err != nil {
		t.Fatal(err)
	}
	if info != (hook.Info{Num: 7, From: "1.0.0", To: "2.0.0"}) {
		t.Errorf("the hook saw %+v", info)
	}
	if got := st.Records("last_names"); len(got) != 2 || got["ada"] != "Lovelace" || got["alan"] != "n Turing" {
		t.Errorf("last_names %v", got)
	}
	if got := fmt.Sprint(st.Tables()); got != "[last_names users]" {
		t.Errorf("tables %s", got)
	}
	if v, ok := st.Config("app/app.conf"); !ok || v != "colour=blue" {
		t.Errorf("app.conf %q %v", v, ok)
	}
	if _, ok := st.Get("users", "grace"); ok {
		t.Error("Get found a missing key")
	}
}

// TestFailureRollsBack: a hook that fails or panics leaves the store as it
// was, and the error names it.
func TestFailureRollsBack(t *testing.T) {
	for name, fail := range map[string]func() error{
		"error": func() error { return errors.New("boom") },
		"panic": func() error { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			st := hooktest.New(t)
			st.Put("t", "k", "old")
			err := st.Run(hook.Hook{Num: 3, IntroducedIn: "1.0.0", Name: "Fails", Func: func(ctx context.Context, tx hook.Tx) error {
				tb, err := tx.Table("t")
				if err != nil {
					return err
				}
				if err := tb.Put([]byte("k"), []byte("new")); err != nil {
					return err
				}
				return fail()
			}})
			var he *upgrade.HookError
			if !errors.As(err, &he) || he.Num != 3 {
				t.Fatalf("error %v, want a HookError for hook 3", err)
			}
			if v, _ := st.Get("t", "k"); v != "old" {
				t.Errorf("k = %q after a failed hook", v)
			}
			if len(st.Applied()) != 0 {
				t.Error("a failed hook is recorded as applied")
			}
		})
	}
}

// TestOnlineView: online, configuration files are read-only and an
// offline hook is refused.
func TestOnlineView(t *testing.T) {
	st := hooktest.New(t)
	st.WriteConfig("a.conf", "x")
	var read string
	h := hook.Hook{Num: 1, IntroducedIn: "1.0.1", AllowOnline: true, Name: "Writes", Func: func(ctx context.Context, tx hook.Tx) error {
		data, err := tx.Config().ReadFile("a.conf")
		read = string(data)
		if err != nil {
			return err
		}
		return tx.Config().WriteFile("a.conf", []byte("y"), 0o644)
	}}
	if err := st.RunOnline(h); !errors.Is(err, hook.ErrReadOnlyConfig) {
		t.Errorf("online write: %v", err)
	}
	if read != "x" {
		t.Errorf("the hook read %q", read)
	}
	if err := st.Run(h); err != nil {
		t.Errorf("offline write: %v", err)
	}
	h.AllowOnline = false
	var refusal *upgrade.Refusal
	if err := st.RunOnline(h); !errors.As(err, &refusal) || !refusal.Offline {
		t.Errorf("an offline hook run online = %v, want the migrator's refusal (*upgrade.Refusal, Offline)", err)
	}
}
