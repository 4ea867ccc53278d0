package lint

import (
	"strings"
	"testing"
)

// TestInsertAmendmentNumAsRead: amend finds a hook by its num as the
// registry reads it, so a hook written "num: 01" (hook 1 to check and
// lint) is amended, not refused as "not a block mapping".
func TestInsertAmendmentNumAsRead(t *testing.T) {
	data := []byte("release: 1.0.0\nhooks:\n  - num: 2\n    introduced_in: 1.0.0\n    allow_online: false\n    func: B\n  - num: 01\n    introduced_in: 1.0.0\n    allow_online: false\n    func: A\n")
	out, err := insertAmendment(data, 1, Amended{Num: 1, Old: "h4:old", New: "h4:new", Reason: "fix"})
	if err != nil {
		t.Fatal(err)
	}
	want := "    func: A\n    amendments:\n      - old: h4:old\n        new: h4:new\n        reason: fix\n"
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("registry after amending hook 1:\n%s\nwant it to end with:\n%s", out, want)
	}
}

// TestInsertAmendmentFlowHook: a hook written in flow style is refused with
// the advice to rewrite it.
func TestInsertAmendmentFlowHook(t *testing.T) {
	data := []byte("release: 1.0.0\nhooks:\n  - {num: 1, introduced_in: 1.0.0, allow_online: false, func: A}\n")
	_, err := insertAmendment(data, 1, Amended{Num: 1, Old: "h4:old", New: "h4:new", Reason: "fix"})
	if err == nil || !strings.Contains(err.Error(), "rewrite it as one") {
		t.Errorf("amending a flow-style hook: error %v, want the advice to rewrite it", err)
	}
}
