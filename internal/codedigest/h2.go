package codedigest

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
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
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// item is one piece of a digest: a declaration, a whole file, a package's
// blank imports or directives, a setting or a required module version.
type item struct {
	id, name, hash string
	// deps are the items this one uses; pkgs the packages in scope it
	// refers to; computed by resolve.
	deps     []*item
	pkgs     []*pkgSrc
	pkgs3    []*pkg3
	resolved bool
	resolve  func(*item)
}

// pkgSrc is one package of the scope, read from every file of its
// directory.
type pkgSrc struct {
	path string
	id   string // key prefix: directory relative to the main module, or import path
	dir  string
	err  error
	// decls are the package-level declarations by name (several for a
	// name declared in several conditional files); methods by receiver
	// type name.
	decls   map[string][]*item
	methods map[string][]*item
	// always are reached with the package: conditional files, non-Go
	// files, directives and blank imports; state runs at program start:
	// init functions and initialisers that run code.
	always, state []*item
	// imports are the packages in scope it imports, in any file.
	imports []string
	// inits are the package-level vars with initialisers, for state.
	inits []initVar
	// modules are the pinned modules it imports blank.
	modules []*item
}

// initVar is a package-level var spec with an initialiser.
type initVar struct {
	sf   *srcFile
	spec *ast.ValueSpec
	it   *item
}

// srcFile is a parsed Go file of a package.
type srcFile struct {
	name    string // slash path shown in Decl.Name
	ast     *ast.File
	imports map[string]string // local name -> import path
	dots    []string
	cond    bool
	item    *item // the whole-file item of a conditional file
}

// ComputeH2 returns the "h2:" code digest of the function name of the
// package pkgPath (in scope): the algorithm before h3, kept unchanged so
// that digests recorded with it are still recognised.
func (s *Scope) ComputeH2(pkgPath, name string) (Result, error) {
	p, err := s.pkg(pkgPath)
	if err != nil {
		return Result{}, fmt.Errorf("computing code digest of %s: %w", name, err)
	}
	if p == nil {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s is not in the module", name, pkgPath)
	}
	roots := p.decls[name]
	if len(roots) == 0 {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s declares no %s", name, pkgPath, name)
	}
	w := &walk2{s: s, seen: make(map[*item]bool), reached: make(map[*pkgSrc]bool), closure: make(map[*pkgSrc]bool)}
	for _, st := range s.settings {
		w.push(&item{id: st.key, name: st.name, hash: hashString(st.value), resolved: true})
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
		for _, q := range it.pkgs {
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
	return Result{Digest: PrefixH2 + base64.StdEncoding.EncodeToString(h.Sum(nil)), Decls: decls}, nil
}

type walk2 struct {
	s       *Scope
	seen    map[*item]bool
	reached map[*pkgSrc]bool
	closure map[*pkgSrc]bool
	queue   []*item
}

func (w *walk2) push(it *item) {
	if !w.seen[it] {
		w.seen[it] = true
		w.queue = append(w.queue, it)
	}
}

// reach adds what comes with a package whose code is used: its
// conditional and non-Go files, directives, blank imports and the state of
// its import closure.
func (w *walk2) reach(p *pkgSrc) error {
	if w.reached[p] {
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
func (w *walk2) initClosure(p *pkgSrc) error {
	if w.closure[p] {
		return nil
	}
	w.closure[p] = true
	if len(p.state) > 0 {
		// Its code runs at program start: what comes with its code
		// (assembly, conditional files) counts too.
		for _, it := range p.always {
			w.push(it)
		}
		w.reached[p] = true
	}
	for _, it := range p.state {
		w.push(it)
	}
	for _, it := range p.modules {
		w.push(it)
	}
	for _, imp := range p.imports {
		q, err := w.s.pkg(imp)
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

// pkg returns the package importPath, parsed; nil when it is not in scope.
func (s *Scope) pkg(importPath string) (*pkgSrc, error) {
	if p, ok := s.pkgs[importPath]; ok {
		if p == nil {
			return nil, nil
		}
		return p, p.err
	}
	mod, dir, ok := s.locate(importPath)
	if !ok {
		s.pkgs[importPath] = nil
		return nil, nil
	}
	p := &pkgSrc{path: importPath, dir: dir, decls: make(map[string][]*item), methods: make(map[string][]*item)}
	p.id = importPath
	if mod.Origin == "main" {
		rel, err := filepath.Rel(s.mainDir, dir)
		if err == nil {
			p.id = filepath.ToSlash(rel)
		}
	}
	s.pkgs[importPath] = p
	p.err = s.parse(p, mod)
	if p.err != nil {
		p.err = fmt.Errorf("reading package %s: %w", importPath, p.err)
	}
	return p, p.err
}

// nonGo are the extensions of the other sources the go command builds
// into a package.
var nonGo = []string{".s", ".S", ".sx", ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".m", ".f", ".F", ".for", ".f90", ".syso", ".swig", ".swigcxx"}

// parse reads every file of p's directory that some build of the package
// compiles: Go files (not tests, not names starting with "_" or ".") and
// other sources.
func (s *Scope) parse(p *pkgSrc, mod module) error {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	var files []*srcFile
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") {
			continue
		}
		show := s.show(p, mod, n)
		if ext := filepath.Ext(n); slices.Contains(nonGo, ext) {
			data, err := os.ReadFile(filepath.Join(p.dir, n))
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			p.always = append(p.always, &item{id: p.id + ": file " + n, name: show + ": file " + n, hash: base64.StdEncoding.EncodeToString(sum[:])})
			continue
		}
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(s.fset, filepath.Join(p.dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		sf := &srcFile{name: show, ast: f, imports: make(map[string]string), cond: conditional(n, f)}
		files = append(files, sf)
	}
	blank := make(map[string]bool)
	var directives []string
	imports := make(map[string]bool)
	for _, sf := range files {
		for _, im := range sf.ast.Imports {
			ip, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				continue
			}
			name := path.Base(ip)
			if im.Name != nil {
				name = im.Name.Name
			}
			switch name {
			case "_":
				blank[ip] = true
			case ".":
				sf.dots = append(sf.dots, ip)
			default:
				sf.imports[name] = ip
			}
			if _, _, ok := s.locate(ip); ok {
				imports[ip] = true
			} else if m, v, ok := s.requirement(ip); ok && name == "_" {
				p.modules = append(p.modules, s.moduleItem(m, v))
			}
		}
		if sf.cond {
			sf.item = s.fileItem(p, sf)
			p.always = append(p.always, sf.item)
		} else {
			for _, cg := range sf.ast.Comments {
				for _, c := range cg.List {
					if strings.HasPrefix(c.Text, "//go:linkname ") || strings.HasPrefix(c.Text, "//go:debug ") {
						directives = append(directives, c.Text)
					}
				}
			}
		}
		s.declare(p, sf)
	}
	for _, iv := range p.inits {
		runs := slices.ContainsFunc(iv.spec.Names, func(n *ast.Ident) bool { return n.Name == "_" })
		for _, v := range iv.spec.Values {
			runs = runs || s.runsCode(p, iv.sf, v)
		}
		if runs {
			p.state = append(p.state, iv.it)
		}
	}
	p.inits = nil
	for ip := range imports {
		p.imports = append(p.imports, ip)
	}
	slices.Sort(p.imports)
	if len(blank) > 0 {
		paths := make([]string, 0, len(blank))
		for ip := range blank {
			paths = append(paths, ip)
		}
		slices.Sort(paths)
		p.always = append(p.always, &item{id: p.id + ": import _", name: p.id + ": import _ " + strings.Join(paths, ", "), hash: hashString(strings.Join(paths, "\n"))})
	}
	if len(directives) > 0 {
		slices.Sort(directives)
		it := &item{id: p.id + ": directives", name: p.id + ": " + strings.Join(directives, ", "), hash: hashString(strings.Join(directives, "\n"))}
		it.resolve = func(it *item) {
			for _, d := range directives {
				s.linkname(p, d, it)
			}
		}
		p.always = append(p.always, it)
	}
	return nil
}

// show returns the name of a file of p in Decl names: relative to the
// main module, or the import path and file of another module.
func (s *Scope) show(p *pkgSrc, mod module, name string) string {
	if mod.Origin == "main" {
		return path.Join(p.id, name)
	}
	return p.path + "/" + name
}

// linkname adds the two sides of a //go:linkname directive to it.
func (s *Scope) linkname(p *pkgSrc, directive string, it *item) {
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
	if q, err := s.pkg(f[2][:i]); err == nil && q != nil {
		it.deps = append(it.deps, q.decls[f[2][i+1:]]...)
		it.pkgs = append(it.pkgs, q)
	}
}

// goosSuffix and goarchSuffix are the file name suffixes that constrain a
// file to a build (go/build's list).
var (
	goosSuffix   = strings.Fields("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris wasip1 windows zos")
	goarchSuffix = strings.Fields("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x sparc sparc64 wasm")
)

// conditional reports whether a Go file is built only by some builds: a
// build constraint line, a GOOS or GOARCH file name suffix, or cgo.
func conditional(name string, f *ast.File) bool {
	parts := strings.Split(strings.TrimSuffix(name, ".go"), "_")
	if n := len(parts); n > 1 && (slices.Contains(goosSuffix, parts[n-1]) || slices.Contains(goarchSuffix, parts[n-1])) {
		return true
	}
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			if constraint.IsGoBuild(c.Text) || constraint.IsPlusBuild(c.Text) {
				return true
			}
		}
	}
	for _, im := range f.Imports {
		if im.Path.Value == `"C"` {
			return true
		}
	}
	return false
}

// fileItem is the whole-file item of a conditional file: its name,
// constraint lines and directives, cgo preamble and syntax.
func (s *Scope) fileItem(p *pkgSrc, sf *srcFile) *item {
	base := path.Base(sf.name)
	it := &item{id: p.id + ": file " + base, name: sf.name + ": file " + base}
	h := sha256.New()
	x := &hasher{h: h}
	x.onIdent = func(id *ast.Ident) { syntacticIdent(x, sf, id) }
	x.write(base)
	for _, cg := range sf.ast.Comments {
		for _, c := range cg.List {
			if isDirective(c.Text) || constraint.IsGoBuild(c.Text) || constraint.IsPlusBuild(c.Text) {
				x.write(c.Text)
			}
		}
	}
	for _, d := range sf.ast.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			for _, sp := range g.Specs {
				if im := sp.(*ast.ImportSpec); im.Path.Value == `"C"` {
					x.write("cgo preamble")
					for _, cg := range []*ast.CommentGroup{g.Doc, im.Doc} {
						if cg != nil {
							for _, c := range cg.List {
								x.write(c.Text)
							}
						}
					}
				}
			}
		}
	}
	x.value(reflect.ValueOf(sf.ast.Name))
	x.value(reflect.ValueOf(sf.ast.Decls))
	it.hash = base64.StdEncoding.EncodeToString(h.Sum(nil))
	it.resolve = func(it *item) {
		for _, d := range sf.ast.Decls {
			s.refs(p, sf, d, it)
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, sp := range g.Specs {
					it.deps = append(it.deps, p.methods[sp.(*ast.TypeSpec).Name.Name]...)
				}
			}
		}
	}
	return it
}

// isDirective reports a comment the compiler or cgo reads.
func isDirective(text string) bool {
	return strings.HasPrefix(text, "//go:") || strings.HasPrefix(text, "//export ") || strings.HasPrefix(text, "//line ")
}

// declare adds the declarations of sf to p: a conditional file's through
// its whole-file item.
func (s *Scope) declare(p *pkgSrc, sf *srcFile) {
	var inits []ast.Decl
	for _, d := range sf.ast.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name == "init" {
				if sf.cond {
					p.state = append(p.state, sf.item)
					continue
				}
				inits = append(inits, d)
				continue
			}
			it := sf.item
			if !sf.cond {
				it = s.declItem(p, sf, d, d, nil, "func", funcName(d))
			}
			if d.Recv != nil && len(d.Recv.List) > 0 {
				t := recvType(d.Recv.List[0].Type)
				p.methods[t] = append(p.methods[t], it)
				continue
			}
			p.decls[d.Name.Name] = append(p.decls[d.Name.Name], it)
		case *ast.GenDecl:
			if d.Tok == token.IMPORT {
				continue
			}
			if d.Tok == token.CONST {
				var names []string
				for _, sp := range d.Specs {
					for _, n := range sp.(*ast.ValueSpec).Names {
						names = append(names, n.Name)
					}
				}
				it := sf.item
				if !sf.cond {
					it = s.declItem(p, sf, d, d, nil, "const", strings.Join(names, ", "))
				}
				for _, n := range names {
					p.decls[n] = append(p.decls[n], it)
				}
				continue
			}
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					it := sf.item
					if !sf.cond {
						it = s.declItem(p, sf, sp, d, sp.Doc, "type", sp.Name.Name)
						name := sp.Name.Name
						it.resolve = func(it *item) {
							s.refs(p, sf, sp, it)
							it.deps = append(it.deps, p.methods[name]...)
						}
					}
					p.decls[sp.Name.Name] = append(p.decls[sp.Name.Name], it)
				case *ast.ValueSpec:
					names := make([]string, len(sp.Names))
					for i, n := range sp.Names {
						names[i] = n.Name
					}
					it := sf.item
					if !sf.cond {
						it = s.declItem(p, sf, sp, d, sp.Doc, d.Tok.String(), strings.Join(names, ", "))
					}
					if len(sp.Values) > 0 {
						p.inits = append(p.inits, initVar{sf, sp, it})
					}
					for _, n := range names {
						if n != "_" {
							p.decls[n] = append(p.decls[n], it)
						}
					}
				}
			}
		}
	}
	if len(inits) == 0 {
		return
	}
	// The init functions of a file run in order: one item per file, keyed
	// by the package and the hashes, so that moving them keeps it.
	it := &item{}
	h := sha256.New()
	for _, d := range inits {
		sub := s.declItem(p, sf, d, d, nil, "func", "init")
		h.Write([]byte(sub.hash))
	}
	it.hash = base64.StdEncoding.EncodeToString(h.Sum(nil))
	it.id = p.id + ": func init " + it.hash
	it.name = sf.name + ": func init (" + strconv.Itoa(len(inits)) + ")"
	it.resolve = func(it *item) {
		for _, d := range inits {
			s.refs(p, sf, d, it)
		}
	}
	p.state = append(p.state, it)
}

// declItem makes the item of a declaration of an unconditional file: node
// hashed with the directives of its doc comments (and the files a
// //go:embed names).
func (s *Scope) declItem(p *pkgSrc, sf *srcFile, node ast.Node, decl ast.Decl, doc *ast.CommentGroup, kind, name string) *item {
	h := sha256.New()
	x := &hasher{h: h}
	x.onIdent = func(id *ast.Ident) { syntacticIdent(x, sf, id) }
	x.write(kind)
	for _, dir := range sf.dots {
		x.write("import . " + dir)
	}
	var docs []*ast.CommentGroup
	switch d := decl.(type) {
	case *ast.FuncDecl:
		docs = append(docs, d.Doc)
	case *ast.GenDecl:
		docs = append(docs, d.Doc)
	}
	docs = append(docs, doc)
	for _, cg := range docs {
		if cg == nil {
			continue
		}
		for _, c := range cg.List {
			if !isDirective(c.Text) {
				continue
			}
			x.write(c.Text)
			if pats, ok := strings.CutPrefix(c.Text, "//go:embed "); ok {
				s.hashEmbed(x, p.dir, pats)
			}
		}
	}
	x.value(reflect.ValueOf(node))
	if fd, ok := node.(*ast.FuncDecl); ok && fd.Recv == nil {
		// A function's name is its key; the method's receiver is in
		// the tree.
		x.write("func " + fd.Name.Name)
	}
	hash := base64.StdEncoding.EncodeToString(h.Sum(nil))
	id := p.id + ": " + kind + " " + name
	if name == "_" || strings.HasPrefix(name, "_,") || kind == "func" && name == "init" {
		id += " " + hash
	}
	it := &item{id: id, name: sf.name + ": " + kind + " " + name, hash: hash}
	it.resolve = func(it *item) { s.refs(p, sf, node, it) }
	return it
}

// hashEmbed writes the names and bytes of the files a //go:embed
// directive's patterns match; an unreadable pattern is hashed as text (the
// build fails on it anyway).
func (s *Scope) hashEmbed(x *hasher, dir, patterns string) {
	for _, pat := range strings.Fields(patterns) {
		if u, err := strconv.Unquote(pat); err == nil {
			pat = u
		}
		all := strings.HasPrefix(pat, "all:")
		pat = strings.TrimPrefix(pat, "all:")
		matches, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pat)))
		slices.Sort(matches)
		for _, m := range matches {
			_ = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					x.write("unreadable " + p)
					return nil
				}
				if p != m && !all && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if d.IsDir() {
					return nil
				}
				rel, _ := filepath.Rel(dir, p)
				data, err := os.ReadFile(p)
				if err != nil {
					x.write("unreadable " + rel)
					return nil
				}
				x.write("embed " + filepath.ToSlash(rel))
				x.write(string(data))
				return nil
			})
		}
	}
}

// syntacticIdent hashes an identifier by name, and a package name by the
// path it imports.
func syntacticIdent(x *hasher, sf *srcFile, id *ast.Ident) {
	x.write("id " + id.Name)
	if ip, ok := sf.imports[id.Name]; ok {
		x.write("pkg " + ip)
	}
}

// refs adds to it what node uses: package-level names of p, pkg.Name of
// other packages in scope, and the versions of pinned modules.
func (s *Scope) refs(p *pkgSrc, sf *srcFile, node ast.Node, it *item) {
	ast.Inspect(node, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Recv != nil {
				ast.Inspect(n.Recv, func(m ast.Node) bool { return s.ident(p, sf, m, it) })
				if n.Type != nil {
					ast.Inspect(n.Type, func(m ast.Node) bool { return s.ident(p, sf, m, it) })
				}
				if n.Body != nil {
					ast.Inspect(n.Body, func(m ast.Node) bool { return s.ident(p, sf, m, it) })
				}
				return false
			}
		}
		return s.ident(p, sf, n, it)
	})
}

func (s *Scope) ident(p *pkgSrc, sf *srcFile, n ast.Node, it *item) bool {
	switch n := n.(type) {
	case *ast.SelectorExpr:
		if x, ok := n.X.(*ast.Ident); ok {
			if ip, ok := sf.imports[x.Name]; ok {
				s.qualified(ip, n.Sel.Name, it)
				return false
			}
		}
		ast.Inspect(n.X, func(m ast.Node) bool { return s.ident(p, sf, m, it) })
		return false
	case *ast.Field:
		// Field names are not package-level names.
		ast.Inspect(n.Type, func(m ast.Node) bool { return s.ident(p, sf, m, it) })
		return false
	case *ast.Ident:
		if ds := p.decls[n.Name]; len(ds) > 0 {
			it.deps = append(it.deps, ds...)
		}
		for _, ip := range sf.dots {
			s.qualified(ip, n.Name, it)
		}
	}
	return true
}

// qualified adds pkg.name: the declaration when the package is in scope,
// else the version of the module that provides it.
func (s *Scope) qualified(importPath, name string, it *item) {
	q, err := s.pkg(importPath)
	if err == nil && q != nil {
		it.deps = append(it.deps, q.decls[name]...)
		it.pkgs = append(it.pkgs, q)
		return
	}
	if err != nil {
		// Reported when the package is reached through its imports.
		return
	}
	if m, v, ok := s.requirement(importPath); ok {
		it.deps = append(it.deps, s.moduleItem(m, v))
	}
}

// moduleItem is the item of a pinned module's required version.
func (s *Scope) moduleItem(mod, version string) *item {
	if it, ok := s.modItems[mod]; ok {
		return it
	}
	it := &item{id: "go.mod: require " + mod, name: "go.mod: require " + mod + " " + version, hash: version, resolved: true}
	s.modItems[mod] = it
	return it
}

// runsCode reports whether a package-level initialiser runs code of the
// product: a function literal, a call of a function in scope or of a
// method; calls of builtins, conversions and functions of other modules
// and the standard library are taken as free of product side effects.
func (s *Scope) runsCode(p *pkgSrc, sf *srcFile, e ast.Expr) bool {
	runs := false
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			runs = true
		case *ast.CallExpr:
			switch fun := ast.Unparen(n.Fun).(type) {
			case *ast.Ident:
				for _, d := range p.decls[fun.Name] {
					if !strings.Contains(d.id, ": type ") {
						runs = true
					}
				}
			case *ast.SelectorExpr:
				x, ok := fun.X.(*ast.Ident)
				if !ok {
					runs = true
					break
				}
				ip, ok := sf.imports[x.Name]
				if !ok {
					runs = true
					break
				}
				if _, _, in := s.locate(ip); in {
					runs = true
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

func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	return "(" + types.ExprString(d.Recv.List[0].Type) + ") " + d.Name.Name
}

// recvType returns the type name of a method receiver: T of *T, T[K].
func recvType(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
