// Package release is the release gate of a product that uses hookreg, run
// as "hookgen release" (and by this repository's "make release"): it
// refuses, naming the reason, to ship a registry or a binary that could
// damage a customer's data, then builds reproducible binaries.
//
// The gate refuses unless
//   - the git tree is clean;
//   - registry.yaml's release is X.Y.Z;
//   - the generated files are current (hookgen check);
//   - hookgen lint passes against every release tag (v* tags that parse as semver);
//   - the release fixture FIXTURES/X.tar.zst exists, and every fixture of
//     FIXTURES matches its line in FIXTURES/SHA256SUMS;
//   - the migrator of this tree upgrades every release fixture offline to
//     X.Y.Z with nothing left pending (the fixture upgrade matrix).
//
// A missing fixture of X.Y.Z is written, never overwritten: the gate builds
// the migrator of this tree, lets the product's seed (Options.SeedStore or
// Options.SeedCmd) provide a store, backs it up with that migrator and, when
// hooks are pending, upgrades the backup offline with it. The result, the
// data as release X.Y.Z leaves it, written by the migrator of X.Y.Z, goes to
// FIXTURES/X.Y.Z.tar.zst with its SHA256SUMS line, and the gate stops: the
// fixture is committed, then the release runs again.
//
// The migrator is the binary of Options.Migrator, with Options.Subcommand
// before its commands when it is the product's own binary; the gate refuses
// a binary that does not answer "version --json" as a migrator.
//
// Then it builds the migrator and Options.Commands for every platform of
// Options.Targets into DIST/X.Y.Z/<goos>-<goarch>/, reproducibly (see
// [Build]), rebuilds every migrator from an empty build cache and refuses
// unless the bytes are identical, and writes DIST/X.Y.Z/SHA256SUMS and
// DIST/X.Y.Z/release.json (the release, the product, the registry digest and
// the hooks, as "migrator version --json" of the built binary reports them).
//
// $HOOKREG_REBUILD_CACHE names the build cache of that rebuild instead of
// an empty one. It is for test suites that run the gate many times (this
// repository's share [TestRebuildCache], so that the standard library and
// the dependencies are compiled for the rebuilds once, not once per gate):
// the rebuild still uses another cache and another build than the first,
// so a difference between two builds is still found; one that only a cold
// cache shows is left to the release itself. A release engineer leaves it
// unset.
package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Defaults of Options.
const (
	DefaultMigrator = "./cmd/migrator"
	DefaultFixtures = "testdata/releases"
	DefaultDist     = "dist"
)

// Options configure a release.
type Options struct {
	// Dir is the module root (the repository's top level), which holds
	// registry.yaml. The hookgen checks run in the working directory, which
	// must be Dir.
	Dir string
	// Version is the release, X.Y.Z.
	Version string
	// Dist is the directory the release goes into, as Dist/Version
	// (default DefaultDist below Dir).
	Dist string
	// Migrator is the package of the product's migrator main, relative to
	// Dir (default DefaultMigrator): a standalone migrator, or the
	// product's own binary with the migrator under Subcommand.
	Migrator string
	// Subcommand are the words before the migrator's commands in the
	// binary of Migrator, such as ["migrate"] for a product whose
	// "acmectl migrate upgrade ..." runs migrator.Program; none for a
	// standalone migrator.
	Subcommand []string
	// Commands are more packages to build beside the migrator, such as
	// "./cmd/hookgen".
	Commands []string
	// Targets to build; the default is Targets.
	Targets []Target
	// Fixtures is the directory of the release fixtures, relative to Dir
	// (default DefaultFixtures).
	Fixtures string
	// SeedStore is a bbolt store with upgrade metadata (as "migrator init"
	// records it) and the product's data: a copy of it seeds a missing
	// fixture.
	SeedStore string
	// SeedCmd is a command, run by sh -c in Dir, that writes such a store
	// for a missing fixture. Its environment holds HOOKREG_STORE (the file
	// to write), HOOKREG_RELEASE (X.Y.Z) and HOOKREG_MIGRATOR (the
	// migrator the gate built, for "$HOOKREG_MIGRATOR init --store
	// $HOOKREG_STORE"; with a Subcommand, a script that runs the built
	// binary with the Subcommand and its arguments).
	SeedCmd string
	// Hookgen runs hookgen with args in the working directory and returns
	// whether it succeeded and what it printed.
	Hookgen func(args ...string) (ok bool, output string)
	// Log receives one line per step.
	Log io.Writer
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
		opts.Dist = DefaultDist
	}
	if !filepath.IsAbs(opts.Dist) {
		opts.Dist = filepath.Join(dir, opts.Dist)
	}
	if opts.Fixtures == "" {
		opts.Fixtures = DefaultFixtures
	}
	if !filepath.IsAbs(opts.Fixtures) {
		opts.Fixtures = filepath.Join(dir, opts.Fixtures)
	}
	if opts.Migrator == "" {
		opts.Migrator = DefaultMigrator
	}
	if opts.SeedStore != "" && !filepath.IsAbs(opts.SeedStore) {
		opts.SeedStore = filepath.Join(dir, opts.SeedStore)
	}
	if opts.Hookgen == nil {
		return errors.New("no Options.Hookgen to run the hookgen checks with")
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
	migrator string // the host binary of Options.Migrator, once hostMigrator built it
}

// hostMigrator builds the binary of Options.Migrator of this tree for the
// running platform (once), checks that it answers as a migrator (with
// Options.Subcommand) and returns its path; run it with runMigrator.
func (g *gate) hostMigrator(ctx context.Context) (string, error) {
	if g.migrator != "" {
		return g.migrator, nil
	}
	name := filepath.Base(g.opts.Migrator)
	if name == "." || name == ".." || name == string(filepath.Separator) {
		name = "migrator"
	}
	path := filepath.Join(g.tmp, "bin", Host.exe(name))
	fmt.Fprintf(g.opts.Log, "release: building the migrator %s for %s\n", g.opts.Migrator, Host)
	if err := Build(ctx, g.opts.Dir, Host, g.opts.Migrator, path); err != nil {
		return "", err
	}
	g.migrator = path
	if _, err := g.migratorVersion(ctx); err != nil {
		return "", err
	}
	return path, nil
}

// migratorCommand names the migrator for messages: the binary's name and
// the subcommand, such as "acmectl migrate".
func (g *gate) migratorCommand() string {
	return strings.Join(append([]string{filepath.Base(g.opts.Migrator)}, g.opts.Subcommand...), " ")
}

// runMigrator runs the host migrator (see hostMigrator) with the
// subcommand and args, as run does.
func (g *gate) runMigrator(ctx context.Context, env []string, args ...string) (string, error) {
	return g.run(ctx, env, g.migrator, append(slices.Clone(g.opts.Subcommand), args...)...)
}

// migratorVersion returns what "version --json" of the host migrator
// prints, refusing when the binary does not answer as a migrator: the
// migrator of a product's binary sits under a subcommand the gate must be
// told.
func (g *gate) migratorVersion(ctx context.Context) ([]byte, error) {
	cmd := g.migratorCommand() + " version --json"
	out, err := g.runMigrator(ctx, nil, "version", "--json")
	var v struct {
		Release string `json:"release"`
	}
	if err == nil && (json.Unmarshal([]byte(out), &v) != nil || v.Release == "") {
		line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		err = fmt.Errorf("it printed %q, not the migrator's JSON with a release", line)
	}
	if err != nil {
		hint := "if the migrator is a subcommand of your product's binary, name it with --subcommand (such as --subcommand migrate)"
		if len(g.opts.Subcommand) > 0 {
			hint = fmt.Sprintf("check --migrator (the package of the binary) and --subcommand (the words before the migrator's commands, here %q)", strings.Join(g.opts.Subcommand, " "))
		}
		return nil, refusef("the binary of --migrator %s does not answer as a migrator: %q: %v; %s", g.opts.Migrator, cmd, err, hint)
	}
	return []byte(out), nil
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

// matrix upgrades every release fixture offline with the host migrator:
// each must reach the release with nothing pending.
func (g *gate) matrix(ctx context.Context) error {
	if _, err := g.hostMigrator(ctx); err != nil {
		return err
	}
	fixtures, err := filepath.Glob(filepath.Join(g.opts.Fixtures, "*"+fixtureExt))
	if err != nil {
		return err
	}
	for _, f := range fixtures {
		out := filepath.Join(g.tmp, "upgraded-"+filepath.Base(f))
		if _, err := g.runMigrator(ctx, nil, "upgrade", "--offline", "--in", f, "--out", out); err != nil {
			return refusef("release fixture %s does not upgrade: %v", filepath.Base(f), err)
		}
		if err := g.released(ctx, out, "the upgraded release fixture "+filepath.Base(f)); err != nil {
			return err
		}
	}
	return nil
}

// released checks that the backup at path holds data of the release with
// no hook pending, as the host migrator plans it; what names the backup in
// a refusal.
func (g *gate) released(ctx context.Context, path, what string) error {
	js, err := g.runMigrator(ctx, nil, "plan", "--backup", path, "--json")
	if err != nil {
		return refusef("planning %s: %v", what, err)
	}
	var plan struct {
		DataVersion string            `json:"data_version"`
		Pending     []json.RawMessage `json:"pending"`
	}
	if err := json.Unmarshal([]byte(js), &plan); err != nil {
		return fmt.Errorf("reading the plan of %s: %w", what, err)
	}
	if plan.DataVersion != g.opts.Version || len(plan.Pending) > 0 {
		return refusef("%s upgrades to data version %q with %d hooks pending, want %q with none", what, plan.DataVersion, len(plan.Pending), g.opts.Version)
	}
	return nil
}

// run runs a command in the module root, with env added to the
// environment, and returns its standard output; an error carries its
// standard error.
func (g *gate) run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = g.opts.Dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
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
		for _, pkg := range append([]string{g.opts.Migrator}, g.opts.Commands...) {
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
	version, err := g.migratorVersion(ctx)
	if err != nil {
		return err
	}
	manifest, err := releaseJSON(g.opts.Version, version)
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
	return nil
}

// EnvRebuildCache names the build cache of the gate's rebuild, for test
// suites (see the package doc).
const EnvRebuildCache = "HOOKREG_REBUILD_CACHE"

// TestRebuildCache is the build cache that this repository's test suites
// give the gates they run as $HOOKREG_REBUILD_CACHE: one directory of the
// user's cache, beside go's own build cache, shared by every test binary
// and kept between runs like go's (go trims what it has not used for days).
func TestRebuildCache() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hookreg", "rebuild-gocache"), nil
}

// reproduce builds the migrator of every target again, from nothing (an
// empty build cache), and refuses the release unless the bytes equal those
// in dist: a release whose binaries cannot be rebuilt bit for bit from its
// commit is not shipped.
func (g *gate) reproduce(ctx context.Context, dist string) error {
	cache, from := filepath.Join(g.tmp, "gocache"), "an empty build cache"
	if c := os.Getenv(EnvRebuildCache); c != "" {
		cache, from = c, "the build cache of $"+EnvRebuildCache
	}
	for _, t := range g.opts.Targets {
		fmt.Fprintf(g.opts.Log, "release: rebuilding the migrator for %s from %s\n", t, from)
		again := filepath.Join(g.tmp, "again", t.String(), t.exe("migrator"))
		if err := Build(ctx, g.opts.Dir, t, g.opts.Migrator, again, "GOCACHE="+cache); err != nil {
			return err
		}
		first := binPath(dist, t, g.opts.Migrator)
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
