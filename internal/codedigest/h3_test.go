package codedigest_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/codedigest"
)

func compute3(t testing.TB, files map[string]string) codedigest.Result {
	t.Helper()
	t.Setenv("GOWORK", "off")
	s, err := codedigest.NewScope(write(t, files))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ComputeH3("example.com/p/hooks", "Upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Digest, "h3:") || len(res.Digest) != 3+44 {
		t.Fatalf("digest %q is not h3: + base64 SHA-256", res.Digest)
	}
	return res
}

// TestH3Rules checks each rule of the h3 scope: a change of what a build of
// the product runs changes the digest and names the piece; a neutral edit
// does not. The cases of issue 18 are named by their class.
func TestH3Rules(t *testing.T) {
	base := compute3(t, product)
	withState := with(map[string]string{
		"hooks/reg.go": "package hooks\n\nvar order []string\n\nfunc register(s string) bool { order = append(order, s); return true }\n\nvar _ = register(\"a\")\n\nvar _ = register(\"b\")\n",
	})
	withInits := with(map[string]string{
		"hooks/a_init.go": "package hooks\n\nfunc init() { mode += \"a\" }\n\nfunc init() { mode += \"b\" }\n",
	})
	for _, tc := range []struct {
		name    string
		base    map[string]string // nil: product
		files   map[string]string
		changed string // a piece named in the changes; "" for none
	}{
		// the rules h2 had
		{name: "body of a helper", files: edit2(t, "hooks/hooks.go", `s + "!"`, `s + "?"`), changed: "hooks/hooks.go: func helper"},
		{name: "comment", files: edit2(t, "hooks/hooks.go", "// Upgrade is the hook.", "// Upgrade upgrades.")},
		{name: "reformatted", files: edit2(t, "hooks/hooks.go", "func helper(s string) string { return s + \"!\" }", "func helper(s string) string {\n\treturn s +\n\t\t\"!\"\n}")},
		{name: "function of no hook", files: edit2(t, "hooks/hooks.go", "return 1", "return 2")},
		{name: "moved to another file", files: with(map[string]string{
			"hooks/hooks.go":  strings.Replace(product["hooks/hooks.go"], "func helper(s string) string { return s + \"!\" }\n", "", 1),
			"hooks/helper.go": "package hooks\n\nfunc helper(s string) string { return s + \"!\" }\n",
		})},
		{name: "init body", files: edit2(t, "hooks/state.go", `"v2"`, `"v3"`), changed: "hooks/state.go: func init"},
		{name: "init added", files: with(map[string]string{"hooks/state2.go": "package hooks\n\nfunc init() { mode = \"v4\" }\n"}), changed: "hooks/state2.go: func init (new)"},
		{name: "initialiser that runs code", files: with(map[string]string{"hooks/eff.go": "package hooks\n\nvar _ = func() bool { mode = \"x\"; return true }()\n"}), changed: "hooks/eff.go: var _ (new)"},
		{name: "initialiser calling a product function", files: with(map[string]string{"hooks/eff.go": "package hooks\n\nvar ok = set()\n\nfunc set() bool { mode = \"x\"; return true }\n"}), changed: "hooks/eff.go: var ok (new)"},
		{name: "pure initialiser of an unused var", files: with(map[string]string{"hooks/pure.go": "package hooks\n\nimport \"strings\"\n\nvar limit = 10\n\nvar upper = strings.ToUpper(\"x\")\n"})},
		{name: "blank import", files: with(map[string]string{"hooks/drv.go": "package hooks\n\nimport _ \"example.com/p/hooks/util\"\n"}), changed: "hooks: import _ embed, example.com/p/hooks/util, unsafe"},
		{name: "embedded bytes", files: with(map[string]string{"hooks/schema.sql": "accounts\n"}), changed: "hooks: //go:embed schema.sql"},
		{name: "linkname target", files: edit2(t, "internal/impl/impl.go", `"linux"`, `"windows"`), changed: "internal/impl/impl.go: func platform"},
		{name: "build line", files: edit2(t, "hooks/x_linux.go", "package hooks", "//go:build go1.21\n\npackage hooks"), changed: "hooks/x_linux.go: file x_linux.go"},
		{name: "file of another GOOS", files: edit2(t, "hooks/x_windows.go", "a + b", "a - b"), changed: "hooks/x_windows.go: file x_windows.go"},
		{name: "assembly", files: with(map[string]string{"hooks/x_amd64.s": "TEXT ·nop(SB), 0, $0\n\tNOP\n\tRET\n"}), changed: "hooks/x_amd64.s: file x_amd64.s"},
		{name: "C source", files: with(map[string]string{"hooks/c.c": "int c(void) { return 2; }\n"}), changed: "hooks/c.c: file c.c"},
		{name: "comment in a cgo file", files: edit2(t, "hooks/c.go", "// cName is C's.", "// cName names C.")},
		{name: "cgo preamble", files: edit2(t, "hooks/c.go", `#include "c.h"`, `#include "d.h"`), changed: "hooks/c.go: file c.go"},
		{name: "other package", files: edit2(t, "hooks/util/util.go", `"."`, `","`), changed: "hooks/util/util.go: func Clean"},
		{name: "local replace", files: edit2(t, "lib/lib.go", `"users"`, `"accounts"`), changed: "example.com/lib/lib.go: func Table"},
		{name: "godebug", files: edit2(t, "go.mod", "go 1.26\n", "go 1.26\n\ngodebug panicnil=1\n"), changed: "go.mod: godebug panicnil=1 (new)"},
		{name: "go line", files: edit2(t, "go.mod", "go 1.26\n", "go 1.27\n"), changed: "go.mod: go 1.27"},
		{name: "version of a used module", files: edit2(t, "go.mod", "golang.org/x/text v0.3.0", "golang.org/x/text v0.4.0"), changed: "go.mod: require golang.org/x/text v0.4.0"},
		{name: "version of an unused module", files: edit2(t, "go.mod", "golang.org/x/other v1.0.0", "golang.org/x/other v1.1.0")},

		// class 1: tokens only positions held
		{name: "1: alias made a defined type", base: with(map[string]string{"hooks/t.go": "package hooks\n\ntype name = string\n\nvar _ = helper(string(name(\"x\")))\n"}),
			files: with(map[string]string{"hooks/t.go": "package hooks\n\ntype name string\n\nvar _ = helper(string(name(\"x\")))\n"}), changed: "hooks/t.go: type name"},
		{name: "1: variadic call spread removed", base: with(map[string]string{"hooks/hooks.go": strings.Replace(product["hooks/hooks.go"], "_ = platform() + add(1, 2)", "_ = platform() + fmtAll(xs...)", 1), "hooks/v.go": "package hooks\n\nvar xs []any\n\nfunc fmtAll(v ...any) string { return \"\" }\n"}),
			files: with(map[string]string{"hooks/hooks.go": strings.Replace(product["hooks/hooks.go"], "_ = platform() + add(1, 2)", "_ = platform() + fmtAll(xs)", 1), "hooks/v.go": "package hooks\n\nvar xs []any\n\nfunc fmtAll(v ...any) string { return \"\" }\n"}), changed: "hooks/hooks.go: func Upgrade"},
		{name: "1: gofmt -s", base: with(map[string]string{"hooks/s.go": "package hooks\n\ntype pt struct{ x int }\n\nvar _ = helper(string(rune(len([]pt{pt{1}, pt{x: 2}}))))\n\nfunc loop(s []int) {\n\tfor _ = range s[1:len(s)] {\n\t}\n}\n"}),
			files: with(map[string]string{"hooks/s.go": "package hooks\n\ntype pt struct{ x int }\n\nvar _ = helper(string(rune(len([]pt{{1}, {x: 2}}))))\n\nfunc loop(s []int) {\n\tfor range s[1:] {\n\t}\n}\n"})},
		{name: "1: trailing comma and semicolons", files: edit2(t, "hooks/hooks.go", "func helper(s string) string { return s + \"!\" }", "func helper(\n\ts string,\n) string {\n\treturn s + \"!\";\n}")},

		// class 2: package names from package clauses
		{name: "2: package name differs from its directory", base: with(map[string]string{"hooks/tf.go": "package hooks\n\nimport \"example.com/p/internal/text-fmt\"\n\nvar _ = helper(textfmt.Name)\n", "internal/text-fmt/f.go": "package textfmt\n\nvar Name = \"a\"\n"}),
			files: with(map[string]string{"hooks/tf.go": "package hooks\n\nimport \"example.com/p/internal/text-fmt\"\n\nvar _ = helper(textfmt.Name)\n", "internal/text-fmt/f.go": "package textfmt\n\nvar Name = \"b\"\n"}), changed: "internal/text-fmt/f.go: var Name"},
		{name: "2: method on an alias receiver", base: with(map[string]string{"hooks/al.go": "package hooks\n\ntype T struct{}\n\ntype A = T\n\nfunc (A) M() string { return \"a\" }\n\nvar _ = helper(T{}.M())\n"}),
			files: with(map[string]string{"hooks/al.go": "package hooks\n\ntype T struct{}\n\ntype A = T\n\nfunc (A) M() string { return \"b\" }\n\nvar _ = helper(T{}.M())\n"}), changed: "hooks/al.go: func (A) M"},

		// class 4: initialisation order
		{name: "4: registering initialisers swapped", base: withState, files: with(map[string]string{"hooks/reg.go": strings.Replace(strings.Replace(withState["hooks/reg.go"], `register("a")`, `register("X")`, 1), `register("b")`, `register("a")`, 1)}), changed: "hooks: init order"},
		{name: "4: file renamed to sort first", base: withInits, files: with(map[string]string{"hooks/a_init.go": "", "hooks/z_init.go": withInits["hooks/a_init.go"]}), changed: "hooks: init order"},
		{name: "4: init moved to a new file, same order", base: withInits, files: with(map[string]string{"hooks/a_init.go": "package hooks\n\nfunc init() { mode += \"a\" }\n", "hooks/b_init.go": "package hooks\n\nfunc init() { mode += \"b\" }\n"})},
		{name: "4: standard library call running a product method", files: with(map[string]string{"hooks/str.go": "package hooks\n\nimport \"fmt\"\n\ntype S struct{}\n\nfunc (S) String() string { mode = \"s\"; return \"\" }\n\nvar shown = fmt.Sprint(S{})\n"}), changed: "hooks/str.go: var shown (new)"},

		// class 5: what the build compiles
		{name: "5: embed separated by a blank line", base: with(map[string]string{"hooks/embed.go": "package hooks\n\nimport _ \"embed\"\n\n//go:embed schema.sql\n\nvar schema string\n"}),
			files: with(map[string]string{"hooks/embed.go": "package hooks\n\nimport _ \"embed\"\n\n//go:embed schema.sql\n\nvar schema string\n", "hooks/schema.sql": "accounts\n"}), changed: "hooks: //go:embed schema.sql"},
		{name: "5: linkname pushed from an imported package", base: with(map[string]string{"hooks/push.go": "package hooks\n\nimport _ \"example.com/p/pusher\"\n", "pusher/p.go": "package pusher\n\nimport _ \"unsafe\"\n\n//go:linkname impl example.com/p/hooks.platform\nfunc impl() string { return \"a\" }\n"}),
			files: with(map[string]string{"hooks/push.go": "package hooks\n\nimport _ \"example.com/p/pusher\"\n", "pusher/p.go": "package pusher\n\nimport _ \"unsafe\"\n\n//go:linkname impl example.com/p/hooks.platform\nfunc impl() string { return \"b\" }\n"}), changed: "pusher/p.go: func impl"},
		{name: "5: cgo header in a subdirectory", base: with(map[string]string{"hooks/inc/d.h": "int d(void);\n"}), files: with(map[string]string{"hooks/inc/d.h": "int d(int);\n"}), changed: "hooks: C sources in subdirectories"},
		{name: "5: go line of a replaced module", files: edit2(t, "lib/go.mod", "go 1.26", "go 1.21"), changed: "example.com/lib/go.mod: go 1.21"},

		// class 7: false alarms
		{name: "7: generator rewritten", base: with(map[string]string{"hooks/gen.go": "//go:build ignore\n\npackage main\n\nfunc main() { println(1) }\n"}), files: with(map[string]string{"hooks/gen.go": "//go:build ignore\n\npackage main\n\nfunc main() { println(2) }\n"})},
		{name: "7: declarations reordered in a conditional file", base: with(map[string]string{"hooks/x_linux.go": "package hooks\n\nfunc add(a, b int) int { return a + b }\n\nfunc sub(a, b int) int { return a - b }\n"}), files: with(map[string]string{"hooks/x_linux.go": "package hooks\n\nfunc sub(a, b int) int { return a - b }\n\nfunc add(a, b int) int { return a + b }\n"})},
		{name: "7: go:debug of a main package that is not the migrator", base: with(map[string]string{"cmd/migrator/main.go": "package main\n\nimport \"github.com/hookreg/hookreg/migrator\"\n\nfunc main() { migrator.Main() }\n"}),
			files: with(map[string]string{"cmd/migrator/main.go": "package main\n\nimport \"github.com/hookreg/hookreg/migrator\"\n\nfunc main() { migrator.Main() }\n", "cmd/other/main.go": "//go:debug panicnil=1\n\npackage main\n\nfunc main() {}\n"})},
		{name: "7: go:debug of the migrator", base: with(map[string]string{"cmd/migrator/main.go": "package main\n\nimport \"example.com/p/internal/cli\"\n\nfunc main() { cli.Main() }\n", "internal/cli/cli.go": "package cli\n\nimport \"github.com/hookreg/hookreg/migrator\"\n\nfunc Main() { migrator.Main() }\n"}),
			files: with(map[string]string{"cmd/migrator/main.go": "//go:debug panicnil=1\n\npackage main\n\nimport \"example.com/p/internal/cli\"\n\nfunc main() { cli.Main() }\n", "internal/cli/cli.go": "package cli\n\nimport \"github.com/hookreg/hookreg/migrator\"\n\nfunc Main() { migrator.Main() }\n"}), changed: "cmd/migrator: //go:debug panicnil=1 (new)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			if tc.base != nil {
				b = compute3(t, tc.base)
			}
			res := compute3(t, tc.files)
			diff := changes(b, res)
			if tc.changed == "" {
				if res.Digest != b.Digest {
					t.Errorf("digest changed; pieces %q", diff)
				}
				return
			}
			if res.Digest == b.Digest {
				t.Fatalf("digest unchanged")
			}
			if !strings.Contains(strings.Join(diff, "\n"), tc.changed) {
				t.Errorf("changes %q, want %q", diff, tc.changed)
			}
		})
	}
}

// TestNestedModule: a directory with its own go.mod below the main module
// is another module, not the main module's code, under h3 and h4: its
// package is not hashed as a piece of the main module.
func TestNestedModule(t *testing.T) {
	files := map[string]string{
		"go.mod":         "module example.com/p\n\ngo 1.21\n",
		"hooks/hooks.go": "package hooks\n\nimport \"example.com/p/sub/x\"\n\nfunc Upgrade() int { return x.F() }\n",
		"sub/go.mod":     "module example.com/p/sub\n\ngo 1.21\n",
		"sub/x/x.go":     "package x\n\nfunc F() int { return 1 }\n",
	}
	t.Setenv("GOWORK", "off")
	s, err := codedigest.NewScope(write(t, files))
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []struct {
		name    string
		compute func(pkgPath, name string) (codedigest.Result, error)
	}{{"h3", s.ComputeH3}, {"h4", s.Compute}} {
		res, err := alg.compute("example.com/p/hooks", "Upgrade")
		if err != nil {
			t.Fatalf("%s: %v", alg.name, err)
		}
		if !slices.ContainsFunc(res.Decls, func(d codedigest.Decl) bool { return strings.HasPrefix(d.Name, "hooks/") }) {
			t.Errorf("%s: the hook itself is not hashed: %+v", alg.name, res.Decls)
		}
		if slices.ContainsFunc(res.Decls, func(d codedigest.Decl) bool { return strings.Contains(d.Name, "func F") }) {
			t.Errorf("%s: the nested module's function is hashed as the main module's: %+v", alg.name, res.Decls)
		}
	}
}
