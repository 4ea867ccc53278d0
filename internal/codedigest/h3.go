package codedigest

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/tools/go/packages"
)

// PrefixH3 is the algorithm prefix of the digests Scope.ComputeH3
// returns, the algorithm of hookreg's releases before h4.
const PrefixH3 = "h3:"

// ErrNotDeclared is returned by Compute for a function that its package
// does not declare, or a package outside the scope.
var ErrNotDeclared = errors.New("not declared")

// MigratorPkgPath is the import path of the migrator CLI: a main package
// whose imports reach it builds the product's migrator, and its //go:debug
// lines set the GODEBUG defaults the hooks run with.
const MigratorPkgPath = "github.com/hookreg/hookreg/migrator"

// h3state is what Compute caches, apart from h2's.
type h3state struct {
	pkgs map[string]*pkg3
	// names are package names by import path, as the go command and
	// the type checker of the loaded packages read them.
	names map[string]string
	// clauses are the names of the packages in scope, read from their
	// package clauses.
	clauses map[string]string
	// aliases are, per package path, the alias type names the type
	// checker resolved to a named type of the same package.
	aliases map[string]map[string][]string
	// noVendor is set when the go command builds without vendor/ (its
	// packages of other modules come from elsewhere).
	noVendor bool
	// modules are the modules in scope, a later source (go.work,
	// vendor) overriding an earlier one (go.mod), longest path first.
	modules []module
	// debug are the //go:debug lines of the migrator's main packages.
	debug []setting
	ready bool
}

// UsePackages gives Compute what the go command and the type checker know
// of the packages in pkgs and their imports: package names (an import's
// name is its package clause, not the last element of its path), alias
// types (a method declared on an alias receiver belongs to the aliased
// type), and whether the build uses vendor/. Without it, Compute reads
// names from the package clauses of packages in scope and guesses the
// others from their paths (see the package doc).
func (s *Scope) UsePackages(pkgs []*packages.Package) {
	st := s.h3init()
	s.usePackagesH4(pkgs)
	// The vendor directory of the tree pkgs were loaded from (the
	// packages of another version of the module may be given).
	vendor := filepath.Join(s.mainDir, "vendor") + string(filepath.Separator)
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if p.Module != nil && p.Module.Main && p.Module.Dir != "" {
			vendor = filepath.Join(p.Module.Dir, "vendor") + string(filepath.Separator)
		}
	})
	sawDep, sawVendor := false, false
	var visitTypes func(t *types.Package)
	seenTypes := make(map[*types.Package]bool)
	visitTypes = func(t *types.Package) {
		if t == nil || seenTypes[t] {
			return
		}
		seenTypes[t] = true
		if t.Name() != "" {
			st.names[t.Path()] = t.Name()
		}
		for _, imp := range t.Imports() {
			visitTypes(imp)
		}
	}
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if p.Name != "" {
			st.names[p.PkgPath] = p.Name
		}
		visitTypes(p.Types)
		if p.Module != nil && !p.Module.Main && len(p.GoFiles) > 0 {
			sawDep = true
			if strings.HasPrefix(p.GoFiles[0], vendor) {
				sawVendor = true
			}
		}
		if p.Types == nil || p.TypesInfo == nil {
			return
		}
		sc := p.Types.Scope()
		for _, n := range sc.Names() {
			tn, ok := sc.Lookup(n).(*types.TypeName)
			if !ok || !tn.IsAlias() {
				continue
			}
			if named, ok := types.Unalias(tn.Type()).(*types.Named); ok && named.Obj().Pkg() == p.Types {
				m := st.aliases[p.PkgPath]
				if m == nil {
					m = make(map[string][]string)
					st.aliases[p.PkgPath] = m
				}
				m[n] = append(m[n], named.Obj().Name())
			}
		}
	})
	if sawDep && !sawVendor && !st.noVendor {
		st.noVendor = true
		st.modules = s.modules3(true)
		clear(st.pkgs)
	}
}

func (s *Scope) h3init() *h3state {
	st := &s.h3
	if st.ready {
		return st
	}
	st.ready = true
	st.pkgs = make(map[string]*pkg3)
	st.names = make(map[string]string)
	st.clauses = make(map[string]string)
	st.aliases = make(map[string]map[string][]string)
	st.modules = s.modules3(false)
	return st
}

// modules3 returns the modules in scope as the go command resolves them:
// it reads go.mod, then go.work, then vendor/ (unless noVendor), and a
// later entry for the same module path wins. Longest path first.
func (s *Scope) modules3(noVendor bool) []module {
	var out []module
	seen := make(map[string]bool)
	for _, m := range slices.Backward(s.addOrder) {
		if !seen[m.Path] && !(noVendor && m.Origin == "vendor") {
			seen[m.Path] = true
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b module) int { return len(b.Path) - len(a.Path) })
	return out
}

// pkg3 is one package of the scope for h3, read from every file of its
// directory.
type pkg3 struct {
	path, id, dir, name string
	mod                 module
	err                 error
	// decls are the package-level declarations by name (several for a
	// name declared in several conditional files); methods by the name
	// of the receiver's named type (aliases resolved).
	decls   map[string][]*item
	methods map[string][]*item
	// always come with the package's code: conditional and non-Go files,
	// embedded files, blank imports, the module's go line.
	always []*item
	// state runs at program start or changes the program's build
	// (//go:linkname, //go:debug): init functions, initialisers that run
	// code, their order, and directives. It counts for every package of
	// the import closure.
	state []*item
	// imports are the packages in scope it imports, in any file.
	imports []string
	// modules are the pinned modules it imports blank.
	modules []*item
	files   []*file3
}

// file3 is a parsed Go file of a package.
type file3 struct {
	base, name string // file name, and slash path shown in Decl.Name
	ast        *ast.File
	imports    map[string]string // local name -> import path
	dots       []string
	cond       bool
	item       *item // the whole-file item of a conditional file
	// decls are the hashed declarations, in source order.
	decls []decl3
	// normal are the normal forms of its declarations (normalForms).
	normal map[ast.Node]normalized
}

// decl3 is one hashed declaration of a file.
type decl3 struct {
	it   *item
	node ast.Node
	// init is an init function; state an initialiser that runs code.
	init, state bool
}

// ComputeH3 returns the "h3:" code digest of the function name of the
// package pkgPath (in scope): modules pinned by go.sum are out of its
// scope, their required versions are items instead.
func (s *Scope) ComputeH3(pkgPath, name string) (Result, error) {
	return s.compute(PrefixH3, pkgPath, name)
}

// compute is the walk of h3 and h4, which differ in their scope (see
// Scope.deps).
func (s *Scope) compute(prefix, pkgPath, name string) (Result, error) {
	st := s.h3init()
	p, err := s.pkg3(pkgPath)
	if err != nil {
		return Result{}, fmt.Errorf("computing code digest of %s: %w", name, err)
	}
	if p == nil {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s is not in the module: %w", name, pkgPath, ErrNotDeclared)
	}
	roots := p.decls[name]
	if len(roots) == 0 {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s declares no %s: %w", name, pkgPath, name, ErrNotDeclared)
	}
	if st.debug == nil {
		if st.debug, err = s.migratorDebug(); err != nil {
			return Result{}, fmt.Errorf("computing code digest of %s: %w", name, err)
		}
	}
	w := &walk3{s: s, seen: make(map[*item]bool), reached: make(map[*pkg3]bool), closure: make(map[*pkg3]bool)}
	for _, set := range s.settings {
		if set.dir == "" {
			w.push(&item{id: set.key, name: set.name, hash: hashString(set.value), resolved: true})
		}
	}
	for _, set := range st.debug {
		w.push(&item{id: set.key, name: set.name, hash: hashString(set.value), resolved: true})
	}
	for _, r := range roots {
		w.push(r)
	}
	if err := w.reach(p); err != nil {
		return Result{}, fmt.Errorf("computing code digest of %s: %w", name, err)
	}
	for len(w.queue) > 0 {
		it := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		if !it.resolved {
			it.resolved = true
			if it.resolve != nil {
				it.resolve(it)
			}
		}
		for _, d := range it.deps {
			w.push(d)
		}
		for _, q := range it.pkgs3 {
			if err := w.reach(q); err != nil {
				return Result{}, fmt.Errorf("computing code digest of %s: %w", name, err)
			}
		}
	}
	decls := make([]Decl, 0, len(w.seen))
	for it := range w.seen {
		decls = append(decls, Decl{Name: it.name, Hash: it.hash, ID: it.id})
	}
	slices.SortFunc(decls, func(a, b Decl) int { return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Hash, b.Hash)) })
	h := sha256.New()
	for _, d := range decls {
		fmt.Fprintf(h, "%s %s\n", d.ID, d.Hash)
	}
	slices.SortFunc(decls, func(a, b Decl) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Hash, b.Hash)) })
	if s.deps {
		w.markModules(decls)
	}
	return Result{Digest: prefix + base64.StdEncoding.EncodeToString(h.Sum(nil)), Decls: decls}, nil
}

type walk3 struct {
	s       *Scope
	seen    map[*item]bool
	reached map[*pkg3]bool
	closure map[*pkg3]bool
	queue   []*item
}

func (w *walk3) push(it *item) {
	if !w.seen[it] {
		w.seen[it] = true
		w.queue = append(w.queue, it)
	}
}

// reach adds what comes with a package whose code is used, and the state
// of its import closure.
func (w *walk3) reach(p *pkg3) error {
	if p == nil || w.reached[p] {
		return nil
	}
	w.reached[p] = true
	for _, it := range p.always {
		w.push(it)
	}
	return w.initClosure(p)
}

// initClosure adds the package state of p and of every package in scope
// it imports, transitively.
func (w *walk3) initClosure(p *pkg3) error {
	if w.closure[p] {
		return nil
	}
	w.closure[p] = true
	if len(p.state) > 0 && !w.reached[p] {
		// Its code runs at program start or is linked into it: what
		// comes with its code counts too.
		w.reached[p] = true
		for _, it := range p.always {
			w.push(it)
		}
	}
	for _, it := range p.state {
		w.push(it)
	}
	for _, it := range p.modules {
		w.push(it)
	}
	for _, imp := range p.imports {
		q, err := w.s.pkg3(imp)
		if err != nil {
			return err
		}
		if q != nil {
			if err := w.initClosure(q); err != nil {
				return err
			}
		}
	}
	return nil
}

// locate3 is locate over the modules as the go command resolves them
// (go.work over go.mod, vendor/ only when the build uses it).
func (s *Scope) locate3(importPath string) (module, string, bool) {
	for _, m := range s.h3init().modules {
		if importPath != m.Path && !strings.HasPrefix(importPath, m.Path+"/") {
			continue
		}
		dir, ok := m.pkgDir(importPath)
		if !ok {
			return module{}, "", false
		}
		return m, dir, true
	}
	if s.deps {
		return s.locateDep(importPath)
	}
	return module{}, "", false
}

// pkg3 returns the package importPath, parsed; nil when it is not in scope.
func (s *Scope) pkg3(importPath string) (*pkg3, error) {
	st := s.h3init()
	if p, ok := st.pkgs[importPath]; ok {
		if p == nil {
			return nil, nil
		}
		return p, p.err
	}
	mod, dir, ok := s.locate3(importPath)
	if !ok {
		st.pkgs[importPath] = nil
		return nil, nil
	}
	p := &pkg3{path: importPath, id: importPath, dir: dir, mod: mod, decls: make(map[string][]*item), methods: make(map[string][]*item)}
	if mod.Origin == "main" {
		if rel, err := filepath.Rel(s.mainDir, dir); err == nil {
			p.id = filepath.ToSlash(rel)
		}
	}
	st.pkgs[importPath] = p
	if mod.err != nil {
		p.err = fmt.Errorf("reading package %s: %w", importPath, mod.err)
		return p, p.err
	}
	if err := s.parse3(p); err != nil {
		p.err = fmt.Errorf("reading package %s: %w", importPath, err)
	}
	return p, p.err
}

// packageName returns the name of the package importPath: from its
// package clause when it is in scope, from the go command and the type
// checker (UsePackages), else guessed from the path as the go command's
// own heuristic for goimports does (last element without a major version
// suffix, ".vN", "go-" prefix or "-go" suffix).
func (s *Scope) packageName(importPath string) string {
	if _, dir, ok := s.locate3(importPath); ok {
		// In scope, the package clause of this tree (packages given to
		// UsePackages may come from another version of the module).
		if n, ok := s.h3.clauses[importPath]; ok {
			return n
		}
		if n := clauseName(dir); n != "" {
			s.h3.clauses[importPath] = n
			return n
		}
	}
	if n, ok := s.h3.names[importPath]; ok {
		return n
	}
	base := path.Base(importPath)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" && path.Dir(importPath) != "." {
		base = path.Base(path.Dir(importPath))
	}
	if i := strings.Index(base, ".v"); i > 0 && strings.Trim(base[i+2:], "0123456789") == "" {
		base = base[:i]
	}
	base = strings.TrimSuffix(strings.TrimPrefix(base, "go-"), "-go")
	return strings.NewReplacer("-", "_", ".", "_").Replace(base)
}

// clauseName returns the package name of the first non-test Go file of
// dir that some build compiles.
func clauseName(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil || never(f) {
			continue
		}
		return f.Name.Name
	}
	return ""
}

// never reports a file no build compiles: its constraint is false
// whatever the build tags, with the tag "ignore" unset (the convention for
// generators run by go generate, and for go run scripts).
func never(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			if !constraint.IsGoBuild(c.Text) {
				continue
			}
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				return false
			}
			var tags []string
			expr.Eval(func(tag string) bool {
				if tag != "ignore" && !slices.Contains(tags, tag) {
					tags = append(tags, tag)
				}
				return false
			})
			if len(tags) > 16 {
				return false
			}
			for set := 0; set < 1<<len(tags); set++ {
				if expr.Eval(func(tag string) bool {
					i := slices.Index(tags, tag)
					return i >= 0 && set&(1<<i) != 0
				}) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// parse3 reads every file of p's directory that some build of the package
// compiles, and hashes its pieces.
func (s *Scope) parse3(p *pkg3) error {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	cgo := false
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") {
			continue
		}
		show := s.show3(p, n)
		if slices.Contains(nonGo, filepath.Ext(n)) {
			data, err := os.ReadFile(filepath.Join(p.dir, n))
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			p.always = append(p.always, &item{id: p.id + ": file " + n, name: show + ": file " + n, hash: base64.StdEncoding.EncodeToString(sum[:]), resolved: true})
			continue
		}
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		full := filepath.Join(p.dir, n)
		pre, ok := s.prefetched(full)
		if ok && pre.never {
			continue
		}
		f, normal := pre.ast, pre.normal
		if !ok {
			f, err = parser.ParseFile(s.fset, full, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			if never(f) {
				continue
			}
			simplify(f)
		}
		if p.name == "" {
			p.name = f.Name.Name
		}
		sf := &file3{base: n, name: show, ast: f, imports: make(map[string]string), cond: conditional(n, f), normal: normal}
		p.files = append(p.files, sf)
	}
	normalForms(s.fset, p.files)
	blank := make(map[string]bool)
	imports := make(map[string]bool)
	var embeds []string
	for _, sf := range p.files {
		for _, im := range sf.ast.Imports {
			ip, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				continue
			}
			if ip == "C" {
				cgo = true
				continue
			}
			var name string
			if im.Name != nil {
				name = im.Name.Name
			} else {
				name = s.packageName(ip)
			}
			switch name {
			case "_":
				blank[ip] = true
			case ".":
				sf.dots = append(sf.dots, ip)
			default:
				sf.imports[name] = ip
			}
			if _, _, ok := s.locate3(ip); ok {
				imports[ip] = true
			} else if m, v, ok := s.requirement3(ip); ok && name == "_" {
				p.modules = append(p.modules, s.moduleItem(m, v))
			}
		}
		for _, cg := range sf.ast.Comments {
			for _, c := range cg.List {
				if pats, ok := strings.CutPrefix(c.Text, "//go:embed "); ok {
					embeds = append(embeds, pats)
				}
			}
		}
	}
	aliases := s.aliasTargets(p)
	for _, sf := range p.files {
		if err := s.declare3(p, sf, aliases); err != nil {
			return fmt.Errorf("%s: %w", sf.name, err)
		}
	}
	s.packageItems(p, blank, embeds, cgo)
	for ip := range imports {
		p.imports = append(p.imports, ip)
	}
	slices.Sort(p.imports)
	return nil
}

// packageItems adds the pieces of p that belong to no declaration: blank
// imports, embedded files, directives, the init order, cgo sources in
// subdirectories and the go line of a module other than the main one.
func (s *Scope) packageItems(p *pkg3, blank map[string]bool, embeds []string, cgo bool) {
	if len(blank) > 0 {
		paths := make([]string, 0, len(blank))
		for ip := range blank {
			paths = append(paths, ip)
		}
		slices.Sort(paths)
		p.always = append(p.always, &item{id: p.id + ": import _", name: p.id + ": import _ " + strings.Join(paths, ", "), hash: hashString(strings.Join(paths, "\n")), resolved: true})
	}
	if len(embeds) > 0 {
		// Every //go:embed of every file, attached to its var or not:
		// the files' names and bytes.
		slices.Sort(embeds)
		h := sha256.New()
		x := &hasher{h: h}
		for _, pats := range embeds {
			x.write(pats)
			s.hashEmbed(x, p.dir, pats)
		}
		p.always = append(p.always, &item{id: p.id + ": embedded files", name: p.id + ": //go:embed " + strings.Join(embeds, " "), hash: base64.StdEncoding.EncodeToString(h.Sum(nil)), resolved: true})
	}
	if cgo {
		if it := s.cgoTree(p); it != nil {
			p.always = append(p.always, it)
		}
		if s.deps { // h4: h3 stays what it was
			if it := s.cgoOutside(p); it != nil {
				p.always = append(p.always, it)
			}
		}
	}
	if p.mod.Origin != "main" {
		if v := moduleGo(p.mod); v != "" {
			p.always = append(p.always, &item{id: "module " + p.mod.Path + ": go", name: p.mod.Path + "/go.mod: go " + v, hash: hashString(v), resolved: true})
		}
	}
	// Directives that change the program wherever the package is linked:
	// both sides of //go:linkname (push or pull), //go:debug.
	var directives []string
	for _, sf := range p.files {
		for _, cg := range sf.ast.Comments {
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "//go:linkname ") || strings.HasPrefix(c.Text, "//go:debug ") {
					directives = append(directives, c.Text)
				}
			}
		}
	}
	if len(directives) > 0 {
		slices.Sort(directives)
		it := &item{id: p.id + ": directives", name: p.id + ": " + strings.Join(directives, ", "), hash: hashString(strings.Join(directives, "\n"))}
		it.resolve = func(it *item) {
			for _, d := range directives {
				s.linkname3(p, d, it)
			}
		}
		p.state = append(p.state, it)
	}
	// Initialisation order: the initialisers that run code, in the
	// order of the files as the go command passes them (sorted by name)
	// and of the source, then the init functions in the same order. The
	// pieces themselves are items of their own; this one is their order.
	var order []string
	var n int
	for _, wantInit := range []bool{false, true} {
		for _, sf := range p.files {
			for _, d := range sf.decls {
				if (wantInit && d.init) || (!wantInit && d.state) {
					order = append(order, d.it.hash)
					if !sf.cond {
						p.state = append(p.state, d.it)
					}
					n++
				}
			}
		}
	}
	if n > 0 {
		p.state = append(p.state, &item{id: p.id + ": init order", name: p.id + ": init order (" + strconv.Itoa(n) + " initialisers and init functions)", hash: hashString(strings.Join(order, "\n")), resolved: true})
	}
	for _, sf := range p.files {
		if sf.cond && slices.ContainsFunc(sf.decls, func(d decl3) bool { return d.init || d.state }) {
			p.state = append(p.state, sf.item)
		}
	}
}

// moduleGo returns the go line of a module in scope other than the main
// one: its go.mod's, or vendor/modules.txt's for a vendored module.
func moduleGo(m module) string {
	if m.Origin == "vendor" {
		return m.goLine
	}
	data, err := os.ReadFile(filepath.Join(m.Dir, "go.mod"))
	if err != nil {
		return ""
	}
	mf, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil || mf.Go == nil {
		return ""
	}
	return mf.Go.Version
}

// cgoTree hashes the C sources below a cgo package's directory, which its
// preamble may include ("sub/x.h") and the go command does not list.
func (s *Scope) cgoTree(p *pkg3) *item {
	h := sha256.New()
	x := &hasher{h: h}
	n := 0
	_ = filepath.WalkDir(p.dir, func(fp string, d fs.DirEntry, err error) error {
		if err != nil || fp == p.dir {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if otherTree(fp, name) {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(fp) == p.dir || !slices.Contains(nonGo, filepath.Ext(name)) {
			return nil
		}
		data, err := os.ReadFile(fp)
		rel, _ := filepath.Rel(p.dir, fp)
		x.write(filepath.ToSlash(rel))
		if err != nil {
			x.write("unreadable")
		}
		x.write(string(data))
		n++
		return nil
	})
	if n == 0 {
		return nil
	}
	return &item{id: p.id + ": cgo sources below", name: p.id + ": C sources in subdirectories (" + strconv.Itoa(n) + ")", hash: base64.StdEncoding.EncodeToString(h.Sum(nil)), resolved: true}
}

// cgoSrcdir finds the paths a #cgo line names below ${SRCDIR}.
var cgoSrcdir = regexp.MustCompile(`\$\{SRCDIR\}([^\s"']*)`)

// cgoInclude finds the file a quoted #include names.
var cgoInclude = regexp.MustCompile(`^\s*#\s*include\s*"([^"]+)"`)

// cgoLibs are the extensions of the libraries and objects a #cgo LDFLAGS
// line may name, hashed with the C sources of the directories it names.
var cgoLibs = []string{".a", ".o", ".so", ".dylib", ".lib"}

// cgoOutside hashes the C sources outside a cgo package's directory that
// its build reads and the go command does not list: below the directories
// (and the files) its #cgo lines name with ${SRCDIR} ("-I${SRCDIR}/../include"),
// and the files a quoted #include of its preamble names outside its
// directory ("../../include/x.h"), with those that such a file includes in
// turn. Paths are relative to the package's directory. Only files in the
// package's module count: what lies outside it (a system header, another
// checkout) is not the module's code, as the toolchain is not, and a walk
// must never climb into the module cache or the file system above.
func (s *Scope) cgoOutside(p *pkg3) *item {
	within := func(dir, fp string) bool {
		rel, err := filepath.Rel(dir, fp)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	inside := func(fp string) bool { return within(p.dir, fp) }
	inModule := func(fp string) bool { return p.mod.Dir != "" && within(p.mod.Dir, fp) }
	seen := make(map[string]bool)
	var files, queue []string
	add := func(fp string) {
		if !seen[fp] && !inside(fp) && inModule(fp) {
			seen[fp] = true
			files = append(files, fp)
			queue = append(queue, fp)
		}
	}
	includes := func(dir, text string) {
		for _, line := range strings.Split(text, "\n") {
			if m := cgoInclude.FindStringSubmatch(line); m != nil && !filepath.IsAbs(m[1]) {
				if fp := filepath.Join(dir, filepath.FromSlash(m[1])); fileExists(fp) {
					add(fp)
				}
			}
		}
	}
	// The package's own C sources (its directory's and its
	// subdirectories', which cgoTree hashes) may include files outside it.
	_ = filepath.WalkDir(p.dir, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if fp != p.dir && otherTree(fp, name) {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.Contains(nonGo, filepath.Ext(name)) {
			if data, err := os.ReadFile(fp); err == nil {
				includes(filepath.Dir(fp), string(data))
			}
		}
		return nil
	})
	for _, sf := range p.files {
		if !slices.ContainsFunc(sf.ast.Imports, func(im *ast.ImportSpec) bool { return im.Path.Value == `"C"` }) {
			continue
		}
		for _, cg := range sf.ast.Comments {
			text := cg.Text()
			includes(p.dir, text)
			for _, line := range strings.Split(text, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "#cgo ") {
					continue
				}
				for _, m := range cgoSrcdir.FindAllStringSubmatch(line, -1) {
					fp := filepath.Join(p.dir, filepath.FromSlash(m[1]))
					if inside(fp) || !inModule(fp) {
						continue // cgoTree's, or not the module's
					}
					fi, err := os.Stat(fp)
					switch {
					case err != nil:
					case fi.IsDir():
						_ = filepath.WalkDir(fp, func(f string, d fs.DirEntry, err error) error {
							if err != nil {
								return nil
							}
							name := d.Name()
							if d.IsDir() {
								if f != fp && otherTree(f, name) {
									return filepath.SkipDir
								}
								return nil
							}
							if slices.Contains(nonGo, filepath.Ext(name)) || slices.Contains(cgoLibs, filepath.Ext(name)) {
								add(f)
							}
							return nil
						})
					default:
						add(fp)
					}
				}
			}
		}
	}
	h := sha256.New()
	x := &hasher{h: h}
	for len(queue) > 0 {
		fp := queue[0]
		queue = queue[1:]
		if data, err := os.ReadFile(fp); err == nil {
			includes(filepath.Dir(fp), string(data))
		}
	}
	if len(files) == 0 {
		return nil
	}
	slices.Sort(files)
	for _, fp := range files {
		rel, _ := filepath.Rel(p.dir, fp)
		x.write(filepath.ToSlash(rel))
		data, err := os.ReadFile(fp)
		if err != nil {
			x.write("unreadable")
		}
		x.write(string(data))
	}
	return &item{id: p.id + ": cgo sources outside", name: p.id + ": C sources outside the package directory (" + strconv.Itoa(len(files)) + ")", hash: base64.StdEncoding.EncodeToString(h.Sum(nil)), resolved: true}
}

// otherTree reports whether the directory dir, named name, below a cgo
// package's directory (or a directory its #cgo lines name) holds no C
// source of the package: test data, a vendor tree, a hidden or "_"
// directory, another module.
func otherTree(dir, name string) bool {
	return name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || fileExists(filepath.Join(dir, "go.mod"))
}

// fileExists reports whether fp names a file or directory.
func fileExists(fp string) bool {
	_, err := os.Stat(fp)
	return err == nil
}

func (s *Scope) show3(p *pkg3, name string) string {
	if p.mod.Origin == "main" {
		return path.Join(p.id, name)
	}
	return p.path + "/" + name
}

// aliasTargets maps the alias type names of p to the names of the named
// types of p they stand for: from the type checker (UsePackages) and from
// the syntax of every file, so that files of other builds count too.
func (s *Scope) aliasTargets(p *pkg3) map[string][]string {
	direct := make(map[string][]string)
	for name, targets := range s.h3.aliases[p.path] {
		direct[name] = append(direct[name], targets...)
	}
	for _, sf := range p.files {
		for _, d := range sf.ast.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, sp := range g.Specs {
				ts := sp.(*ast.TypeSpec)
				if !ts.Assign.IsValid() {
					continue
				}
				if t := recvType(ts.Type); t != "" && !slices.Contains(direct[ts.Name.Name], t) {
					direct[ts.Name.Name] = append(direct[ts.Name.Name], t)
				}
			}
		}
	}
	// Follow chains (A = B, B = T).
	out := make(map[string][]string)
	for name := range direct {
		seen := map[string]bool{name: true}
		queue := []string{name}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			for _, t := range direct[n] {
				if !seen[t] {
					seen[t] = true
					queue = append(queue, t)
					out[name] = append(out[name], t)
				}
			}
		}
	}
	return out
}

// declare3 hashes the declarations of sf and adds them to p: a
// conditional file's through its whole-file item.
func (s *Scope) declare3(p *pkg3, sf *file3, aliases map[string][]string) error {
	if sf.cond {
		sf.item = &item{id: p.id + ": file " + sf.base, name: sf.name + ": file " + sf.base}
	}
	add := func(names []string, it *item) {
		for _, n := range names {
			if n != "_" {
				p.decls[n] = append(p.decls[n], it)
			}
		}
	}
	for _, d := range sf.ast.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			isInit := d.Recv == nil && d.Name.Name == "init"
			it, err := s.declItem3(p, sf, d, d.Doc, nil, "func", funcName(d), isInit)
			if err != nil {
				return err
			}
			sf.decls = append(sf.decls, decl3{it: it, node: d, init: isInit})
			if sf.cond {
				it = sf.item
			}
			switch {
			case isInit:
			case d.Recv != nil && len(d.Recv.List) > 0:
				t := recvType(d.Recv.List[0].Type)
				for _, k := range append([]string{t}, aliases[t]...) {
					p.methods[k] = append(p.methods[k], it)
				}
			default:
				add([]string{d.Name.Name}, it)
			}
		case *ast.GenDecl:
			switch d.Tok {
			case token.IMPORT:
			case token.CONST:
				var names []string
				for _, sp := range d.Specs {
					for _, n := range sp.(*ast.ValueSpec).Names {
						names = append(names, n.Name)
					}
				}
				it, err := s.declItem3(p, sf, d, d.Doc, nil, "const", strings.Join(names, ", "), false)
				if err != nil {
					return err
				}
				sf.decls = append(sf.decls, decl3{it: it, node: d})
				if sf.cond {
					it = sf.item
				}
				add(names, it)
			default:
				for _, sp := range d.Specs {
					switch sp := sp.(type) {
					case *ast.TypeSpec:
						it, err := s.declItem3(p, sf, sp, d.Doc, sp.Doc, "type", sp.Name.Name, false)
						if err != nil {
							return err
						}
						sf.decls = append(sf.decls, decl3{it: it, node: sp})
						if sf.cond {
							it = sf.item
						} else {
							name := sp.Name.Name
							it.resolve = func(it *item) {
								s.refs3(p, sf, sp, it)
								it.deps = append(it.deps, p.methods[name]...)
							}
						}
						add([]string{sp.Name.Name}, it)
					case *ast.ValueSpec:
						names := make([]string, len(sp.Names))
						for i, n := range sp.Names {
							names[i] = n.Name
						}
						blank := slices.Contains(names, "_")
						it, err := s.declItem3(p, sf, sp, d.Doc, sp.Doc, d.Tok.String(), strings.Join(names, ", "), blank)
						if err != nil {
							return err
						}
						state := blank && len(sp.Values) > 0
						for _, v := range sp.Values {
							state = state || s.runsCode3(p, sf, v)
						}
						sf.decls = append(sf.decls, decl3{it: it, node: sp, state: state})
						if sf.cond {
							it = sf.item
						}
						add(names, it)
					}
				}
			}
		}
	}
	if !sf.cond {
		return nil
	}
	// A conditional file as a whole: its name, constraint lines,
	// directives, cgo preamble, imports and declarations, these two
	// sorted (the order of declarations in a file does not count; that
	// of its initialisers does, through the init order).
	h := sha256.New()
	x := &hasher{h: h}
	x.write(sf.base)
	var directives []string
	for _, cg := range sf.ast.Comments {
		for _, c := range cg.List {
			if isDirective(c.Text) || constraint.IsGoBuild(c.Text) || constraint.IsPlusBuild(c.Text) {
				directives = append(directives, c.Text)
			}
		}
	}
	slices.Sort(directives)
	for _, d := range directives {
		x.write(d)
	}
	var imports []string
	for _, g := range sf.ast.Decls {
		g, ok := g.(*ast.GenDecl)
		if !ok || g.Tok != token.IMPORT {
			continue
		}
		for _, sp := range g.Specs {
			im := sp.(*ast.ImportSpec)
			name := ""
			if im.Name != nil {
				name = im.Name.Name
			}
			imports = append(imports, name+" "+im.Path.Value)
			if im.Path.Value == `"C"` {
				for _, cg := range []*ast.CommentGroup{g.Doc, im.Doc} {
					if cg != nil {
						for _, c := range cg.List {
							x.write("cgo preamble " + c.Text)
						}
					}
				}
			}
		}
	}
	slices.Sort(imports)
	for _, im := range imports {
		x.write("import " + im)
	}
	x.write("package " + sf.ast.Name.Name)
	hashes := make([]string, len(sf.decls))
	for i, d := range sf.decls {
		hashes[i] = d.it.id + " " + d.it.hash
	}
	slices.Sort(hashes)
	for _, d := range hashes {
		x.write(d)
	}
	sf.item.hash = base64.StdEncoding.EncodeToString(h.Sum(nil))
	p.always = append(p.always, sf.item)
	sf.item.resolve = func(it *item) {
		for _, d := range sf.decls {
			s.refs3(p, sf, d.node, it)
			if ts, ok := d.node.(*ast.TypeSpec); ok {
				it.deps = append(it.deps, p.methods[ts.Name.Name]...)
			}
		}
	}
	return nil
}

// declItem3 makes the item of a declaration: the directives of its doc
// comments, the import paths of the file's dot imports, and its normal
// form with the import path of every package name it uses. Init functions
// and blank vars are keyed by their hash too (there may be several).
func (s *Scope) declItem3(p *pkg3, sf *file3, node ast.Node, doc1, doc2 *ast.CommentGroup, kind, name string, byHash bool) (*item, error) {
	h := sha256.New()
	x := &hasher{h: h}
	x.write(kind)
	for _, dir := range sf.dots {
		x.write("import . " + dir)
	}
	for _, cg := range []*ast.CommentGroup{doc1, doc2} {
		if cg == nil {
			continue
		}
		for _, c := range cg.List {
			if isDirective(c.Text) {
				x.write(c.Text)
			}
		}
	}
	nf, ok := sf.normal[node]
	if !ok {
		nf.toks, nf.err = normalForm(nil, s.fset, node)
	}
	if nf.err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, nf.err)
	}
	h.Write(nf.toks)
	ast.Inspect(node, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if ip, ok := sf.imports[id.Name]; ok {
				x.write("pkg " + id.Name + " " + ip)
			}
		}
		return true
	})
	hash := base64.StdEncoding.EncodeToString(h.Sum(nil))
	id := p.id + ": " + kind + " " + name
	if byHash {
		id += " " + hash
	}
	it := &item{id: id, name: sf.name + ": " + kind + " " + name, hash: hash}
	it.resolve = func(it *item) { s.refs3(p, sf, node, it) }
	return it, nil
}

// refs3 adds to it what node uses: package-level names of p, pkg.Name of
// other packages in scope, and the versions of pinned modules.
func (s *Scope) refs3(p *pkg3, sf *file3, node ast.Node, it *item) {
	if fd, ok := node.(*ast.FuncDecl); ok {
		for _, n := range []ast.Node{fd.Recv, fd.Type, fd.Body} {
			if n != nil && !reflectNil(n) {
				ast.Inspect(n, func(m ast.Node) bool { return s.ident3(p, sf, m, it) })
			}
		}
		return
	}
	ast.Inspect(node, func(m ast.Node) bool { return s.ident3(p, sf, m, it) })
}

// reflectNil reports a typed nil node (a FuncDecl without a body).
func reflectNil(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.FieldList:
		return n == nil
	case *ast.BlockStmt:
		return n == nil
	case *ast.FuncType:
		return n == nil
	}
	return false
}

func (s *Scope) ident3(p *pkg3, sf *file3, n ast.Node, it *item) bool {
	switch n := n.(type) {
	case *ast.SelectorExpr:
		if x, ok := n.X.(*ast.Ident); ok {
			if ip, ok := sf.imports[x.Name]; ok {
				s.qualified3(ip, n.Sel.Name, it)
				// A local of the same name as the package: its
				// declaration counts too.
				it.deps = append(it.deps, p.decls[x.Name]...)
				return false
			}
		}
		ast.Inspect(n.X, func(m ast.Node) bool { return s.ident3(p, sf, m, it) })
		return false
	case *ast.Field:
		ast.Inspect(n.Type, func(m ast.Node) bool { return s.ident3(p, sf, m, it) })
		return false
	case *ast.Ident:
		it.deps = append(it.deps, p.decls[n.Name]...)
		for _, ip := range sf.dots {
			s.qualified3(ip, n.Name, it)
		}
	}
	return true
}

// qualified3 adds pkg.name: the declaration when the package is in scope,
// else the version of the module that provides it.
func (s *Scope) qualified3(importPath, name string, it *item) {
	q, err := s.pkg3(importPath)
	if err == nil && q != nil {
		it.deps = append(it.deps, q.decls[name]...)
		it.pkgs3 = append(it.pkgs3, q)
		return
	}
	if err != nil {
		return // reported when the package is reached through its imports
	}
	if m, v, ok := s.requirement3(importPath); ok {
		it.deps = append(it.deps, s.moduleItem(m, v))
	}
}

// linkname3 adds the two sides of a //go:linkname directive to it.
func (s *Scope) linkname3(p *pkg3, directive string, it *item) {
	f := strings.Fields(directive)
	if len(f) < 2 {
		return
	}
	it.deps = append(it.deps, p.decls[f[1]]...)
	if len(f) < 3 {
		return
	}
	i := strings.LastIndex(f[2], ".")
	if i < 0 {
		return
	}
	if q, err := s.pkg3(f[2][:i]); err == nil && q != nil {
		it.deps = append(it.deps, q.decls[f[2][i+1:]]...)
		it.deps = append(it.deps, q.methods[strings.Trim(f[2][i+1:], "(*)")]...)
		it.pkgs3 = append(it.pkgs3, q)
	}
}

// pureStd are the packages of the standard library whose functions, given
// constants, change nothing that other code sees: a package-level
// initialiser calling them (errors.New, regexp.MustCompile,
// strings.NewReplacer) is not package state (a method called on what
// they return is, as any method call). A call
// of any other package's function is (os.Setenv, flag.String, mime's
// registration, a logger's set-up): it may change what a hook does without
// a name the hook reaches, so h4 hashes it for every hook whose code
// imports the package. The list is short on purpose: a package missing
// from it costs a hook flagged for nothing, one wrongly on it a change
// unnoticed.
var pureStd = map[string]bool{
	"bytes": true, "cmp": true, "context": true, "errors": true, "fmt": true,
	"encoding/base32": true, "encoding/base64": true, "encoding/binary": true,
	"encoding/hex": true, "encoding/json": true, "hash/crc32": true,
	"hash/crc64": true, "html": true, "html/template": true, "maps": true,
	"math": true, "math/big": true, "math/bits": true, "net/netip": true,
	"net/url": true, "path": true, "reflect": true, "regexp": true,
	"slices": true, "sort": true, "strconv": true, "strings": true,
	"text/template": true, "time": true, "unicode": true,
	"unicode/utf16": true, "unicode/utf8": true,
}

// builtins are the predeclared functions that run no code of the product.
var builtins = strings.Fields("append cap clear complex copy delete imag len make max min new real")

// runsCode3 reports whether a package-level initialiser may run code of
// the product: a function literal, a call of a function or method of the
// product, or a call of any other function (the standard library, another
// module) that is given a value of the product, which may call its methods
// (fmt.Sprint(v) calls v.String). Builtins and conversions run none.
func (s *Scope) runsCode3(p *pkg3, sf *file3, e ast.Expr) bool {
	product := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(m ast.Node) bool {
			switch m := m.(type) {
			case *ast.FuncLit:
				found = true
			case *ast.SelectorExpr:
				if x, ok := m.X.(*ast.Ident); ok {
					if ip, ok := sf.imports[x.Name]; ok {
						if _, _, in := s.locate3(ip); in {
							found = true
						}
						return false
					}
				}
			case *ast.Ident:
				if len(p.decls[m.Name]) > 0 || len(sf.dots) > 0 {
					found = true
				}
			}
			return !found
		})
		return found
	}
	isType := func(ds []*item) bool {
		return len(ds) > 0 && !slices.ContainsFunc(ds, func(d *item) bool { return !strings.Contains(d.id, ": type ") })
	}
	runs := false
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			runs = true
		case *ast.CallExpr:
			switch fun := ast.Unparen(n.Fun).(type) {
			case *ast.Ident:
				ds := p.decls[fun.Name]
				switch {
				case len(ds) == 0 && len(sf.dots) == 0:
					// A builtin, a predeclared type's conversion, or
					// a local function value.
					if !slices.Contains(builtins, fun.Name) && types.Universe.Lookup(fun.Name) == nil {
						runs = true
					}
				case !isType(ds):
					runs = true
				}
			case *ast.SelectorExpr:
				x, ok := fun.X.(*ast.Ident)
				ip, imported := "", false
				if ok {
					ip, imported = sf.imports[x.Name]
				}
				switch {
				case !imported:
					runs = true // a method
				default:
					if q, err := s.pkg3(ip); err == nil && q != nil {
						runs = !isType(q.decls[fun.Sel.Name])
					} else if slices.ContainsFunc(n.Args, func(a ast.Expr) bool { return product(a) }) {
						runs = true
					} else if s.deps && !pureStd[ip] {
						// h4: a function of the standard library that may
						// change what other code sees (os.Setenv("MODE",
						// "v1"), flag.String, http.HandleFunc), given only
						// constants: h3 stays what it was.
						runs = true
					}
				}
			case *ast.IndexExpr, *ast.IndexListExpr, *ast.ArrayType, *ast.MapType, *ast.ChanType, *ast.FuncType, *ast.InterfaceType, *ast.StructType, *ast.StarExpr:
			default:
				runs = true
			}
		}
		return !runs
	})
	return runs
}

// migratorDebug returns the //go:debug lines of the main packages of the
// main module that build the product's migrator: those whose imports, in
// the main module, reach MigratorPkgPath. When none does (no migrator
// yet), every main package's lines count.
func (s *Scope) migratorDebug() ([]setting, error) {
	type pkgInfo struct {
		imports []string
		main    bool
	}
	mainPath := s.modules[0].Path
	for _, m := range s.modules {
		if m.Origin == "main" {
			mainPath = m.Path
		}
	}
	pkgs := make(map[string]*pkgInfo)
	fset := token.NewFileSet()
	err := s.walkGoFiles(func(fp string) error {
		f, err := parser.ParseFile(fset, fp, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil || never(f) {
			return nil // a file that does not parse fails its own build
		}
		rel, err := filepath.Rel(s.mainDir, filepath.Dir(fp))
		if err != nil {
			return err
		}
		ip := path.Join(mainPath, filepath.ToSlash(rel))
		pi := pkgs[ip]
		if pi == nil {
			pi = &pkgInfo{}
			pkgs[ip] = pi
		}
		pi.main = pi.main || f.Name.Name == "main"
		for _, im := range f.Imports {
			if p, err := strconv.Unquote(im.Path.Value); err == nil {
				pi.imports = append(pi.imports, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the main packages: %w", err)
	}
	reaches := make(map[string]bool)
	var reach func(ip string, seen map[string]bool) bool
	reach = func(ip string, seen map[string]bool) bool {
		if r, ok := reaches[ip]; ok {
			return r
		}
		if seen[ip] {
			return false
		}
		seen[ip] = true
		pi := pkgs[ip]
		r := false
		if pi != nil {
			for _, imp := range pi.imports {
				if imp == MigratorPkgPath || reach(imp, seen) {
					r = true
					break
				}
			}
		}
		reaches[ip] = r
		return r
	}
	migrators := make(map[string]bool)
	for ip, pi := range pkgs {
		if pi.main && reach(ip, make(map[string]bool)) {
			rel := strings.TrimPrefix(strings.TrimPrefix(ip, mainPath), "/")
			if rel == "" {
				rel = "."
			}
			migrators[rel] = true
		}
	}
	out := []setting{}
	for _, set := range s.settings {
		if set.dir != "" && (len(migrators) == 0 || migrators[set.dir]) {
			out = append(out, set)
		}
	}
	return out, nil
}

// requirement3 is requirement, with the versions of the vendored modules
// when the build does not use vendor/.
func (s *Scope) requirement3(importPath string) (mod, version string, ok bool) {
	mod, version, ok = s.requirement(importPath)
	if s.h3.noVendor && version == "(not required in go.mod)" {
		best := ""
		for m := range s.vendored {
			if (importPath == m || strings.HasPrefix(importPath, m+"/")) && len(m) > len(best) {
				best = m
			}
		}
		if best != "" {
			mod, version = best, s.vendored[best]
		}
	}
	return mod, version, ok
}
