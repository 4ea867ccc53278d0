package lint

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/registry"
)

const baseReg = `min_data_version: 0.1.0
release: 1.0.0
hooks:
  - num: 20
    introduced_in: 1.0.0
    allow_online: false
    func: UpgradeB
  - num: 10
    introduced_in: 0.9.0
    allow_online: false
    func: UpgradeA
    amendments:
      - old: h1:a
        new: h1:b
        reason: first fix
`

func parse(t *testing.T, data string) *registry.File {
	t.Helper()
	f, ds := registry.Parse("registry.yaml", []byte(data))
	if len(ds) > 0 {
		t.Fatalf("parse: %v", ds[0].Text())
	}
	return f
}

// TestCompare checks each rule by position and rule id.
func TestCompare(t *testing.T) {
	oldDigests := map[int]string{20: "h1:x", 10: "h1:b"}
	for _, tc := range []struct {
		name    string
		reg     string
		digests map[int]string
		want    []string // "line:col rule"
	}{
		{"unchanged", baseReg, oldDigests, nil},
		{"retired below min_data_version", `min_data_version: 1.0.0
release: 1.0.0
hooks:
  - num: 20
    introduced_in: 1.0.0
    allow_online: false
    func: UpgradeB
`, map[int]string{20: "h1:x"}, nil},
		{"digest of another algorithm", baseReg, map[int]string{20: "h2:y", 10: "h1:b"}, nil},
		{"code changed", baseReg, map[int]string{20: "h1:y", 10: "h1:b"}, []string{"7:11 immutable-code"}},
		{"amended", baseReg + "      - old: h1:b\n        new: h1:c\n        reason: second fix\n", map[int]string{20: "h1:x", 10: "h1:c"}, nil},
		{"amendment off the chain", baseReg + "      - old: h1:q\n        new: h1:b\n        reason: forged\n", oldDigests, []string{"16:9 amend-invalid"}},
		{"amendment to the wrong digest", baseReg + "      - old: h1:b\n        new: h1:z\n        reason: forged\n", map[int]string{20: "h1:x", 10: "h1:c"}, []string{"16:9 amend-invalid"}},
		{"amendment without a change", baseReg + "      - old: h1:b\n        new: h1:b\n        reason: nothing\n", oldDigests, []string{"16:9 amend-invalid"}},
		{"recorded amendment rewritten", replace(t, baseReg, "reason: first fix", "reason: better words"), oldDigests, []string{"8:5 immutable-amendment"}},
		{"renumbered", replace(t, baseReg, "num: 20", "num: 21"), oldDigests, []string{"4:10 immutable-num"}},
		{"inserted below", replace(t, baseReg, "  - num: 10\n", "  - num: 15\n    introduced_in: 1.0.0\n    allow_online: false\n    func: UpgradeC\n  - num: 10\n"), oldDigests, []string{"8:10 insert-below"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := snapshot{parse(t, baseReg), byAlgorithm(oldDigests)}
			cur := snapshot{parse(t, tc.reg), byAlgorithm(tc.digests)}
			var got []string
			for _, d := range compare(old, cur, &comparison{ref: "v1.0.0"}) {
				got = append(got, fmt.Sprintf("%d:%d %s", d.Pos.Line, d.Pos.Col, d.Rule))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
		})
	}
}

// byAlgorithm serves the digests of m as snapshot.digest does: each
// under its own algorithm only.
func byAlgorithm(m map[int]string) func(int, string) string {
	return func(num int, alg string) string {
		if d := m[num]; alg == "" || strings.HasPrefix(d, alg) {
			return d
		}
		return ""
	}
}

func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

// TestCompareAcrossAlgorithms checks that digests are compared under the
// reference's algorithm: an unchanged hook whose current h2 digest differs
// from the reference's h1 passes, a changed one does not, and an amendment
// may lead from an h1 digest to an h2 one.
func TestCompareAcrossAlgorithms(t *testing.T) {
	old := snapshot{parse(t, baseReg), byAlgorithm(map[int]string{20: "h1:x", 10: "h1:b"})}
	both := func(h1, h2 map[int]string) func(int, string) string {
		return func(num int, alg string) string {
			if alg == "h1:" {
				return h1[num]
			}
			return h2[num]
		}
	}
	amended := baseReg + "      - old: h1:b\n        new: h2:c\n        reason: second fix\n"
	for _, tc := range []struct {
		name   string
		reg    string
		h1, h2 map[int]string
		want   []string
	}{
		{"unchanged", baseReg, map[int]string{20: "h1:x", 10: "h1:b"}, map[int]string{20: "h2:x", 10: "h2:b"}, nil},
		{"changed", baseReg, map[int]string{20: "h1:y", 10: "h1:b"}, map[int]string{20: "h2:y", 10: "h2:b"}, []string{"7:11 immutable-code"}},
		{"amended from h1 to h2", amended, map[int]string{20: "h1:x", 10: "h1:z"}, map[int]string{20: "h2:x", 10: "h2:c"}, nil},
		{"amended to the wrong h2", amended, map[int]string{20: "h1:x", 10: "h1:z"}, map[int]string{20: "h2:x", 10: "h2:d"}, []string{"16:9 amend-invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := snapshot{parse(t, tc.reg), both(tc.h1, tc.h2)}
			var got []string
			for _, d := range compare(old, cur, &comparison{ref: "v1.0.0"}) {
				got = append(got, fmt.Sprintf("%d:%d %s", d.Pos.Line, d.Pos.Col, d.Rule))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDependencyVersion checks that a change made only of required module
// versions is reported as dependency-version, and one with code too as
// immutable-code.
func TestDependencyVersion(t *testing.T) {
	old := snapshot{parse(t, baseReg), byAlgorithm(map[int]string{20: "h2:x", 10: "h2:b"})}
	cur := snapshot{parse(t, baseReg), byAlgorithm(map[int]string{20: "h2:y", 10: "h2:b"})}
	dep := change{name: "go.mod: require golang.org/x/text v0.4.0", mod: "golang.org/x/text", from: "v0.3.0", to: "v0.4.0"}
	for _, tc := range []struct {
		name    string
		changes []change
		want    string
	}{
		{"version only", []change{dep}, "7:11 dependency-version"},
		{"version and code", []change{dep, {name: "hooks/hooks.go: func helper"}}, "7:11 immutable-code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := compare(old, cur, &comparison{ref: "v1.0.0", changed: func(int, string) []change { return tc.changes }})
			if len(ds) != 1 || fmt.Sprintf("%d:%d %s", ds[0].Pos.Line, ds[0].Pos.Col, ds[0].Rule) != tc.want {
				t.Fatalf("findings %v, want %s", ds, tc.want)
			}
			if !strings.Contains(ds[0].Message, `golang.org/x/text from "v0.3.0" to "v0.4.0"`) {
				t.Errorf("message %q does not name the module and both versions", ds[0].Message)
			}
		})
	}
}
