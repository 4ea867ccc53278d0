package registry_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/registry"
)

const valid = `# comment
product: broker
release: 5.1.0
package: ./hooks
min_data_version: 4.4.0
hooks:
  - num: 100
    introduced_in: 5.1.0
    allow_online: false
    func: UpgradeLibBaz
    doc: Split ACL rules.
  - num: 99
    introduced_in: 5.0.1
    allow_online: true
    func: libbar.UpgradeLibBar
    amendments:
      - old: h1:a=
        new: h1:b=
        reason: fix CVE-2026-1234
`

func parseCheck(data string) (*registry.File, []diag.Diagnostic) {
	f, ds := registry.Parse("registry.yaml", []byte(data))
	return f, append(ds, registry.Check(f)...)
}

func TestParseValid(t *testing.T) {
	f, ds := parseCheck(valid)
	if len(ds) > 0 {
		t.Fatalf("findings: %v", ds)
	}
	if f.Product != "broker" || f.Release != "5.1.0" || f.MinDataVersion != "4.4.0" || len(f.Hooks) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	h := f.Hooks[1]
	if h.Num != 99 || !h.AllowOnline || h.Func != "libbar.UpgradeLibBar" || h.Version == nil || h.Version.String() != "5.0.1" {
		t.Errorf("hook 99 parsed as %+v", h)
	}
	if h.NumPos != (diag.Position{File: "registry.yaml", Line: 12, Col: 10}) {
		t.Errorf("hook 99 num at %v", h.NumPos)
	}
	if len(h.Amendments) != 1 || h.Amendments[0].Reason != "fix CVE-2026-1234" || h.Amendments[0].Pos.Line != 17 {
		t.Errorf("amendments %+v", h.Amendments)
	}
}

// TestFindings checks each rule by (line, column, rule id).
func TestFindings(t *testing.T) {
	hook := func(num, version, online, fn string) string {
		return fmt.Sprintf("  - num: %s\n    introduced_in: %s\n    allow_online: %s\n    func: %s\n", num, version, online, fn)
	}
	for _, tc := range []struct {
		name, data string
		want       []string // "line:col rule"
	}{
		{"empty", "", []string{"1:1 empty-file"}},
		{"comment only", "# nothing\n", []string{"1:1 empty-file"}},
		{"not a mapping", "- a\n", []string{"1:1 wrong-type"}},
		{"tab", "release: 1.0.0\nhooks:\n\t- num: 1\n", []string{"3:1 tab"}},
		{"syntax", "release: [1.0.0\n", []string{"1:1 yaml-syntax"}},
		{"missing top keys", "product: x\n", []string{"1:1 missing-key", "1:1 missing-key"}},
		{"unknown key", "release: 1.0.0\nhooks: []\nextra: 1\n", []string{"3:1 unknown-key"}},
		{"duplicate key", "release: 1.0.0\nrelease: 1.0.0\nhooks: []\n", []string{"2:1 duplicate-key"}},
		{"non-string key", "release: 1.0.0\nhooks: []\n1: x\n", []string{"3:1 wrong-type"}},
		{"product type", "product: 1\nrelease: 1.0.0\nhooks: []\n", []string{"1:10 wrong-type"}},
		{"hooks scalar", "release: 1.0.0\nhooks: 3\n", []string{"2:8 wrong-type"}},
		{"hook scalar", "release: 1.0.0\nhooks:\n  - 3\n", []string{"3:5 wrong-type"}},
		{"num float", "release: 1.0.0\nhooks:\n" + hook("1.5", "1.0.0", "false", "A"), []string{"3:10 wrong-type"}},
		{"num hex", "release: 1.0.0\nhooks:\n" + hook("0x10", "1.0.0", "false", "A"), []string{"3:10 wrong-type"}},
		{"num negative", "release: 1.0.0\nhooks:\n" + hook("-1", "1.0.0", "false", "A"), []string{"3:10 num-positive"}},
		{"amendment key", "release: 1.0.0\nhooks:\n" + hook("1", "1.0.0", "false", "A") + "    amendments:\n      - old: a\n        new: b\n", []string{"8:9 missing-key"}},
		{"num order and unique", "release: 1.0.0\nhooks:\n" + hook("1", "1.0.0", "false", "A") + hook("2", "1.0.0", "false", "B") + hook("1", "1.0.0", "false", "C"),
			[]string{"7:10 num-order", "11:10 num-unique"}},
		{"version order", "release: 2.0.0\nhooks:\n" + hook("2", "1.0.0", "false", "A") + hook("1", "2.0.0", "false", "B"), []string{"8:20 version-order"}},
		{"prerelease ok", "release: 2.0.0\nhooks:\n" + hook("2", "2.0.0", "false", "A") + hook("1", "2.0.0-rc.1", "false", "B"), nil},
		{"version release", "release: 1.0.0\nhooks:\n" + hook("1", "1.0.1", "true", "A"), []string{"4:20 version-release"}},
		{"patch online", "release: 1.0.1\nhooks:\n" + hook("1", "1.0.1", "false", "A"), []string{"5:19 patch-online"}},
		{"version syntax", "release: 1.0.0\nhooks:\n" + hook("1", "1.0", "false", "A"), []string{"4:20 version-syntax"}},
		{"release syntax", "release: v1.0.0\nhooks: []\n", []string{"1:10 version-syntax"}},
		{"min data version", "release: 1.0.0\nmin_data_version: 1.0.1\nhooks: []\n", []string{"2:19 min-data-version"}},
		{"func syntax", "release: 1.0.0\nhooks:\n" + hook("1", "1.0.0", "false", "a.b.C-d"), []string{"6:11 func-syntax"}},
		{"func unique", "release: 1.0.0\nhooks:\n" + hook("2", "1.0.0", "false", "x/y.A") + hook("1", "1.0.0", "false", "x/y.A"), []string{"10:11 func-unique"}},
		{"package path", "release: 1.0.0\npackage: /abs\nhooks: []\n", []string{"2:10 package-path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ds := parseCheck(tc.data)
			var got []string
			for _, d := range diag.Sort(ds) {
				got = append(got, fmt.Sprintf("%d:%d %s", d.Pos.Line, d.Pos.Col, d.Rule))
			}
			if strings.Join(got, ", ") != strings.Join(sortedLike(tc.want, got), ", ") {
				t.Errorf("findings %q, want %q\n%v", got, tc.want, ds)
			}
		})
	}
}

// sortedLike returns want in got's order when both hold the same items.
func sortedLike(want, got []string) []string {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	for _, n := range count {
		if n != 0 {
			return want
		}
	}
	return got
}

func TestInsertHook(t *testing.T) {
	h := registry.NewHook{Num: 101, IntroducedIn: "5.1.0", AllowOnline: true, Func: "libsess.UpgradeSessions"}
	out, err := registry.InsertHook([]byte(valid), h)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(valid, "hooks:\n", "hooks:\n  - num: 101\n    introduced_in: 5.1.0\n    allow_online: true\n    func: libsess.UpgradeSessions\n", 1)
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	for _, data := range []string{"release: 1.0.0\nhooks: [1]\n", "release: 1.0.0\n", "release: 1.0.0\nhooks: {}\n"} {
		if _, err := registry.InsertHook([]byte(data), h); err == nil {
			t.Errorf("InsertHook accepted %q", data)
		}
	}
	crlf := strings.ReplaceAll(valid, "\n", "\r\n")
	out, err = registry.InsertHook([]byte(crlf), h)
	if err != nil || string(out) != strings.ReplaceAll(want, "\n", "\r\n") {
		t.Errorf("CRLF registry: %q, %v", out, err)
	}
	out, err = registry.InsertHook([]byte("release: 1.0.0\nhooks:\n"), h)
	if err != nil || string(out) != "release: 1.0.0\nhooks:\n  - num: 101\n    introduced_in: 5.1.0\n    allow_online: true\n    func: libsess.UpgradeSessions\n" {
		t.Errorf("empty hooks: %q, %v", out, err)
	}
}

func TestLoadFuncsRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	path := filepath.Join(root, "registry.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, ds := registry.Parse(path, data)
	if ds = append(ds, registry.Check(f)...); len(ds) > 0 {
		t.Fatal(ds)
	}
	funcs, ds, err := registry.LoadFuncs(root, f)
	if err != nil || len(ds) > 0 {
		t.Fatalf("LoadFuncs: %v %v", ds, err)
	}
	if funcs.Module != "github.com/hookreg/hookreg" || funcs.PkgPath != "github.com/hookreg/hookreg/hooks" {
		t.Errorf("module %q, package %q", funcs.Module, funcs.PkgPath)
	}
	results, err := funcs.Digests(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range f.Hooks {
		if funcs.Funcs[i] == nil || funcs.Funcs[i].Name() != strings.TrimPrefix(h.Func, strings.Split(h.Func, ".")[0]+".") && !strings.Contains(h.Func, ".") && funcs.Funcs[i].Name() != h.Func {
			t.Errorf("hook %d: func %v", h.Num, funcs.Funcs[i])
		}
		if !strings.HasPrefix(results[i].Digest, "h4:") {
			t.Errorf("hook %d: digest %q", h.Num, results[i].Digest)
		}
	}
}
