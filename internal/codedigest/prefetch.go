package codedigest

import (
	"go/ast"
	"go/parser"
	"path/filepath"
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
// background, the Go files at paths (absolute; the files of the main
// module's packages the digests will be computed over, such as the hook
// packages, without tests), so that this work, most of a digest's cost,
// overlaps what the caller does meanwhile (the go command listing the
// packages whose facts UsePackages gives). It needs none of those facts:
// a package's imports and aliases are resolved when the package is first
// used, as without it. A file is used as it was read here; one that did
// not parse is read again when used, and reports its error then. Call it
// at most once, before any digest; the Scope waits for it where it needs
// one of its files.
func (s *Scope) Prefetch(paths []string) {
	pf := &prefetched{done: make(chan struct{}), files: make(map[string]prefetchedFile)}
	s.prefetch = pf
	go func() {
		defer close(pf.done)
		var files []*file3
		var parsed []string
		for _, path := range paths {
			f, err := parser.ParseFile(s.fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				continue
			}
			if never(f) {
				pf.files[path] = prefetchedFile{never: true}
				continue
			}
			simplify(f)
			files = append(files, &file3{base: filepath.Base(path), ast: f})
			parsed = append(parsed, path)
		}
		normalForms(s.fset, files)
		for i, sf := range files {
			pf.files[parsed[i]] = prefetchedFile{ast: sf.ast, normal: sf.normal}
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
