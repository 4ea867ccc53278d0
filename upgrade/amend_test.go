package upgrade_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/upgrade"
)

// amendedRegistry is release 1.1.0: hook 1 (applied by 1.0.0 under digest
// "h1:1") was recorded under the h2 algorithm ("h1:1" -> "h2:1") and then
// amended twice; hook 2 is new.
func amendedRegistry() *hook.Registry {
	h1 := putHook(1, "1.0.0", false, "a")
	h1.Digest = "h2:3"
	h1.Amendments = []hook.Amendment{
		{Old: "h1:1", New: "h2:1"},
		{Old: "h2:1", New: "h2:2", Reason: "fix a"},
		{Old: "h2:2", New: "h2:3", Reason: "fix b"},
	}
	return registry("1.1.0", h1, putHook(2, "1.1.0", false, "b"))
}

func TestPlanAmendments(t *testing.T) {
	one := 1
	for _, tc := range []struct {
		recorded string
		mismatch bool
		reasons  []string
	}{
		{"h2:3", false, nil},                        // the binary's digest
		{"h1:1", false, []string{"fix a", "fix b"}}, // the first digest, under the older algorithm
		{"h2:1", false, []string{"fix a", "fix b"}},
		{"h2:2", false, []string{"fix b"}},
		{"h2:9", true, nil}, // no amendment names it
		{"h1:2", true, nil},
	} {
		t.Run(tc.recorded, func(t *testing.T) {
			p, err := upgrade.PlanFor(amendedRegistry(), upgrade.Metadata{Product: "p", DataVersion: "1.0.0", LastUpgradeHook: &one, Applied: []upgrade.Applied{{Num: 1, Digest: tc.recorded}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(p.DigestMismatches) > 0; got != tc.mismatch {
				t.Errorf("digest mismatch %v, want %v (%+v)", got, tc.mismatch, p.DigestMismatches)
			}
			var reasons []string
			if len(p.Amended) > 0 {
				reasons = p.Amended[0].Reasons
				if a := p.Amended[0]; a.Num != 1 || a.Recorded != tc.recorded || a.Binary != "h2:3" {
					t.Errorf("amended %+v", a)
				}
			}
			if !slices.Equal(reasons, tc.reasons) {
				t.Errorf("reasons %q, want %q", reasons, tc.reasons)
			}
			err = p.Check(false, false)
			var r *upgrade.Refusal
			if tc.mismatch != errors.As(err, &r) {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestRunRecordsAmended(t *testing.T) {
	st := newStore(t)
	initAt(t, st, "1.0.0", putHook(1, "1.0.0", false, "a"))
	// The store recorded hook 1 under h1, as release 1.0.0 did.
	m := meta(t, st)
	m.Applied = []upgrade.Applied{{Num: 1, Digest: "h2:1", Release: "1.0.0", AppliedAt: "2026-01-01T00:00:00Z", Mode: upgrade.Offline}}
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := upgrade.WriteMetadata(tx, m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	res, err := upgrade.Run(context.Background(), st, amendedRegistry(), upgrade.Options{})
	if err != nil {
		t.Fatalf("an amended hook is accepted without AllowDigestMismatch: %v", err)
	}
	after := meta(t, st)
	if len(res.Applied) != 1 || len(after.Applied) != 2 {
		t.Fatalf("applied %+v, records %+v", res.Applied, after.Applied)
	}
	if a := after.Applied[0]; a.Digest != "h2:1" || a.AmendedTo != "h2:3" || a.AllowDigestMismatch {
		t.Errorf("hook 1's record %+v, want digest h2:1 amended to h2:3", a)
	}
	if a := after.Applied[1]; a.AmendedTo != "" || a.AllowDigestMismatch {
		t.Errorf("hook 2's record %+v", a)
	}
}
