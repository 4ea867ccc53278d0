// Package gitx runs git for hookgen lint and audit: through the git command,
// never a library, so that hookgen sees exactly what the developer's git
// sees (worktrees, alternates, partial clones, safe.directory).
//
// Open resolves the repository from a directory with
// "git rev-parse --show-toplevel --git-dir", honouring the caller's GIT_DIR
// and GIT_WORK_TREE (as a git hook sees them). Every later command runs at
// the top level with GIT_DIR and GIT_WORK_TREE set to the resolved absolute
// paths, the rest of the GIT_* variables that change what git prints
// (pager, trace, external diff, literal pathspecs) removed, LC_ALL=C, no
// terminal prompt and no optional locks.
//
// History is read in batch: [Repo.Log] runs one "git log --raw" for the
// paths asked, and a [Batch] is one "git cat-file --batch" process fed many
// object names; nothing runs one process per commit.
//
// Example:
//
//	repo, err := gitx.Open(ctx, ".")
//	if err != nil {
//		return err // errors.Is(err, gitx.ErrNotRepository) for "not a git repository"
//	}
//	if err := repo.CheckComplete(ctx); err != nil {
//		return err // a shallow clone: run git fetch --unshallow --tags
//	}
//	b, err := repo.Batch(ctx)
//	// ...
//	defer b.Close()
//	data, ok, err := b.Read("v5.0.0:registry.yaml")
package gitx

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// ErrNotRepository is returned by Open outside a git repository.
var ErrNotRepository = errors.New("not a git repository")

// ErrIncomplete marks a history that lacks commits or tags hookgen needs: a
// shallow clone, or a clone fetched without its tags.
var ErrIncomplete = errors.New("incomplete git history")

// UnshallowAdvice is what to run to complete a shallow clone; a complete
// clone refuses --unshallow, so a tagless complete clone gets
// FetchTagsAdvice.
const (
	UnshallowAdvice = "git fetch --unshallow --tags"
	FetchTagsAdvice = "git fetch --tags"
)

// Repo is a git repository and its work tree.
type Repo struct {
	// Root is the absolute path of the work tree's top level.
	Root string
	// GitDir is the absolute path of the repository's git directory.
	GitDir string
	env    []string
}

// Open returns the repository holding dir, resolved as git resolves it from
// there (with the caller's GIT_DIR and GIT_WORK_TREE, when set).
func Open(ctx context.Context, dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening git repository: %w", err)
	}
	r := &Repo{env: cleanEnv(os.Environ(), true)}
	out, err := r.run(ctx, abs, nil, "rev-parse", "--show-toplevel", "--git-dir")
	if err != nil {
		var gerr *Error
		if errors.As(err, &gerr) && strings.Contains(gerr.Stderr, "not a git repository") {
			return nil, fmt.Errorf("%s: %w (run hookgen inside a git clone of the module)", abs, ErrNotRepository)
		}
		if errors.As(err, &gerr) && strings.Contains(gerr.Stderr, "must be run in a work tree") {
			return nil, fmt.Errorf("%s: %w with a work tree (a bare repository has no registry.yaml to check)", abs, ErrNotRepository)
		}
		return nil, fmt.Errorf("opening git repository: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("opening git repository: unexpected output of git rev-parse: %q", out)
	}
	r.Root = lines[0]
	r.GitDir = lines[1]
	if !filepath.IsAbs(r.GitDir) {
		r.GitDir = filepath.Join(abs, r.GitDir)
	}
	r.env = append(cleanEnv(os.Environ(), false), "GIT_DIR="+r.GitDir, "GIT_WORK_TREE="+r.Root)
	return r, nil
}

// kept are the GIT_* variables that say where the repository's objects
// are, or how to read its configuration; every other GIT_* variable is
// removed.
var kept = []string{
	"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR",
	"GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
	"GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
	"GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_EXEC_PATH",
}

// cleanEnv returns environ without the GIT_* variables that would change
// git's output, keeping GIT_DIR and GIT_WORK_TREE when locate is set (to
// resolve the repository as the caller's git would).
func cleanEnv(environ []string, locate bool) []string {
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "LC_ALL" || k == "LANG" || k == "LANGUAGE":
			continue
		case k == "GIT_DIR" || k == "GIT_WORK_TREE":
			if !locate {
				continue
			}
		case strings.HasPrefix(k, "GIT_CONFIG_") && k != "GIT_CONFIG_NOSYSTEM" && k != "GIT_CONFIG_GLOBAL" && k != "GIT_CONFIG_SYSTEM":
			// GIT_CONFIG_COUNT/KEY_n/VALUE_n: keep the caller's
			// -c settings (safe.directory in CI)
		case strings.HasPrefix(k, "GIT_") && !slices.Contains(kept, k):
			continue
		}
		if k == "GIT_DIR" || k == "GIT_WORK_TREE" {
			if _, v, _ := strings.Cut(kv, "="); v == "" {
				continue
			}
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0", "GIT_PAGER=cat", "GIT_NO_REPLACE_OBJECTS=1")
}

// Error is a git command that failed.
type Error struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// baseArgs come before every command: stable output whatever the
// configuration says.
var baseArgs = []string{"-c", "core.quotepath=off", "-c", "log.showSignature=false", "-c", "color.ui=false", "--no-pager"}

func (r *Repo) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append(slices.Clone(baseArgs), args...)...)
	cmd.Dir = dir
	cmd.Env = r.env
	return cmd
}

func (r *Repo) run(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := r.command(ctx, dir, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return out, nil
}

// Run runs git with args at the top level and returns its standard output.
func (r *Repo) Run(ctx context.Context, args ...string) ([]byte, error) {
	return r.run(ctx, r.Root, nil, args...)
}

// CheckComplete returns an error wrapping ErrIncomplete for a shallow
// clone, whose history ends before the commits that landed the hooks.
func (r *Repo) CheckComplete(ctx context.Context) error {
	out, err := r.Run(ctx, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return fmt.Errorf("checking for a shallow clone: %w", err)
	}
	if strings.TrimSpace(string(out)) == "true" {
		return fmt.Errorf("%w: %s is a shallow clone, its history ends before the hooks landed: run %q (in a GitHub workflow: actions/checkout with fetch-depth: 0)", ErrIncomplete, r.Root, UnshallowAdvice)
	}
	return nil
}

// HasRemotes reports whether the repository has a remote: a clone, whose
// tags may not all have been fetched.
func (r *Repo) HasRemotes(ctx context.Context) (bool, error) {
	out, err := r.Run(ctx, "remote")
	if err != nil {
		return false, fmt.Errorf("listing remotes: %w", err)
	}
	return len(bytes.TrimSpace(out)) > 0, nil
}

// Tag is a release tag.
type Tag struct {
	// Name is the tag's name, such as "v5.0.1".
	Name string
	// Commit is the full hash of the commit it points to.
	Commit string
	// Version is the name's semantic version.
	Version *semver.Version
}

// ReleaseTags returns the tags named v followed by a semantic version
// (strict parsing), oldest version first. Other v* tags are ignored.
func (r *Repo) ReleaseTags(ctx context.Context) ([]Tag, error) {
	out, err := r.Run(ctx, "for-each-ref", "--format=%(refname:strip=2) %(objectname) %(*objectname)", "refs/tags/v*")
	if err != nil {
		return nil, fmt.Errorf("listing release tags: %w", err)
	}
	var tags []Tag
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := semver.StrictNewVersion(strings.TrimPrefix(f[0], "v"))
		if err != nil {
			continue
		}
		commit := f[1]
		if len(f) == 3 {
			commit = f[2] // an annotated tag: the commit it peels to
		}
		tags = append(tags, Tag{Name: f[0], Commit: commit, Version: v})
	}
	slices.SortFunc(tags, func(a, b Tag) int {
		if c := a.Version.Compare(b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return tags, nil
}

// DefaultBranch returns the default branch: origin/HEAD, else main, else
// master; "" when there is none.
func (r *Repo) DefaultBranch(ctx context.Context) (string, error) {
	for _, ref := range []string{"refs/remotes/origin/HEAD", "refs/heads/main", "refs/heads/master"} {
		if _, err := r.Resolve(ctx, ref); err == nil {
			return ref, nil
		} else if !errors.Is(err, ErrUnknownRevision) {
			return "", err
		}
	}
	return "", nil
}

// ErrUnknownRevision is returned by Resolve for a name that names no commit.
var ErrUnknownRevision = errors.New("unknown revision")

// Resolve returns the full hash of the commit rev names.
func (r *Repo) Resolve(ctx context.Context, rev string) (string, error) {
	if strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("resolving %q: %w", rev, ErrUnknownRevision)
	}
	out, err := r.Run(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		var gerr *Error
		var exitErr *exec.ExitError
		if errors.As(err, &gerr) && errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
			return "", fmt.Errorf("resolving %q: %w", rev, ErrUnknownRevision)
		}
		return "", fmt.Errorf("resolving %q: %w", rev, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// MergeBase returns the best common ancestor of commits a and b, "" when
// they have none.
func (r *Repo) MergeBase(ctx context.Context, a, b string) (string, error) {
	out, err := r.Run(ctx, "merge-base", a, b)
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
			return "", nil
		}
		return "", fmt.Errorf("finding the merge base of %s and %s: %w", a, b, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Contains returns the release tags (of tags) whose commit has commit as an
// ancestor, in the order of tags.
func (r *Repo) Contains(ctx context.Context, commit string, tags []Tag) ([]Tag, error) {
	out, err := r.Run(ctx, "for-each-ref", "--format=%(refname:strip=2)", "--contains", commit, "refs/tags/v*")
	if err != nil {
		return nil, fmt.Errorf("listing the tags that contain %s: %w", commit, err)
	}
	names := strings.Fields(string(out))
	var in []Tag
	for _, t := range tags {
		if slices.Contains(names, t.Name) {
			in = append(in, t)
		}
	}
	return in, nil
}

// Extract writes the tree of commit into dir (which must exist), through
// "git archive": the files as committed, without the repository.
func (r *Repo) Extract(ctx context.Context, commit, dir string) error {
	cmd := r.command(ctx, r.Root, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("extracting %s: %w", commit, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("extracting %s: %w", commit, err)
	}
	xerr := untar(out, dir)
	if xerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("extracting %s: %w", commit, &Error{Args: []string{"archive", commit}, Stderr: stderr.String(), Err: err})
	}
	if xerr != nil {
		return fmt.Errorf("extracting %s: %w", commit, xerr)
	}
	return nil
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive member %q is outside the tree", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := writeFile(p, tr, os.FileMode(h.Mode)&0o755|0o644); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Batch reads objects through one "git cat-file --batch" process.
type Batch struct {
	cmd    *exec.Cmd
	in     *bufio.Writer
	stdin  io.Closer
	out    *bufio.Reader
	stderr *bytes.Buffer
}

// Batch starts a cat-file process; Close it when done.
func (r *Repo) Batch(ctx context.Context) (*Batch, error) {
	cmd := r.command(ctx, r.Root, "cat-file", "--batch")
	b := &Batch{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = b.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("starting git cat-file: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting git cat-file: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting git cat-file: %w", err)
	}
	b.stdin, b.in, b.out = in, bufio.NewWriter(in), bufio.NewReaderSize(out, 1<<16)
	return b, nil
}

// Read returns the content of the object name names ("COMMIT:path" or a
// blob hash); ok is false when there is no such object (a file that did not
// exist at that commit).
func (b *Batch) Read(name string) (data []byte, ok bool, err error) {
	if strings.ContainsAny(name, "\n") {
		return nil, false, fmt.Errorf("reading git object %q: name holds a newline", name)
	}
	if _, err := b.in.WriteString(name + "\n"); err != nil {
		return nil, false, b.fail(name, err)
	}
	if err := b.in.Flush(); err != nil {
		return nil, false, b.fail(name, err)
	}
	header, err := b.out.ReadString('\n')
	if err != nil {
		return nil, false, b.fail(name, err)
	}
	f := strings.Fields(header)
	if len(f) == 2 && f[1] == "missing" || len(f) >= 2 && f[len(f)-1] == "ambiguous" {
		return nil, false, nil
	}
	if len(f) != 3 {
		return nil, false, fmt.Errorf("reading git object %q: unexpected header %q", name, header)
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return nil, false, fmt.Errorf("reading git object %q: unexpected header %q", name, header)
	}
	data = make([]byte, size+1)
	if _, err := io.ReadFull(b.out, data); err != nil {
		return nil, false, b.fail(name, err)
	}
	return data[:size], true, nil
}

func (b *Batch) fail(name string, err error) error {
	if msg := strings.TrimSpace(b.stderr.String()); msg != "" {
		return fmt.Errorf("reading git object %q: %w: %s", name, err, msg)
	}
	return fmt.Errorf("reading git object %q: %w", name, err)
}

// Close ends the cat-file process.
func (b *Batch) Close() error {
	b.stdin.Close()
	if err := b.cmd.Wait(); err != nil {
		return fmt.Errorf("git cat-file: %w", &Error{Args: []string{"cat-file", "--batch"}, Stderr: b.stderr.String(), Err: err})
	}
	return nil
}

// Commit is one commit of a Log.
type Commit struct {
	Hash string
	// Parents are the parents in the history limited to the paths
	// (rewritten as git log --parents does), first parent first.
	Parents []string
	Subject string
	// Changes are the paths that differ from the first parent (from an
	// empty tree for a root commit).
	Changes []Change
}

// Change is one changed path of a commit.
type Change struct {
	Path string
	// OldBlob and NewBlob are object hashes; all zeros for a file added
	// or deleted.
	OldBlob, NewBlob string
}

// NullHash reports whether h is git's all-zero object name.
func NullHash(h string) bool { return strings.Trim(h, "0") == "" }

const commitMark = "\x1ecommit "

// Log calls fn for every commit that changed one of paths, parents before
// children, from one "git log --raw" process. Merges are compared with
// their first parent.
func (r *Repo) Log(ctx context.Context, rev string, paths []string, fn func(*Commit) error) error {
	args := []string{"log", "--reverse", "--topo-order", "--parents", "--diff-merges=first-parent", "--raw", "--no-abbrev", "--no-renames",
		"--format=%x1ecommit %H %P%n%s", rev, "--"}
	args = append(args, paths...)
	cmd := r.command(ctx, r.Root, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("reading history: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("reading history: %w", err)
	}
	perr := parseLog(bufio.NewReaderSize(out, 1<<16), fn)
	if perr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("reading history: %w", &Error{Args: args[:1], Stderr: stderr.String(), Err: err})
	}
	return perr
}

func parseLog(r *bufio.Reader, fn func(*Commit) error) error {
	var c *Commit
	flush := func() error {
		if c == nil {
			return nil
		}
		done := c
		c = nil
		return fn(done)
	}
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return flush()
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading history: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, commitMark):
			if err := flush(); err != nil {
				return err
			}
			f := strings.Fields(strings.TrimPrefix(line, commitMark))
			if len(f) == 0 {
				return fmt.Errorf("reading history: unexpected line %q", line)
			}
			c = &Commit{Hash: f[0], Parents: f[1:]}
			subject, err := r.ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("reading history: %w", err)
			}
			c.Subject = strings.TrimSuffix(subject, "\n")
		case strings.HasPrefix(line, ":") && c != nil:
			meta, path, ok := strings.Cut(line, "\t")
			f := strings.Fields(meta)
			if !ok || len(f) < 5 {
				return fmt.Errorf("reading history: unexpected line %q", line)
			}
			if strings.HasPrefix(path, `"`) {
				if p, err := strconv.Unquote(path); err == nil {
					path = p
				}
			}
			c.Changes = append(c.Changes, Change{Path: path, OldBlob: f[2], NewBlob: f[3]})
		}
		if err == io.EOF {
			return flush()
		}
	}
}
