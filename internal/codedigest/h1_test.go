package codedigest_test

import (
	"go/types"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/dirtest"
)

// base is a module whose hook Upgrade reaches a helper two calls deep, a
// method, a constant, a type and a helper in another package.
var base = map[string]string{
	"go.mod": "module example.com/m\n\ngo 1.26\n",
	"hooks/hooks.go": `package hooks

import "example.com/m/hooks/util"

// Upgrade is the hook.
func Upgrade() error { return first(defaultLimit) }

func first(n int) error { return second(n) }

func second(n int) error {
	var s store
	s.put(n)
	_ = util.Clean("x")
	var r rule
	_ = r
	return nil
}

type store struct{ m map[int]int }

func (s *store) put(n int) {
	if s.m == nil {
		s.m = map[int]int{}
	}
	s.m[n] = n
}

func (s store) String() string { return "store" }

const defaultLimit = 10

type rule struct{ Name string }

func unrelated() int { return 1 }
`,
	"hooks/util/util.go": `package util

// Clean cleans.
func Clean(s string) string { return s + "!" }
`,
}

func compute(t *testing.T, files map[string]string) codedigest.Result {
	t.Helper()
	dir := t.TempDir()
	dirtest.Write(t, dir, files)
	pkgs, err := packages.Load(&packages.Config{Mode: codedigest.LoadMode, Dir: dir, Env: append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")}, "./hooks")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || len(pkgs[0].Errors) > 0 {
		t.Fatalf("loading: %v", pkgs[0].Errors)
	}
	fn, ok := pkgs[0].Types.Scope().Lookup("Upgrade").(*types.Func)
	if !ok {
		t.Fatal("no func Upgrade")
	}
	res, err := codedigest.ComputeH1(pkgs, fn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Digest, "h1:") || len(res.Digest) != 3+44 {
		t.Fatalf("digest %q is not h1: + base64 SHA-256", res.Digest)
	}
	if !slices.IsSortedFunc(res.Decls, func(a, b codedigest.Decl) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("Decls not sorted: %v", res.Decls)
	}
	return res
}

// edit returns base with old replaced by new in file.
func edit(t *testing.T, file, old, new string) map[string]string {
	t.Helper()
	files := maps.Clone(base)
	if !strings.Contains(files[file], old) {
		t.Fatalf("%s has no %q", file, old)
	}
	files[file] = strings.Replace(files[file], old, new, 1)
	return files
}

// changed returns the names of the declarations whose hash differs or that
// appear in only one of a and b.
func changed(a, b codedigest.Result) []string {
	ha := make(map[string]string)
	for _, d := range a.Decls {
		ha[d.Name] = d.Hash
	}
	var out []string
	for _, d := range b.Decls {
		if h, ok := ha[d.Name]; !ok || h != d.Hash {
			out = append(out, d.Name)
		}
		delete(ha, d.Name)
	}
	for name := range ha {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func TestCovered(t *testing.T) {
	res := compute(t, base)
	var names []string
	for _, d := range res.Decls {
		names = append(names, d.Name)
	}
	want := []string{
		"hooks/hooks.go: const defaultLimit",
		"hooks/hooks.go: func (*store) put",
		"hooks/hooks.go: func (store) String",
		"hooks/hooks.go: func Upgrade",
		"hooks/hooks.go: func first",
		"hooks/hooks.go: func second",
		"hooks/hooks.go: type rule",
		"hooks/hooks.go: type store",
		"hooks/util/util.go: func Clean",
	}
	if !slices.Equal(names, want) {
		t.Errorf("Decls =\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if again := compute(t, base); again.Digest != res.Digest {
		t.Errorf("digest not deterministic: %s then %s", res.Digest, again.Digest)
	}
}

func TestChanges(t *testing.T) {
	orig := compute(t, base)
	for _, tc := range []struct {
		name, file, old, new string
		want                 []string // changed declarations; nil: same digest
	}{
		{"body", "hooks/hooks.go", "return first(defaultLimit)", "return first(defaultLimit + 1)",
			[]string{"hooks/hooks.go: func Upgrade"}},
		{"helper two calls deep", "hooks/hooks.go", "_ = r\n", "_ = r\n\tn++\n",
			[]string{"hooks/hooks.go: func second"}},
		{"method", "hooks/hooks.go", "s.m[n] = n", "s.m[n] = n + 1",
			[]string{"hooks/hooks.go: func (*store) put"}},
		{"method reached through an interface", "hooks/hooks.go", `return "store"`, `return "Store"`,
			[]string{"hooks/hooks.go: func (store) String"}},
		{"constant", "hooks/hooks.go", "defaultLimit = 10", "defaultLimit = 11",
			[]string{"hooks/hooks.go: const defaultLimit"}},
		{"type", "hooks/hooks.go", "rule struct{ Name string }", "rule struct{ Name, Tenant string }",
			[]string{"hooks/hooks.go: type rule"}},
		{"helper in another package", "hooks/util/util.go", `s + "!"`, `s + "?"`,
			[]string{"hooks/util/util.go: func Clean"}},
		{"renamed helper", "hooks/hooks.go", "func first(n int) error { return second(n) }", "func first(n int) error { return second2(n) }\n\nfunc second2(n int) error { return second(n) }",
			[]string{"hooks/hooks.go: func first", "hooks/hooks.go: func second2"}},
		{"comment only", "hooks/hooks.go", "func first(n int) error { return second(n) }", "// first calls second.\nfunc first(n int) error { /* deep */ return second(n) } // first",
			nil},
		{"gofmt only", "hooks/hooks.go", "func first(n int) error { return second(n) }", "func first(n   int) error {\n\treturn second(n,\n\t)\n}",
			nil},
		{"literal value", "hooks/hooks.go", "defaultLimit = 10", "defaultLimit = 0XA", []string{"hooks/hooks.go: const defaultLimit"}},
		{"unused declaration", "hooks/hooks.go", "return 1", "return 2", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compute(t, edit(t, tc.file, tc.old, tc.new))
			got := changed(orig, res)
			if tc.want == nil {
				if res.Digest != orig.Digest || got != nil {
					t.Errorf("digest changed %s -> %s (declarations %v), want unchanged", orig.Digest, res.Digest, got)
				}
				return
			}
			if res.Digest == orig.Digest {
				t.Errorf("digest unchanged %s", res.Digest)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changed declarations %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMovedBetweenFiles(t *testing.T) {
	files := edit(t, "hooks/hooks.go", "type rule struct{ Name string }\n", "")
	files["hooks/rule.go"] = "package hooks\n\ntype rule struct{ Name string }\n"
	orig, moved := compute(t, base), compute(t, files)
	if orig.Digest != moved.Digest {
		t.Errorf("moving a type to another file changed the digest")
	}
	if !slices.ContainsFunc(moved.Decls, func(d codedigest.Decl) bool { return d.Name == "hooks/rule.go: type rule" }) {
		t.Errorf("Decls %v do not name hooks/rule.go", moved.Decls)
	}
}
