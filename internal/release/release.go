// Package release is the program behind "make release VERSION=X.Y.Z": the
// release gate, then reproducible binaries.
//
// The gate refuses, naming the reason, unless
//   - the git tree is clean;
//   - registry.yaml's release is X.Y.Z;
//   - the generated files are current (hookgen check);
//   - hookgen lint passes against every release tag (v* tags that parse as semver);
//   - the release fixture testdata/releases/X.Y.Z.tar.zst exists;
//   - the migrator of this tree upgrades every release fixture offline to X.Y.Z
//     with nothing left pending (the fixture upgrade matrix).
//
// Then it builds migrator and hookgen for every platform of [Targets] into
// dist/X.Y.Z/<goos>-<goarch>/, reproducibly (see [Build]), rebuilds every
// migrator from an empty build cache and refuses unless the bytes are
// identical, and writes
// dist/X.Y.Z/SHA256SUMS and dist/X.Y.Z/release.json (the release, the
// product, the registry digest and the hooks, as "migrator version --json"
// of the built binary reports them).
//
// Usage:
//
//	go run ./internal/cmd/release --version 5.1.0 [--dist dist]
//
// It runs in the module root, which must be the top level of a git
// repository.
package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/sha256sum"
)

// Refusal is a failed gate check: the release is not built.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refused: " + r.Reason }

func refusef(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// Options configure a release.
type Options struct {
	// Dir is the module root (the repository's top level). The hookgen
	// checks run in the working directory, which must be Dir.
	Dir string
	// Version is the release, X.Y.Z.
	Version string
	// Dist is the directory the release goes into, as Dist/Version
	// (default "dist" below Dir).
	Dist string
	// Targets to build; the default is Targets.
	Targets []Target
	// Log receives one line per step.
	Log io.Writer
}

const (
	flagVersion = "version"
	flagDist    = "dist"
)

const usage = `usage: release --version X.Y.Z [--dist DIR]

Run in the module root. Checks that the tree may be released as X.Y.Z, then builds migrator
and hookgen for every platform into DIST/X.Y.Z with SHA256SUMS and
release.json. Exit status: 0 released, 1 refused or failed, 2 usage.

Example:

	make release VERSION=5.1.0
`

// Main runs the release program and returns its exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opts Options
	fs.StringVar(&opts.Version, flagVersion, "", "the release `X.Y.Z`")
	fs.StringVar(&opts.Dist, flagDist, "dist", "where releases go")
	opts.Dir = "."
	rest, err := cliflag.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err == nil {
		err = cliflag.Exactly(rest)
	}
	if err == nil && opts.Version == "" {
		err = cliflag.Usagef("--version is required (make release VERSION=X.Y.Z)")
	}
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n%s", err, usage)
		return 2
	}
	opts.Log = stderr
	err = Run(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n", err)
	}
	return cliflag.ExitCode(err)
}

// Run checks the gate and builds the release.
func Run(ctx context.Context, opts Options) error {
	if opts.Targets == nil {
		opts.Targets = Targets
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return cliflag.Env(err)
	}
	opts.Dir = dir
	if opts.Dist == "" {
		opts.Dist = "dist"
	}
	if !filepath.IsAbs(opts.Dist) {
		opts.Dist = filepath.Join(dir, opts.Dist)
	}
	if _, err := semver.StrictNewVersion(opts.Version); err != nil {
		return cliflag.Usagef("version %q is not X.Y.Z (a semantic version without a leading v): %v", opts.Version, err)
	}
	tmp, err := os.MkdirTemp("", "hookreg-release-")
	if err != nil {
		return cliflag.Env(err)
	}
	defer os.RemoveAll(tmp)
	g := &gate{opts: opts, tmp: tmp}
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"the tree is clean", g.clean},
		{"registry.yaml's release is " + opts.Version, g.registryRelease},
		{"the generated files are current", g.generated},
		{"hookgen lint passes against every release tag", g.lint},
		{"the release fixture exists", g.fixture},
		{"every release fixture upgrades to " + opts.Version, g.matrix},
	} {
		fmt.Fprintf(opts.Log, "release: checking that %s\n", step.name)
		if err := step.run(ctx); err != nil {
			return err
		}
	}
	return g.build(ctx)
}

type gate struct {
	opts     Options
	tmp      string
	migrator string // the host migrator built by matrix
}

func (g *gate) git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.opts.Dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", cliflag.Env(fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String())))
	}
	return string(out), nil
}

func (g *gate) clean(ctx context.Context) error {
	out, err := g.git(ctx, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return err
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); out != "" {
		more := ""
		if len(lines) > 5 {
			more = fmt.Sprintf(" and %d more", len(lines)-5)
			lines = lines[:5]
		}
		return refusef("the tree is not clean: %s%s; commit or remove the changes first", strings.Join(lines, "; "), more)
	}
	return nil
}

// releaseTags returns the v* tags that parse as semantic versions.
func (g *gate) releaseTags(ctx context.Context) ([]string, error) {
	out, err := g.git(ctx, "tag", "--list", "v*")
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, t := range strings.Fields(out) {
		if _, err := semver.StrictNewVersion(strings.TrimPrefix(t, "v")); err == nil {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

func (g *gate) fixture(ctx context.Context) error {
	name := filepath.Join("testdata", "releases", g.opts.Version+".tar.zst")
	if _, err := os.Stat(filepath.Join(g.opts.Dir, name)); err != nil {
		return refusef("the release fixture %s does not exist: run \"make fixtures\" to create it, then commit it", name)
	}
	return nil
}

// matrix builds the host migrator and upgrades every release fixture
// offline with it.
func (g *gate) matrix(ctx context.Context) error {
	host := Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	g.migrator = filepath.Join(g.tmp, host.exe("migrator"))
	if err := Build(ctx, g.opts.Dir, host, "./cmd/migrator", g.migrator); err != nil {
		return err
	}
	fixtures, err := filepath.Glob(filepath.Join(g.opts.Dir, "testdata", "releases", "*.tar.zst"))
	if err != nil {
		return err
	}
	for _, f := range fixtures {
		out := filepath.Join(g.tmp, "upgraded-"+filepath.Base(f))
		if _, err := g.run(ctx, g.migrator, "upgrade", "--offline", "--in", f, "--out", out); err != nil {
			return refusef("release fixture %s does not upgrade: %v", filepath.Base(f), err)
		}
		js, err := g.run(ctx, g.migrator, "plan", "--backup", out, "--json")
		if err != nil {
			return refusef("planning the upgraded release fixture %s: %v", filepath.Base(f), err)
		}
		var plan struct {
			DataVersion string            `json:"data_version"`
			Pending     []json.RawMessage `json:"pending"`
		}
		if err := json.Unmarshal([]byte(js), &plan); err != nil {
			return fmt.Errorf("reading the plan of %s: %w", filepath.Base(f), err)
		}
		if plan.DataVersion != g.opts.Version || len(plan.Pending) > 0 {
			return refusef("release fixture %s upgrades to data version %q with %d hooks pending, want %q with none", filepath.Base(f), plan.DataVersion, len(plan.Pending), g.opts.Version)
		}
	}
	return nil
}

// run runs a command in the module root and returns its standard output; an
// error carries its standard error.
func (g *gate) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = g.opts.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// build builds every command for every target, then SHA256SUMS and
// release.json.
func (g *gate) build(ctx context.Context) error {
	dist := filepath.Join(g.opts.Dist, g.opts.Version)
	if err := os.RemoveAll(dist); err != nil {
		return err
	}
	var files []string
	for _, t := range g.opts.Targets {
		for _, pkg := range Commands {
			out := binPath(dist, t, pkg)
			fmt.Fprintf(g.opts.Log, "release: building %s\n", out)
			if err := Build(ctx, g.opts.Dir, t, pkg, out); err != nil {
				return err
			}
			files = append(files, out)
		}
	}
	if err := g.reproduce(ctx, dist); err != nil {
		return err
	}
	version, err := g.run(ctx, g.migrator, "version", "--json")
	if err != nil {
		return fmt.Errorf("reading the registry of the built migrator: %w", err)
	}
	manifest, err := releaseJSON(g.opts.Version, []byte(version))
	if err != nil {
		return err
	}
	relPath := filepath.Join(dist, "release.json")
	if err := os.WriteFile(relPath, manifest, 0o644); err != nil {
		return err
	}
	files = append(files, relPath)
	sums, err := sha256sums(dist, files)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dist, "SHA256SUMS"), sums, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(g.opts.Log, "release: %s is in %s\n", g.opts.Version, dist)
	return nil
}

// reproduce builds the migrator of every target again, from nothing (an
// empty build cache), and refuses the release unless the bytes equal those
// in dist: a release whose binaries cannot be rebuilt bit for bit from its
// commit is not shipped.
func (g *gate) reproduce(ctx context.Context, dist string) error {
	cache := filepath.Join(g.tmp, "gocache")
	for _, t := range g.opts.Targets {
		fmt.Fprintf(g.opts.Log, "release: rebuilding the migrator for %s from an empty build cache\n", t)
		again := filepath.Join(g.tmp, "again", t.String(), t.exe("migrator"))
		if err := Build(ctx, g.opts.Dir, t, "./cmd/migrator", again, "GOCACHE="+cache); err != nil {
			return err
		}
		first := binPath(dist, t, "./cmd/migrator")
		a, err := sha256sum.File(first)
		if err != nil {
			return err
		}
		b, err := sha256sum.File(again)
		if err != nil {
			return err
		}
		if a != b {
			os.RemoveAll(dist)
			return refusef("the migrator for %s is not reproducible: two builds of this commit differ (sha256 %s and %s)", t, a, b)
		}
	}
	return nil
}

// releaseJSON builds release.json from the output of "migrator version
// --json": the release, product, registry digest and hooks, without what
// depends on the building machine.
func releaseJSON(version string, migratorVersion []byte) ([]byte, error) {
	var v struct {
		Release        string          `json:"release"`
		Product        string          `json:"product"`
		RegistryDigest string          `json:"registry_digest"`
		Commit         string          `json:"commit,omitempty"`
		GoVersion      string          `json:"go_version,omitempty"`
		Hooks          json.RawMessage `json:"hooks"`
	}
	if err := json.Unmarshal(migratorVersion, &v); err != nil {
		return nil, fmt.Errorf("reading migrator version --json: %w", err)
	}
	if v.Release != version {
		return nil, refusef("the built migrator reports release %q, want %q", v.Release, version)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// sha256sums returns the sha256sum-format listing of files, named relative
// to dir, sorted.
func sha256sums(dir string, files []string) ([]byte, error) {
	sums := map[string]string{}
	for _, f := range files {
		sum, err := sha256sum.File(f)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return nil, err
		}
		sums[filepath.ToSlash(rel)] = sum
	}
	return sha256sum.Format(sums), nil
}
