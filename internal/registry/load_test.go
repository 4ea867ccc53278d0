package registry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"

	"github.com/hookreg/hookreg/internal/dirtest"
	"github.com/hookreg/hookreg/internal/registry"
)

// goListCounter puts a go command first in PATH that runs the real one and
// appends a line to the returned file for each go list of packages (not
// go/packages's queries of the build context).
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
	log := filepath.Join(t.TempDir(), "go-list.log")
	script := "#!/bin/sh\ncase \" $* \" in *' list '*-json=*) echo \"$*\" >> '" + log + "';; esac\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func goLists(t *testing.T, log string) int {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// tagModule writes a module whose hook reaches the main module's package
// util through a file of build tag extra only.
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
		"util/util.go":   "package util\n\nfunc Name() string { return \"one\" }\n",
	}
	dirtest.Write(t, dir, files)
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	return dir
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
// main module's packages they reach (names, through the sub-package) load
// in one go list, each of the module's packages from source.
func TestLoadFuncsOneGoList(t *testing.T) {
	dir := tagModule(t)
	t.Setenv("GOFLAGS", "-mod=mod")
	log := goListCounter(t)
	_, funcs := loadTagModule(t, dir)
	if n := goLists(t, log); n != 1 {
		t.Errorf("%d go list runs, want 1", n)
	}
	for _, p := range []string{"example.com/m/hooks", "example.com/m/hooks/sub", "example.com/m/names"} {
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
	t.Setenv("GOFLAGS", "-mod=mod -tags=extra")
	log := goListCounter(t)
	f, funcs := loadTagModule(t, dir)
	if n := goLists(t, log); n != 2 {
		t.Errorf("%d go list runs, want 2 (the guess misses util)", n)
	}
	for _, p := range []string{"example.com/m/hooks", "example.com/m/names", "example.com/m/util"} {
		if !fromSource(funcs, p) {
			t.Errorf("%s not loaded from source", p)
		}
	}
	before, err := funcs.Digest(f, 1, "h1:")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "util", "util.go"), []byte("package util\n\nfunc Name() string { return \"two\" }\n"), 0o644); err != nil {
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
