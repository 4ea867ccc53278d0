package codedigest

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"hash"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"
)

// LoadMode is the packages.Load mode ComputeH1 needs.
const LoadMode = packages.NeedName | packages.NeedFiles | packages.NeedSyntax |
	packages.NeedTypes | packages.NeedTypesInfo | packages.NeedImports |
	packages.NeedDeps | packages.NeedModule

// PrefixH1 is the algorithm prefix of the digests ComputeH1 returns.
const PrefixH1 = "h1:"

// ComputeH1 returns the "h1:" code digest of fn, the algorithm of
// hookreg's first releases, kept unchanged so that digests recorded with it
// are still recognised (see the package doc). pkgs come from packages.Load
// with at least LoadMode; every package of fn's module that fn reaches must
// be among them or their Imports.
func ComputeH1(pkgs []*packages.Package, fn *types.Func) (Result, error) {
	if fn == nil || fn.Pkg() == nil {
		return Result{}, fmt.Errorf("computing code digest: no function")
	}
	byPath := make(map[string]*packages.Package)
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if q, ok := byPath[p.PkgPath]; !ok || (q.ID != q.PkgPath && p.ID == p.PkgPath) {
			byPath[p.PkgPath] = p
		}
	})
	root := byPath[fn.Pkg().Path()]
	if root == nil {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s not loaded", fn.Name(), fn.Pkg().Path())
	}
	if root.Module == nil {
		return Result{}, fmt.Errorf("computing code digest of %s: package %s is not in a module (load with packages.NeedModule)", fn.Name(), root.PkgPath)
	}
	w := &walker{
		module: root.Module,
		byPath: byPath,
		files:  make(map[*token.File]*ast.File),
		seen:   make(map[ast.Node]bool),
	}
	w.add(fn)
	for len(w.queue) > 0 {
		obj := w.queue[0]
		w.queue = w.queue[1:]
		if err := w.visit(obj); err != nil {
			return Result{}, fmt.Errorf("computing code digest of %s: %w", fn.Name(), err)
		}
	}
	slices.SortFunc(w.decls, func(a, b Decl) int { return cmp.Compare(a.Name, b.Name) })
	keyed := make([]string, len(w.decls))
	for i, d := range w.decls {
		keyed[i] = d.Key() + " " + d.Hash + "\n"
	}
	slices.Sort(keyed)
	h := sha256.New()
	for _, k := range keyed {
		h.Write([]byte(k))
	}
	return Result{Digest: PrefixH1 + base64.StdEncoding.EncodeToString(h.Sum(nil)), Decls: w.decls}, nil
}

type walker struct {
	module *packages.Module
	byPath map[string]*packages.Package
	files  map[*token.File]*ast.File
	seen   map[ast.Node]bool
	queue  []types.Object
	decls  []Decl
}

// add queues obj when it is declared in a package of the module.
func (w *walker) add(obj types.Object) {
	if obj == nil || obj.Pkg() == nil || !obj.Pos().IsValid() {
		return
	}
	p := w.byPath[obj.Pkg().Path()]
	if p == nil || p.Module == nil || p.Module.Path != w.module.Path {
		return
	}
	w.queue = append(w.queue, obj)
}

// visit hashes the top-level declaration that declares obj, once, and queues
// what it uses.
func (w *walker) visit(obj types.Object) error {
	p := w.byPath[obj.Pkg().Path()]
	if p.TypesInfo == nil || p.Fset == nil {
		return fmt.Errorf("package %s loaded without syntax and type information", p.PkgPath)
	}
	if len(p.Errors) > 0 {
		return fmt.Errorf("package %s has errors: %v", p.PkgPath, p.Errors[0])
	}
	file := w.file(p, obj.Pos())
	if file == nil {
		return fmt.Errorf("no syntax for %s declared at %s", obj.Name(), p.Fset.Position(obj.Pos()))
	}
	i, _ := slices.BinarySearchFunc(file.Decls, obj.Pos(), func(d ast.Decl, pos token.Pos) int {
		if d.End() <= pos {
			return -1
		}
		if d.Pos() > pos {
			return 1
		}
		return 0
	})
	if i == len(file.Decls) || file.Decls[i].Pos() > obj.Pos() {
		return fmt.Errorf("no declaration of %s at %s", obj.Name(), p.Fset.Position(obj.Pos()))
	}
	node, kind, name := w.declNode(p, file.Decls[i], obj.Pos())
	if node == nil || w.seen[node] {
		return nil
	}
	w.seen[node] = true
	rel, err := filepath.Rel(w.module.Dir, p.Fset.File(obj.Pos()).Name())
	if err != nil {
		return fmt.Errorf("locating %s in module %s: %w", obj.Name(), w.module.Dir, err)
	}
	h := sha256.New()
	x := &hasher{h: h, info: p.TypesInfo, use: w.add}
	x.onIdent = x.ident
	x.write(kind)
	x.value(reflect.ValueOf(node))
	w.decls = append(w.decls, Decl{
		Name: filepath.ToSlash(rel) + ": " + kind + " " + name,
		Hash: base64.StdEncoding.EncodeToString(h.Sum(nil)),
	})
	if tn, ok := obj.(*types.TypeName); ok {
		w.addMethods(tn)
	}
	if ts, ok := node.(*ast.TypeSpec); ok {
		if tn, ok := p.TypesInfo.Defs[ts.Name].(*types.TypeName); ok {
			w.addMethods(tn)
		}
	}
	return nil
}

// addMethods queues every method declared on a named type.
func (w *walker) addMethods(tn *types.TypeName) {
	if named, ok := tn.Type().(*types.Named); ok {
		for m := range named.Origin().Methods() {
			w.add(m)
		}
	}
}

// file returns the syntax of the file of p holding pos.
func (w *walker) file(p *packages.Package, pos token.Pos) *ast.File {
	tf := p.Fset.File(pos)
	if tf == nil {
		return nil
	}
	if f, ok := w.files[tf]; ok {
		return f
	}
	for _, f := range p.Syntax {
		if p.Fset.File(f.Pos()) == tf {
			w.files[tf] = f
			return f
		}
	}
	return nil
}

// declNode returns the part of decl that declares the object at pos: the
// function, the whole grouped const declaration, or the one type or var
// spec; and its kind and name for Decl.Name.
func (w *walker) declNode(p *packages.Package, decl ast.Decl, pos token.Pos) (ast.Node, string, string) {
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if d.Recv == nil || len(d.Recv.List) == 0 {
			return d, "func", d.Name.Name
		}
		return d, "func", "(" + types.ExprString(d.Recv.List[0].Type) + ") " + d.Name.Name
	case *ast.GenDecl:
		if d.Tok == token.CONST {
			var names []string
			for _, s := range d.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					names = append(names, n.Name)
				}
			}
			return d, "const", strings.Join(names, ", ")
		}
		for _, s := range d.Specs {
			if s.Pos() > pos || pos >= s.End() {
				continue
			}
			switch s := s.(type) {
			case *ast.TypeSpec:
				return s, "type", s.Name.Name
			case *ast.ValueSpec:
				names := make([]string, len(s.Names))
				for i, n := range s.Names {
					names[i] = n.Name
				}
				return s, d.Tok.String(), strings.Join(names, ", ")
			}
		}
	}
	return nil, "", ""
}

// hasher writes a syntax tree into a hash, skipping positions, comments and
// the parser's object resolution, and reports every object an identifier
// uses.
type hasher struct {
	h hash.Hash
	// onIdent hashes an identifier: ident for h1 (type information),
	// a syntactic rule for h2.
	onIdent func(*ast.Ident)
	info    *types.Info
	use     func(types.Object)
}

var (
	posType     = reflect.TypeFor[token.Pos]()
	commentType = reflect.TypeFor[*ast.CommentGroup]()
	objectType  = reflect.TypeFor[*ast.Object]()
	scopeType   = reflect.TypeFor[*ast.Scope]()
	identType   = reflect.TypeFor[*ast.Ident]()
	litType     = reflect.TypeFor[*ast.BasicLit]()
)

func (x *hasher) write(s string) {
	x.h.Write([]byte(strconv.Itoa(len(s))))
	x.h.Write([]byte{':'})
	x.h.Write([]byte(s))
}

func (x *hasher) value(v reflect.Value) {
	switch v.Type() {
	case posType, commentType, objectType, scopeType:
		return
	case identType:
		if !v.IsNil() {
			x.onIdent(v.Interface().(*ast.Ident))
			return
		}
	case litType:
		if !v.IsNil() {
			lit := v.Interface().(*ast.BasicLit)
			x.write("lit " + lit.Kind.String())
			if lit.Kind == token.INT || lit.Kind == token.FLOAT || lit.Kind == token.IMAG {
				x.write(strings.ToLower(lit.Value))
			} else {
				x.write(lit.Value)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			x.write("nil")
			return
		}
		if v.Kind() == reflect.Interface {
			x.write(v.Elem().Type().String())
		}
		x.value(v.Elem())
	case reflect.Struct:
		x.write(v.Type().Name())
		for i := range v.NumField() {
			x.value(v.Field(i))
		}
	case reflect.Slice:
		x.write(strconv.Itoa(v.Len()))
		for i := range v.Len() {
			x.value(v.Index(i))
		}
	case reflect.String:
		x.write(v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x.write(strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		x.write(strconv.FormatBool(v.Bool()))
	default:
		x.write(fmt.Sprint(v.Interface()))
	}
}

// ident hashes an identifier's name and, for a package-level object or an
// imported package, where it resolves; it reports the object used.
func (x *hasher) ident(id *ast.Ident) {
	x.write("id " + id.Name)
	obj := x.info.Uses[id]
	if obj == nil {
		obj = x.info.Defs[id]
	}
	switch o := obj.(type) {
	case nil:
	case *types.PkgName:
		x.write("pkg " + o.Imported().Path())
	default:
		if o.Pkg() != nil && o.Parent() == o.Pkg().Scope() {
			x.write("in " + o.Pkg().Path())
		}
		if x.info.Uses[id] != nil && (o.Parent() == nil || o.Pkg() != nil && o.Parent() == o.Pkg().Scope()) {
			x.use(o)
		}
	}
}
