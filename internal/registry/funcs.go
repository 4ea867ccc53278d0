package registry

import (
	"bytes"
	"errors"
	"fmt"
	"go/build"
	"go/token"
	"go/types"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/tools/go/packages"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/diag"
)

// Rule ids of LoadFuncs: the hook functions.
const (
	RuleFuncPackage   = "func-package"
	RuleFuncMissing   = "func-missing"
	RuleFuncExported  = "func-exported"
	RuleFuncKind      = "func-kind"
	RuleFuncSignature = "func-signature"
	RulePackageError  = "package-error"
)

// HookPkgPath is the import path of the runtime package that declares the
// hook signature, hook.Func.
const HookPkgPath = "github.com/hookreg/hookreg/hook"

// LoadMode is the go/packages mode whose fields LoadFuncs fills: the hook
// packages and the packages of the main module that they reach are its
// roots, with syntax and type information from source, so that
// internal/codedigest follows declarations across them; everything else
// (the standard library, other modules) has types from export data, as it
// would for go vet. LoadFuncs loads with this mode itself only when a
// dependency imports a root back (see the package doc, Loading): with it,
// go/packages has the go command compile the roots.
const LoadMode = codedigest.LoadMode &^ packages.NeedDeps

// Funcs are the type-checked hook functions of a registry.
type Funcs struct {
	// Module is the module path of the module that holds the registry.
	Module string
	// PkgPath is the import path of the hook package.
	PkgPath string
	// Packages are the packages of the main module that the hook packages
	// reach, loaded from source, and the runtime package; their other
	// dependencies, loaded from export data, are reachable through Imports.
	// They are what codedigest.Scope.UsePackages of another tree of the
	// same module takes.
	Packages []*packages.Package
	// Funcs holds each hook's function, indexed like File.Hooks; nil where
	// the function is missing or wrong.
	Funcs []*types.Func
	// Scope is the source the code digests cover (internal/codedigest).
	Scope *codedigest.Scope
	// digests caches Digest by hook index and algorithm.
	digests map[digestKey]codedigest.Result
}

type digestKey struct {
	i   int
	alg string
}

// LoadFuncs loads the hook package of f and its sub-packages from the
// module in moduleDir, with every package of the module they reach,
// type-checked from source (two go lists at the same time, neither
// compiling them; see LoadMode and loadHookPackages), and checks every
// hook's func: its package exists (func-package) and compiles (package-error),
// the name is declared (func-missing), exported (func-exported), a
// function rather than a variable or method value (func-kind), with the
// signature of hook.Func (func-signature), compared as types. Diagnostics
// are at the func value in the registry, or at the compile error in the Go
// file (an absolute path). The error is for a failure to load at all: no
// go command, no module, a broken go.mod.
func LoadFuncs(moduleDir string, f *File) (*Funcs, []diag.Diagnostic, error) {
	root := "./" + path.Clean(strings.TrimPrefix(f.Package, "./"))
	gomod, err := os.ReadFile(filepath.Join(moduleDir, "go.mod"))
	if err != nil {
		return nil, nil, fmt.Errorf("loading the hook packages: %w", err)
	}
	module := modfile.ModulePath(gomod)
	if module == "" {
		return nil, nil, fmt.Errorf("loading the hook packages: %s has no module path", filepath.Join(moduleDir, "go.mod"))
	}
	scope, err := codedigest.NewScope(moduleDir)
	if err != nil {
		return nil, nil, err
	}
	// The hook packages' files parse and print for the digests while
	// the go command lists the packages.
	rootDir, err := filepath.Abs(filepath.Join(moduleDir, filepath.FromSlash(strings.TrimPrefix(root, "./"))))
	if err != nil {
		return nil, nil, fmt.Errorf("loading the hook packages: %w", err)
	}
	dirs := packageDirs(rootDir)
	files := hookGoFiles(dirs)
	scope.Prefetch(files)
	pkgs, err := loadHookPackages(moduleDir, module, root, dirs, files, scope)
	if err != nil {
		return nil, nil, err
	}
	if scope, err = scope.Renewed(); err != nil {
		return nil, nil, err
	}
	scope.UsePackages(pkgs)
	fs := &Funcs{Module: module, Packages: pkgs, Funcs: make([]*types.Func, len(f.Hooks)), Scope: scope}
	var ds []diag.Diagnostic
	byPath := make(map[string]*packages.Package, len(pkgs))
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if _, ok := byPath[p.PkgPath]; !ok {
			byPath[p.PkgPath] = p
		}
	})
	hookPkg := byPath[HookPkgPath]
	if hookPkg == nil || hookPkg.Types == nil || hookPkg.Types.Scope().Lookup("Func") == nil {
		return nil, nil, fmt.Errorf("loading the hook packages: the runtime package %s did not load", HookPkgPath)
	}
	fs.PkgPath = path.Join(fs.Module, strings.TrimPrefix(root, "./"))
	hookSig := hookPkg.Types.Scope().Lookup("Func").Type().Underlying()
	reported := make(map[string]bool)
	for i := range f.Hooks {
		h := &f.Hooks[i]
		if h.FuncPos.Line == 0 || !ValidFunc(h.Func) {
			continue
		}
		sub, name := SplitFunc(h.Func)
		pkgPath := path.Join(fs.PkgPath, sub)
		p := byPath[pkgPath]
		if p == nil || len(p.GoFiles) == 0 && len(p.CompiledGoFiles) == 0 {
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RuleFuncPackage, Hook: h.Num,
				Message: fmt.Sprintf("func %q: no Go package %s (directory %s); create it or fix the name", h.Func, pkgPath, path.Join(root, sub))})
			continue
		}
		if len(p.Errors) > 0 {
			if !reported[p.PkgPath] {
				reported[p.PkgPath] = true
				ds = append(ds, packageErrors(p)...)
			}
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RulePackageError, Hook: h.Num,
				Message: fmt.Sprintf("func %q: package %s does not compile (see its errors)", h.Func, pkgPath)})
			continue
		}
		if !token.IsExported(name) {
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RuleFuncExported, Hook: h.Num,
				Message: fmt.Sprintf("func %q is not exported; hook functions start with an upper-case letter, such as %q", h.Func, strings.ToUpper(name[:1])+name[1:])})
			continue
		}
		obj := p.Types.Scope().Lookup(name)
		if obj == nil {
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RuleFuncMissing, Hook: h.Num,
				Message: fmt.Sprintf("func %q: package %s declares no %s", h.Func, pkgPath, name)})
			continue
		}
		fn, ok := obj.(*types.Func)
		if !ok {
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RuleFuncKind, Hook: h.Num,
				Message: fmt.Sprintf("func %q is a %s, not a function declaration; declare it as func %s(ctx context.Context, tx hook.Tx) error", h.Func, objectKind(obj), name)})
			continue
		}
		if !types.Identical(fn.Type().Underlying(), hookSig) {
			ds = append(ds, diag.Diagnostic{Pos: h.FuncPos, Rule: RuleFuncSignature, Hook: h.Num,
				Message: fmt.Sprintf("func %q has signature %s, want the hook signature %s", h.Func, types.TypeString(fn.Type(), byName), types.TypeString(hookSig, byName))})
			continue
		}
		fs.Funcs[i] = fn
	}
	return fs, ds, nil
}

// loadHookPackages loads the hook packages (root and root/...), the
// runtime package HookPkgPath and every package of the main module that
// they reach: the roots, each with syntax and type information, as a load
// with LoadMode gives them, with their dependencies' types from export
// data. It does so without having the go command compile a root (see the
// package doc): two go lists, run at the same time, one of the roots'
// import graph (graphMode: file names and imports, no types, so no
// export data and no compilation), one of the packages the roots import
// that are not roots (depsMode: their export data, which the build cache
// has), and typeCheck type-checks the roots from source with them. Which
// packages the roots import is known only after the first: the second
// starts from a guess (guessImports) and is run again with the set the
// go command reported when the guess is not exactly that set (a build tag
// the guess could not see), so the result never depends on the guess.
// When the go command may rewrite go.mod (GOFLAGS=-mod=mod), two lists at
// the same time could read different requirements, or one could fail to
// write its own: the graph is listed first, and the dependencies it names
// after it; and go.mod changed while the two ran (a -mod=mod from go env
// -w) has them listed again, in turn. dirs are the directories of the
// hook packages (packageDirs), files their Go files (hookGoFiles), which
// parse meanwhile (parseAhead).
func loadHookPackages(moduleDir, module, root string, dirs, files []string, scope *codedigest.Scope) ([]*packages.Package, error) {
	rootPath := path.Join(module, strings.TrimPrefix(root, "./"))
	underRoot := func(p string) bool { return p == rootPath || strings.HasPrefix(p, rootPath+"/") }
	patterns := []string{root, root + "/...", HookPkgPath}
	fail := func(err error) error { return fmt.Errorf("loading the hook packages %s: %w", root, err) }
	fset := token.NewFileSet()
	ahead := parseAhead(fset, files)
	gomodPath := filepath.Join(moduleDir, "go.mod")
	gomod, _ := os.ReadFile(gomodPath)
	var depPkgs []*packages.Package
	var depErr error
	done := make(chan struct{})
	inTurn := modMod()
	if inTurn {
		// The go command may rewrite go.mod: the graph first, then the
		// dependencies it names (below).
		close(done)
		depErr = errors.New("listed after the graph")
	} else {
		guess := guessImports(moduleDir, module, rootPath, dirs, scope)
		go func() {
			defer close(done)
			depPkgs, depErr = loadDeps(moduleDir, fset, guess)
		}()
	}
	graph := func() (*hookGraph, error) {
		initial, err := packages.Load(&packages.Config{Mode: graphMode, Dir: moduleDir, Fset: fset}, patterns...)
		if err != nil {
			return nil, fail(err)
		}
		return readGraph(initial, underRoot), nil
	}
	g, err := graph()
	<-done
	if now, _ := os.ReadFile(gomodPath); !inTurn && !bytes.Equal(now, gomod) {
		// The go command rewrote go.mod (-mod=mod) while the two lists
		// ran: they may have read different requirements, and the one
		// whose rewrite lost failed or left go.mod as it wanted it. List
		// again, one after the other, from go.mod as the first leaves it.
		if g, err = graph(); err != nil {
			return nil, err
		}
		depErr = errors.New("go.mod changed")
	}
	if err != nil {
		return nil, err
	}
	if depErr != nil || !sameIDs(depPkgs, g.deps) {
		if depPkgs, err = loadDeps(moduleDir, fset, g.deps); err != nil {
			return nil, fail(err)
		}
	}
	if !typeCheck(g, depPkgs, fset, ahead) {
		// A dependency imports a root: one load of go/packages, which
		// compiles the roots.
		var mains []string
		for _, p := range g.roots {
			if !underRoot(p.PkgPath) && p.PkgPath != HookPkgPath {
				mains = append(mains, p.PkgPath)
			}
		}
		pkgs, err := packages.Load(&packages.Config{Mode: LoadMode, Dir: moduleDir}, append(patterns, mains...)...)
		if err != nil {
			return nil, fail(err)
		}
		return pkgs, nil
	}
	return g.roots, nil
}

// modMod reports whether GOFLAGS has the go command update go.mod
// (-mod=mod), which two go lists at the same time may both want to do;
// a -mod=mod the go command takes from its own configuration (go env -w)
// is seen afterwards, by go.mod having changed.
func modMod() bool {
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if f == "-mod=mod" || f == "--mod=mod" {
			return true
		}
	}
	return false
}

// guessImports returns a guess of the import paths, sorted, of the
// packages outside the main module (module, in moduleDir) and other than
// HookPkgPath that the roots of loadHookPackages import directly: the
// packages in and under rootPath (in dirs, rootPath's first), the runtime package and the packages of
// the main module they import, directly or not, as go/build reads their
// import declarations for the default build context. The runtime
// package's directory is guessed from the module's go.mod, go.work and
// vendor/ (codedigest.Scope.GuessDir). It is a guess for
// loadHookPackages, which checks it: it costs no go command.
func guessImports(moduleDir, module, rootPath string, dirs []string, scope *codedigest.Scope) []string {
	dirOf := func(importPath string) (string, bool) {
		if importPath == module {
			return moduleDir, true
		}
		rel, ok := strings.CutPrefix(importPath, module+"/")
		if !ok {
			return "", false
		}
		return filepath.Join(moduleDir, filepath.FromSlash(rel)), true
	}
	seen := make(map[string]bool)
	var queue []string
	add := func(importPath string) {
		if _, ok := dirOf(importPath); ok && !seen[importPath] {
			seen[importPath] = true
			queue = append(queue, importPath)
		}
	}
	for _, dir := range dirs {
		if rel, err := filepath.Rel(dirs[0], dir); err == nil {
			add(path.Join(rootPath, filepath.ToSlash(rel)))
		}
	}
	deps := make(map[string]bool)
	addImports := func(dir string) {
		bp, err := build.Default.ImportDir(dir, 0)
		if err != nil {
			return
		}
		for _, imp := range bp.Imports {
			if _, inMain := dirOf(imp); inMain {
				add(imp)
			} else if imp != HookPkgPath && imp != "C" {
				deps[imp] = true
			}
		}
	}
	if _, inMain := dirOf(HookPkgPath); inMain {
		add(HookPkgPath)
	} else if dir := scope.GuessDir(HookPkgPath); dir != "" {
		addImports(dir)
	}
	for len(queue) > 0 {
		importPath := queue[0]
		queue = queue[1:]
		dir, _ := dirOf(importPath)
		addImports(dir)
	}
	out := make([]string, 0, len(deps))
	for imp := range deps {
		out = append(out, imp)
	}
	slices.Sort(out)
	return out
}

// packageDirs returns rootDir and the directories under it that the
// pattern root/... matches, as the go command walks them: not those
// starting with "." or "_", testdata, vendor, or another module's.
func packageDirs(rootDir string) []string {
	var dirs []string
	_ = filepath.WalkDir(rootDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != rootDir && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if p != rootDir {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		dirs = append(dirs, p)
		return nil
	})
	return dirs
}

// byName qualifies types by package name, as they read in Go source.
func byName(p *types.Package) string { return p.Name() }

func objectKind(obj types.Object) string {
	switch obj.(type) {
	case *types.Var:
		return "variable"
	case *types.Const:
		return "constant"
	case *types.TypeName:
		return "type"
	}
	return "non-function"
}

// packageErrors turns the errors of a package that does not compile into
// diagnostics at their Go positions.
func packageErrors(p *packages.Package) []diag.Diagnostic {
	var ds []diag.Diagnostic
	for _, e := range p.Errors {
		ds = append(ds, diag.Diagnostic{Pos: parsePos(e.Pos, p), Rule: RulePackageError,
			Message: fmt.Sprintf("package %s: %s", p.PkgPath, e.Msg)})
	}
	return ds
}

// parsePos parses a go/packages error position FILE:LINE:COL; an error
// without one is placed at the package's first file.
func parsePos(s string, p *packages.Package) diag.Position {
	parts := strings.Split(s, ":")
	if len(parts) >= 3 {
		line, err1 := strconv.Atoi(parts[len(parts)-2])
		col, err2 := strconv.Atoi(parts[len(parts)-1])
		if err1 == nil && err2 == nil {
			return diag.Position{File: strings.Join(parts[:len(parts)-2], ":"), Line: line, Col: col}
		}
	}
	if len(parts) >= 2 {
		if line, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
			return diag.Position{File: strings.Join(parts[:len(parts)-1], ":"), Line: line}
		}
	}
	file := s
	if file == "" && len(p.GoFiles) > 0 {
		file = p.GoFiles[0]
	}
	if file == "" {
		file = p.PkgPath
	}
	return diag.Position{File: file, Line: 1}
}

// FuncPath returns the import path of the package declaring a func value
// of f's registry (module being the module path) and the function's name.
func FuncPath(module string, f *File, fn string) (pkgPath, name string) {
	sub, name := SplitFunc(fn)
	root := path.Clean(strings.TrimPrefix(f.Package, "./"))
	return path.Join(module, root, sub), name
}

// ErrNoFunc is returned by Digest for a hook whose function did not check.
var ErrNoFunc = errors.New("hook function not checked")

// Digest computes the code digest of hook i of f (indexed like File.Hooks)
// under algorithm alg: codedigest.Prefix ("h4:", from source with every
// build context, package names from the type checker, the code reached in
// the module cache), codedigest.PrefixH3, codedigest.PrefixH2 or
// codedigest.PrefixH1 (the earlier algorithms, to
// check pairs of digests recorded under them). Each digest is computed
// once.
func (fs *Funcs) Digest(f *File, i int, alg string) (codedigest.Result, error) {
	if res, ok := fs.digests[digestKey{i, alg}]; ok {
		return res, nil
	}
	h := f.Hooks[i]
	fn := fs.Funcs[i]
	if fn == nil {
		return codedigest.Result{}, fmt.Errorf("digest of hook %d (%s): %w", h.Num, h.Func, ErrNoFunc)
	}
	var res codedigest.Result
	var err error
	switch alg {
	case codedigest.Prefix:
		res, err = fs.Scope.Compute(fn.Pkg().Path(), fn.Name())
	case codedigest.PrefixH3:
		res, err = fs.Scope.ComputeH3(fn.Pkg().Path(), fn.Name())
	case codedigest.PrefixH2:
		res, err = fs.Scope.ComputeH2(fn.Pkg().Path(), fn.Name())
	case codedigest.PrefixH1:
		res, err = codedigest.ComputeH1(fs.Packages, fn)
	default:
		err = fmt.Errorf("unknown digest algorithm %q", alg)
	}
	if err != nil {
		return codedigest.Result{}, fmt.Errorf("digest of hook %d (%s): %w", h.Num, h.Func, err)
	}
	if fs.digests == nil {
		fs.digests = make(map[digestKey]codedigest.Result)
	}
	fs.digests[digestKey{i, alg}] = res
	return res, nil
}

// Digests computes the code digest of every hook, indexed like File.Hooks.
func (fs *Funcs) Digests(f *File) ([]codedigest.Result, error) {
	out := make([]codedigest.Result, len(f.Hooks))
	for i := range f.Hooks {
		res, err := fs.Digest(f, i, codedigest.Prefix)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}
