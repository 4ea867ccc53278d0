package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/layout"
)

// A store directly in its configuration directory (see [StoreInConfig])
// cannot be restored by swapping the whole directory, which would move
// the store (and the directory may be a mount point). The restore builds
// the new configuration in a stage inside the directory,
// ".S.restore-*/new", then, once the new store is swapped in, replaces the
// configuration's entries one by one under a journal:
//
//  1. the journal ".S.config-swap" is written (atomically, synced): it
//     names the stage;
//  2. every configuration entry of the directory (everything but the
//     store's own files, see [layout.Owned]) is moved into the stage's
//     "old";
//  3. the stage's "new" is renamed to "in" (the mark that step 2 is done);
//  4. every entry of "in" is moved into the directory;
//  5. the journal is removed, then the stage.
//
// A kill during steps 2 to 4 leaves the journal: the next command that
// holds the store's exclusive lock (a restore, an upgrade) completes the
// swap first, from where it stopped (see [FinishConfigSwap]), and a
// backup refuses until then. The store and its files are never moved.

// journalName is the journal of a configuration swap in the directory of
// the store S: ".S.config-swap".
func journalName(storePath string) string {
	return layout.Beside(storePath, ".config-swap")
}

// FinishConfigSwap completes the configuration swap of a killed restore
// of the store storePath lying directly in configDir (see
// [StoreInConfig]), if its journal is there: the configuration is then
// entirely the restored one. Call it holding the store's exclusive lock;
// [Restore] does. It does nothing for another layout or without a
// journal.
func FinishConfigSwap(storePath, configDir string) error {
	base, in := StoreInConfig(storePath, configDir)
	if !in {
		return nil
	}
	return finishConfigSwap(configDir, base)
}

// finishConfigSwap is FinishConfigSwap for the store named base lying
// directly in configDir.
func finishConfigSwap(configDir, base string) error {
	j := journalName(filepath.Join(configDir, base))
	data, err := os.ReadFile(j)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return envErrorf("reading the journal of an interrupted configuration swap: %w", err)
	}
	stage := strings.TrimSpace(string(data))
	if stage == "" || strings.ContainsAny(stage, `/\`) || !layout.Owned(base, stage) {
		return envErrorf("the journal %s of an interrupted configuration swap names %q, which is not a stage of the store %s: remove the journal once %s holds the configuration you want", j, stage, base, configDir)
	}
	if err := completeSwap(configDir, filepath.Join(configDir, stage), base, j); err != nil {
		return fmt.Errorf("completing the configuration swap of an interrupted restore into %s: %w", configDir, err)
	}
	return nil
}

// pendingSwap returns an error when a configuration swap of a killed
// restore waits to be completed in configDir (the store named base lying
// directly in it): the configuration is then partly old, partly new.
func pendingSwap(configDir, base string) error {
	j := journalName(filepath.Join(configDir, base))
	if _, err := os.Lstat(j); err == nil {
		return envErrorf("the configuration directory %s is half swapped by a restore that was killed (its journal %s is there): run the restore again, or an upgrade, to complete it", configDir, j)
	}
	return nil
}

// completeSwap does steps 2 to 5 of the swap from wherever a killed run
// stopped: dir is the configuration directory, stage the stage, base the
// store's name, journal the journal's path.
func completeSwap(dir, stage, base, journal string) error {
	newDir, inDir, oldDir := filepath.Join(stage, "new"), filepath.Join(stage, "in"), filepath.Join(stage, "old")
	if _, err := os.Lstat(newDir); err == nil {
		if err := os.Mkdir(oldDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return envErrorf("%w", err)
		}
		entries, err := configEntries(dir, base)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := failpoint.Inject("restore.config-out"); err != nil {
				return err
			}
			if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(oldDir, e.Name())); err != nil {
				return envErrorf("moving the old configuration out: %w", err)
			}
		}
		if err := syncDirs(oldDir, dir); err != nil {
			return err
		}
		if err := os.Rename(newDir, inDir); err != nil {
			return envErrorf("%w", err)
		}
		if err := syncDirs(stage); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(inDir)
	if err != nil {
		return envErrorf("the stage %s: %w", stage, err)
	}
	for _, e := range entries {
		if err := failpoint.Inject("restore.config-in"); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(inDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return envErrorf("moving the new configuration in: %w", err)
		}
	}
	if err := syncDirs(dir); err != nil {
		return err
	}
	if err := failpoint.Inject("restore.config-moved"); err != nil {
		return err
	}
	if err := os.Remove(journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return envErrorf("%w", err)
	}
	if err := syncDirs(dir); err != nil {
		return err
	}
	failpoint.Inject("restore.swapped")
	os.RemoveAll(stage)
	return nil
}

func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return envErrorf("%w", err)
		}
	}
	return nil
}

// CheckReplaceable returns an error when a restore could not replace the
// configuration in configDir: for the store storePath lying directly in
// it, an entry of it is a mount point or holds one (see checkMovable);
// otherwise configDir is a mount point or holds one (see checkWhole).
// [Restore] checks it under the store's lock; the one-command offline
// upgrade checks it before any work too. Nothing without configDir.
func CheckReplaceable(storePath, configDir string) error {
	if configDir == "" {
		return nil
	}
	base, in := StoreInConfig(storePath, configDir)
	if !in {
		return checkWhole(configDir)
	}
	return checkMovable(configDir, base)
}

// checkMovable refuses a configuration directory dir holding the store
// named base whose configuration entries cannot all be moved by a rename
// within it (an entry that is a mount point, such as a secret mounted at
// dir/certs): a restore replaces them entry by entry. Nor may a mount
// point lie deeper (dir/sub/certs): the old entries are removed once
// replaced, and the removal would empty the other file system. Checked
// before anything is written.
func checkMovable(dir, base string) error {
	dinfo, err := os.Stat(dir)
	if err != nil {
		return envErrorf("%w", err)
	}
	entries, err := configEntries(dir, base)
	if err != nil {
		return err
	}
	points := mountPoints() // read once for every entry
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		mount, err := mountInside(p, dinfo, points)
		if err != nil {
			return err
		}
		if mount != "" {
			return envErrorf("%s is another file system (a mount point) inside the configuration directory %s, which holds the store %s: a restore replaces the configuration's entries by renames within %s, and removes the old ones, so it cannot replace that one; restore into another --config, or unmount it first",
				mount, dir, base, dir)
		}
	}
	return nil
}

// checkWhole refuses a configuration directory dir (the store lying
// elsewhere) that a restore, which builds the new one beside it, swaps
// it in by a rename and removes the old one, cannot replace: dir is a
// mount point itself (the rename fails), or one lies inside it (the
// removal of the old directory would empty that other file system, such
// as a secret mounted at dir/certs). Checked before anything is written.
func checkWhole(dir string) error {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return envErrorf("%w", err)
	}
	parent, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return envErrorf("%w", err)
	}
	points := mountPoints()
	if !sameDevice(info, parent) || mountUnder(dir, points) == dir {
		return envErrorf("the configuration directory %s is a mount point: a restore builds the new one beside it and swaps it in by a rename, which cannot replace a mount point; restore into another --config (or keep the files in the store: omit --config)", dir)
	}
	mount, err := mountInside(dir, info, points)
	if err != nil {
		return err
	}
	if mount != "" {
		return envErrorf("%s is another file system (a mount point) inside the configuration directory %s: a restore replaces the directory whole and removes the old one, which would empty that file system; restore into another --config, or unmount it first", mount, dir)
	}
	return nil
}

// mountInside returns the first path at or below p (not following
// symbolic links) on another file system than dinfo, or that the mount
// table's points list as a mount point (a bind mount of the same file
// system, see mountUnder), "" when there is none.
func mountInside(p string, dinfo fs.FileInfo, points []string) (string, error) {
	if m := mountUnder(p, points); m != "" {
		return m, nil
	}
	mount := ""
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !sameDevice(info, dinfo) {
			mount = path
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", envErrorf("%w", err)
	}
	return mount, nil
}

// configEntries returns the entries of the configuration directory dir
// that are configuration: all but the files of the store named base
// (every entry when base is "": the store is elsewhere).
func configEntries(dir, base string) ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, envErrorf("%w", err)
	}
	if base == "" {
		return entries, nil
	}
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return layout.Owned(base, e.Name()) }), nil
}

// checkKeepsConfig refuses the restore of an archive without
// configuration files into the configuration directory configDir (beside
// or around the store named base, see configEntries) when configDir has
// configuration entries: the restore would remove every one of them.
func checkKeepsConfig(configDir, base string) error {
	entries, err := configEntries(configDir, base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the restore creates it
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	var names []string
	for _, e := range entries[:min(len(entries), 3)] {
		names = append(names, e.Name())
	}
	if len(entries) > 3 {
		names = append(names, fmt.Sprintf("and %d more", len(entries)-3))
	}
	return fmt.Errorf("%w, and restoring it with the configuration directory %s would remove everything in it (%s): nothing was restored (restore it without the configuration directory to keep the files there as they are, or allow emptying the directory: migrator restore --force)",
		ErrEmptiesConfig, configDir, strings.Join(names, ", "))
}

// checkCollisions refuses configuration files of the manifest m whose
// first path element would be one of the store's own files, the store
// named base lying directly in the configuration directory configDir:
// restoring them would replace the store or its files.
func checkCollisions(m *archive.Manifest, base, configDir string) error {
	for _, c := range m.Config {
		first, _, _ := strings.Cut(c.Path, "/")
		if layout.Owned(base, first) {
			return envErrorf("the backup's configuration file %s would be restored onto %s, which belongs to the store %s in the configuration directory %s: nothing was restored (restore it with --config naming another directory, or the store elsewhere)",
				c.Path, filepath.Join(configDir, first), base, configDir)
		}
	}
	return nil
}

// mountUnder returns the first of the mount points at or below p, as a
// path under p, or "" when there is none. A symbolic link is not
// followed: removing the directory removes the link, not what it points
// to (a secret linked from /run/secrets).
func mountUnder(p string, points []string) string {
	if len(points) == 0 {
		return ""
	}
	if info, err := os.Lstat(p); err != nil || info.Mode()&os.ModeSymlink != 0 {
		return ""
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return ""
	}
	real, err := filepath.Abs(filepath.Join(dir, filepath.Base(p)))
	if err != nil {
		return ""
	}
	for _, mp := range points {
		if mp == real {
			return p
		}
		if rel, ok := strings.CutPrefix(mp, real+"/"); ok {
			return filepath.Join(p, rel)
		}
	}
	return ""
}
