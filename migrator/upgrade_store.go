package migrator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// upgradedName is the name of the verified upgraded backup that waits
// beside the store S until it is swapped in: ".S.upgraded.tar.zst". Its
// presence means that a run was interrupted after the upgrade and before
// the swap completed; the next run swaps it in.
func upgradedName(storePath string) string {
	dir, base := filepath.Split(storePath)
	return filepath.Join(dir, "."+base+".upgraded.tar.zst")
}

// preUpgradePrefix is the start of the names of the pre-upgrade backups of
// the store S: "S.pre-upgrade-".
func preUpgradePrefix(storePath string) string { return storePath + ".pre-upgrade-" }

// runOfflineStore is "upgrade --offline --store S [--config DIR]": back
// S up beside it, upgrade the backup in a child process, verify the result
// and swap it in. Each step leaves S either old or upgraded:
//
//  1. the pre-upgrade backup S.pre-upgrade-V-TIME.tar.zst is written
//     atomically, with S held exclusively;
//  2. the child upgrades it; the parent verifies the result and renames it
//     to .S.upgraded.tar.zst (the intent to swap);
//  3. a restore swaps S (then DIR) with the upgraded content atomically;
//  4. .S.upgraded.tar.zst is removed.
//
// A run that finds .S.upgraded.tar.zst goes straight to step 3.
func (o *upgradeOptions) runOfflineStore(e *env) error {
	upgraded := upgradedName(o.store)
	r := upgradeReport{Store: o.store, Applied: []appliedHook{}}
	if _, err := os.Stat(upgraded); err == nil {
		r.Resumed = true
		r.PreUpgradeBackup = latestPreUpgrade(o.store)
	} else {
		done, err := o.backUpAndUpgrade(e, upgraded, &r)
		if err != nil || done {
			return err
		}
	}
	m, err := checkResult(e.reg, upgraded)
	if err != nil {
		return fmt.Errorf("the upgraded backup %s: %w; remove it and run the upgrade again", upgraded, err)
	}
	if e.progress != nil {
		fmt.Fprintf(e.progress, "swapping the upgraded data into %s\n", o.store)
	}
	if _, err := backup.Restore(e.ctx, e.reg, upgraded, o.store, backup.RestoreOptions{ConfigDir: o.config, Progress: e.progress}); err != nil {
		return fmt.Errorf("swapping in the upgraded data: %w; %s is unchanged or upgraded, never partly: run the upgrade again to complete it", err, o.store)
	}
	if err := os.Remove(upgraded); err != nil {
		return envErrorf("removing %s: %w", upgraded, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(upgraded)); err != nil {
		return err
	}
	r.To = m.DataVersion
	if o.json {
		return writeJSON(e.stdout, r)
	}
	if r.Resumed {
		fmt.Fprintf(e.stdout, "completed the interrupted upgrade of %s: data version %s\n", o.store, r.To)
	} else {
		fmt.Fprintf(e.stdout, "upgraded %s from data version %s to %s\n", o.store, r.From, r.To)
	}
	if r.PreUpgradeBackup != "" {
		fmt.Fprintf(e.stdout, "pre-upgrade backup: %s\n", r.PreUpgradeBackup)
	}
	return nil
}

// backUpAndUpgrade does steps 1 and 2 of runOfflineStore, filling r. It
// reports done when there is nothing to upgrade.
func (o *upgradeOptions) backUpAndUpgrade(e *env, upgraded string, r *upgradeReport) (done bool, err error) {
	// Hold the store exclusively while it is backed up, so that no other
	// process changes it, and refuse before writing anything what the
	// upgrade would refuse.
	st, err := openStore(e, o.store, &o.etcd, openWrite)
	if err != nil {
		return false, err
	}
	defer st.Close()
	if done, err := o.checkOffline(e, st, r); err != nil || done {
		return done, err
	}
	r.PreUpgradeBackup = fmt.Sprintf("%s%s-%s.tar.zst", preUpgradePrefix(o.store), r.From, time.Now().UTC().Format("20060102T150405Z"))
	if e.progress != nil {
		fmt.Fprintf(e.progress, "backing up %s to %s\n", o.store, r.PreUpgradeBackup)
	}
	if _, err := backup.WriteFile(e.ctx, st, e.reg, r.PreUpgradeBackup, backup.Options{ConfigDir: o.config, Progress: e.progress}); err != nil {
		return false, fmt.Errorf("%s: backing up before the upgrade: %w", o.store, err)
	}
	res, err := runOffline(e, r.PreUpgradeBackup, upgraded, o.allowDigestMismatch)
	if !o.json {
		reportHooks(e.stdout, res.Hooks)
	}
	if err != nil {
		return false, fmt.Errorf("%w; %s is unchanged (its backup: %s)", err, o.store, r.PreUpgradeBackup)
	}
	r.Applied = appliedHooks(res.Hooks)
	return false, st.Close()
}

// checkOffline refuses, before anything is written, what the offline
// upgrade of the open store st would refuse, and sets r.From and r.To to
// its data version. It reports done, having said so, when there is
// nothing to upgrade.
func (o *upgradeOptions) checkOffline(e *env, st store.Store, r *upgradeReport) (done bool, err error) {
	meta, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		return false, storeError(e, o.store, err)
	}
	p, err := upgrade.PlanFor(e.reg, meta)
	if err == nil {
		err = p.Check(false, o.allowDigestMismatch)
	}
	if err != nil {
		return false, storeError(e, o.store, err)
	}
	r.From, r.To = meta.DataVersion, meta.DataVersion
	if len(p.Pending) == 0 && p.TargetVersion == meta.DataVersion {
		if o.json {
			return true, writeJSON(e.stdout, r)
		}
		fmt.Fprintf(e.stdout, "%s is up to date: data version %s, no pending hooks\n", o.store, meta.DataVersion)
		return true, nil
	}
	return false, nil
}

// latestPreUpgrade returns the newest pre-upgrade backup of the store, or
// "" when there is none.
func latestPreUpgrade(storePath string) string {
	prefix := preUpgradePrefix(storePath)
	entries, err := os.ReadDir(filepath.Dir(storePath))
	if err != nil {
		return ""
	}
	var found []string
	for _, ent := range entries {
		p := filepath.Join(filepath.Dir(storePath), ent.Name())
		if ent.Type().IsRegular() && strings.HasPrefix(p, filepath.Clean(prefix)) && strings.HasSuffix(p, ".tar.zst") {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return ""
	}
	// The names end in a UTC timestamp: the newest sorts last among
	// backups of one data version; compare modification times across
	// versions.
	slices.SortFunc(found, func(a, b string) int { return modTime(a).Compare(modTime(b)) })
	return found[len(found)-1]
}

func modTime(path string) time.Time {
	info, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return info.ModTime()
}

// checkConfigDir refuses a configuration directory that does not exist
// or is not a directory, before any work; "" is no directory.
func checkConfigDir(dir string) error {
	if dir == "" {
		return nil
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return envErrorf("--%s %s: the configuration directory does not exist", flagConfig, dir)
	case err != nil:
		return envErrorf("--%s: %w", flagConfig, err)
	case !info.IsDir():
		return envErrorf("--%s %s is not a directory", flagConfig, dir)
	}
	return nil
}

// checkOut refuses an output path that names a directory, before any
// work.
func checkOut(path string) error {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return envErrorf("--%s %s is a directory: name the archive file to write", flagOut, path)
	}
	return nil
}
