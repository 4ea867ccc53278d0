package codedigest

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/printer"
	"go/scanner"
	"go/token"
	"go/types"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// normalForm returns the tokens of node as go/printer prints it, without
// comments and layout: the h3 normal form of a declaration. Printing
// renders every token of the syntax tree, also those the tree holds only
// as positions (an alias's "=", a call's "..."), so no token can be lost;
// what reformatting may change is normalised: a semicolon is ";" whether
// written or inserted at a line end, a comma or semicolon before a closing
// bracket is dropped, number literals are lower-cased (0X1P4 is 0x1p4). The
// tree is simplified as gofmt -s does before (see simplify).
//
// The tokens come as the hasher writes them (hasher.write of each, in
// order), appended to dst, without a string a token.
func normalForm(dst []byte, fset *token.FileSet, node any) ([]byte, error) {
	var buf bytes.Buffer
	if err := (&printer.Config{Mode: printer.RawFormat}).Fprint(&buf, fset, node); err != nil {
		return dst, fmt.Errorf("printing: %w", err)
	}
	src := buf.Bytes()
	var sc scanner.Scanner
	var scanErr error
	sc.Init(token.NewFileSet().AddFile("", -1, len(src)), src, func(_ token.Position, msg string) {
		if scanErr == nil {
			scanErr = fmt.Errorf("scanning: %s", msg)
		}
	}, 0)
	// pending are the separators (';' or ',') since the last other
	// token: dropped before a closing bracket, and the trailing
	// semicolons at the end.
	var pending []byte
	flush := func() {
		for _, c := range pending {
			dst = append(dst, '1', ':', c)
		}
		pending = pending[:0]
	}
	// put appends one token, a, b and c concatenated, as hasher.write
	// does.
	put := func(a, b, c string) {
		flush()
		dst = strconv.AppendInt(dst, int64(len(a)+len(b)+len(c)), 10)
		dst = append(dst, ':')
		dst = append(dst, a...)
		dst = append(dst, b...)
		dst = append(dst, c...)
	}
	for {
		_, tok, lit := sc.Scan()
		if tok == token.EOF {
			break
		}
		switch tok {
		case token.RPAREN, token.RBRACE, token.RBRACK:
			pending = pending[:0]
		}
		switch {
		case tok == token.SEMICOLON:
			pending = append(pending, ';')
		case tok == token.COMMA:
			pending = append(pending, ',')
		case tok == token.INT || tok == token.FLOAT || tok == token.IMAG:
			put("#", strings.ToLower(lit), "")
		case tok.IsLiteral():
			// Identifiers, strings and characters: the kind keeps them
			// apart from keywords and operators.
			put(tok.String(), " ", lit)
		default:
			put(tok.String(), "", "")
		}
	}
	for len(pending) > 0 && pending[len(pending)-1] == ';' {
		pending = pending[:len(pending)-1]
	}
	flush()
	return dst, scanErr
}

// normalized is the normal form of a declaration, or why it has none.
type normalized struct {
	toks []byte
	err  error
}

// normalForms computes the normal form of every declaration of files that
// declItem3 hashes (functions, const groups, type and value specs), on
// every processor: printing is most of a digest's cost (for a package of
// 2,000 hook functions, 83 ms of the 2,000 digests' 102 ms before, on 2
// cores), and the declarations print independently.
func normalForms(fset *token.FileSet, files []*file3) {
	type job struct {
		sf   *file3
		node ast.Node
		out  normalized
	}
	var jobs []job
	for _, sf := range files {
		if sf.normal != nil {
			continue // prefetched
		}
		for _, d := range sf.ast.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				jobs = append(jobs, job{sf: sf, node: d})
			case *ast.GenDecl:
				switch d.Tok {
				case token.IMPORT:
				case token.CONST:
					jobs = append(jobs, job{sf: sf, node: d})
				default:
					for _, sp := range d.Specs {
						jobs = append(jobs, job{sf: sf, node: sp})
					}
				}
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/64+1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// The printer asks the file set for the line of every
			// token, under a lock of the file: each worker reads a
			// copy of the file's lines of its own.
			own := make(map[*token.File]*token.FileSet)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				j := &jobs[i]
				fs := fset
				if tf := fset.File(j.node.Pos()); tf != nil && workers > 1 {
					if fs = own[tf]; fs == nil {
						fs = token.NewFileSet()
						fs.AddFile(tf.Name(), tf.Base(), tf.Size()).SetLines(tf.Lines())
						own[tf] = fs
					}
				}
				j.out.toks, j.out.err = normalForm(nil, fs, j.node)
			}
		})
	}
	wg.Wait()
	for _, j := range jobs {
		if j.sf.normal == nil {
			j.sf.normal = make(map[ast.Node]normalized)
		}
		j.sf.normal[j.node] = j.out
	}
}

// simplify rewrites f as gofmt -s does, so that gofmt -s is no change:
// composite literal types and &T that the element type implies are
// dropped, s[a:len(s)] is s[a:], and blank range variables are dropped.
// Adapted from cmd/gofmt/simplify.go (Copyright 2010 The Go Authors,
// BSD-style license).
func simplify(f *ast.File) {
	ast.Walk(simplifier{}, f)
}

type simplifier struct{}

func (s simplifier) Visit(node ast.Node) ast.Visitor {
	switch n := node.(type) {
	case *ast.CompositeLit:
		var keyType, eltType ast.Expr
		switch typ := n.Type.(type) {
		case *ast.ArrayType:
			eltType = typ.Elt
		case *ast.MapType:
			keyType = typ.Key
			eltType = typ.Value
		}
		if eltType == nil {
			break
		}
		for i, x := range n.Elts {
			px := &n.Elts[i]
			if kv, ok := x.(*ast.KeyValueExpr); ok {
				if keyType != nil {
					s.literal(keyType, kv.Key, &kv.Key)
				}
				x, px = kv.Value, &kv.Value
			}
			s.literal(eltType, x, px)
		}
		return nil
	case *ast.SliceExpr:
		if n.Max != nil {
			break
		}
		if x, ok := n.X.(*ast.Ident); ok {
			if call, ok := n.High.(*ast.CallExpr); ok && len(call.Args) == 1 && !call.Ellipsis.IsValid() {
				if fun, ok := call.Fun.(*ast.Ident); ok && fun.Name == "len" {
					if arg, ok := call.Args[0].(*ast.Ident); ok && arg.Name == x.Name {
						n.High = nil
					}
				}
			}
		}
	case *ast.RangeStmt:
		if isBlank(n.Value) {
			n.Value = nil
		}
		if isBlank(n.Key) && n.Value == nil {
			n.Key = nil
		}
	}
	return s
}

func (s simplifier) literal(typ, x ast.Expr, px *ast.Expr) {
	ast.Walk(s, x)
	if inner, ok := x.(*ast.CompositeLit); ok && inner.Type != nil && sameExpr(typ, inner.Type) {
		inner.Type = nil
	}
	if ptr, ok := typ.(*ast.StarExpr); ok {
		if addr, ok := x.(*ast.UnaryExpr); ok && addr.Op == token.AND {
			if inner, ok := addr.X.(*ast.CompositeLit); ok && inner.Type != nil && sameExpr(ptr.X, inner.Type) {
				inner.Type = nil
				*px = inner
			}
		}
	}
}

// sameExpr reports two type expressions that read the same.
func sameExpr(a, b ast.Expr) bool {
	return types.ExprString(a) == types.ExprString(b)
}

func isBlank(x ast.Expr) bool {
	id, ok := x.(*ast.Ident)
	return ok && id.Name == "_"
}
