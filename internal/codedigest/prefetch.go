package codedigest

import (
	"go/ast"
	"go/parser"
	"os"
	"path/filepath"
	"strings"
)

// prefetched are Go files parsed and put in normal form ahead of the
// packages that hold them (see Prefetch).
type prefetched struct {
	done  chan struct{}
	files map[string]prefetchedFile // by path
	used  int                       // files parse3 took from it
}

// prefetchedFile is a file Prefetch parsed: simplified, with the normal
// forms of its declarations, or never compiled by any build.
type prefetchedFile struct {
	ast    *ast.File
	normal map[ast.Node]normalized
	never  bool
}

// Prefetch starts reading, parsing and printing in normal form, in the
// background, the Go files of dirs (directories of the main module's
// packages the digests will be computed over, such as the hook packages),
// so that this work, most of a digest's cost, overlaps what the caller
// does meanwhile (the go command listing the packages whose facts
// UsePackages gives). It needs none of those facts: a package's imports
// and aliases are resolved when the package is first used, as without
// it. A file is used as it was read here; one that did not parse is read
// again when used, and reports its error then. Call it at most once,
// before any digest; the Scope waits for it where it needs a file of dirs.
func (s *Scope) Prefetch(dirs []string) {
	pf := &prefetched{done: make(chan struct{}), files: make(map[string]prefetchedFile)}
	s.prefetch = pf
	go func() {
		defer close(pf.done)
		var files []*file3
		var paths []string
		for _, dir := range dirs {
			dir, err := filepath.Abs(dir)
			if err != nil {
				continue
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range entries {
				n := e.Name()
				if e.IsDir() || strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
					continue
				}
				full := filepath.Join(dir, n)
				f, err := parser.ParseFile(s.fset, full, nil, parser.ParseComments|parser.SkipObjectResolution)
				if err != nil {
					continue
				}
				if never(f) {
					pf.files[full] = prefetchedFile{never: true}
					continue
				}
				simplify(f)
				files = append(files, &file3{base: n, ast: f})
				paths = append(paths, full)
			}
		}
		normalForms(s.fset, files)
		for i, sf := range files {
			pf.files[paths[i]] = prefetchedFile{ast: sf.ast, normal: sf.normal}
		}
	}()
}

// prefetched returns the file at path as Prefetch read it, waiting for
// Prefetch to end; ok is false when Prefetch did not parse it.
func (s *Scope) prefetched(path string) (pf prefetchedFile, ok bool) {
	if s.prefetch == nil {
		return prefetchedFile{}, false
	}
	<-s.prefetch.done
	pf, ok = s.prefetch.files[path]
	if ok {
		s.prefetch.used++
	}
	return pf, ok
}
