package codedigest

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/printer"
	"go/scanner"
	"go/token"
	"go/types"
	"strings"
)

// normalForm returns the tokens of node as go/printer prints it, without
// comments and layout: the h3 normal form of a declaration. Printing
// renders every token of the syntax tree, also those the tree holds only
// as positions (an alias's "=", a call's "..."), so no token can be lost;
// what reformatting may change is normalised: a semicolon is ";" whether
// written or inserted at a line end, a comma or semicolon before a closing
// bracket is dropped, number literals are lower-cased (0X1P4 is 0x1p4). The
// tree is simplified as gofmt -s does before (see simplify).
func normalForm(fset *token.FileSet, node any) ([]string, error) {
	var buf bytes.Buffer
	if err := (&printer.Config{Mode: printer.RawFormat}).Fprint(&buf, fset, node); err != nil {
		return nil, fmt.Errorf("printing: %w", err)
	}
	src := buf.Bytes()
	var sc scanner.Scanner
	var scanErr error
	sc.Init(token.NewFileSet().AddFile("", -1, len(src)), src, func(_ token.Position, msg string) {
		if scanErr == nil {
			scanErr = fmt.Errorf("scanning: %s", msg)
		}
	}, 0)
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
			// Identifiers, strings and characters: the kind keeps them
			// apart from keywords and operators.
			toks = append(toks, tok.String()+" "+lit)
		default:
			toks = append(toks, tok.String())
		}
	}
	for len(toks) > 0 && toks[len(toks)-1] == ";" {
		toks = toks[:len(toks)-1]
	}
	return toks, scanErr
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
