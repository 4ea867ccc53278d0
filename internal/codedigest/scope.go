package codedigest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

// PrefixH2 is the algorithm prefix of the digests Scope.ComputeH2 returns.
const PrefixH2 = "h2:"

// module is a module whose source is in a digest's scope.
type module struct {
	// Path is the module path, Dir its directory.
	Path, Dir string
	// Origin says why it is in scope: "main", "replace", "go.work" or
	// "vendor".
	Origin string
	// goLine is a vendored module's go version (vendor/modules.txt).
	goLine string
	// Version is the version of a module read from the module cache
	// (Origin "cache", h4), err why its directory could not be had.
	Version string
	err     error
}

// Scope is the code digests are computed over: the main module and the
// modules go.sum does not pin, read from source with every build context.
// It caches what it parsed and hashed; it is not safe for concurrent use.
type Scope struct {
	mainDir  string
	modules  []module          // longest path first
	requires map[string]string // module path -> version (and replacement) of pinned modules
	settings []setting         // go line and godebug settings
	fset     *token.FileSet
	pkgs     map[string]*pkgSrc
	modItems map[string]*item
	// addOrder are the modules in the order they were read (go.mod,
	// go.work, vendor/), for h3, where a later one wins; vendored are the
	// versions of the vendored modules.
	addOrder []module
	vendored map[string]string
	h3       h3state
	h4state
	prefetch *prefetched
	gomod    []byte // the main go.mod as NewScope read it
}

// setting is a piece of the build configuration in every digest; dir is
// the package directory of a main package's //go:debug line.
type setting struct{ key, name, value, dir string }

// NewScope reads the module in moduleDir: its go.mod (requirements,
// replaces, go line, godebug), the go.work that applies to it (GOWORK as
// the go command reads it) and vendor/modules.txt.
func NewScope(moduleDir string) (*Scope, error) {
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		return nil, fmt.Errorf("reading the digest scope: %w", err)
	}
	gomod := filepath.Join(abs, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return nil, fmt.Errorf("reading the digest scope: %w", err)
	}
	mf, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the digest scope: %w", err)
	}
	if mf.Module == nil {
		return nil, fmt.Errorf("reading the digest scope: %s has no module line", gomod)
	}
	s := &Scope{
		gomod:    data,
		mainDir:  abs,
		modules:  []module{{Path: mf.Module.Mod.Path, Dir: abs, Origin: "main"}},
		requires: make(map[string]string),
		fset:     token.NewFileSet(),
		pkgs:     make(map[string]*pkgSrc),
		modItems: make(map[string]*item),
		vendored: make(map[string]string),
	}
	s.addOrder = append(s.addOrder, s.modules[0])
	if mf.Go != nil {
		s.settings = append(s.settings, setting{"go.mod: go", "go.mod: go " + mf.Go.Version, mf.Go.Version, ""})
	}
	for _, g := range mf.Godebug {
		s.settings = append(s.settings, setting{"go.mod: godebug " + g.Key, "go.mod: godebug " + g.Key + "=" + g.Value, g.Value, ""})
	}
	for _, r := range mf.Require {
		s.requires[r.Mod.Path] = r.Mod.Version
	}
	for _, r := range mf.Replace {
		s.replace(abs, r)
	}
	if err := s.readWork(); err != nil {
		return nil, err
	}
	if err := s.readVendor(); err != nil {
		return nil, err
	}
	if err := s.readMainDebug(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(s.modules, func(a, b module) int { return len(b.Path) - len(a.Path) })
	return s, nil
}

// Renewed returns s itself when the main module's go.mod still has the
// bytes NewScope read, else a new Scope read from the module as it is now,
// which takes over what s prefetched (Prefetch). A go command run under
// -mod=mod may rewrite go.mod while it lists the packages (the missing
// requirements added): a Scope made before the load and used after it
// (to prefetch meanwhile) is renewed in between, so that the digests read
// go.mod as the build left it.
func (s *Scope) Renewed() (*Scope, error) {
	data, err := os.ReadFile(filepath.Join(s.mainDir, "go.mod"))
	if err == nil && bytes.Equal(data, s.gomod) {
		return s, nil
	}
	fresh, err := NewScope(s.mainDir)
	if err != nil {
		return nil, err
	}
	fresh.fset, fresh.prefetch = s.fset, s.prefetch
	return fresh, nil
}

// replace records a replace directive: a local directory is in scope, a
// module version is part of the required version.
func (s *Scope) replace(dir string, r *modfile.Replace) {
	if r.New.Version == "" {
		d := r.New.Path
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		s.modules = append(s.modules, module{Path: r.Old.Path, Dir: filepath.Clean(d), Origin: "replace"})
		s.addOrder = append(s.addOrder, s.modules[len(s.modules)-1])
		delete(s.requires, r.Old.Path)
		return
	}
	if v, ok := s.requires[r.Old.Path]; ok && (r.Old.Version == "" || r.Old.Version == v) {
		if r.New.Path == r.Old.Path {
			s.requires[r.Old.Path] = r.New.Version
		} else {
			s.requires[r.Old.Path] = r.New.Path + " " + r.New.Version
		}
	}
}

// readWork adds the modules of the go.work file that applies to the main
// module, as the go command finds it: GOWORK, else the nearest go.work in
// the directory or above.
func (s *Scope) readWork() error {
	file := os.Getenv("GOWORK")
	switch file {
	case "off":
		return nil
	case "":
		for d := s.mainDir; ; {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				file = filepath.Join(d, "go.work")
				break
			}
			parent := filepath.Dir(d)
			if parent == d {
				return nil
			}
			d = parent
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the digest scope: %w", err)
	}
	wf, err := modfile.ParseWork(file, data, nil)
	if err != nil {
		return fmt.Errorf("reading the digest scope: %w", err)
	}
	dir := filepath.Dir(file)
	for _, g := range wf.Godebug {
		s.settings = append(s.settings, setting{"go.work: godebug " + g.Key, "go.work: godebug " + g.Key + "=" + g.Value, g.Value, ""})
	}
	for _, u := range wf.Use {
		d := u.Path
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		d = filepath.Clean(d)
		if d == s.mainDir {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err != nil {
			return fmt.Errorf("reading the digest scope: go.work use %s: %w", u.Path, err)
		}
		path := modfile.ModulePath(data)
		if path == "" {
			return fmt.Errorf("reading the digest scope: go.work use %s: %s has no module line", u.Path, filepath.Join(d, "go.mod"))
		}
		s.modules = append(s.modules, module{Path: path, Dir: d, Origin: "go.work"})
		s.addOrder = append(s.addOrder, s.modules[len(s.modules)-1])
		delete(s.requires, path)
	}
	for _, r := range wf.Replace {
		s.replace(dir, r)
	}
	return nil
}

// readMainDebug adds the //go:debug directives of every main package of
// the main module: whichever of them builds the product's migrator, they
// set the GODEBUG defaults every hook in it runs with.
func (s *Scope) readMainDebug() error {
	fset := token.NewFileSet()
	err := s.walkGoFiles(func(p string) error {
		f, err := parser.ParseFile(fset, p, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil || f.Name.Name != "main" {
			return nil // a file that does not parse fails its own build
		}
		rel, err := filepath.Rel(s.mainDir, filepath.Dir(p))
		if err != nil {
			return err
		}
		for _, cg := range f.Comments {
			if cg.Pos() >= f.Package {
				break
			}
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "//go:debug ") {
					key := filepath.ToSlash(rel) + ": " + c.Text
					s.settings = append(s.settings, setting{key, key, c.Text, filepath.ToSlash(rel)})
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the digest scope: %w", err)
	}
	return nil
}

// readVendor adds the modules of vendor/modules.txt: the vendored copy is
// what a vendored build compiles, and go.sum does not check it.
func (s *Scope) readVendor() error {
	data, err := os.ReadFile(filepath.Join(s.mainDir, "vendor", "modules.txt"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the digest scope: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && f[0] == "##" && len(s.addOrder) > 0 && s.addOrder[len(s.addOrder)-1].Origin == "vendor" {
			for _, a := range strings.Split(strings.Join(f[1:], " "), ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(a), "go "); ok {
					s.addOrder[len(s.addOrder)-1].goLine = v
				}
			}
			continue
		}
		if len(f) < 3 || f[0] != "#" {
			continue
		}
		// The vendored copy is what a vendored build compiles, also of a
		// module replaced by a local directory.
		s.modules = slices.DeleteFunc(s.modules, func(m module) bool { return m.Path == f[1] && m.Origin != "main" })
		s.modules = append(s.modules, module{Path: f[1], Dir: filepath.Join(s.mainDir, "vendor", filepath.FromSlash(f[1])), Origin: "vendor"})
		if f[2] != "=>" {
			// Not the line of a replacement alone ("# path => dir").
			s.addOrder = append(s.addOrder, s.modules[len(s.modules)-1])
		}
		if v, ok := s.requires[f[1]]; ok {
			s.vendored[f[1]] = v
		}
		delete(s.requires, f[1])
	}
	return nil
}

// locate returns the module in scope that holds the package importPath and
// the package's directory; ok is false for a package outside the scope.
func (s *Scope) locate(importPath string) (module, string, bool) {
	for _, m := range s.modules {
		if importPath != m.Path && !strings.HasPrefix(importPath, m.Path+"/") {
			continue
		}
		dir, ok := m.pkgDir(importPath)
		if !ok {
			return module{}, "", false
		}
		return m, dir, true
	}
	return module{}, "", false
}

// pkgDir returns the directory of the package importPath of m; ok is
// false when a directory with its own go.mod below the module root, up to
// the package's, makes the package another module's (vendor/ has no
// go.mod of its own; a module whose directory could not be had, m.err, is
// not looked into).
func (m module) pkgDir(importPath string) (dir string, ok bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, m.Path), "/")
	dir = filepath.Join(m.Dir, filepath.FromSlash(rel))
	if m.Origin == "vendor" || m.err != nil {
		return dir, true
	}
	for d := dir; d != m.Dir && strings.HasPrefix(d, m.Dir); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return "", false
		}
	}
	return dir, true
}

// requirement returns the pinned module that provides importPath and its
// version; ok is false for the standard library.
func (s *Scope) requirement(importPath string) (mod, version string, ok bool) {
	first, _, _ := strings.Cut(importPath, "/")
	if !strings.Contains(first, ".") {
		return "", "", false
	}
	best := ""
	for m := range s.requires {
		if (importPath == m || strings.HasPrefix(importPath, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return importPath, "(not required in go.mod)", true
	}
	return best, s.requires[best], true
}

// walkGoFiles calls fn with the path of every Go source file of the main
// module that a build may compile: not a test, not hidden ("." or "_"),
// not under vendor/ or testdata/, not in a nested module.
func (s *Scope) walkGoFiles(fn func(path string) error) error {
	return filepath.WalkDir(s.mainDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != s.mainDir && (name == "vendor" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); p != s.mainDir && err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		return fn(p)
	})
}
