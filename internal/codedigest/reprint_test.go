package codedigest_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"maps"
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
