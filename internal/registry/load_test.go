package registry_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"

	"github.com/hookreg/hookreg/internal/dirtest"
	"github.com/hookreg/hookreg/internal/registry"
)

// goListCounter puts a go command first in PATH that runs the real one
// and, for each go list of packages (not go/packages's queries of the
// build context), appends a line to the returned log: the file holding
// that run's output, then its arguments.
func goListCounter(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the counting go command is a shell script")
	}
	real, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := t.TempDir()
	logDir := t.TempDir()
	log := filepath.Join(logDir, "go-list.log")
	script := "#!/bin/sh\ncase \" $* \" in *' list '*-json=*)\n" +
		"\tout=$(mktemp '" + logDir + "/out.XXXXXX') || exit 1\n" +
		"\techo \"$out $*\" >> '" + log + "'\n" +
		"\t'" + real + "' \"$@\" > \"$out\"; rc=$?\n" +
		"\tcat \"$out\"\n" +
		"\texit $rc;;\nesac\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// goListRun is one go list that goListCounter saw.
type goListRun struct {
	args string
	// export reports whether the go command was asked for export data
	// (-export=true): it compiles every package it lists.
	export bool
	// listed are the import paths of the packages it listed.
	listed []string
}

func goLists(t *testing.T, log string) []goListRun {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var runs []goListRun
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		out, args, _ := strings.Cut(line, " ")
		r := goListRun{args: args, export: strings.Contains(" "+args+" ", " -export=true ")}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(f)
		for {
			var p struct{ ImportPath string }
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("go list output %s: %v", out, err)
			}
			r.listed = append(r.listed, p.ImportPath)
		}
		f.Close()
		runs = append(runs, r)
	}
	return runs
}

// noRootCompiled fails t if a go list run that compiles what it lists
// (-export) listed one of roots, and if none listed dep (a dependency the
// roots import, whose types come from export data).
func noRootCompiled(t *testing.T, runs []goListRun, dep string, roots ...string) {
	t.Helper()
	sawDep := false
	for _, r := range runs {
		if !r.export {
			continue
		}
		for _, p := range r.listed {
			if slices.Contains(roots, p) {
				t.Errorf("go %s compiles %s, a package loaded from source", r.args, p)
			}
			sawDep = sawDep || p == dep
		}
	}
	if !sawDep {
		t.Errorf("no go list -export listed %s, a dependency of the hooks", dep)
	}
}

// tagModule writes a module whose hook reaches the main module's package
// util through a file of build tag extra only; util imports unicode/utf8,
// which no other package of the load imports.
func tagModule(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.26\n\nrequire github.com/hookreg/hookreg v0.0.0\n\nreplace github.com/hookreg/hookreg => " + root + "\n",
		"registry.yaml": "release: 1.0.0\nhooks:\n  - num: 2\n    introduced_in: 1.0.0\n    allow_online: true\n    func: sub.UpgradeB\n" +
			"  - num: 1\n    introduced_in: 1.0.0\n    allow_online: true\n    func: UpgradeA\n",
		"hooks/hooks.go": "package hooks\n\nimport (\n\t\"context\"\n\n\t\"github.com/hookreg/hookreg/hook\"\n)\n\n" +
			"func UpgradeA(ctx context.Context, tx hook.Tx) error { return helper(tx) }\n",
		"hooks/tagged.go": "//go:build extra\n\npackage hooks\n\nimport (\n\t\"github.com/hookreg/hookreg/hook\"\n\n\t\"example.com/m/util\"\n)\n\n" +
			"func helper(tx hook.Tx) error { _, err := tx.Table(util.Name()); return err }\n",
		"hooks/untagged.go": "//go:build !extra\n\npackage hooks\n\nimport \"github.com/hookreg/hookreg/hook\"\n\n" +
			"func helper(tx hook.Tx) error { _, err := tx.Table(\"t\"); return err }\n",
		"hooks/sub/sub.go": "package sub\n\nimport (\n\t\"context\"\n\n\t\"github.com/hookreg/hookreg/hook\"\n\n\t\"example.com/m/names\"\n)\n\n" +
			"func UpgradeB(ctx context.Context, tx hook.Tx) error { _, err := tx.Table(names.Table); return err }\n",
		"names/names.go": "package names\n\nconst Table = \"b\"\n",
		"util/util.go":   "package util\n\nimport \"unicode/utf8\"\n\nfunc Name() string { return string(utf8.AppendRune(nil, 'o')) + \"ne\" }\n",
	}
	dirtest.Write(t, dir, files)
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	return dir
}

// settle has the go command write go.mod as -mod=mod completes it (the go
// line of the toolchain the module requires), so that the go lists a test
// counts find it settled: when go.mod changes while they run, the load
// lists again (TestLoadFuncsListsAgainAfterGoModChange).
func settle(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-mod=mod", "./...")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
}

func loadTagModule(t *testing.T, dir string) (*registry.File, *registry.Funcs) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "registry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, ds := registry.Parse("registry.yaml", data)
	if len(ds) > 0 {
		t.Fatal(ds[0].Text())
	}
	funcs, ds, err := registry.LoadFuncs(dir, f)
	if err != nil || len(ds) > 0 {
		t.Fatalf("LoadFuncs: %v %v", err, ds)
	}
	return f, funcs
}

// fromSource reports whether the main module's package path was loaded
// from source (a root of the load, with syntax and types).
func fromSource(funcs *registry.Funcs, path string) bool {
	for _, p := range funcs.Packages {
		if p.PkgPath == path {
			return len(p.Syntax) > 0 && p.TypesInfo != nil
		}
	}
	return false
}

// TestLoadFuncsOneGoList: the hook packages, the runtime package and the
// main module's packages they reach (names, through the sub-package) are
// each loaded from source, and no go list compiles one of them (-export
// of a package loaded from source: go vet does not compile the packages
// it checks either); on a correct guess of their imports, in at most two
// go list runs.
func TestLoadFuncsOneGoList(t *testing.T) {
	dir := tagModule(t)
	settle(t, dir)
	log := goListCounter(t)
	_, funcs := loadTagModule(t, dir)
	runs := goLists(t, log)
	if len(runs) > 2 {
		t.Errorf("%d go list runs, want at most 2", len(runs))
	}
	roots := []string{"example.com/m/hooks", "example.com/m/hooks/sub", "example.com/m/names", registry.HookPkgPath}
	noRootCompiled(t, runs, "context", roots...)
	for _, p := range roots {
		if !fromSource(funcs, p) {
			t.Errorf("%s not loaded from source", p)
		}
	}
	packages.Visit(funcs.Packages, nil, func(p *packages.Package) {
		if p.PkgPath == "example.com/m/util" {
			t.Errorf("util loaded, but only a file of build tag extra imports it")
		}
	})
}

// TestLoadFuncsBuildTags: a package of the main module reached only under
// the build's tags (GOFLAGS=-tags, which the go command sees and a reading
// of the import declarations does not) is still loaded from source, and
// the h1 digest (from the loaded syntax) covers it.
func TestLoadFuncsBuildTags(t *testing.T) {
	dir := tagModule(t)
	settle(t, dir)
	t.Setenv("GOFLAGS", "-tags=extra")
	log := goListCounter(t)
	f, funcs := loadTagModule(t, dir)
	runs := goLists(t, log)
	if len(runs) != 3 {
		t.Errorf("%d go list runs, want 3 (the guess misses util's import of unicode/utf8: the dependencies are listed again)", len(runs))
	}
	roots := []string{"example.com/m/hooks", "example.com/m/names", "example.com/m/util"}
	noRootCompiled(t, runs, "unicode/utf8", roots...)
	for _, p := range roots {
		if !fromSource(funcs, p) {
			t.Errorf("%s not loaded from source", p)
		}
	}
	before, err := funcs.Digest(f, 1, "h1:")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "util", "util.go"), []byte("package util\n\nimport \"unicode/utf8\"\n\nfunc Name() string { return string(utf8.AppendRune(nil, 't')) + \"wo\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, funcs = loadTagModule(t, dir)
	after, err := funcs.Digest(f, 1, "h1:")
	if err != nil {
		t.Fatal(err)
	}
	if before.Digest == after.Digest {
		t.Errorf("h1 digest %s unchanged by a change of util, which the hook reaches under tag extra", before.Digest)
	}
}

// TestLoadFuncsDependencyImportsRoot: a package of another module that
// the hooks import imports a package of the main module back, whose type
// the hook uses through both; the types are the same (the load falls
// back to one go/packages load, whose export data and source agree).
func TestLoadFuncsDependencyImportsRoot(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dirtest.Write(t, dir, map[string]string{
		"m/go.mod": "module example.com/m\n\ngo 1.26\n\nrequire (\n\texample.com/ext v0.0.0\n\tgithub.com/hookreg/hookreg v0.0.0\n)\n\n" +
			"replace (\n\texample.com/ext => ../ext\n\tgithub.com/hookreg/hookreg => " + root + "\n)\n",
		"m/registry.yaml": "release: 1.0.0\nhooks:\n  - num: 1\n    introduced_in: 1.0.0\n    allow_online: true\n    func: UpgradeA\n",
		"m/hooks/hooks.go": "package hooks\n\nimport (\n\t\"context\"\n\n\t\"github.com/hookreg/hookreg/hook\"\n\n\t\"example.com/ext/e\"\n\t\"example.com/m/names\"\n)\n\n" +
			"func UpgradeA(ctx context.Context, tx hook.Tx) error { var n names.T = e.Name(); _, err := tx.Table(string(n)); return err }\n",
		"m/names/names.go": "package names\n\ntype T string\n",
		"ext/go.mod":       "module example.com/ext\n\ngo 1.26\n\nrequire example.com/m v0.0.0\n",
		"ext/e/e.go":       "package e\n\nimport \"example.com/m/names\"\n\nfunc Name() names.T { return \"t\" }\n",
	})
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GONOSUMDB", "*")
	_, funcs := loadTagModule(t, filepath.Join(dir, "m"))
	if !fromSource(funcs, "example.com/m/names") {
		t.Errorf("names not loaded from source")
	}
}

// TestLoadFuncsListsAgainAfterGoModChange: when go.mod changes while the
// two go lists run (the go command under a -mod=mod of go env -w, which
// GOFLAGS does not show, rewrites it; here a stand-in go command appends a
// comment when the dependency list starts),
// the lists may have read different requirements, so the roots' graph is
// listed again, then the dependencies, one after the other.
func TestLoadFuncsListsAgainAfterGoModChange(t *testing.T) {
	dir := tagModule(t)
	settle(t, dir)
	log := goListCounter(t)
	counter, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin, mark := t.TempDir(), filepath.Join(t.TempDir(), "touched")
	script := "#!/bin/sh\ncase \" $* \" in *' list '*-export=true*)\n" +
		"\tif [ ! -e '" + mark + "' ]; then : > '" + mark + "'; printf '// touched\\n' >> go.mod; fi;;\nesac\n" +
		"exec '" + counter + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	loadTagModule(t, dir)
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the stand-in go command did not change go.mod: %v", err)
	}
	graphs, deps := 0, 0
	for _, r := range goLists(t, log) {
		if r.export {
			deps++
		} else {
			graphs++
		}
	}
	if graphs != 2 || deps != 2 {
		t.Errorf("%d graph lists and %d dependency lists, want 2 and 2 (the second of each after go.mod changed)", graphs, deps)
	}
}

// TestLoadFuncsModModInTurn: with GOFLAGS=-mod=mod, under which both go
// lists could rewrite go.mod, the roots' graph is listed first and the
// dependencies after it, the ones it names (no guess): two runs, in that
// order.
func TestLoadFuncsModModInTurn(t *testing.T) {
	dir := tagModule(t)
	t.Setenv("GOFLAGS", "-mod=mod")
	log := goListCounter(t)
	loadTagModule(t, dir)
	runs := goLists(t, log)
	if len(runs) != 2 || runs[0].export || !runs[1].export {
		var kinds []bool
		for _, r := range runs {
			kinds = append(kinds, r.export)
		}
		t.Errorf("go list runs with -export %v, want [false true]: the graph, then the dependencies", kinds)
	}
}
