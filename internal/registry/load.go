package registry

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/tools/go/packages"
)

// graphMode is the mode of the load of the roots' import graph: what
// LoadFuncs and internal/codedigest read of every package but types, and
// the roots' compiled files, which typeCheck parses. Without NeedTypes,
// go/packages asks go list for no export data, so nothing is compiled.
const graphMode = packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles |
	packages.NeedImports | packages.NeedDeps | packages.NeedModule

// depsMode is the mode of the load of the packages the roots import that
// are not roots themselves: their types from export data (go list
// -export of them and their dependencies, which the build cache serves),
// and the type sizes of the build.
const depsMode = packages.NeedName | packages.NeedImports | packages.NeedTypes | packages.NeedTypesSizes

// hookGraph is the result of the first step of loadHookPackages: the
// graph load and the roots in it.
type hookGraph struct {
	// initial are the packages of the patterns, in go list's order.
	initial []*packages.Package
	// roots are the packages loaded from source: the hook packages, the
	// runtime package and the main module's packages they reach.
	roots []*packages.Package
	// deps are the import paths (package IDs), sorted, of the packages
	// that roots import and that are not roots.
	deps []string
}

// readGraph finds the roots and their dependencies in the packages of
// the graph load.
func readGraph(initial []*packages.Package, underRoot func(string) bool) *hookGraph {
	g := &hookGraph{initial: initial}
	isRoot := make(map[string]bool)
	var start []*packages.Package
	for _, p := range initial {
		if underRoot(p.PkgPath) || p.PkgPath == HookPkgPath {
			start = append(start, p)
		}
	}
	// The main module's packages that the hook packages and the runtime
	// package import, directly or not: the graph load lists every
	// dependency, so this is the go command's answer, not a guess.
	var reached []*packages.Package
	packages.Visit(start, nil, func(p *packages.Package) {
		if p.Module == nil || !p.Module.Main {
			return
		}
		if !underRoot(p.PkgPath) && p.PkgPath != HookPkgPath {
			reached = append(reached, p)
		}
	})
	slices.SortFunc(reached, func(a, b *packages.Package) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range append(start, reached...) {
		if !isRoot[p.ID] {
			isRoot[p.ID] = true
			g.roots = append(g.roots, p)
		}
	}
	deps := make(map[string]bool)
	for _, p := range g.roots {
		// Imports is keyed by the import path as written; the package is
		// the one it resolves to (vendor/, ImportMap), by ID.
		for _, imp := range p.Imports {
			if !isRoot[imp.ID] {
				deps[imp.ID] = true
			}
		}
	}
	for id := range deps {
		g.deps = append(g.deps, id)
	}
	slices.Sort(g.deps)
	return g
}

// loadDeps loads the roots' dependencies with depsMode; an empty list
// loads package unsafe alone, for the type sizes.
func loadDeps(moduleDir string, fset *token.FileSet, deps []string) ([]*packages.Package, error) {
	patterns := deps
	if len(patterns) == 0 {
		patterns = []string{"unsafe"}
	}
	return packages.Load(&packages.Config{Mode: depsMode, Dir: moduleDir, Fset: fset}, patterns...)
}

// sameIDs reports whether the packages of a dependency load are exactly
// the packages deps names.
func sameIDs(pkgs []*packages.Package, deps []string) bool {
	var ids []string
	for _, p := range pkgs {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(deps) == 0 {
		return slices.Equal(ids, []string{"unsafe"})
	}
	return slices.Equal(ids, deps)
}

// typeCheck type-checks the roots of g from source, each after the roots
// it imports, with the types of depPkgs (from export data) for the
// packages that are not roots, and fills the fields a load with LoadMode
// fills: Syntax, Types, TypesInfo, Fset, Errors, IllTyped (from the
// roots' own errors and their root imports'), TypeErrors of the roots;
// Types and Fset of the other packages of the graph. It makes
// the choices of go/packages' loader (loadPackage in
// golang.org/x/tools/go/packages): the files are CompiledGoFiles, parsed
// with comments and every error; the language version is the go line of
// the package's module; parse and type errors are appended to the go
// command's errors as go/packages reports them; the package of an import
// that is not a root must have complete types.
//
// It reports false, doing nothing, when a package that is not a root
// imports a root (a module that imports the main module back): its export
// data would have a copy of the root's types that are not the root's own;
// loadHookPackages then loads with go/packages alone.
func typeCheck(g *hookGraph, depPkgs []*packages.Package, fset *token.FileSet, ahead *parsed) bool {
	isRoot := make(map[string]*packages.Package, len(g.roots))
	for _, p := range g.roots {
		isRoot[p.ID] = p
	}
	depTypes := make(map[string]*packages.Package)
	cycle := false
	packages.Visit(depPkgs, nil, func(p *packages.Package) {
		if isRoot[p.ID] != nil {
			cycle = true
		}
		depTypes[p.ID] = p
	})
	if cycle {
		return false
	}
	var sizes types.Sizes
	for _, p := range depPkgs {
		if p.TypesSizes != nil {
			sizes = p.TypesSizes
			break
		}
	}

	// The roots' order: each after the roots it imports. go/packages
	// already drops an import that closes a cycle from Imports (the go
	// command reports the cycle as an error of the package, and the
	// import then fails as one without metadata), so the graph is
	// acyclic; an import found closing a cycle all the same is not waited
	// for, so that no root waits for itself.
	type rootState struct {
		p       *packages.Package
		wait    []*rootState
		cyclic  map[string]bool // import paths that close a cycle
		done    chan struct{}
		errs    []packages.Error
		typeErr []types.Error
	}
	states := make(map[string]*rootState, len(g.roots))
	for _, p := range g.roots {
		states[p.ID] = &rootState{p: p, done: make(chan struct{})}
	}
	const (
		white = iota
		grey
		black
	)
	color := make(map[*rootState]int)
	var visit func(s *rootState)
	visit = func(s *rootState) {
		color[s] = grey
		for _, path := range sortedKeys(s.p.Imports) {
			imp := states[s.p.Imports[path].ID]
			if imp == nil {
				continue
			}
			switch color[imp] {
			case grey:
				if s.cyclic == nil {
					s.cyclic = make(map[string]bool)
				}
				s.cyclic[path] = true
				continue
			case white:
				visit(imp)
			}
			s.wait = append(s.wait, imp)
		}
		color[s] = black
	}
	for _, p := range g.roots {
		if s := states[p.ID]; color[s] == white {
			visit(s)
		}
	}

	// The other packages of the graph: their types from the dependency
	// load (complete for the roots' imports; the others as far as export
	// data declared them), as go/packages gives a package it does not
	// type-check.
	packages.Visit(g.initial, nil, func(p *packages.Package) {
		if isRoot[p.ID] != nil {
			return
		}
		p.Fset = fset
		if d := depTypes[p.ID]; d != nil && d.Types != nil {
			p.Types = d.Types
		} else if p.PkgPath == "unsafe" {
			p.Types = types.Unsafe
		} else {
			p.Types = types.NewPackage(p.PkgPath, p.Name)
		}
	})

	var wg sync.WaitGroup
	for _, p := range g.roots {
		s := states[p.ID]
		wg.Go(func() {
			defer close(s.done)
			files, errs := parseFiles(fset, p.CompiledGoFiles, ahead)
			for _, s := range s.wait {
				<-s.done
			}
			checkPackage(p, files, errs, s.cyclic, depTypes, sizes, fset)
		})
	}
	wg.Wait()
	return true
}

// checkPackage type-checks the root p from its parsed files, as
// go/packages' loadPackage does.
func checkPackage(p *packages.Package, files []*ast.File, parseErrs []error, cyclic map[string]bool, depTypes map[string]*packages.Package, sizes types.Sizes, fset *token.FileSet) {
	p.Fset = fset
	if p.PkgPath == "unsafe" {
		p.Types = types.Unsafe
		p.Syntax = []*ast.File{}
		p.TypesInfo = newTypesInfo()
		return
	}
	// The package's name from the go command, not from the files (as
	// go/packages: no skew between the two).
	p.Types = types.NewPackage(p.PkgPath, p.Name)
	appendError := func(err error) {
		switch err := err.(type) {
		case packages.Error:
			p.Errors = append(p.Errors, err)
		case *os.PathError:
			p.Errors = append(p.Errors, packages.Error{Pos: err.Path + ":1", Msg: err.Err.Error(), Kind: packages.ParseError})
		case scanner.ErrorList:
			for _, e := range err {
				p.Errors = append(p.Errors, packages.Error{Pos: e.Pos.String(), Msg: e.Msg, Kind: packages.ParseError})
			}
		case types.Error:
			p.TypeErrors = append(p.TypeErrors, err)
			p.Errors = append(p.Errors, packages.Error{Pos: err.Fset.Position(err.Pos).String(), Msg: err.Msg, Kind: packages.TypeError})
		default:
			p.Errors = append(p.Errors, packages.Error{Pos: "-", Msg: err.Error(), Kind: packages.UnknownError})
		}
	}
	for _, err := range parseErrs {
		appendError(err)
	}
	p.Syntax = files
	p.TypesInfo = newTypesInfo()
	importer := importerFunc(func(path string) (*types.Package, error) {
		if path == "unsafe" {
			return types.Unsafe, nil
		}
		if cyclic[path] {
			return nil, fmt.Errorf("import cycle: %s imports %s", p.PkgPath, path)
		}
		imp := p.Imports[path]
		if imp == nil {
			// Skew between the go command's imports and the files'.
			return nil, fmt.Errorf("no metadata for %s", path)
		}
		if imp.Types != nil && imp.Types.Complete() {
			return imp.Types, nil
		}
		if d := depTypes[imp.ID]; d != nil && len(d.Errors) > 0 {
			return nil, fmt.Errorf("%s", d.Errors[0].Msg)
		}
		return nil, fmt.Errorf("no export data for %s", path)
	})
	tc := &types.Config{
		Importer: importer,
		Error:    appendError,
		Sizes:    sizes,
	}
	if p.Module != nil && p.Module.GoVersion != "" {
		tc.GoVersion = "go" + p.Module.GoVersion
	}
	typErr := types.NewChecker(tc, fset, p.Types, p.TypesInfo).Files(p.Syntax)
	// go/types of go1.21 and go1.22 failed fast on a "too new" error
	// without calling Error (go/packages does the same).
	if typErr != nil && len(p.Errors) == 0 && len(p.Syntax) > 0 {
		if msg := typErr.Error(); strings.HasPrefix(msg, "package requires newer Go version") {
			appendError(types.Error{Fset: fset, Pos: p.Syntax[0].Package, Msg: msg})
		}
	}
	if typErr != nil && len(p.Errors) == 0 {
		appendError(typErr)
	}
	illTyped := len(p.Errors) > 0
	for _, imp := range p.Imports {
		illTyped = illTyped || imp.IllTyped
	}
	p.IllTyped = illTyped
}

// parsed are Go files parsed ahead (parseAhead), by path.
type parsed struct {
	done  chan struct{}
	files map[string]parsedFile
}

type parsedFile struct {
	f   *ast.File
	err error
}

// parseAhead starts parsing, in the background, the Go files at paths
// (the hook packages', hookGoFiles), as parseFiles would: typeCheck takes
// them from there instead of reading them again, so that parsing overlaps
// the go lists. A file is used as it was read here.
func parseAhead(fset *token.FileSet, paths []string) *parsed {
	pa := &parsed{done: make(chan struct{}), files: make(map[string]parsedFile)}
	go func() {
		defer close(pa.done)
		files, errs := parseEach(fset, paths, nil)
		for i, path := range paths {
			pa.files[path] = parsedFile{files[i], errs[i]}
		}
	}()
	return pa
}

// hookGoFiles lists the Go files of dirs that a build may compile (not
// tests, nor names starting with "_" or ".", which the go command
// ignores): what parseAhead and codedigest.Scope.Prefetch read early.
func hookGoFiles(dirs []string) []string {
	var paths []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") && !strings.HasPrefix(n, "_") && !strings.HasPrefix(n, ".") {
				paths = append(paths, filepath.Join(dir, n))
			}
		}
	}
	return paths
}

// parseFiles parses the files, concurrently, as go/packages does: with
// comments and every error; a file that parses in part is kept. A file
// parsed ahead (ahead, which may be nil) is taken from there.
func parseFiles(fset *token.FileSet, names []string, ahead *parsed) ([]*ast.File, []error) {
	files, errs := parseEach(fset, names, ahead)
	var outFiles []*ast.File
	var outErrs []error
	for i := range names {
		if files[i] != nil {
			outFiles = append(outFiles, files[i])
		}
		if errs[i] != nil {
			outErrs = append(outErrs, errs[i])
		}
	}
	return outFiles, outErrs
}

// parseEach parses each of names, concurrently, or takes it from ahead.
func parseEach(fset *token.FileSet, names []string, ahead *parsed) ([]*ast.File, []error) {
	files := make([]*ast.File, len(names))
	errs := make([]error, len(names))
	if ahead != nil {
		<-ahead.done
	}
	var wg sync.WaitGroup
	for i, name := range names {
		if ahead != nil {
			if pf, ok := ahead.files[name]; ok {
				files[i], errs[i] = pf.f, pf.err
				continue
			}
		}
		wg.Go(func() {
			src, err := os.ReadFile(name)
			if err != nil {
				errs[i] = err
				return
			}
			files[i], errs[i] = parser.ParseFile(fset, name, src, parser.AllErrors|parser.ParseComments)
		})
	}
	wg.Wait()
	return files, errs
}

// newTypesInfo returns the types.Info go/packages fills for NeedTypesInfo.
func newTypesInfo() *types.Info {
	return &types.Info{
		Types:        make(map[ast.Expr]types.TypeAndValue),
		Defs:         make(map[*ast.Ident]types.Object),
		Uses:         make(map[*ast.Ident]types.Object),
		Implicits:    make(map[ast.Node]types.Object),
		Instances:    make(map[*ast.Ident]types.Instance),
		Scopes:       make(map[ast.Node]*types.Scope),
		Selections:   make(map[*ast.SelectorExpr]*types.Selection),
		FileVersions: make(map[*ast.File]string),
	}
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
