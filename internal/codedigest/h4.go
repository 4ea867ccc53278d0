package codedigest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	modv "golang.org/x/mod/module"
	"golang.org/x/tools/go/packages"
)

// Prefix is the algorithm prefix of the digests Scope.Compute returns,
// the one hookgen writes to hooks.sum.
const Prefix = "h4:"

// h4state is what h4 adds to a Scope. h4 is h3's walk over a larger
// scope: a second Scope (h4scope), a copy of the first with deps set,
// keeps its own parsed packages, so that h3 stays what it was.
type h4state struct {
	// deps is set on the Scope that computes h4: the modules of the
	// module cache whose packages the reached code reaches are in scope.
	deps bool
	// h4 is the Scope of h4 (on the Scope NewScope returns), used the
	// package lists given to UsePackages, to give them to h4 too.
	h4   *Scope
	used [][]*packages.Package
	// loadedMods are the modules the go command selected for the
	// packages given to UsePackages, when they were loaded from this
	// tree (a go.mod that does not list every module, before go 1.17).
	loadedMods map[string]*packages.Module
	// depMods are the modules read from the module cache, by path.
	depMods map[string]module
	// modCache is GOMODCACHE as the go command reports it.
	modCache    string
	modCacheErr error
}

// Compute returns the "h4:" code digest of the function name of the
// package pkgPath (in scope): h3 with the code the hook reaches in the
// modules go.sum pins, read from the module cache (see the package doc).
func (s *Scope) Compute(pkgPath, name string) (Result, error) {
	return s.h4scope().compute(Prefix, pkgPath, name)
}

// h4scope returns the Scope that computes h4.
func (s *Scope) h4scope() *Scope {
	if s.deps {
		return s
	}
	if s.h4 == nil {
		c := *s
		c.h3 = h3state{}
		c.h4state = h4state{deps: true, loadedMods: make(map[string]*packages.Module), depMods: make(map[string]module)}
		c.pkgs = make(map[string]*pkgSrc)
		c.modItems = make(map[string]*item)
		s.h4 = &c
		for _, pkgs := range s.used {
			c.UsePackages(pkgs)
		}
	}
	return s.h4
}

// usePackagesH4 gives pkgs to the Scope of h4, which also records the
// modules the go command selected, when pkgs were loaded from its tree.
func (s *Scope) usePackagesH4(pkgs []*packages.Package) {
	if !s.deps {
		s.used = append(s.used, pkgs)
		if s.h4 != nil {
			s.h4.UsePackages(pkgs)
		}
		return
	}
	mainDir := ""
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if p.Module != nil && p.Module.Main && p.Module.Dir != "" {
			mainDir = p.Module.Dir
		}
	})
	if mainDir == "" || !sameDir(mainDir, s.mainDir) {
		return // another tree's packages: its versions are not this one's
	}
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		if p.Module != nil && !p.Module.Main {
			s.loadedMods[p.Module.Path] = p.Module
		}
	})
}

func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ea, err1 := filepath.EvalSymlinks(a)
	eb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ea == eb
}

// locateDep returns the module of the module cache that provides the
// package importPath, as the build selects it (go.mod's require and
// replace, go.work's replace), and the package's directory; ok is false
// for the standard library and a package no required module provides.
func (s *Scope) locateDep(importPath string) (module, string, bool) {
	first, _, _ := strings.Cut(importPath, "/")
	if !strings.Contains(first, ".") {
		return module{}, "", false
	}
	best := ""
	longest := func(m string) {
		if (importPath == m || strings.HasPrefix(importPath, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	for m := range s.requires {
		longest(m)
	}
	if s.h3.noVendor {
		for m := range s.vendored {
			longest(m)
		}
	}
	for m := range s.loadedMods {
		longest(m)
	}
	if best == "" {
		return module{}, "", false
	}
	m := s.depModule(best)
	dir, ok := m.pkgDir(importPath)
	if !ok {
		return module{}, "", false
	}
	return m, dir, true
}

// depModule returns the module path as the build selects it, with its
// directory in the module cache; a version not in the cache is
// downloaded (go mod download, under the user's GOPROXY and GOFLAGS), and
// m.err says why it could not be.
func (s *Scope) depModule(path string) module {
	if m, ok := s.depMods[path]; ok {
		return m
	}
	m := module{Path: path, Origin: "cache"}
	version := ""
	if v, ok := s.requires[path]; ok {
		version = v
	} else if v, ok := s.vendored[path]; ok {
		version = v
	}
	target, version := replacedVersion(path, version)
	if lm := s.loadedMods[path]; lm != nil {
		target, version, m.Dir = lm.Path, lm.Version, lm.Dir
		if lm.Replace != nil {
			target, version, m.Dir = lm.Replace.Path, lm.Replace.Version, lm.Replace.Dir
		}
	}
	m.Version = version
	if target != path {
		m.Version = target + " " + version
	}
	if m.Dir == "" {
		m.Dir, m.err = s.cacheDir(target, version)
		if m.err != nil {
			m.err = fmt.Errorf("module %s %s: %w", path, m.Version, m.err)
		}
	}
	s.depMods[path] = m
	return m
}

// cacheDir returns the directory of mod@version in the module cache,
// downloading it when it is not there.
func (s *Scope) cacheDir(mod, version string) (string, error) {
	if version == "" {
		return "", errors.New("no version required in go.mod")
	}
	if s.modCache == "" && s.modCacheErr == nil {
		cmd := exec.Command("go", "env", "GOMODCACHE")
		cmd.Dir = s.mainDir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		s.modCache = strings.TrimSpace(string(out))
		if err == nil && s.modCache == "" {
			err = errors.New("it is empty")
		}
		if err != nil {
			s.modCacheErr = fmt.Errorf("go env GOMODCACHE: %v %s", err, strings.TrimSpace(stderr.String()))
		}
	}
	if s.modCacheErr != nil {
		return "", s.modCacheErr
	}
	dir, err := cachePath(s.modCache, mod, version)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	cmd := exec.Command("go", "mod", "download", "-json", mod+"@"+version)
	cmd.Dir = s.mainDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res struct{ Dir, Error string }
	_ = json.Unmarshal(out, &res)
	switch {
	case res.Error != "":
		return "", fmt.Errorf("not in the module cache, and go mod download failed: %s", res.Error)
	case err != nil:
		return "", fmt.Errorf("not in the module cache, and go mod download failed: %v %s", err, strings.TrimSpace(stderr.String()))
	case res.Dir == "":
		return "", errors.New("not in the module cache, and go mod download reported no directory")
	}
	return res.Dir, nil
}

// replacedVersion splits a version of Scope.requires: "other/path v1.2.3"
// when a replace names another module's version, else the version of mod
// itself.
func replacedVersion(mod, version string) (target, v string) {
	if t, v, ok := strings.Cut(version, " "); ok {
		return t, v
	}
	return mod, version
}

// cachePath is the directory of mod@version in the module cache cache.
func cachePath(cache, mod, version string) (string, error) {
	ep, err := modv.EscapePath(mod)
	if err != nil {
		return "", err
	}
	ev, err := modv.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, filepath.FromSlash(ep)+"@"+ev), nil
}

// GuessDir returns the directory of the package importPath as the module's
// go.mod, go.work and vendor/ name it, without a go command: in the scope
// (the main module, a replace to a directory, a go.work module, vendor/),
// else in the module cache at the version go.mod requires (or a replace
// names), the cache being where GOMODCACHE or, unset, the first GOPATH
// entry puts it. "" when it finds none. It is a guess (the go command may
// select another version, or build without vendor/), for a caller that
// checks what it guessed.
func (s *Scope) GuessDir(importPath string) string {
	for _, m := range s.h3init().modules {
		if importPath == m.Path || strings.HasPrefix(importPath, m.Path+"/") {
			dir, _ := m.pkgDir(importPath)
			return dir
		}
	}
	best, required, ok := s.requirement(importPath)
	if _, pinned := s.requires[best]; !ok || !pinned {
		return ""
	}
	cache := os.Getenv("GOMODCACHE")
	if gopath := filepath.SplitList(build.Default.GOPATH); cache == "" && len(gopath) > 0 {
		cache = filepath.Join(gopath[0], "pkg", "mod")
	}
	if cache == "" {
		return ""
	}
	target, version := replacedVersion(best, required)
	dir, err := cachePath(cache, target, version)
	if err != nil {
		return ""
	}
	dir, _ = module{Path: best, Dir: dir}.pkgDir(importPath)
	return dir
}

// markModules sets the module and version of the pieces that lie in a
// module of the module cache: their keys name the module path and the
// package, not the version, so that a bump that changes no reached piece
// keeps the digest; the lint names the versions of one that does.
func (w *walk3) markModules(decls []Decl) {
	mods := make(map[string]string)
	for _, set := range []map[*pkg3]bool{w.reached, w.closure} {
		for p := range set {
			if p.mod.Origin == "cache" {
				mods[p.mod.Path] = p.mod.Version
			}
		}
	}
	for i := range decls {
		id, best := decls[i].ID, ""
		for m := range mods {
			rest, ok := strings.CutPrefix(id, m)
			if !ok {
				rest, ok = strings.CutPrefix(id, "module "+m)
				ok = ok && rest == ": go"
			}
			if ok && (strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, ":")) && len(m) > len(best) {
				best = m
			}
		}
		if best != "" {
			decls[i].Module, decls[i].Version = best, mods[best]
		}
	}
}
