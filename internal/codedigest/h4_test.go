package codedigest_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/dirtest"
)

// TestH4Dependencies checks h4's scope over a module cache of its own: the
// hook calls example.com/dep, which calls example.com/b. A bump that
// changes no reached code keeps the digest (h3 changed it); a bump that
// changes reached code, also of the indirect requirement b, changes it
// (h3 missed b) and names the piece with its module and version; a
// version neither in the cache nor to be downloaded is an error naming it.
func TestH4Dependencies(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("GOMODCACHE", cache)
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	put := func(modVersion string, files map[string]string) {
		dirtest.Write(t, filepath.Join(cache, filepath.FromSlash(modVersion)), files)
	}
	dep := func(greet, readme, other string) map[string]string {
		return map[string]string{
			"go.mod":         "module example.com/dep\n\ngo 1.21\n\nrequire example.com/b v1.0.0\n",
			"README.md":      readme,
			"dep.go":         "package dep\n\nimport \"example.com/b\"\n\nfunc Greet(name string) string { return " + greet + " + name + b.Value() }\n",
			"other/other.go": "package other\n\nfunc X() int { return " + other + " }\n",
		}
	}
	b := func(value string) map[string]string {
		return map[string]string{
			"go.mod": "module example.com/b\n\ngo 1.21\n",
			"b.go":   "package b\n\nfunc Value() string { return " + value + " }\n",
		}
	}
	put("example.com/dep@v1.0.0", dep(`"t_"`, "v1.0.0", "1"))
	put("example.com/dep@v1.0.1", dep(`"t_"`, "v1.0.1, a better README", "2"))
	put("example.com/dep@v1.1.0", dep(`"tbl_"`, "v1.1.0", "2"))
	put("example.com/b@v1.0.0", b(`"x"`))
	put("example.com/b@v1.0.1", b(`"y"`))

	compute := func(depVersion, bVersion string) (h4, h3 codedigest.Result, err error) {
		t.Helper()
		dir := write(t, map[string]string{
			"go.mod":         "module example.com/p\n\ngo 1.26\n\nrequire (\n\texample.com/dep " + depVersion + "\n\texample.com/b " + bVersion + " // indirect\n)\n",
			"hooks/hooks.go": "package hooks\n\nimport \"example.com/dep\"\n\nfunc Upgrade() string { return dep.Greet(\"users\") }\n",
		})
		s, err := codedigest.NewScope(dir)
		if err != nil {
			t.Fatal(err)
		}
		if h3, err = s.ComputeH3("example.com/p/hooks", "Upgrade"); err != nil {
			t.Fatal(err)
		}
		h4, err = s.Compute("example.com/p/hooks", "Upgrade")
		return h4, h3, err
	}
	base, baseH3, err := compute("v1.0.0", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base.Digest, "h4:") {
		t.Fatalf("digest %q is not h4:", base.Digest)
	}
	i := slices.IndexFunc(base.Decls, func(d codedigest.Decl) bool { return d.ID == "example.com/b: func Value" })
	if i < 0 || base.Decls[i].Module != "example.com/b" || base.Decls[i].Version != "v1.0.0" || base.Decls[i].Name != "example.com/b/b.go: func Value" {
		t.Fatalf("the indirect requirement's reached function is not a piece keyed without its version: %+v", base.Decls)
	}
	if slices.ContainsFunc(base.Decls, func(d codedigest.Decl) bool { return strings.Contains(d.ID, "other") }) {
		t.Errorf("a package no hook reaches is hashed: %+v", base.Decls)
	}

	neutral, neutralH3, err := compute("v1.0.1", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if neutral.Digest != base.Digest {
		t.Errorf("a bump that changes only a README and an unused package changed the h4 digest: %s -> %s", base.Digest, neutral.Digest)
	}
	if neutralH3.Digest == baseH3.Digest {
		t.Errorf("h3 is not frozen: it no longer records the version of example.com/dep")
	}

	changed, _, err := compute("v1.1.0", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if changed.Digest == base.Digest {
		t.Errorf("a bump that changes Greet kept the h4 digest")
	}
	i = slices.IndexFunc(changed.Decls, func(d codedigest.Decl) bool { return d.ID == "example.com/dep: func Greet" })
	if i < 0 || changed.Decls[i].Version != "v1.1.0" {
		t.Errorf("Greet is not named with its module version: %+v", changed.Decls)
	}

	indirect, indirectH3, err := compute("v1.0.0", "v1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if indirect.Digest == base.Digest {
		t.Errorf("a bump of the indirect requirement that changes reached code kept the h4 digest")
	}
	if indirectH3.Digest != baseH3.Digest {
		t.Errorf("h3 is not frozen: it saw the indirect requirement")
	}

	_, _, err = compute("v1.9.9", "v1.0.0")
	if err == nil || !strings.Contains(err.Error(), "module example.com/dep v1.9.9: not in the module cache, and go mod download failed") {
		t.Errorf("a version not in the module cache, GOPROXY=off: error %v, want one naming the module and version", err)
	}
}

// TestGuessDir: a package of the main module, of a replace to a
// directory, of a module the module cache holds at the required version,
// of a module replaced by another module's version, and none for the
// standard library and a module go.mod does not name.
func TestGuessDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("GOMODCACHE", cache)
	dir := write(t, map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n\nrequire (\n\texample.com/dep v1.2.0\n\texample.com/old v1.0.0\n\texample.com/local v0.0.0\n)\n\n" +
			"replace (\n\texample.com/old => example.com/new v2.0.0\n\texample.com/local => ./local\n)\n",
		"hooks/h.go":       "package hooks\n",
		"local/go.mod":     "module example.com/local\n",
		"local/sub/sub.go": "package sub\n",
	})
	s, err := codedigest.NewScope(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ pkg, want string }{
		{"example.com/m/hooks", filepath.Join(dir, "hooks")},
		{"example.com/local/sub", filepath.Join(dir, "local", "sub")},
		{"example.com/dep/x", filepath.Join(cache, "example.com", "dep@v1.2.0", "x")},
		{"example.com/old/y", filepath.Join(cache, "example.com", "new@v2.0.0", "y")},
		{"context", ""},
		{"example.com/other/z", ""},
	} {
		if got := s.GuessDir(c.pkg); got != c.want {
			t.Errorf("GuessDir(%s) = %q, want %q", c.pkg, got, c.want)
		}
	}
}

// TestH4CgoOutside checks that h4 hashes the C sources a cgo package reads
// outside its directory (an -I${SRCDIR}/... directory, a relative
// #include, and what that includes in turn), and that h3 stays what it
// was.
func TestH4CgoOutside(t *testing.T) {
	t.Setenv("GOWORK", "off")
	files := func(val, more, readme string) map[string]string {
		return map[string]string{
			"go.mod":            "module example.com/p\n\ngo 1.26\n",
			"hooks/hooks.go":    "package hooks\n\nimport \"example.com/p/hooks/cg\"\n\nfunc Upgrade() string { return cg.Name() }\n",
			"hooks/cg/cg.go":    "package cg\n\n// #cgo CFLAGS: -I${SRCDIR}/../../cinc\n// #include \"val.h\"\n// #include \"../../cname/name.h\"\nimport \"C\"\n\nfunc Name() string { return \"\" }\n",
			"cinc/val.h":        "#define CVAL " + val + "\n",
			"cinc/README":       readme,
			"cname/name.h":      "#include \"more/more.h\"\n",
			"cname/more/more.h": "#define MORE " + more + "\n",
			"cname/unrelated.h": "#define UNRELATED " + readme + "\n",
		}
	}
	compute := func(files map[string]string) (h4, h3 codedigest.Result) {
		t.Helper()
		return computeH4H3(t, write(t, files))
	}
	base, baseH3 := compute(files("1", "1", "a"))
	for _, tc := range []struct {
		name    string
		files   map[string]string
		changed bool
	}{
		{"header of an -I directory", files("2", "1", "a"), true},
		{"header included by a relative include", files("1", "2", "a"), true},
		{"files no build reads", files("1", "1", "b"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h4, h3 := compute(tc.files)
			if h3.Digest != baseH3.Digest {
				t.Errorf("the h3 digest changed: h3 must stay what it was")
			}
			diff := changes(base, h4)
			if !tc.changed {
				if h4.Digest != base.Digest {
					t.Errorf("digest changed: %v", diff)
				}
				return
			}
			if h4.Digest == base.Digest || !slices.ContainsFunc(diff, func(d string) bool {
				return strings.Contains(d, "hooks/cg: C sources outside the package directory (3)")
			}) {
				t.Errorf("digest unchanged or the piece not named: %v", diff)
			}
		})
	}
}

// TestH4CgoOutsideModule: a C header outside the package's module (above
// its go.mod) is not the module's code: it is not hashed, as a system
// header is not, and its walk stays inside the module.
func TestH4CgoOutsideModule(t *testing.T) {
	t.Setenv("GOWORK", "off")
	files := func(outside string) map[string]string {
		return map[string]string{
			"m/go.mod":         "module example.com/p\n\ngo 1.26\n",
			"m/hooks/hooks.go": "package hooks\n\nimport \"example.com/p/hooks/cg\"\n\nfunc Upgrade() string { return cg.Name() }\n",
			"m/hooks/cg/cg.go": "package cg\n\n// #cgo CFLAGS: -I${SRCDIR}/../../../inc -I${SRCDIR}/../../inc\n// #include \"../../../inc/out.h\"\nimport \"C\"\n\nfunc Name() string { return \"\" }\n",
			"m/inc/in.h":       "#define IN 1\n",
			"inc/out.h":        "#define OUT " + outside + "\n",
		}
	}
	compute := func(files map[string]string) codedigest.Result {
		t.Helper()
		h4, _ := computeH4H3(t, filepath.Join(write(t, files), "m"))
		return h4
	}
	base := compute(files("1"))
	if got := compute(files("2")); got.Digest != base.Digest {
		t.Errorf("a header outside the module changed the digest: %v", changes(base, got))
	}
	if !slices.ContainsFunc(base.Decls, func(p codedigest.Decl) bool {
		return strings.Contains(p.Name, "C sources outside the package directory (1)")
	}) {
		t.Errorf("the module's own header outside the package is not hashed: %v", base.Decls)
	}
}

// TestH4StdlibInitialiser: a package-level initialiser that calls the
// standard library with constants is package state in h4 when the
// function may change what other code sees (os.Setenv: the hook reads the
// variable), and not when it is of a package that changes nothing
// (errors.New); h3 stays what it was.
func TestH4StdlibInitialiser(t *testing.T) {
	t.Setenv("GOWORK", "off")
	files := func(env, msg string) map[string]string {
		return map[string]string{
			"go.mod":         "module example.com/p\n\ngo 1.26\n",
			"hooks/hooks.go": "package hooks\n\nimport \"os\"\n\nfunc Upgrade() string { return os.Getenv(\"HOOK_MODE\") }\n",
			"hooks/env.go":   "package hooks\n\nimport (\n\t\"errors\"\n\t\"os\"\n)\n\nvar setMode = os.Setenv(\"HOOK_MODE\", \"" + env + "\")\n\nvar errUnused = errors.New(\"" + msg + "\")\n",
		}
	}
	compute := func(files map[string]string) (h4, h3 codedigest.Result) {
		t.Helper()
		return computeH4H3(t, write(t, files))
	}
	base, baseH3 := compute(files("v1", "a"))
	h4, h3 := compute(files("v2", "a"))
	if h4.Digest == base.Digest || !slices.Contains(changes(base, h4), "hooks/env.go: var setMode") {
		t.Errorf("os.Setenv's argument changed, the h4 digest did not name it: %v", changes(base, h4))
	}
	if h3.Digest != baseH3.Digest {
		t.Errorf("the h3 digest changed: h3 must stay what it was")
	}
	if h4, _ := compute(files("v1", "b")); h4.Digest != base.Digest {
		t.Errorf("an unused errors.New changed the digest: %v", changes(base, h4))
	}
}

// computeH4H3 computes the h4 and the h3 digest of hook Upgrade of package
// example.com/p/hooks in the module at dir.
func computeH4H3(t *testing.T, dir string) (h4, h3 codedigest.Result) {
	t.Helper()
	s, err := codedigest.NewScope(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h3, err = s.ComputeH3("example.com/p/hooks", "Upgrade"); err != nil {
		t.Fatal(err)
	}
	if h4, err = s.Compute("example.com/p/hooks", "Upgrade"); err != nil {
		t.Fatal(err)
	}
	return h4, h3
}

// TestH4CgoOutsideFromCFile: a C file of the package that includes a
// header outside the package's directory counts that header, as the
// package's preamble does.
func TestH4CgoOutsideFromCFile(t *testing.T) {
	t.Setenv("GOWORK", "off")
	files := func(z string) map[string]string {
		return map[string]string{
			"go.mod":           "module example.com/p\n\ngo 1.26\n",
			"hooks/hooks.go":   "package hooks\n\nimport \"example.com/p/hooks/cg\"\n\nfunc Upgrade() string { return cg.Name() }\n",
			"hooks/cg/cg.go":   "package cg\n\n// int z(void);\nimport \"C\"\n\nfunc Name() string { return \"\" }\n",
			"hooks/cg/impl.c":  "#include \"../../cext/z.h\"\nint z(void) { return Z; }\n",
			"cext/z.h":         "#define Z " + z + "\n",
			"cext/unrelated.h": "#define U 1\n",
		}
	}
	base, _ := computeH4H3(t, write(t, files("1")))
	got, _ := computeH4H3(t, write(t, files("2")))
	if got.Digest == base.Digest || !slices.ContainsFunc(changes(base, got), func(d string) bool {
		return strings.Contains(d, "hooks/cg: C sources outside the package directory (1)")
	}) {
		t.Errorf("a header the package's C file includes changed, the digest did not name it: %v", changes(base, got))
	}
}
