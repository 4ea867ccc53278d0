package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/sha256sum"
)

// SumsFile, in the fixture directory, records the sha256 of every fixture.
const SumsFile = "SHA256SUMS"

const fixtureExt = ".tar.zst"

// fixture checks that every fixture matches its SHA256SUMS line and that
// the fixture of the release exists; a missing one is written (see the
// package documentation), and the release stops so that it is committed.
func (g *gate) fixture(ctx context.Context) error {
	dir := g.opts.Fixtures
	sums, err := CheckFixtures(dir)
	if err != nil {
		return refusef("%v", err)
	}
	name := g.opts.Version + fixtureExt
	path := filepath.Join(dir, name)
	rel := g.rel(path)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if g.opts.SeedStore == "" && g.opts.SeedCmd == "" {
		return refusef("the release fixture %s does not exist: give the gate the product's data (--seed-store FILE or --seed-cmd CMD) to write it with the migrator of this release, then commit it", rel)
	}
	sum, err := g.writeFixture(ctx, path)
	if err != nil {
		return err
	}
	sums[name] = sum
	if err := writeSums(filepath.Join(dir, SumsFile), sums); err != nil {
		return err
	}
	return refusef("the release fixture %s was missing: it is written now (sha256 %s) by the migrator of this tree; commit it with its line in %s, then run the release again", rel, sum, g.rel(filepath.Join(dir, SumsFile)))
}

// rel returns path relative to the module root for messages.
func (g *gate) rel(path string) string {
	if r, err := filepath.Rel(g.opts.Dir, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}

// writeFixture writes the fixture of the release to path, which must not
// exist, and returns its sha256: the seed store, backed up by the host
// migrator and upgraded offline by it when hooks are pending.
func (g *gate) writeFixture(ctx context.Context, path string) (string, error) {
	migrator, err := g.hostMigrator(ctx)
	if err != nil {
		return "", err
	}
	if len(g.opts.Subcommand) > 0 && g.opts.SeedCmd != "" {
		// $HOOKREG_MIGRATOR stays a command that answers as the migrator.
		if migrator, err = g.migratorScript(); err != nil {
			return "", err
		}
	}
	seed := filepath.Join(g.tmp, "seed", "store.db")
	if err := os.MkdirAll(filepath.Dir(seed), 0o700); err != nil {
		return "", err
	}
	if g.opts.SeedStore != "" {
		fmt.Fprintf(g.opts.Log, "release: seeding the fixture from %s\n", g.opts.SeedStore)
		if err := copyFile(g.opts.SeedStore, seed); err != nil {
			return "", refusef("reading the seed store: %v", err)
		}
	} else {
		fmt.Fprintf(g.opts.Log, "release: seeding the fixture with %s\n", g.opts.SeedCmd)
		env := []string{"HOOKREG_STORE=" + seed, "HOOKREG_RELEASE=" + g.opts.Version, "HOOKREG_MIGRATOR=" + migrator}
		if _, err := g.run(ctx, env, "sh", "-c", g.opts.SeedCmd); err != nil {
			return "", refusef("the seed command %q failed: %v", g.opts.SeedCmd, err)
		}
	}
	out := filepath.Join(g.tmp, "seed.tar.zst")
	if _, err := g.runMigrator(ctx, nil, "backup", "--store", seed, "--out", out); err != nil {
		return "", refusef("backing up the seed store: %v", err)
	}
	if g.released(ctx, out, "the seed") != nil {
		upgraded := filepath.Join(g.tmp, "seed-upgraded.tar.zst")
		if _, err := g.runMigrator(ctx, nil, "upgrade", "--offline", "--in", out, "--out", upgraded); err != nil {
			return "", refusef("upgrading the seed to %s: %v", g.opts.Version, err)
		}
		out = upgraded
		if err := g.released(ctx, out, "the upgraded seed"); err != nil {
			return "", err
		}
	}
	sum, err := sha256sum.File(out)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(out, 0o644); err != nil {
		return "", err
	}
	// Link, not rename: it fails rather than replace a fixture that
	// appeared meanwhile. The temporary directory may be on another file
	// system, so copy beside the fixture first.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := copyFile(out, tmp); err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return "", fmt.Errorf("writing the release fixture: %w", err)
	}
	return sum, nil
}

// migratorScript writes a shell script that runs the host migrator with
// the subcommand and its own arguments, for $HOOKREG_MIGRATOR, and returns
// its path.
func (g *gate) migratorScript() (string, error) {
	words := []string{shellQuote(g.migrator)}
	for _, w := range g.opts.Subcommand {
		words = append(words, shellQuote(w))
	}
	path := filepath.Join(g.tmp, "migrator")
	script := "#!/bin/sh\nexec " + strings.Join(words, " ") + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		return "", err
	}
	return path, nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CheckFixtures reads dir/SHA256SUMS and checks that every fixture it
// lists exists with its sum, and that every fixture of dir has a line. It
// returns the sums (empty when there is no SHA256SUMS yet).
func CheckFixtures(dir string) (map[string]string, error) {
	sums, err := readSums(filepath.Join(dir, SumsFile))
	if err != nil {
		return nil, err
	}
	all, err := filepath.Glob(filepath.Join(dir, "*"+fixtureExt))
	if err != nil {
		return nil, err
	}
	for _, f := range all {
		if _, ok := sums[filepath.Base(f)]; !ok {
			return nil, fmt.Errorf("fixture %s has no line in %s: restore both from git", filepath.Base(f), SumsFile)
		}
	}
	for name, want := range sums {
		got, err := sha256sum.File(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("fixture %s (listed in %s): %w", name, SumsFile, err)
		}
		if got != want {
			return nil, fmt.Errorf("fixture %s changed: sha256 %s, %s records %s; a fixture never changes: restore it from git", name, got, SumsFile, want)
		}
	}
	return sums, nil
}

// readSums reads a sha256sum file: name -> hex sum. A missing file is
// empty.
func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sha256sum.Parse(path, f)
}

func writeSums(path string, sums map[string]string) error {
	return atomicfile.Write(path, sha256sum.Format(sums), 0o644)
}

// copyFile copies the file src to dst, which it creates or truncates.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
