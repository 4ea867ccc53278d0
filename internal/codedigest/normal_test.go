package codedigest

import (
	"bytes"
	"crypto/sha256"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tokenList is normalForm as h3 first wrote it, a string a token: the
// reference that normalForm's bytes are checked against.
func tokenList(fset *token.FileSet, node any) ([]string, error) {
	var buf bytes.Buffer
	if err := (&printer.Config{Mode: printer.RawFormat}).Fprint(&buf, fset, node); err != nil {
		return nil, err
	}
	src := buf.Bytes()
	var sc scanner.Scanner
	sc.Init(token.NewFileSet().AddFile("", -1, len(src)), src, nil, 0)
	var toks []string
	for {
		_, tok, lit := sc.Scan()
		if tok == token.EOF {
			break
		}
		switch tok {
		case token.RPAREN, token.RBRACE, token.RBRACK:
			for len(toks) > 0 && (toks[len(toks)-1] == ";" || toks[len(toks)-1] == ",") {
				toks = toks[:len(toks)-1]
			}
		}
		switch {
		case tok == token.SEMICOLON:
			toks = append(toks, ";")
		case tok == token.INT || tok == token.FLOAT || tok == token.IMAG:
			toks = append(toks, "#"+strings.ToLower(lit))
		case tok.IsLiteral():
			toks = append(toks, tok.String()+" "+lit)
		default:
			toks = append(toks, tok.String())
		}
	}
	for len(toks) > 0 && toks[len(toks)-1] == ";" {
		toks = toks[:len(toks)-1]
	}
	return toks, nil
}

// TestNormalFormBytes checks, over every declaration of every Go file of
// this module and of go/printer's and go/parser's own sources (which
// spell every kind of syntax), that the normal forms normalForms computes
// in parallel are the bytes the hasher wrote for the former token list:
// the digests do not change.
func TestNormalFormBytes(t *testing.T) {
	roots := []string{"../..", filepath.Join(runtime.GOROOT(), "src", "go", "printer"), filepath.Join(runtime.GOROOT(), "src", "go", "parser")}
	fset := token.NewFileSet()
	var files []*file3
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") {
				return nil
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f, err := parser.ParseFile(fset, p, src, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return nil // a file of a test's broken input
			}
			simplify(f)
			files = append(files, &file3{base: d.Name(), ast: f})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	normalForms(fset, files)
	n := 0
	for _, sf := range files {
		for node, got := range sf.normal {
			toks, err := tokenList(fset, node)
			if err != nil || got.err != nil {
				t.Fatalf("%s: %v / %v", fset.Position(node.Pos()), err, got.err)
			}
			want, have := sha256.New(), sha256.New()
			x := &hasher{h: want}
			for _, tok := range toks {
				x.write(tok)
			}
			have.Write(got.toks)
			if !bytes.Equal(want.Sum(nil), have.Sum(nil)) {
				t.Fatalf("%s: normal form\n%q\nwant the hasher's bytes of\n%q", fset.Position(node.Pos()), got.toks, toks)
			}
			n++
		}
	}
	if n < 2000 {
		t.Fatalf("compared %d declarations, want the module's and the go packages' (over 2,000)", n)
	}
	t.Logf("%d declarations of %d files", n, len(files))
}

// normalForms must give every declaration kind declItem3 hashes.
func TestNormalFormsCoverDecls(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", "package x\nimport \"fmt\"\nconst (a = 1; b)\ntype T struct{}\nvar v, w = 1, fmt.Sprint(2)\nfunc (T) M() {}\nfunc F() {}\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	sf := &file3{ast: f}
	normalForms(fset, []*file3{sf})
	want := 0
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl, *ast.TypeSpec, *ast.ValueSpec:
			want++
		case *ast.GenDecl:
			if n.Tok == token.CONST {
				want++
				return false
			}
		}
		return true
	})
	if len(sf.normal) != want || want != 5 {
		t.Fatalf("%d normal forms, want %d (5)", len(sf.normal), want)
	}
}

// TestPrefetch computes digests with and without Prefetch of the hook
// directories, of this repository's hooks and of a module whose hook
// package has code gofmt -s simplifies, a go generate program (no build
// compiles it) and a conditional file: the same digests and pieces, the
// prefetched files used (a Prefetch nothing takes from would be a silent
// loss of its time).
func TestPrefetch(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"go.mod":             "module example.com/p\n\ngo 1.22\n",
		"hooks/a.go":         "package hooks\n\ntype T struct{ A int }\n\nvar ts = []T{T{A: 1}, T{A: 2}}\n\nfunc Upgrade() int { for i, _ := range ts { _ = i }; return len(ts[0:len(ts)]) + helper() }\n",
		"hooks/gen.go":       "//go:build ignore\n\npackage main\n\nfunc main() {}\n",
		"hooks/b_windows.go": "package hooks\n\nfunc helper() int { return 2 }\n",
		"hooks/b_other.go":   "//go:build !windows\n\npackage hooks\n\nfunc helper() int { return 1 }\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		module string
		dirs   []string
		hooks  [][2]string
	}{
		{"../..", []string{"../../hooks", "../../hooks/libfoo", "../../hooks/libbar"}, [][2]string{{"github.com/hookreg/hookreg/hooks/libfoo", "UpgradeLibFoo"}, {"github.com/hookreg/hookreg/hooks/libbar", "UpgradeLibBar"}, {"github.com/hookreg/hookreg/hooks", "UpgradeLibBaz"}}},
		{dir, []string{filepath.Join(dir, "hooks")}, [][2]string{{"example.com/p/hooks", "Upgrade"}}},
	} {
		compute := func(prefetch []string) (*Scope, []Result) {
			s, err := NewScope(c.module)
			if err != nil {
				t.Fatal(err)
			}
			if prefetch != nil {
				s.Prefetch(prefetch)
			}
			var out []Result
			for _, h := range c.hooks {
				r, err := s.Compute(h[0], h[1])
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, r)
			}
			return s, out
		}
		// The hook packages' Go files, as registry.LoadFuncs lists them.
		var files []string
		for _, d := range c.dirs {
			d, err := filepath.Abs(d)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				n := e.Name()
				if strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") && !strings.HasPrefix(n, "_") && !strings.HasPrefix(n, ".") {
					files = append(files, filepath.Join(d, n))
				}
			}
		}
		_, plain := compute(nil)
		s, pre := compute(files)
		for i := range plain {
			if plain[i].Digest != pre[i].Digest || len(plain[i].Decls) != len(pre[i].Decls) {
				t.Errorf("%s: digest %s with Prefetch, %s without", c.hooks[i][1], pre[i].Digest, plain[i].Digest)
			}
		}
		if want := len(files); s.prefetch.used != want || want < 4 {
			t.Errorf("%s: %d prefetched files used, want every Go file of the hook packages, %d (at least 4)", c.module, s.prefetch.used, want)
		}
	}
}
