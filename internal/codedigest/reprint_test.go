package codedigest_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// reprint prints the Go source src again with the printer settings given,
// dropping the comments that are not directives, constraint lines or cgo
// preambles when strip is set.
func reprint(t testing.TB, name, src string, mode printer.Mode, tabwidth int, strip bool) string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if strip {
		keep := f.Comments[:0]
		for _, cg := range f.Comments {
			if cg.Pos() < f.Package || preamble(f, cg) || strings.Contains(cg.List[0].Text, "//go:") {
				keep = append(keep, cg)
			}
		}
		f.Comments = keep
	}
	var b bytes.Buffer
	if err := (&printer.Config{Mode: mode, Tabwidth: tabwidth}).Fprint(&b, fset, f); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// preamble reports whether cg is the cgo preamble of f.
func preamble(f *ast.File, cg *ast.CommentGroup) bool {
	for _, im := range f.Imports {
		if im.Path.Value == `"C"` {
			for _, d := range f.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT && (g.Doc == cg || im.Doc == cg) {
					return true
				}
			}
		}
	}
	return false
}

// FuzzH2Reprint is the property that a package printed again (any printer
// settings, comments dropped) and parsed again keeps its digest, while a
// change of one literal does not. Its seeds run in go test; make fuzz
// explores further.
func FuzzH2Reprint(f *testing.F) {
	f.Add(uint8(0), uint8(8), false)
	f.Add(uint8(1), uint8(4), true)
	f.Add(uint8(3), uint8(1), true)
	f.Add(uint8(6), uint8(0), false)
	base := compute2(f, product)
	f.Fuzz(func(t *testing.T, mode, tabwidth uint8, strip bool) {
		m := printer.Mode(mode) & (printer.RawFormat | printer.TabIndent | printer.UseSpaces)
		files := maps.Clone(product)
		for name, src := range product {
			if strings.HasSuffix(name, ".go") {
				files[name] = reprint(t, name, src, m, int(tabwidth%16), strip)
			}
		}
		if res := compute2(t, files); res.Digest != base.Digest {
			t.Fatalf("reprinted (mode %d, tabwidth %d, strip %v): digest changed, pieces %q", m, tabwidth%16, strip, changes(base, res))
		}
		files["hooks/hooks.go"] = strings.Replace(files["hooks/hooks.go"], `"v1"`, `"v0"`, 1)
		if res := compute2(t, files); res.Digest == base.Digest {
			t.Fatalf("reprinted and changed: digest unchanged")
		}
	})
}

// reorder returns the Go source src with its declarations permuted by
// seed, keeping imports first and the relative order of what runs at
// initialisation (init functions, var declarations), which is behaviour.
func reorder(t testing.TB, name, src string, seed uint64) string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var movable []int
	for i, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name == "init" {
				continue
			}
		case *ast.GenDecl:
			if d.Tok == token.IMPORT || d.Tok == token.VAR {
				continue
			}
		}
		movable = append(movable, i)
	}
	perm := slices.Clone(movable)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	decls := slices.Clone(f.Decls)
	for k, i := range movable {
		decls[i] = f.Decls[perm[k]]
	}
	// Print each declaration on its own, so that comments need no
	// positions: directives in doc comments stay with their declaration.
	var b strings.Builder
	b.WriteString(src[:fset.Position(f.Name.End()).Offset])
	b.WriteString("\n\n")
	for _, d := range decls {
		start := d.Pos()
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Doc != nil {
				start = d.Doc.Pos()
			}
		case *ast.GenDecl:
			if d.Doc != nil {
				start = d.Doc.Pos()
			}
		}
		b.WriteString(src[fset.Position(start).Offset:fset.Position(d.End()).Offset])
		b.WriteString("\n\n")
	}
	return b.String()
}

// FuzzH3Reprint is the property that a package printed again (any printer
// settings, comments dropped) and with its declarations reordered keeps
// its h3 digest, while a change of one literal does not. Its seeds run in
// go test; make fuzz explores further.
func FuzzH3Reprint(f *testing.F) {
	f.Add(uint8(0), uint8(8), false, uint64(1))
	f.Add(uint8(1), uint8(4), true, uint64(2))
	f.Add(uint8(3), uint8(1), true, uint64(3))
	f.Add(uint8(6), uint8(0), false, uint64(4))
	src := maps.Clone(product)
	// More to reorder: declarations of a conditional file and methods.
	src["hooks/x_linux.go"] = "package hooks\n\nfunc add(a, b int) int { return a + b }\n\nfunc sub(a, b int) int { return a - b }\n\ntype pair struct{ a, b int }\n\nfunc (p pair) sum() int { return add(p.a, p.b) }\n"
	src["hooks/more.go"] = "package hooks\n\nconst (\n\tone = iota\n\ttwo\n)\n\ntype list []pair\n\nfunc (l list) total() (n int) {\n\tfor _, p := range l {\n\t\tn += p.sum()\n\t}\n\treturn n\n}\n\nvar _ = helper(string(rune(list{{1, 2}}.total() + two)))\n\nfunc init() { mode += \"!\" }\n"
	base := compute3(f, src)
	f.Fuzz(func(t *testing.T, mode, tabwidth uint8, strip bool, seed uint64) {
		m := printer.Mode(mode) & (printer.RawFormat | printer.TabIndent | printer.UseSpaces)
		files := maps.Clone(src)
		for name, s := range src {
			if strings.HasSuffix(name, ".go") {
				files[name] = reprint(t, name, reorder(t, name, s, seed), m, int(tabwidth%16), strip)
			}
		}
		if res := compute3(t, files); res.Digest != base.Digest {
			t.Fatalf("reprinted and reordered (mode %d, tabwidth %d, strip %v, seed %d): digest changed, pieces %q", m, tabwidth%16, strip, seed, changes(base, res))
		}
		files["hooks/hooks.go"] = strings.Replace(files["hooks/hooks.go"], `"v1"`, `"v0"`, 1)
		if res := compute3(t, files); res.Digest == base.Digest {
			t.Fatalf("reprinted and changed: digest unchanged")
		}
	})
}
