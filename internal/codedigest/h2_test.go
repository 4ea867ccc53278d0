package codedigest_test

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/dirtest"
)

// product is a module whose hook Upgrade reaches each kind of piece the h2
// digest covers: a helper, package state, an embedded file, a linkname, a
// conditional file per build, assembly, C, a .syso, another package, a
// module replaced by a local directory and a required module.
var product = map[string]string{
	"go.mod": `module example.com/p

go 1.26

require (
	example.com/lib v1.0.0
	golang.org/x/text v0.3.0
	golang.org/x/other v1.0.0
)

replace example.com/lib => ./lib
`,
	"hooks/hooks.go": `package hooks

import (
	"example.com/lib"
	"example.com/p/hooks/util"
	"golang.org/x/text/cases"
)

// Upgrade is the hook.
func Upgrade() error {
	_ = helper(mode)
	_ = util.Clean(schema)
	_ = lib.Table()
	_ = cases.Title
	_ = platform() + add(1, 2)
	return nil
}

func helper(s string) string { return s + "!" }

var mode = "v1"

func unrelated() int { return 1 }
`,
	"hooks/state.go": `package hooks

func init() { mode = "v2" }
`,
	"hooks/embed.go": `package hooks

import _ "embed"

//go:embed schema.sql
var schema string
`,
	"hooks/schema.sql": "users\n",
	"hooks/link.go": `package hooks

import _ "unsafe"

//go:linkname platform example.com/p/internal/impl.platform
func platform() string
`,
	"hooks/x_linux.go":   "package hooks\n\nfunc add(a, b int) int { return a + b }\n",
	"hooks/x_windows.go": "package hooks\n\nfunc add(a, b int) int { return a + b }\n",
	"hooks/x_amd64.s":    "TEXT ·nop(SB), 0, $0\n\tRET\n",
	"hooks/c.go":         "package hooks\n\n// #include \"c.h\"\nimport \"C\"\n\n// cName is C's.\nfunc cName() string { return \"c\" }\n",
	"hooks/c.h":          "int c(void);\n",
	"hooks/c.c":          "int c(void) { return 1; }\n",
	"hooks/blob.syso":    "object",
	"hooks/util/util.go": `package util

// Clean cleans.
func Clean(s string) string { return s + "." }
`,
	"internal/impl/impl.go": `package impl

func platform() string { return "linux" }
`,
	"lib/go.mod": "module example.com/lib\n\ngo 1.26\n",
	"lib/lib.go": "package lib\n\n// Table names the table.\nfunc Table() string { return \"users\" }\n",
}

func write(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	dirtest.Write(t, dir, files)
	return dir
}

func compute2(t testing.TB, files map[string]string) codedigest.Result {
	t.Helper()
	t.Setenv("GOWORK", "off")
	s, err := codedigest.NewScope(write(t, files))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ComputeH2("example.com/p/hooks", "Upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Digest, "h2:") || len(res.Digest) != 3+44 {
		t.Fatalf("digest %q is not h2: + base64 SHA-256", res.Digest)
	}
	return res
}

// with returns product with file set to data ("" removes it).
func with(changes map[string]string) map[string]string {
	out := maps.Clone(product)
	for name, data := range changes {
		if data == "" {
			delete(out, name)
			continue
		}
		out[name] = data
	}
	return out
}

func edit2(t *testing.T, file, old, new string) map[string]string {
	t.Helper()
	if !strings.Contains(product[file], old) {
		t.Fatalf("%s has no %q", file, old)
	}
	return with(map[string]string{file: strings.Replace(product[file], old, new, 1)})
}

// TestH2Rules checks each rule of the h2 scope: a change of what a build of
// the product runs changes the digest and names the piece; a neutral edit
// does not.
func TestH2Rules(t *testing.T) {
	base := compute2(t, product)
	for _, tc := range []struct {
		name    string
		files   map[string]string
		changed string // a piece named in the changes; "" for none
	}{
		{"body of a helper", edit2(t, "hooks/hooks.go", `s + "!"`, `s + "?"`), "hooks/hooks.go: func helper"},
		{"comment", edit2(t, "hooks/hooks.go", "// Upgrade is the hook.", "// Upgrade upgrades."), ""},
		{"reformatted", edit2(t, "hooks/hooks.go", "func helper(s string) string { return s + \"!\" }", "func helper(s string) string {\n\treturn s +\n\t\t\"!\"\n}"), ""},
		{"function of no hook", edit2(t, "hooks/hooks.go", "return 1", "return 2"), ""},
		{"moved to another file", with(map[string]string{
			"hooks/hooks.go":  strings.Replace(product["hooks/hooks.go"], "func helper(s string) string { return s + \"!\" }\n", "", 1),
			"hooks/helper.go": "package hooks\n\nfunc helper(s string) string { return s + \"!\" }\n",
		}), ""},
		{"init body", edit2(t, "hooks/state.go", `"v2"`, `"v3"`), "hooks/state.go: func init (1)"},
		{"init added", with(map[string]string{"hooks/state2.go": "package hooks\n\nfunc init() { mode = \"v4\" }\n"}), "hooks/state2.go: func init (1) (new)"},
		{"initialiser that runs code", with(map[string]string{"hooks/eff.go": "package hooks\n\nvar _ = func() bool { mode = \"x\"; return true }()\n"}), "hooks/eff.go: var _ (new)"},
		{"initialiser calling a product function", with(map[string]string{"hooks/eff.go": "package hooks\n\nvar ok = set()\n\nfunc set() bool { mode = \"x\"; return true }\n"}), "hooks/eff.go: var ok (new)"},
		{"pure initialiser of an unused var", with(map[string]string{"hooks/pure.go": "package hooks\n\nimport \"strings\"\n\nvar limit = 10\n\nvar upper = strings.ToUpper(\"x\")\n"}), ""},
		{"blank import", with(map[string]string{"hooks/drv.go": "package hooks\n\nimport _ \"example.com/p/hooks/util\"\n"}), "hooks: import _ embed, example.com/p/hooks/util, unsafe"},
		{"embedded bytes", with(map[string]string{"hooks/schema.sql": "accounts\n"}), "hooks/embed.go: var schema"},
		{"linkname target", edit2(t, "internal/impl/impl.go", `"linux"`, `"windows"`), "internal/impl/impl.go: func platform"},
		{"build line", edit2(t, "hooks/x_linux.go", "package hooks", "//go:build go1.21\n\npackage hooks"), "hooks/x_linux.go: file x_linux.go"},
		{"file of another GOOS", edit2(t, "hooks/x_windows.go", "a + b", "a - b"), "hooks/x_windows.go: file x_windows.go"},
		{"assembly", with(map[string]string{"hooks/x_amd64.s": "TEXT ·nop(SB), 0, $0\n\tNOP\n\tRET\n"}), "hooks/x_amd64.s: file x_amd64.s"},
		{"C source", with(map[string]string{"hooks/c.c": "int c(void) { return 2; }\n"}), "hooks/c.c: file c.c"},
		{"C header", with(map[string]string{"hooks/c.h": "int c(void); int d(void);\n"}), "hooks/c.h: file c.h"},
		{"syso", with(map[string]string{"hooks/blob.syso": "other"}), "hooks/blob.syso: file blob.syso"},
		{"comment in a cgo file", edit2(t, "hooks/c.go", "// cName is C's.", "// cName names C."), ""},
		{"cgo preamble", edit2(t, "hooks/c.go", `#include "c.h"`, `#include "d.h"`), "hooks/c.go: file c.go"},
		{"other package", edit2(t, "hooks/util/util.go", `"."`, `","`), "hooks/util/util.go: func Clean"},
		{"local replace", edit2(t, "lib/lib.go", `"users"`, `"accounts"`), "example.com/lib/lib.go: func Table"},
		{"godebug", edit2(t, "go.mod", "go 1.26\n", "go 1.26\n\ngodebug panicnil=1\n"), "go.mod: godebug panicnil=1 (new)"},
		{"go line", edit2(t, "go.mod", "go 1.26\n", "go 1.27\n"), "go.mod: go 1.27"},
		{"version of a used module", edit2(t, "go.mod", "golang.org/x/text v0.3.0", "golang.org/x/text v0.4.0"), "go.mod: require golang.org/x/text v0.4.0"},
		{"version of an unused module", edit2(t, "go.mod", "golang.org/x/other v1.0.0", "golang.org/x/other v1.1.0"), ""},
		{"main package go:debug", with(map[string]string{"cmd/m/main.go": "//go:debug panicnil=1\n\npackage main\n\nfunc main() {}\n"}), "cmd/m: //go:debug panicnil=1 (new)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compute2(t, tc.files)
			diff := changes(base, res)
			if tc.changed == "" {
				if res.Digest != base.Digest {
					t.Errorf("digest changed; pieces %q", diff)
				}
				return
			}
			if res.Digest == base.Digest {
				t.Fatalf("digest unchanged")
			}
			if !strings.Contains(strings.Join(diff, "\n"), tc.changed) {
				t.Errorf("changes %q, want %q", diff, tc.changed)
			}
		})
	}
}

// changes names the pieces that differ between a and b, by key.
func changes(a, b codedigest.Result) []string {
	old := make(map[string]string)
	for _, d := range a.Decls {
		old[d.Key()] = d.Hash
	}
	var out []string
	for _, d := range b.Decls {
		h, ok := old[d.Key()]
		switch {
		case !ok:
			out = append(out, d.Name+" (new)")
		case h != d.Hash:
			out = append(out, d.Name)
		}
		delete(old, d.Key())
	}
	for k := range old {
		out = append(out, k+" (gone)")
	}
	return out
}

// TestH2Vendor checks that vendor/ is in scope: with vendor/modules.txt the
// vendored copy of a module is hashed, also for a locally replaced one.
func TestH2Vendor(t *testing.T) {
	files := with(map[string]string{
		"vendor/modules.txt":            "# example.com/lib v1.0.0 => ./lib\n## explicit\nexample.com/lib\n",
		"vendor/example.com/lib/lib.go": product["lib/lib.go"],
	})
	base := compute2(t, files)
	files["vendor/example.com/lib/lib.go"] = strings.Replace(files["vendor/example.com/lib/lib.go"], "users", "accounts", 1)
	res := compute2(t, files)
	if res.Digest == base.Digest || !strings.Contains(strings.Join(changes(base, res), " "), "example.com/lib/lib.go: func Table") {
		t.Errorf("a vendored edit: changes %q", changes(base, res))
	}
}

// TestH2Workspace checks that a go.work use entry is in scope.
func TestH2Workspace(t *testing.T) {
	files := with(map[string]string{
		"go.mod":  strings.Replace(product["go.mod"], "replace example.com/lib => ./lib\n", "", 1),
		"go.work": "go 1.26\n\nuse (\n\t.\n\t./lib\n)\n",
	})
	run := func(files map[string]string) codedigest.Result {
		dir := write(t, files)
		t.Setenv("GOWORK", filepath.Join(dir, "go.work"))
		s, err := codedigest.NewScope(dir)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.ComputeH2("example.com/p/hooks", "Upgrade")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	base := run(files)
	files["lib/lib.go"] = strings.Replace(files["lib/lib.go"], "users", "accounts", 1)
	res := run(files)
	if res.Digest == base.Digest {
		t.Errorf("an edit of a go.work module: changes %q", changes(base, res))
	}
}

// TestH2ImportedState checks that a package the hook only imports for its
// side effects counts with what its init runs: here an assembly function.
func TestH2ImportedState(t *testing.T) {
	files := with(map[string]string{
		"hooks/drv.go":      "package hooks\n\nimport _ \"example.com/p/drv\"\n",
		"drv/drv.go":        "package drv\n\nfunc init() { setup() }\n\nfunc setup()\n",
		"drv/setup_amd64.s": "TEXT ·setup(SB), 0, $0\n\tRET\n",
	})
	base := compute2(t, files)
	files["drv/setup_amd64.s"] = "TEXT ·setup(SB), 0, $0\n\tNOP\n\tRET\n"
	res := compute2(t, files)
	if res.Digest == base.Digest || !strings.Contains(strings.Join(changes(base, res), " "), "drv/setup_amd64.s: file setup_amd64.s") {
		t.Errorf("assembly run by an imported package's init: changes %q", changes(base, res))
	}
}
