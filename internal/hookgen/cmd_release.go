package hookgen

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/release"
	"github.com/hookreg/hookreg/internal/subcmd"
)

const (
	flagCmd       = "cmd"
	flagPlatforms = "platforms"
	flagFixtures  = "fixtures"
	flagSeedStore = "seed-store"
	flagSeedCmd   = "seed-cmd"
	flagDist      = "dist"
	flagSubcmd    = "subcommand"
)

// defaultPlatforms are the platforms of a release by default.
const defaultPlatforms = "linux/amd64,linux/arm64,darwin/arm64,windows/amd64"

var releaseCmd = &spec{
	Name:    "release",
	Summary: "the release gate, then reproducible binaries of the migrator",
	Usage: `
Usage: hookgen release --version X.Y.Z [--migrator PKG [--subcommand WORDS]]
                       [--cmd PKG]... [--platforms LIST] [--fixtures DIR]
                       [--seed-store FILE | --seed-cmd CMD] [--dist DIR]

Release runs at the module root, the top level of a clean git tree. It
refuses, naming the reason, unless registry.yaml says release X.Y.Z, the
generated files are current (hookgen check), hookgen lint passes against
every v* release tag, every fixture in DIR matches DIR/SHA256SUMS, the
fixture DIR/X.Y.Z.tar.zst exists, and the migrator of this tree upgrades
every fixture of DIR offline to X.Y.Z with no hook left pending.

The migrator is the binary of --migrator PKG (default ./cmd/migrator). When
it is your product's own binary, with the migrator under a subcommand
("acmectl migrate upgrade ..."), name the subcommand: --migrator ./cmd/acmectl
--subcommand migrate. The gate refuses a binary whose "version --json" (after
the subcommand) does not answer as a migrator.

The fixture of X.Y.Z is written when it is missing, never overwritten: the
gate builds the migrator of this tree, seeds a store with the product's data
(a copy of --seed-store FILE, or the file $HOOKREG_STORE that --seed-cmd CMD
writes, run by sh -c with $HOOKREG_RELEASE and $HOOKREG_MIGRATOR set; with
--subcommand, $HOOKREG_MIGRATOR is a script running "BINARY WORDS..."), backs
it up with that migrator, upgrades it offline when hooks are pending, and
writes the result and its SHA256SUMS line. The seed holds upgrade metadata
("$HOOKREG_MIGRATOR init --store $HOOKREG_STORE" records a fresh install of
X.Y.Z). Then the release stops: commit the fixture and run it again.

Then it builds the migrator (--migrator, default ./cmd/migrator) and every
--cmd package for every platform into DIST/X.Y.Z/<goos>-<goarch>/, without
cgo, with -trimpath, an empty build id and the commit stamped; rebuilds each
migrator from an empty build cache and refuses unless the bytes are the
same; and writes DIST/X.Y.Z/SHA256SUMS and DIST/X.Y.Z/release.json (release,
product, registry digest, commit, Go version, hooks). Exit status: 0
released, 1 refused (or the fixture was written), 2 usage or environment.

Each step is shown on stderr when it is a terminal.

Example:

	$ go tool hookgen release --version 1.1.0 --seed-store testdata/seed.db
	release: checking that the tree is clean
	...
	released 1.1.0 into dist/1.1.0
`,
	New: func() command { return &releaseOptions{} },
}

// releaseOptions are the options of hookgen release.
type releaseOptions struct {
	opts       release.Options
	commands   refList
	platforms  string
	subcommand string
}

func (o *releaseOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.opts.Version, flagVersion, "", "the release `X.Y.Z` (required)")
	fs.StringVar(&o.opts.Migrator, flagMigrator, release.DefaultMigrator, "the `PKG` of the product's migrator main")
	fs.StringVar(&o.subcommand, flagSubcmd, "", "the `WORDS` before the migrator's commands in the --migrator binary, such as migrate")
	fs.Var(&o.commands, flagCmd, "another command `PKG` to build for every platform (repeatable)")
	fs.StringVar(&o.platforms, flagPlatforms, defaultPlatforms, "the platforms, a comma-separated `LIST` of GOOS/GOARCH or host")
	fs.StringVar(&o.opts.Fixtures, flagFixtures, release.DefaultFixtures, "the `DIR` of the release fixtures")
	fs.StringVar(&o.opts.SeedStore, flagSeedStore, "", "the store `FILE` that seeds a missing fixture")
	fs.StringVar(&o.opts.SeedCmd, flagSeedCmd, "", "the command `CMD` that writes the store seeding a missing fixture")
	fs.StringVar(&o.opts.Dist, flagDist, release.DefaultDist, "where releases go, as `DIR`/X.Y.Z")
}

func (o *releaseOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	if o.opts.Version == "" {
		return cliflag.Usagef("--%s X.Y.Z is required", flagVersion)
	}
	if _, err := semver.StrictNewVersion(o.opts.Version); err != nil {
		return cliflag.Usagef("--%s %q is not X.Y.Z (a semantic version without a leading v): %v", flagVersion, o.opts.Version, err)
	}
	if o.opts.SeedStore != "" && o.opts.SeedCmd != "" {
		return cliflag.Usagef("--%s and --%s exclude each other", flagSeedStore, flagSeedCmd)
	}
	targets, err := release.ParseTargets(o.platforms)
	if err != nil {
		return cliflag.Usagef("--%s: %v", flagPlatforms, err)
	}
	o.opts.Targets = targets
	o.opts.Commands = o.commands
	o.opts.Subcommand = strings.Fields(o.subcommand)
	return nil
}

func (o *releaseOptions) Run(e *env) error {
	root, err := findModuleRoot(".")
	if err != nil {
		return err
	}
	o.opts.Dir = root
	if subcmd.IsTerminal(e.stderr) {
		o.opts.Log = e.stderr
	}
	o.opts.Hookgen = func(args ...string) (bool, string) {
		var out bytes.Buffer
		code := Main(args, nil, &out, &out)
		return code == 0, strings.TrimSpace(out.String())
	}
	if err := release.Run(context.Background(), o.opts); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "released %s into %s\n", o.opts.Version, filepath.Join(o.opts.Dist, o.opts.Version))
	return err
}
