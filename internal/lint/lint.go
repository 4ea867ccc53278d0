package lint

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/mod/modfile"
	"golang.org/x/tools/go/packages"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/gitx"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/sumfile"
)

// Options say which registry to check.
type Options struct {
	// Registry is the registry file, as shown in diagnostics (relative
	// to the working directory, or absolute).
	Registry string
	// ModuleDir is the directory of the module holding the hooks.
	ModuleDir string
	// Against are the references to compare with (lint); none means the
	// defaults: the merge base with the default branch and every release
	// tag.
	Against []string
	// Since limits the audit to the commits after it (adoption: the
	// history before it is accepted as it is); empty means all history.
	Since string
}

// ErrUnknownRef is returned for an --against reference that names no
// commit.
var ErrUnknownRef = errors.New("unknown reference")

// SumPath returns the hooks.sum that belongs to a registry file:
// generated/hooks.sum beside it.
func SumPath(registryPath string) string {
	return filepath.Join(filepath.Dir(registryPath), "generated", "hooks.sum")
}

// work is what Lint, Audit and Amend share: the repository and where the
// registry and hooks.sum live in it.
type work struct {
	opts   Options
	repo   *gitx.Repo
	batch  *gitx.Batch
	relReg string // slash path of registry.yaml in the repository
	relSum string
	tags   []gitx.Tag
	// landedCache and refCache memoise git lookups per hook and commit.
	landedCache map[int][]diag.Related
	refCache    map[string]*refCode
	// landedCommit is the first commit that added each num line;
	// containing the release tags that contain a commit.
	landedCommit map[int]landedAt
	containing   map[string][]gitx.Tag
	// loaded are the working tree's packages (registry.Funcs.Packages):
	// the package names for digests of a reference's tree.
	loaded  []*packages.Package
	tmpDirs []string
	// reads and otherLines memoise read and otherLine by commit (lint
	// reads every reference while the packages load).
	reads      map[string]readResult
	otherLines map[string]otherLineResult
	// curData and cur are the working tree's registry (Lint): a
	// reference whose registry has the same bytes shares its parse.
	curData []byte
	cur     *registry.File
	// head is HEAD's commit, resolved once (resolveHead).
	head     string
	headErr  error
	headDone bool
}

type readResult struct {
	reg     *registry.File
	digests sums
	err     error
}

type otherLineResult struct {
	other bool
	err   error
}

// refCode is the code of a reference: its registry and its source scope,
// to compute digests over its own tree; funcs is its type-checked hook
// functions, loaded only for an h1 digest.
type refCode struct {
	dir, module string
	reg         *registry.File
	scope       *codedigest.Scope
	funcs       *registry.Funcs
	err         error
}

func open(ctx context.Context, opts Options) (*work, error) {
	abs, err := filepath.Abs(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("locating %s: %w", opts.Registry, err)
	}
	repo, err := gitx.Open(ctx, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	if err := repo.CheckComplete(ctx); err != nil {
		return nil, err
	}
	// The repository root as git prints it may differ from abs by
	// symbolic links (/tmp on macOS); resolve both.
	root, err := filepath.EvalSymlinks(repo.Root)
	if err != nil {
		return nil, fmt.Errorf("locating the repository: %w", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("locating %s: %w", opts.Registry, err)
	}
	rel, err := filepath.Rel(root, filepath.Join(dir, filepath.Base(abs)))
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%s is not inside the repository %s", opts.Registry, repo.Root)
	}
	tags, err := repo.ReleaseTags(ctx)
	if err != nil {
		return nil, err
	}
	return &work{
		opts:        opts,
		repo:        repo,
		relReg:      filepath.ToSlash(rel),
		relSum:      filepath.ToSlash(SumPath(rel)),
		tags:        tags,
		landedCache: make(map[int][]diag.Related),
		refCache:    make(map[string]*refCode),
		containing:  make(map[string][]gitx.Tag),
		reads:       make(map[string]readResult),
		otherLines:  make(map[string]otherLineResult),
	}, nil
}

func (w *work) close() error {
	var errs []error
	if w.batch != nil {
		errs = append(errs, w.batch.Close())
	}
	for _, d := range w.tmpDirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// ErrBrokenReference is returned when registry.yaml or hooks.sum at a
// reference does not parse: its hooks cannot be checked, and lint fails
// closed rather than compare with nothing.
var ErrBrokenReference = errors.New("reference does not parse")

// read returns registry.yaml and hooks.sum at the commit of reference
// name; reg is nil when the registry did not exist there. A registry or
// hooks.sum that does not parse is an error wrapping ErrBrokenReference.
// Each commit is read once: the result (the error naming the first name
// it was read under) is kept; callers do not modify it.
func (w *work) read(ctx context.Context, name, commit string) (*registry.File, sums, error) {
	if r, ok := w.reads[commit]; ok {
		return r.reg, r.digests, r.err
	}
	reg, digests, err := w.readOnce(ctx, name, commit)
	if ctx.Err() == nil {
		w.reads[commit] = readResult{reg, digests, err}
	}
	return reg, digests, err
}

func (w *work) readOnce(ctx context.Context, name, commit string) (reg *registry.File, digests sums, err error) {
	if w.batch == nil {
		if w.batch, err = w.repo.Batch(ctx); err != nil {
			return nil, nil, err
		}
	}
	data, ok, err := w.batch.Read(commit + ":" + w.relReg)
	if err != nil || !ok {
		return nil, nil, err
	}
	if w.cur != nil && bytes.Equal(data, w.curData) {
		reg = w.cur // parsed already, without findings
	} else {
		var pds []diag.Diagnostic
		reg, pds = registry.Parse(w.relReg, data)
		if len(pds) > 0 {
			return nil, nil, fmt.Errorf("%w: %s at %s (commit %.12s): %s: fix the history or compare with other references (--against)", ErrBrokenReference, w.relReg, name, commit, pds[0].Text())
		}
	}
	sum, ok, err := w.batch.Read(commit + ":" + w.relSum)
	if err != nil {
		return nil, nil, err
	}
	digests = make(sums)
	if ok {
		lines, err := sumfile.Parse(w.relSum, sum)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s at %s (commit %.12s): %v", ErrBrokenReference, w.relSum, name, commit, err)
		}
		digests.add(lines)
	}
	return reg, digests, nil
}

// resolveHead resolves HEAD once (gitx.ErrUnknownRevision in a
// repository without commits).
func (w *work) resolveHead(ctx context.Context) (string, error) {
	if !w.headDone {
		w.head, w.headErr = w.repo.Resolve(ctx, "HEAD")
		w.headDone = ctx.Err() == nil
	}
	return w.head, w.headErr
}

// ref is a commit to compare with.
type ref struct {
	name, commit string
}

// refs returns the references: those given, or the merge base with the
// default branch and every release tag, newest first.
func (w *work) refs(ctx context.Context, cur *registry.File) ([]ref, error) {
	var refs []ref
	if len(w.opts.Against) > 0 {
		for _, name := range w.opts.Against {
			commit, err := w.repo.Resolve(ctx, name)
			if errors.Is(err, gitx.ErrUnknownRevision) {
				return nil, fmt.Errorf("--against %q: %w: no such commit, branch or tag in %s (fetch it, or check the name)", name, ErrUnknownRef, w.repo.Root)
			}
			if err != nil {
				return nil, err
			}
			refs = append(refs, ref{name, commit})
		}
		return refs, nil
	}
	head, err := w.resolveHead(ctx)
	if err != nil && !errors.Is(err, gitx.ErrUnknownRevision) {
		return nil, err
	}
	branch, err := w.repo.DefaultBranch(ctx)
	if err != nil {
		return nil, err
	}
	if head != "" && branch != "" {
		mb, err := w.repo.MergeBase(ctx, branch, head)
		if err != nil {
			return nil, err
		}
		if mb != "" {
			short := strings.TrimPrefix(strings.TrimPrefix(branch, "refs/heads/"), "refs/remotes/")
			refs = append(refs, ref{fmt.Sprintf("%s (merge base %.7s)", short, mb), mb})
		}
	}
	if err := w.checkTags(ctx, cur); err != nil {
		return nil, err
	}
	for _, t := range slices.Backward(w.tags) {
		refs = append(refs, ref{t.Name, t.Commit})
	}
	return refs, nil
}

// checkTags reports a clone fetched without its tags: it has a remote, no
// release tag, and a registry that names a release older than its own (a
// hook's introduced_in, min_data_version), so earlier releases exist and
// their tags are missing.
// CheckComplete has refused shallow clones already: the advice is "git
// fetch --tags".
//
// With release tags, a release between the oldest of them and the
// registry's own that a hook was introduced in, and that has no tag, is
// missing too (a tag deleted or not fetched): without it, a change of the
// hook since that release could pass unseen. Releases before the oldest
// tag need none: a product may have adopted hookreg after them.
func (w *work) checkTags(ctx context.Context, cur *registry.File) error {
	release, err := parseVersion(cur.Release)
	if err != nil {
		return nil
	}
	if len(w.tags) > 0 {
		return w.checkTagGaps(ctx, cur, release)
	}
	older := ""
	if v, err := parseVersion(cur.MinDataVersion); err == nil && v.LessThan(release) {
		older = fmt.Sprintf("min_data_version is %q", cur.MinDataVersion)
	}
	for _, h := range cur.Hooks {
		if h.Version != nil && h.Version.LessThan(release) {
			older = fmt.Sprintf("hook %d was introduced in %q", h.Num, h.IntroducedIn)
			break
		}
	}
	if older == "" {
		return nil
	}
	remote, err := w.repo.HasRemotes(ctx)
	if err != nil || !remote {
		return err
	}
	return fmt.Errorf("%w: no release tags (v*) in %s, although %s, before release %q: run %q, or name the references with --against", gitx.ErrIncomplete, w.repo.Root, older, cur.Release, gitx.FetchTagsAdvice)
}

// checkTagGaps is checkTags with release tags: a hook's release after the
// oldest tag and before the registry's own, without a tag of its own.
func (w *work) checkTagGaps(ctx context.Context, cur *registry.File, release *semver.Version) error {
	first := w.tags[0]
	for _, t := range w.tags {
		if t.Version.LessThan(first.Version) {
			first = t
		}
	}
	oldest := first.Version
	for _, h := range cur.Hooks {
		v := h.Version
		if v == nil || !v.LessThan(release) || !oldest.LessThan(v) || h.Maintenance {
			// A maintenance hook is compared with its line's branch,
			// and main may carry it before its patch release is tagged.
			continue
		}
		if slices.ContainsFunc(w.tags, func(t gitx.Tag) bool { return t.Version.Equal(v) }) {
			continue
		}
		remote, err := w.repo.HasRemotes(ctx)
		if err != nil || !remote {
			return err
		}
		return fmt.Errorf("%w: no release tag for %q in %s, although hook %d was introduced in it, after the release tag %s and before release %q: run %q, or name the references with --against", gitx.ErrIncomplete, h.IntroducedIn, w.repo.Root, h.Num, first.Name, cur.Release, gitx.FetchTagsAdvice)
	}
	return nil
}

// landed says where hook num landed: the first commit that added its num
// line to the registry, and the first release tag that contains it. The
// registry's history is read once, for every hook (one git log), and the
// tags that contain a commit once per commit.
func (w *work) landed(ctx context.Context, num int) []diag.Related {
	if w.landedCommit == nil {
		w.landedCommit = w.firstNumCommits(ctx)
	}
	if r, ok := w.landedCache[num]; ok {
		return r
	}
	var rel []diag.Related
	if lc, ok := w.landedCommit[num]; ok {
		msg := fmt.Sprintf("hook %d landed in commit %.12s %q", num, lc.commit, lc.subject)
		tags, ok := w.containing[lc.commit]
		var err error
		if !ok {
			tags, err = w.repo.Contains(ctx, lc.commit, w.tags)
			if err == nil {
				w.containing[lc.commit] = tags
			}
		}
		if err == nil && len(tags) > 0 {
			msg += ", first released in " + tags[0].Name
		} else if err == nil {
			// No tag contains the commit, but a release tag of another
			// branch may hold the hook (a cherry-pick of a maintenance
			// hook): it is released, from there.
			if t, ok := w.releasedElsewhere(ctx, num); ok {
				msg += ", a copy of the hook first released in " + t.Name + " (from another branch)"
			} else {
				msg += ", not released yet"
			}
		}
		rel = append(rel, diag.Related{Pos: diag.Position{File: w.opts.Registry}, Message: msg})
	}
	w.landedCache[num] = rel
	return rel
}

// releasedElsewhere returns the oldest release tag whose registry holds
// hook num.
func (w *work) releasedElsewhere(ctx context.Context, num int) (gitx.Tag, bool) {
	for _, t := range w.tags {
		reg, _, err := w.read(ctx, t.Name, t.Commit)
		if err != nil || reg == nil {
			continue
		}
		for _, h := range reg.Hooks {
			if h.Num == num {
				return t, true
			}
		}
	}
	return gitx.Tag{}, false
}

// landedAt is the commit that first added a hook's num line.
type landedAt struct{ commit, subject string }

// addedNumLine is a registry line that holds a hook's num.
var addedNumLine = regexp.MustCompile(`^\+[ \t]*(?:-[ \t]*)?num:[ \t]*([0-9]+)[ \t]*(?:#.*)?$`)

// firstNumCommits reads the registry's history from its first commit and
// returns, for every num, the first commit whose diff adds its num line.
func (w *work) firstNumCommits(ctx context.Context) map[int]landedAt {
	out := make(map[int]landedAt)
	data, err := w.repo.Run(ctx, "log", "--reverse", "--format=%x00%H %s", "-p", "-U0", "--no-color", "--no-ext-diff", "HEAD", "--", w.relReg)
	if err != nil {
		return out
	}
	for chunk := range strings.SplitSeq(string(data), "\x00") {
		header, body, _ := strings.Cut(chunk, "\n")
		commit, subject, ok := strings.Cut(header, " ")
		if !ok {
			continue
		}
		for line := range strings.SplitSeq(body, "\n") {
			m := addedNumLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n, err := strconv.Atoi(m[1])
			if err != nil {
				continue
			}
			if _, seen := out[n]; !seen {
				out[n] = landedAt{commit, subject}
			}
		}
	}
	return out
}

// changedDecls names what changed behind a code change of hook num since
// commit: the reference's digest of algorithm alg is computed again over
// its tree, and the pieces compared with cur's by key.
func (w *work) changedDecls(ctx context.Context, refName, commit string, num int, old string, cur *current) []change {
	alg := codedigest.Algorithm(old) + ":"
	res, err := w.refResult(ctx, commit, num, alg)
	if err != nil {
		if short := fmt.Sprintf("%.7s", commit); !strings.Contains(refName, short) {
			refName += " (" + short + ")"
		}
		return []change{{name: fmt.Sprintf("(could not load %s to name the declarations: %v)", refName, err)}}
	}
	if res.Digest == "" {
		return nil
	}
	now, err := cur.result(num, alg)
	if err != nil {
		return nil
	}
	if res.Digest == now.Digest {
		return []change{{name: fmt.Sprintf("(no declaration: the tree of %.7s has the current digest in this environment; the build differs, such as GOFLAGS, GOWORK or GOOS)", commit)}}
	}
	return diffDecls(res.Decls, now.Decls)
}

// refResult returns hook num's digest under alg computed over the tree of
// commit; an empty Result when the hook is not there or (h1) its function
// does not check at commit. h4, h3 and h2 read the tree's source, with the
// package names of the working tree's load (w.loaded): no go command loads
// it; h4 reads the modules its go.mod requires from the module cache (go
// mod download fetches a version that is not there).
func (w *work) refResult(ctx context.Context, commit string, num int, alg string) (codedigest.Result, error) {
	rc := w.refCache[commit]
	if rc == nil {
		rc = w.loadRef(ctx, commit)
		w.refCache[commit] = rc
	}
	if rc.err != nil {
		return codedigest.Result{}, rc.err
	}
	i := slices.IndexFunc(rc.reg.Hooks, func(h registry.Hook) bool { return h.Num == num })
	if i < 0 {
		return codedigest.Result{}, nil
	}
	if alg == codedigest.Prefix || alg == codedigest.PrefixH3 || alg == codedigest.PrefixH2 {
		pkgPath, name := registry.FuncPath(rc.module, rc.reg, rc.reg.Hooks[i].Func)
		var res codedigest.Result
		var err error
		switch alg {
		case codedigest.Prefix:
			res, err = rc.scope.Compute(pkgPath, name)
		case codedigest.PrefixH3:
			res, err = rc.scope.ComputeH3(pkgPath, name)
		default:
			res, err = rc.scope.ComputeH2(pkgPath, name)
		}
		if errors.Is(err, codedigest.ErrNotDeclared) {
			return codedigest.Result{}, nil // no such function there
		}
		return res, err
	}
	if rc.funcs == nil {
		funcs, _, err := registry.LoadFuncs(rc.dir, rc.reg)
		if err != nil {
			return codedigest.Result{}, err
		}
		rc.funcs = funcs
	}
	if rc.funcs.Funcs[i] == nil {
		return codedigest.Result{}, nil
	}
	return rc.funcs.Digest(rc.reg, i, alg)
}

// loadRef extracts the tree of commit and reads its registry and module.
func (w *work) loadRef(ctx context.Context, commit string) *refCode {
	dir, err := os.MkdirTemp("", "hookgen-lint-")
	if err != nil {
		return &refCode{err: err}
	}
	w.tmpDirs = append(w.tmpDirs, dir)
	if err := w.repo.Extract(ctx, commit, dir); err != nil {
		return &refCode{err: err}
	}
	// The registry as read from the commit already, else from the tree.
	reg := w.reads[commit].reg
	if reg == nil {
		regPath := filepath.Join(dir, filepath.FromSlash(w.relReg))
		data, err := os.ReadFile(regPath)
		if err != nil {
			return &refCode{err: err}
		}
		var pds []diag.Diagnostic
		reg, pds = registry.Parse(w.opts.Registry, data)
		if len(pds) > 0 {
			return &refCode{err: fmt.Errorf("%s at %.12s: %s", w.relReg, commit, pds[0].Text())}
		}
	}
	modRel, err := filepath.Rel(w.repo.Root, w.opts.ModuleDir)
	if err != nil || !filepath.IsLocal(modRel) && modRel != "." {
		modRel = filepath.Dir(filepath.FromSlash(w.relReg))
	}
	modDir := filepath.Join(dir, modRel)
	gomod, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return &refCode{err: err}
	}
	scope, err := codedigest.NewScope(modDir)
	if err != nil {
		return &refCode{err: err}
	}
	scope.UsePackages(w.loaded)
	return &refCode{dir: modDir, module: modfile.ModulePath(gomod), reg: reg, scope: scope}
}

// change is one piece of code that differs between two digests; mod,
// from and to are set for a required module's version (h3), and for a
// piece of a module of the module cache whose version changed (h4).
type change struct {
	name, mod, from, to string
}

// diffDecls lists the pieces that differ between old and cur, compared by
// Key (so a move between files is no change).
func diffDecls(old, cur []codedigest.Decl) []change {
	oldBy := make(map[string]codedigest.Decl, len(old))
	for _, d := range old {
		oldBy[d.Key()] = d
	}
	// The versions of the modules of the module cache on both sides
	// (h4): a changed piece of one whose version changed names both.
	oldVer, curVer := moduleVersions(old), moduleVersions(cur)
	bump := func(name string, d codedigest.Decl) change {
		c := change{name: name}
		if d.Module != "" && oldVer[d.Module] != "" && curVer[d.Module] != "" && oldVer[d.Module] != curVer[d.Module] {
			c.mod, c.from, c.to = d.Module, oldVer[d.Module], curVer[d.Module]
		}
		return c
	}
	var out []change
	for _, d := range cur {
		o, ok := oldBy[d.Key()]
		switch {
		case !ok:
			out = append(out, bump(d.Name+" (new)", d))
		case o.Hash != d.Hash:
			c := bump(d.Name, d)
			if mod, ok := strings.CutPrefix(d.Key(), "go.mod: require "); ok {
				c = change{name: d.Name, mod: mod, from: o.Hash, to: d.Hash}
			}
			out = append(out, c)
		}
		delete(oldBy, d.Key())
	}
	for _, d := range oldBy {
		out = append(out, bump(d.Name+" (no longer used)", d))
	}
	slices.SortFunc(out, func(a, b change) int { return cmp.Compare(a.name, b.name) })
	return out
}

// moduleVersions returns the versions of the modules of the module cache
// that ds cover, by module path.
func moduleVersions(ds []codedigest.Decl) map[string]string {
	out := make(map[string]string)
	for _, d := range ds {
		if d.Module != "" {
			out[d.Module] = d.Version
		}
	}
	return out
}

// current is the working tree's code: the digests of its hooks by number.
type current struct {
	reg   *registry.File
	funcs *registry.Funcs
	index map[int]int
}

func newCurrent(reg *registry.File, funcs *registry.Funcs) *current {
	c := &current{reg: reg, funcs: funcs, index: make(map[int]int)}
	for i, h := range reg.Hooks {
		if funcs.Funcs[i] != nil {
			c.index[h.Num] = i
		}
	}
	return c
}

// result returns hook num's digest under alg ("h2:", "h1:"), computed
// once (registry.Funcs.Digest).
func (c *current) result(num int, alg string) (codedigest.Result, error) {
	i, ok := c.index[num]
	if !ok {
		return codedigest.Result{}, registry.ErrNoFunc
	}
	return c.funcs.Digest(c.reg, i, alg)
}

// Lint compares the working tree's registry and the code digests of its
// hooks with registry.yaml and hooks.sum at each reference, and returns the
// findings. The error is for what stops the comparison: not a git
// repository, a shallow clone, an unknown reference, packages that do not
// load.
func Lint(ctx context.Context, opts Options) (ds []diag.Diagnostic, err error) {
	data, err := os.ReadFile(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("reading the registry: %w", err)
	}
	cur, pds := registry.Parse(opts.Registry, data)
	if len(pds) > 0 {
		return pds, nil
	}
	// The git side (the repository, the references, their registry,
	// hooks.sum and line) and the packages are independent: git runs
	// while the go command lists and the packages type-check. Errors are
	// reported in the order they were before: git's first.
	g := make(chan gitSide, 1)
	go func() { g <- prepare(ctx, opts, cur, data) }()
	funcs, fds, loadErr := registry.LoadFuncs(opts.ModuleDir, cur)
	gs := <-g
	w, refs, head := gs.w, gs.refs, gs.head
	if w != nil {
		defer func() {
			if cerr := w.close(); err == nil && cerr != nil {
				err = fmt.Errorf("cleaning up: %w", cerr)
			}
		}()
	}
	if gs.err != nil {
		return nil, gs.err
	}
	if loadErr != nil {
		return nil, loadErr
	}
	ds = append(ds, fds...)
	w.loaded = funcs.Packages
	now := newCurrent(cur, funcs)
	for num := range now.index {
		if _, err := now.result(num, codedigest.Prefix); err != nil {
			return nil, err
		}
	}
	if gs.headErr != nil {
		return nil, gs.headErr
	}
	var digestErr error
	curDigest := func(num int, alg string) string {
		if alg == "" {
			alg = codedigest.Prefix
		}
		r, err := now.result(num, alg)
		if err != nil && !errors.Is(err, registry.ErrNoFunc) && digestErr == nil {
			digestErr = err
		}
		return r.Digest
	}
	landedAnywhere := make(map[int]bool)
	// compareRef compares cur with the reference r; only, when not nil,
	// limits the comparison to those hooks (a maintenance line's).
	compareRef := func(r ref, only map[int]bool) error {
		old, oldDigests, err := w.read(ctx, r.name, r.commit)
		if err != nil {
			return err
		}
		if old == nil {
			return nil // no registry at r: nothing had landed
		}
		curReg := cur
		if only != nil {
			old, curReg = filterHooks(old, only), filterHooks(cur, only)
		}
		for _, h := range old.Hooks {
			landedAnywhere[h.Num] = true
		}
		otherLine, err := w.otherLine(ctx, r, head)
		if err != nil {
			return err
		}
		var refErr error
		c := &comparison{
			ref:       r.name,
			landed:    func(num int) []diag.Related { return w.landed(ctx, num) },
			changed:   func(num int, old string) []change { return w.changedDecls(ctx, r.name, r.commit, num, old, now) },
			recorded:  func(num int) string { return oldDigests.digest(num, "") },
			otherLine: otherLine,
		}
		// A digest of an earlier algorithm is compared like with like:
		// the current algorithm over the reference's own tree.
		oldDigest := func(num int, alg string) string {
			d := oldDigests.digest(num, alg)
			if d == "" || alg != "" || strings.HasPrefix(d, codedigest.Prefix) {
				return d
			}
			res, err := w.refResult(ctx, r.commit, num, codedigest.Prefix)
			if err != nil && refErr == nil {
				refErr = fmt.Errorf("%s records %s digests: computing the %s digest over its tree to compare like with like: %w", r.name, codedigest.Algorithm(d), codedigest.Algorithm(codedigest.Prefix), err)
			}
			return res.Digest
		}
		ds = append(ds, compare(snapshot{old, oldDigest}, snapshot{curReg, curDigest}, c)...)
		if digestErr != nil {
			return digestErr
		}
		return refErr
	}
	seen := make(map[string]bool)
	for _, r := range refs {
		if seen[r.commit] {
			continue
		}
		seen[r.commit] = true
		if err := compareRef(r, nil); err != nil {
			return nil, err
		}
	}
	mds, err := w.maintenanceLines(ctx, cur, compareRef)
	if err != nil {
		return nil, err
	}
	ds = append(ds, mds...)
	rds, err := w.releasedVersions(ctx, cur, landedAnywhere)
	if err != nil {
		return nil, err
	}
	return dedupe(append(ds, rds...)), nil
}

// gitSide is what Lint reads from git before it compares: the
// repository, the references and HEAD (head "" without commits); the
// registry and hooks.sum at each reference, and whether it is another
// line's release, are in w's caches.
type gitSide struct {
	w       *work
	refs    []ref
	head    string
	err     error
	headErr error
}

// prepare opens the repository of opts, finds the references to compare
// cur with, and reads what compareRef reads of each (errors are kept
// for compareRef to return in its order).
func prepare(ctx context.Context, opts Options, cur *registry.File, curData []byte) gitSide {
	w, err := open(ctx, opts)
	if err != nil {
		return gitSide{err: err}
	}
	w.cur, w.curData = cur, curData
	refs, err := w.refs(ctx, cur)
	if err != nil {
		return gitSide{w: w, err: err}
	}
	head, err := w.resolveHead(ctx)
	if err != nil && !errors.Is(err, gitx.ErrUnknownRevision) {
		return gitSide{w: w, refs: refs, headErr: err}
	}
	seen := make(map[string]bool)
	for _, r := range refs {
		if seen[r.commit] {
			continue
		}
		seen[r.commit] = true
		if old, _, err := w.read(ctx, r.name, r.commit); err != nil || old == nil {
			continue
		}
		_, _ = w.otherLine(ctx, r, head)
	}
	return gitSide{w: w, refs: refs, head: head}
}

// releasedVersions flags new hooks introduced in a version that has
// already been released: a release tag exists for it or a later version,
// and the hook is in none of those tags' registries.
func (w *work) releasedVersions(ctx context.Context, cur *registry.File, landed map[int]bool) ([]diag.Diagnostic, error) {
	if len(w.tags) == 0 {
		return nil, nil
	}
	newest := w.tags[len(w.tags)-1]
	var ds []diag.Diagnostic
	tagHooks := make(map[string]map[int]bool)
	for _, h := range cur.Hooks {
		if landed[h.Num] || h.Version == nil || h.Version.GreaterThan(newest.Version) {
			continue
		}
		i, _ := slices.BinarySearchFunc(w.tags, h.Version, func(t gitx.Tag, v *semver.Version) int { return t.Version.Compare(v) })
		later := w.tags[i:]
		if h.Maintenance {
			// A maintenance line's releases are its own tags: a later
			// line's release never shipped its patch releases' hooks.
			later = sameLine(later, h.Version)
			if len(later) == 0 {
				continue
			}
		}
		shipped := false
		for _, t := range later {
			nums, ok := tagHooks[t.Commit]
			if !ok {
				reg, _, err := w.read(ctx, t.Name, t.Commit)
				if err != nil {
					return nil, err
				}
				nums = make(map[int]bool)
				if reg != nil {
					for _, th := range reg.Hooks {
						nums[th.Num] = true
					}
				}
				tagHooks[t.Commit] = nums
			}
			if nums[h.Num] {
				shipped = true
				break
			}
		}
		if shipped {
			continue
		}
		ds = append(ds, diag.Diagnostic{Pos: h.IntroducedInPos, Rule: RuleReleasedVersion, Hook: h.Num,
			Message: fmt.Sprintf("introduced_in %q is a version already released (tag %s exists); shipped releases cannot gain hooks: introduce it in the next release, such as %q", h.IntroducedIn, later[0].Name, nextRelease(cur, newest))})
	}
	return ds, nil
}

// dedupe keeps the first finding of each position, rule and hook: the same
// change seen from several references is reported once, against the first
// (the merge base, then the newest tag).
func dedupe(ds []diag.Diagnostic) []diag.Diagnostic {
	type key struct {
		pos  diag.Position
		rule string
		hook int
	}
	seen := make(map[key]bool)
	out := ds[:0]
	for _, d := range ds {
		k := key{d.Pos, d.Rule, d.Hook}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b diag.Diagnostic) int { return cmp.Compare(a.Pos.Line, b.Pos.Line) })
	return out
}

func parseVersion(v string) (*semver.Version, error) {
	return semver.StrictNewVersion(v)
}

// nextRelease suggests the version of a new hook: the registry's release
// when it is not released yet, else the patch after the newest tag.
func nextRelease(cur *registry.File, newest gitx.Tag) string {
	if r, err := parseVersion(cur.Release); err == nil && r.GreaterThan(newest.Version) {
		return r.String()
	}
	return newest.Version.IncPatch().String()
}

// Origin returns hook num's digest under the current algorithm computed
// (with the package names of loaded, registry.Funcs.Packages) over the tree
// of the first commit whose hooks.sum recorded digest for
// it: the code that digest was computed from. hookgen generate writes a
// pair of two algorithms' digests only when it equals the current code's
// digest, so that a pair never links a digest to other code than its own.
// It returns "" when no commit of HEAD's history recorded the digest.
func Origin(ctx context.Context, opts Options, loaded []*packages.Package, num int, digest string) (origin string, err error) {
	w, err := open(ctx, opts)
	if err != nil {
		return "", err
	}
	w.loaded = loaded
	defer func() {
		if cerr := w.close(); err == nil && cerr != nil {
			err = fmt.Errorf("cleaning up: %w", cerr)
		}
	}()
	// A merge that brought the digest counts (against its first
	// parent): log shows no diff of a merge by default.
	out, err := w.repo.Run(ctx, "log", "--reverse", "--format=%H", "--diff-merges=first-parent", "-s", "-S"+digest, "HEAD", "--", w.relSum)
	if err != nil {
		return "", err
	}
	for commit := range strings.FieldsSeq(string(out)) {
		_, sums, err := w.read(ctx, commit, commit)
		if err != nil {
			return "", err
		}
		if sums.digest(num, "") != digest {
			continue
		}
		res, err := w.refResult(ctx, commit, num, codedigest.Prefix)
		if err != nil {
			return "", err
		}
		return res.Digest, nil
	}
	return "", nil
}

// sameLine returns the tags of v's line (the same MAJOR.MINOR).
func sameLine(tags []gitx.Tag, v *semver.Version) []gitx.Tag {
	var out []gitx.Tag
	for _, t := range tags {
		if t.Version.Major() == v.Major() && t.Version.Minor() == v.Minor() {
			out = append(out, t)
		}
	}
	return out
}

// filterHooks returns f with only the hooks numbered in only.
func filterHooks(f *registry.File, only map[int]bool) *registry.File {
	g := *f
	g.Hooks = nil
	for _, h := range f.Hooks {
		if only[h.Num] {
			g.Hooks = append(g.Hooks, h)
		}
	}
	return &g
}

// otherLine reports a release tag r that head does not contain: another
// line's release (see comparison.otherLine).
func (w *work) otherLine(ctx context.Context, r ref, head string) (bool, error) {
	key := r.name + "\x00" + r.commit + "\x00" + head
	if o, ok := w.otherLines[key]; ok {
		return o.other, o.err
	}
	other, err := w.otherLineOnce(ctx, r, head)
	if ctx.Err() == nil {
		w.otherLines[key] = otherLineResult{other, err}
	}
	return other, err
}

func (w *work) otherLineOnce(ctx context.Context, r ref, head string) (bool, error) {
	if head == "" || !slices.ContainsFunc(w.tags, func(t gitx.Tag) bool { return t.Name == r.name && t.Commit == r.commit }) {
		return false, nil
	}
	mb, err := w.repo.MergeBase(ctx, r.commit, head)
	if err != nil {
		return false, err
	}
	return mb != r.commit, nil
}

// MaintenanceBranch is the name of the maintenance branch of line
// MAJOR.MINOR: release-MAJOR.MINOR (local, else of a remote).
func MaintenanceBranch(line string) string { return "release-" + line }

// maintenanceLines proves that main carries each maintenance hook of
// another line than its own release's as its line has it: for every such
// hook it finds the line's branch (release-MAJOR.MINOR, local or a
// remote's) or, else, the newest release tag of the line that holds the
// hook, and compares those hooks with it (num, introduced_in,
// allow_online, func and code digest, through compareRef). A hook that
// neither holds is a maintenance-line finding: maintenance: true is
// accepted only for a hook of a maintenance line.
func (w *work) maintenanceLines(ctx context.Context, cur *registry.File, compareRef func(ref, map[int]bool) error) ([]diag.Diagnostic, error) {
	rel := cur.Version()
	byLine := make(map[string][]*registry.Hook)
	var lines []string
	for i := range cur.Hooks {
		h := &cur.Hooks[i]
		if !h.Maintenance || h.Version == nil {
			continue
		}
		line := fmt.Sprintf("%d.%d", h.Version.Major(), h.Version.Minor())
		if rel != nil && fmt.Sprintf("%d.%d", rel.Major(), rel.Minor()) == line {
			continue // the tree is the line's own branch
		}
		if byLine[line] == nil {
			lines = append(lines, line)
		}
		byLine[line] = append(byLine[line], h)
	}
	var ds []diag.Diagnostic
	for _, line := range lines {
		var sources []ref
		branch, err := w.findBranch(ctx, MaintenanceBranch(line))
		if err != nil {
			return nil, err
		}
		if branch.commit != "" {
			sources = append(sources, branch)
		}
		v := byLine[line][0].Version
		for _, t := range slices.Backward(sameLine(w.tags, v)) {
			sources = append(sources, ref{t.Name, t.Commit})
		}
		todo := make(map[int]*registry.Hook)
		for _, h := range byLine[line] {
			todo[h.Num] = h
		}
		for _, src := range sources {
			if len(todo) == 0 {
				break
			}
			reg, _, err := w.read(ctx, src.name, src.commit)
			if err != nil {
				return nil, err
			}
			if reg == nil {
				continue
			}
			only := make(map[int]bool)
			for _, h := range reg.Hooks {
				if todo[h.Num] != nil {
					only[h.Num] = true
					delete(todo, h.Num)
				}
			}
			if len(only) == 0 {
				continue
			}
			if err := compareRef(src, only); err != nil {
				return nil, err
			}
		}
		for _, h := range byLine[line] {
			if todo[h.Num] == nil {
				continue
			}
			ds = append(ds, diag.Diagnostic{Pos: h.MaintenancePos, Rule: RuleMaintenanceLine, Hook: h.Num,
				Message: fmt.Sprintf("maintenance hook of line %s, but neither branch %s nor a release tag of the line (v%s.*) holds it: a maintenance hook lands on its line's branch first, and main carries it by merging that branch", line, MaintenanceBranch(line), line)})
		}
	}
	return ds, nil
}

// findBranch resolves branch name: the local branch, else the
// remote-tracking branch of that name (origin's first).
func (w *work) findBranch(ctx context.Context, name string) (ref, error) {
	out, err := w.repo.Run(ctx, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"+name, "refs/remotes/origin/"+name, "refs/remotes/*/"+name)
	if err != nil {
		return ref{}, err
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		commit, refname, ok := strings.Cut(line, " ")
		if ok {
			short := strings.TrimPrefix(strings.TrimPrefix(refname, "refs/heads/"), "refs/remotes/")
			return ref{"branch " + short, commit}, nil
		}
	}
	return ref{}, nil
}
