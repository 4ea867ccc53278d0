package hookgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/gen"
	"github.com/hookreg/hookreg/internal/lint"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/sumfile"
)

// checked is a registry read, checked and type-checked: what generate and
// check work from.
type checked struct {
	// file is the registry file as shown in diagnostics; moduleDir the
	// module that holds it.
	file, moduleDir string
	reg             *registry.File
	funcs           *registry.Funcs
}

// readRegistry reads and parses the registry file and applies the rules of
// registry.Check. An unreadable file is an environment error.
func readRegistry(r registryFlag) (*checked, []diag.Diagnostic, error) {
	file, moduleDir, err := r.resolve()
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && r.path == "" {
		return nil, nil, cliflag.Env(fmt.Errorf("reading the registry: %w: this module has no registry yet; \"hookgen init\" sets one up", err))
	}
	if err != nil {
		return nil, nil, cliflag.Env(fmt.Errorf("reading the registry: %w", err))
	}
	f, ds := registry.Parse(file, data)
	ds = append(ds, registry.Check(f)...)
	return &checked{file: file, moduleDir: moduleDir, reg: f}, ds, nil
}

// checkRegistry is readRegistry followed by the type check of the hook
// functions (skipped when the package path itself is wrong); a failure to
// load packages at all is an environment error. Generate only from a
// result without findings.
func checkRegistry(r registryFlag) (*checked, []diag.Diagnostic, error) {
	c, ds, err := readRegistry(r)
	if err != nil {
		return nil, nil, err
	}
	if slices.ContainsFunc(ds, func(d diag.Diagnostic) bool { return d.Rule == registry.RulePackagePath }) {
		// Without a hook package there are no functions to check.
		return c, ds, nil
	}
	funcs, fds, err := registry.LoadFuncs(c.moduleDir, c.reg)
	if err != nil {
		return nil, nil, cliflag.Env(err)
	}
	c.funcs = funcs
	return c, relativize(append(ds, fds...)), nil
}

// relativize shows absolute file names of diagnostics (Go files of the
// hook packages) relative to the working directory.
func relativize(ds []diag.Diagnostic) []diag.Diagnostic {
	wd, err := os.Getwd()
	if err != nil {
		return ds
	}
	for i := range ds {
		if filepath.IsAbs(ds[i].Pos.File) {
			ds[i].Pos.File = displayPath(wd, ds[i].Pos.File)
		}
	}
	return ds
}

// outDir returns the output directory: out, or generated/ beside the
// registry.
func (c *checked) outDir(out string) string {
	if out != "" {
		return out
	}
	return filepath.Join(filepath.Dir(c.file), "generated")
}

// generate computes the code digests and the generated files for the
// output directory dir; c must have no findings.
func (c *checked) generate(dir string) (map[string][]byte, error) {
	digests, err := c.funcs.Digests(c.reg)
	if err != nil {
		return nil, fmt.Errorf("computing code digests: %w", err)
	}
	in := gen.Input{
		Package:        packageName(dir),
		Source:         filepath.Base(c.file),
		Product:        c.reg.Product,
		Release:        c.reg.Release,
		MinDataVersion: c.reg.MinDataVersion,
	}
	if in.Product == "" {
		in.Product = c.funcs.Module
	}
	prev := previousSums(filepath.Join(dir, gen.SumFile))
	for i, h := range c.reg.Hooks {
		fn := c.funcs.Funcs[i]
		earlier, err := c.earlier(i, prev[h.Num], digests[i].Digest)
		if err != nil {
			return nil, err
		}
		g := gen.Hook{
			Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Func,
			PkgPath: fn.Pkg().Path(), PkgName: fn.Pkg().Name(), Func: fn.Name(),
			Digest: digests[i].Digest, Earlier: earlier, Doc: h.Doc,
		}
		for _, a := range h.Amendments {
			g.Amendments = append(g.Amendments, hook.Amendment{Old: a.Old, New: a.New, Reason: a.Reason})
		}
		in.Hooks = append(in.Hooks, g)
	}
	return gen.Generate(in)
}

// previousSums reads the hooks.sum being replaced; a missing or broken
// file has nothing to carry over.
func previousSums(path string) map[int]sumfile.Line {
	out := make(map[int]sumfile.Line)
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	lines, err := sumfile.Parse(path, data)
	if err != nil {
		return out
	}
	for _, l := range lines {
		out[l.Num] = l
	}
	return out
}

// earlier returns the pairs "OLD->NEW" of hook i's line in hooks.sum: the
// digest of an earlier algorithm recorded in the file being replaced and
// the current digest, when both come from the same code: the current code
// has that digest under the earlier algorithm, and the tree of the commit
// that recorded it (lint.Origin) has the current digest under the current
// algorithm (an earlier algorithm may be blind to what changed since); and
// the pairs the file carried already, those naming the current digest
// checked again.
//
// An h3 digest recorded the versions of the modules the hook names, which
// h4 replaces by the code it reaches there: after a bump that changes no
// reached code, the current code has another h3 digest and the same h4
// one. So a pair h3->h4 needs only the second check (the tree that
// recorded the h3 digest has the current h4 digest: the same code under
// the algorithm that sees more).
func (c *checked) earlier(i int, prev sumfile.Line, digest string) ([]string, error) {
	var out []string
	origins := make(map[string]string)
	origin := func(old string) string {
		if o, ok := origins[old]; ok {
			return o
		}
		o, err := lint.Origin(context.Background(), lint.Options{Registry: c.file, ModuleDir: c.moduleDir}, c.funcs.Packages, c.reg.Hooks[i].Num, old)
		if err != nil {
			o = ""
		}
		origins[old] = o
		return o
	}
	add := func(old, cur string) error {
		if cur == digest {
			res, err := c.funcs.Digest(c.reg, i, codedigest.Algorithm(old)+":")
			if errors.Is(err, registry.ErrNoFunc) {
				return err
			}
			same := err == nil && res.Digest == old
			if !same && codedigest.Algorithm(old)+":" == codedigest.PrefixH3 {
				same = origin(old) == cur
			}
			if !same {
				return nil // not the same code: the lint reports the change
			}
		}
		if pair := old + "->" + cur; !slices.Contains(out, pair) {
			out = append(out, pair)
		}
		return nil
	}
	for _, e := range prev.Earlier {
		old, cur, _ := strings.Cut(e, "->")
		if err := add(old, cur); err != nil {
			return nil, err
		}
	}
	if prev.Digest != "" && codedigest.Algorithm(prev.Digest) != codedigest.Algorithm(digest) {
		if origin(prev.Digest) == digest {
			if err := add(prev.Digest, digest); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// packageName is the package name of generated code in dir: the
// directory's name when it is an identifier, else "generated".
func packageName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err == nil && token.IsIdentifier(filepath.Base(abs)) && !token.IsKeyword(filepath.Base(abs)) {
		return filepath.Base(abs)
	}
	return "generated"
}

// sortedNames returns the file names of files in order.
func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// same reports whether the file at path holds exactly data; a missing file
// does not.
func same(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, cliflag.Env(fmt.Errorf("reading %s: %w", path, err))
	}
	return bytes.Equal(old, data), nil
}
