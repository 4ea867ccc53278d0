package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// countHook returns a hook that counts its runs in table "runs" under its
// name, so that a test sees how often each hook ran.
func countHook(num int, version string) hook.Hook {
	name := fmt.Sprintf("Hook%d", num)
	return hook.Hook{Num: num, IntroducedIn: version, AllowOnline: true, Name: name, Digest: fmt.Sprintf("h3:%d", num),
		Func: func(ctx context.Context, tx hook.Tx) error {
			t, err := tx.CreateTable("runs")
			if err != nil {
				return err
			}
			n := 0
			if v, err := t.Get([]byte(name)); err == nil {
				n, _ = strconv.Atoi(string(v))
			}
			return t.Put([]byte(name), []byte(strconv.Itoa(n+1)))
		}}
}

// backport is hook 1 of maintenance line 2.16, introduced in 2.16.1.
var backport = hook.MaintenanceNum(2, 16, 1)

// releases are the registries of a product with a maintenance line: main
// ships 2.16.0 (hooks 1, 2), 2.17.0 (3, 4), 2.19.0 (5) and 2.20.0 (6) with
// the backport merged; branch release-2.16 ships 2.16.1 with the backport.
func releases() map[string]*hook.Registry {
	h := func(nums ...int) []hook.Hook {
		versions := map[int]string{1: "2.16.0", 2: "2.16.0", backport: "2.16.1", 3: "2.17.0", 4: "2.17.0", 5: "2.19.0", 6: "2.20.0"}
		var out []hook.Hook
		for _, n := range nums {
			out = append(out, countHook(n, versions[n]))
		}
		return out
	}
	return map[string]*hook.Registry{
		"2.16.0": registry("2.16.0", h(1, 2)...),
		"2.16.1": registry("2.16.1", h(1, 2, backport)...),
		"2.17.0": registry("2.17.0", h(1, 2, 3, 4)...),
		"2.19.0": registry("2.19.0", h(1, 2, 3, 4, 5)...),
		"2.20.0": registry("2.20.0", h(1, 2, 3, 4, 5, 6, backport)...),
	}
}

func runs(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	tx, err := st.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	out := make(map[string]int)
	tb, err := tx.Table("runs")
	if errors.Is(err, hook.ErrNoTable) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	tb.Scan(nil, func(k, v []byte) error {
		out[string(k)], _ = strconv.Atoi(string(v))
		return nil
	})
	return out
}

func pendingNums(t *testing.T, reg *hook.Registry, m upgrade.Metadata) []int {
	t.Helper()
	p, err := upgrade.PlanFor(reg, m)
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, h := range p.Pending {
		nums = append(nums, h.Num)
	}
	return nums
}

func appliedNums(m upgrade.Metadata) []int {
	var nums []int
	for _, a := range m.Applied {
		nums = append(nums, a.Num)
	}
	slices.Sort(nums)
	return nums
}

// TestMaintenanceLine: stores installed by every release, upgraded along
// either line, reach 2.20.0 with every hook the installing release did not
// contain applied exactly once, online and offline.
func TestMaintenanceLine(t *testing.T) {
	rels := releases()
	ctx := context.Background()
	upgradeTo := func(t *testing.T, st store.Store, release string, online bool) {
		t.Helper()
		if _, err := upgrade.Run(ctx, st, rels[release], upgrade.Options{Online: online}); err != nil {
			t.Fatalf("upgrade to %s: %v", release, err)
		}
	}
	for _, tc := range []struct {
		name    string
		install string   // the release whose migrator initialized the store
		path    []string // the releases it was upgraded to, in turn
		pending []int    // pending at 2.20.0, in order
	}{
		{"2.16.0", "2.16.0", nil, []int{backport, 3, 4, 5, 6}},
		{"2.16.0 via 2.16.1", "2.16.0", []string{"2.16.1"}, []int{3, 4, 5, 6}},
		{"2.16.1 fresh", "2.16.1", nil, []int{3, 4, 5, 6}},
		{"2.17.0 fresh", "2.17.0", nil, []int{backport, 5, 6}},
		{"2.16.0 via 2.17.0, 2.19.0", "2.16.0", []string{"2.17.0", "2.19.0"}, []int{backport, 6}},
		{"2.19.0 fresh", "2.19.0", nil, []int{backport, 6}},
		{"2.20.0 fresh", "2.20.0", nil, nil},
	} {
		for _, online := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s online=%t", tc.name, online), func(t *testing.T) {
				st := newStore(t)
				if err := upgrade.Init(st, rels[tc.install]); err != nil {
					t.Fatal(err)
				}
				for _, r := range tc.path {
					upgradeTo(t, st, r, online)
				}
				before := runs(t, st)
				if got := pendingNums(t, rels["2.20.0"], meta(t, st)); !slices.Equal(got, tc.pending) {
					t.Fatalf("pending at 2.20.0: %v, want %v", got, tc.pending)
				}
				upgradeTo(t, st, "2.20.0", online)
				m := meta(t, st)
				if m.DataVersion != "2.20.0" || m.LastUpgradeHook == nil || *m.LastUpgradeHook != 6 {
					t.Errorf("data version %s, last upgrade hook %v; want 2.20.0 and 6", m.DataVersion, m.LastUpgradeHook)
				}
				// Every hook the installing release did not contain ran
				// exactly once, and has one applied record; the others
				// never ran.
				contained := make(map[int]bool)
				for _, h := range rels[tc.install].Hooks {
					contained[h.Num] = true
				}
				got := runs(t, st)
				var want []int
				for _, h := range rels["2.20.0"].Hooks {
					n := got[h.Name]
					switch {
					case contained[h.Num] && n != 0:
						t.Errorf("hook %d ran %d times, though the installing release %s contained it", h.Num, n, tc.install)
					case !contained[h.Num] && n != 1:
						t.Errorf("hook %d ran %d times, want once", h.Num, n)
					}
					if !contained[h.Num] {
						want = append(want, h.Num)
					}
				}
				slices.Sort(want)
				if a := appliedNums(m); !slices.Equal(a, want) {
					t.Errorf("applied records %v, want %v", a, want)
				}
				if len(tc.path) == 0 && len(before) != 0 {
					t.Errorf("a fresh install ran hooks: %v", before)
				}
				// Nothing is left, and a second run changes nothing.
				if p := pendingNums(t, rels["2.20.0"], m); len(p) != 0 {
					t.Errorf("pending after the upgrade: %v", p)
				}
				upgradeTo(t, st, "2.20.0", online)
				if again := runs(t, st); fmt.Sprint(again) != fmt.Sprint(got) {
					t.Errorf("a second upgrade ran hooks: %v, then %v", got, again)
				}
			})
		}
	}
}

// TestMaintenanceOrder: a maintenance hook runs where its version places
// it, before later releases' hooks, and does not move last_upgrade_hook.
func TestMaintenanceOrder(t *testing.T) {
	rels := releases()
	var order []int
	reg := *rels["2.20.0"]
	reg.Hooks = slices.Clone(reg.Hooks)
	for i := range reg.Hooks {
		h := &reg.Hooks[i]
		f := h.Func
		num := h.Num
		h.Func = func(ctx context.Context, tx hook.Tx) error {
			order = append(order, num)
			return f(ctx, tx)
		}
	}
	st := newStore(t)
	if err := upgrade.Baseline(st, &reg, "2.16.0"); err != nil {
		t.Fatal(err)
	}
	var versions []string
	p, err := upgrade.PlanFor(&reg, meta(t, st))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range p.Pending {
		versions = append(versions, h.DataVersionAfter)
	}
	if want := "[2.16.1 2.16.1 2.17.0 2.19.0 2.20.0]"; fmt.Sprint(versions) != want {
		t.Errorf("data versions after each hook: %v, want %s", versions, want)
	}
	if _, err := upgrade.Run(context.Background(), st, &reg, upgrade.Options{Online: true}); err != nil {
		t.Fatal(err)
	}
	if want := []int{backport, 3, 4, 5, 6}; !slices.Equal(order, want) {
		t.Errorf("ran %v, want %v", order, want)
	}
	// A store whose last hook ran was the backport keeps main's mark.
	st = newStore(t)
	initAt(t, st, "2.16.0", rels["2.16.0"].Hooks...)
	if _, err := upgrade.Run(context.Background(), st, rels["2.16.1"], upgrade.Options{Online: true}); err != nil {
		t.Fatal(err)
	}
	if m := meta(t, st); m.DataVersion != "2.16.1" || *m.LastUpgradeHook != 2 || !slices.Equal(appliedNums(m), []int{backport}) {
		t.Errorf("after 2.16.1: %+v", m)
	}
}

// TestMaintenanceCovered: Init and Baseline record the maintenance hooks
// the release contained; data without the record plans as before.
func TestMaintenanceCovered(t *testing.T) {
	rels := releases()
	st := newStore(t)
	if err := upgrade.Init(st, rels["2.16.1"]); err != nil {
		t.Fatal(err)
	}
	if m := meta(t, st); !slices.Equal(m.Covered, []int{backport}) || *m.LastUpgradeHook != 2 {
		t.Errorf("init of 2.16.1: covered %v, last %v", m.Covered, *m.LastUpgradeHook)
	}
	st = newStore(t)
	if err := upgrade.Init(st, rels["2.19.0"]); err != nil {
		t.Fatal(err)
	}
	if m := meta(t, st); m.Covered != nil {
		t.Errorf("init of 2.19.0 (no maintenance hook) recorded covered %v", m.Covered)
	}
	for _, tc := range []struct {
		version string
		covered []int
		pending []int
	}{
		{"2.16.0", nil, []int{backport, 3, 4, 5, 6}},
		{"2.16.1", []int{backport}, []int{3, 4, 5, 6}},
		{"2.16.5", []int{backport}, []int{3, 4, 5, 6}},
		// Whether 2.17.0 contained a backport of 2.16.1 is not known:
		// it runs (once).
		{"2.17.0", nil, []int{backport, 5, 6}},
	} {
		st := newStore(t)
		if err := upgrade.Baseline(st, rels["2.20.0"], tc.version); err != nil {
			t.Fatal(err)
		}
		m := meta(t, st)
		if !slices.Equal(m.Covered, tc.covered) {
			t.Errorf("baseline %s: covered %v, want %v", tc.version, m.Covered, tc.covered)
		}
		if got := pendingNums(t, rels["2.20.0"], m); !slices.Equal(got, tc.pending) {
			t.Errorf("baseline %s: pending %v, want %v", tc.version, got, tc.pending)
		}
	}
	// Legacy data (no covered record, last_upgrade_hook 5): main's hooks by
	// the high-water mark, the maintenance hook by its record.
	last := 5
	legacy := upgrade.Metadata{Product: "p", DataVersion: "2.19.0", LastUpgradeHook: &last}
	if got := pendingNums(t, rels["2.20.0"], legacy); !slices.Equal(got, []int{backport, 6}) {
		t.Errorf("legacy 2.19.0: pending %v", got)
	}
}

// TestMaintenanceUnknown: data that applied or was installed with a
// maintenance hook the migrator does not carry is refused, whatever the
// flags: the migrator would leave the data to a release that does not know
// what the hook did.
func TestMaintenanceUnknown(t *testing.T) {
	rels := releases()
	two := 2
	for _, m := range []upgrade.Metadata{
		{Product: "p", DataVersion: "2.16.1", LastUpgradeHook: &two, Covered: []int{backport}},
		{Product: "p", DataVersion: "2.16.1", LastUpgradeHook: &two, Applied: []upgrade.Applied{{Num: backport, Name: fmt.Sprintf("Hook%d", backport), Digest: fmt.Sprintf("h3:%d", backport)}}},
	} {
		_, err := upgrade.PlanFor(rels["2.19.0"], m)
		var r *upgrade.Refusal
		if !errors.As(err, &r) || !strings.Contains(err.Error(), "maintenance hook 1002016001 of line 2.16") {
			t.Errorf("2.19.0 over %+v: %v, want a refusal naming the hook", m, err)
		}
		if _, err := upgrade.PlanFor(rels["2.20.0"], m); err != nil {
			t.Errorf("2.20.0 over %+v: %v", m, err)
		}
	}
}
