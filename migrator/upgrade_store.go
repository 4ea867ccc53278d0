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

	"filippo.io/age"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/layout"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// upgradedName is the name of the verified upgraded backup that waits
// beside the store S until it is swapped in: ".S.upgraded.tar.zst". Its
// presence means that a run was interrupted after the upgrade and before
// the swap completed; the next run swaps it in.
func upgradedName(storePath string) string {
	return layout.Beside(storePath, ".upgraded.tar.zst")
}

// identityName is the file beside the intent that records the identity
// (bolt.Store.Identity) the store had when it was backed up: the intent
// is swapped in only over that identity.
func identityName(storePath string) string { return upgradedName(storePath) + ".store" }

// preUpgradePrefix is the start of the names of the pre-upgrade backups of
// the store S: "S.pre-upgrade-".
func preUpgradePrefix(storePath string) string { return storePath + ".pre-upgrade-" }

// runOfflineStore is "upgrade --offline --store S [--config DIR]": back
// S up beside it, upgrade the backup in a child process, verify the result
// and swap it in. Each step leaves S either old or upgraded:
//
//  1. the pre-upgrade backup S.pre-upgrade-V-TIME.tar.zst is written
//     atomically, with S held exclusively, and S's identity then (see
//     bolt.Store.Identity) to .S.upgraded.tar.zst.store;
//  2. the child upgrades it; the parent verifies the result and renames it
//     to .S.upgraded.tar.zst (the intent to swap);
//  3. a restore swaps S (then DIR) with the upgraded content atomically,
//     only if S still has the identity of step 1 (checked under S's lock):
//     a restore of S or a product's write after the backup is never
//     undone, the run refuses instead;
//  4. .S.upgraded.tar.zst and its .store file are removed.
//
// A run that finds .S.upgraded.tar.zst goes straight to step 3, with the
// same check.
func (o *upgradeOptions) runOfflineStore(e *env) error {
	upgraded := upgradedName(o.store)
	r := upgradeReport{Store: o.store, Applied: []appliedHook{}}
	if _, err := os.Stat(upgraded); err == nil {
		r.Resumed = true
		r.PreUpgradeBackup = latestPreUpgrade(o.store)
	} else {
		os.Remove(identityName(o.store)) // of a run killed before its intent
		done, err := o.backUpAndUpgrade(e, upgraded, &r)
		if err != nil || done {
			return err
		}
	}
	if err := failpoint.Inject("offline-store.intent"); err != nil {
		return err
	}
	if _, err := os.Stat(upgraded); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s changed after the upgrade backed it up: a restore replaced it and discarded the upgraded data, so %s is left as the restore made it; run the upgrade again to upgrade it as it is now", o.store, o.store)
	}
	m, err := checkResult(e.reg, upgraded)
	if err != nil {
		return fmt.Errorf("the upgraded backup %s: %w; remove it and run the upgrade again", upgraded, err)
	}
	id, err := os.ReadFile(identityName(o.store))
	if err != nil {
		return envErrorf("the upgraded backup %s waits without the record of the store it was made from (%w): remove it and run the upgrade again", upgraded, err)
	}
	if e.progress != nil {
		fmt.Fprintf(e.progress, "upgrade: swapping in the upgraded data at %s\n", o.store)
	}
	want := string(id)
	if cur, ok := swappedAlready(o.store, m); ok {
		// A run killed after the store's swap: the store holds the
		// upgraded data already; restoring it again completes the
		// configuration's swap.
		want = cur
	}
	// The upgraded backup's configuration is o.config's, as the hooks
	// left it: none at all when they removed every file.
	_, err = backup.Restore(e.ctx, e.reg, upgraded, o.store, backup.RestoreOptions{ConfigDir: o.config, Progress: e.progress, IfIdentity: want, EmptyConfig: true})
	if errors.Is(err, backup.ErrStoreChanged) {
		return fmt.Errorf("%s changed after the upgrade backed it up (a restore, or the product wrote to it): swapping in the upgraded data would undo that, so %s is left as it is (%w); to upgrade the store as it is now, remove %s and run the upgrade again", o.store, o.store, err, upgraded)
	}
	if err != nil {
		return fmt.Errorf("swapping in the upgraded data: %w; %s is unchanged or upgraded, never partly: run the upgrade again to complete it", err, o.store)
	}
	if err := removeIntent(o.store); err != nil {
		return err
	}
	if o.configNew {
		if r.ConfigInStore, err = configWritten(o.store); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(upgraded)); err != nil {
		return err
	}
	r.To = m.DataVersion
	if o.json {
		return writeJSON(e.stdout, r)
	}
	what := o.store
	if o.config != "" {
		what += " and " + o.config
	}
	if r.Resumed {
		fmt.Fprintf(e.stdout, "completed the interrupted upgrade of %s: data version %s\n", what, r.To)
	} else {
		fmt.Fprintf(e.stdout, "upgraded %s from data version %s to %s\n", what, r.From, r.To)
	}
	if r.PreUpgradeBackup != "" {
		fmt.Fprintf(e.stdout, "pre-upgrade backup: %s\n", r.PreUpgradeBackup)
	}
	if len(r.ConfigInStore) > 0 {
		fmt.Fprintf(e.stdout, "the hooks wrote configuration files into the store's table %s, since no --%s was given: %s; a product that reads its configuration from a directory does not see them (restore the pre-upgrade backup, then run the upgrade again with --%s DIR)\n",
			store.ConfigTable, flagConfig, strings.Join(r.ConfigInStore, ", "), flagConfig)
	}
	return nil
}

// configWritten returns the configuration files in the table _config of
// the store at storePath, which kept none before the upgrade: what the
// hooks wrote there for want of --config.
func configWritten(storePath string) ([]string, error) {
	st, err := bolt.Open(storePath, bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	tx, err := st.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return store.ConfigView(tx).List()
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
	// A store directly in its configuration directory: complete the
	// configuration swap of a killed restore first (the store is held
	// exclusively), so that the backup carries one whole configuration.
	if err := backup.FinishConfigSwap(o.store, o.config); err != nil {
		return false, err
	}
	if done, err := o.checkOffline(e, st, r); err != nil || done {
		return done, err
	}
	// The temporary files of pre-upgrade backups of killed runs.
	backup.RemoveStale(o.store, ".pre-upgrade-")
	// Without --config, on a store that keeps no configuration files,
	// what the hooks write to configuration lands in the table _config:
	// noted to say so after the swap.
	o.configNew = o.config == "" && !hasConfigTable(st)
	bs, ok := st.(*bolt.Store)
	if !ok {
		return false, fmt.Errorf("%s: an offline upgrade of the store in one command takes a bbolt file", o.store)
	}
	id, err := bs.Identity()
	if err != nil {
		return false, err
	}
	if err := atomicfile.Write(identityName(o.store), []byte(id), 0o600); err != nil {
		return false, envErrorf("recording the store's identity: %w", err)
	}
	// With recipients, the pre-upgrade backup is encrypted to them and to
	// a key of this run only, which the child decrypts it with and which
	// is forgotten with the run's private directory (the upgraded result
	// waits beside the store unencrypted, as the store itself is).
	recipients, signer, err := o.seal.options()
	if err != nil {
		return false, err
	}
	var input offlineSeal
	suffix := ".tar.zst"
	if len(recipients) > 0 {
		run, err := age.GenerateX25519Identity()
		if err != nil {
			return false, fmt.Errorf("making the run's key: %w", err)
		}
		recipients = append(recipients, run.Recipient())
		input = offlineSeal{keys: backup.ReadKeys{Identities: []age.Identity{run}}, runKey: run, plainOut: true}
		suffix += ".age"
	}
	r.PreUpgradeBackup = fmt.Sprintf("%s%s-%s%s", preUpgradePrefix(o.store), r.From, time.Now().UTC().Format("20060102T150405Z"), suffix)
	if e.progress != nil {
		fmt.Fprintf(e.progress, "upgrade: backing up %s to %s\n", o.store, r.PreUpgradeBackup)
	}
	if _, err := backup.WriteFile(e.ctx, st, e.reg, r.PreUpgradeBackup, backup.Options{ConfigDir: o.config, Progress: e.progress, Recipients: recipients, Signer: signer}); err != nil {
		return false, fmt.Errorf("%s: backing up before the upgrade: %w", o.store, err)
	}
	storeBase, _ := backup.StoreInConfig(o.store, o.config)
	res, err := runOffline(e, r.PreUpgradeBackup, upgraded, o.allowDigestMismatch, input, storeBase)
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
		return false, storeError(e, o.store, st, o.config, err)
	}
	p, err := upgrade.PlanFor(e.reg, meta)
	if err == nil {
		err = p.Check(false, o.allowDigestMismatch)
	}
	if err != nil {
		return false, storeError(e, o.store, st, o.config, err)
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
		if ent.Type().IsRegular() && strings.HasPrefix(p, filepath.Clean(prefix)) && (strings.HasSuffix(p, ".tar.zst") || strings.HasSuffix(p, ".tar.zst.age")) {
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

// checkOut refuses an output path that names a directory, or whose
// directory is missing or not a directory, before any work.
func checkOut(path string) error {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return envErrorf("--%s %s is a directory: name the archive file to write", flagOut, path)
	}
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return envErrorf("--%s %s: the directory %s does not exist: create it first", flagOut, path, dir)
	case err != nil:
		return envErrorf("--%s %s: %w", flagOut, path, err)
	case !info.IsDir():
		return envErrorf("--%s %s: %s is not a directory", flagOut, path, dir)
	}
	return nil
}

// removeIntent removes the intent of an offline upgrade of the store at
// storePath (.S.upgraded.tar.zst and its .store file), durably.
func removeIntent(storePath string) error {
	for _, p := range []string{upgradedName(storePath), identityName(storePath)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return envErrorf("removing %s: %w", p, err)
		}
	}
	return atomicfile.SyncDir(filepath.Dir(storePath))
}

// swappedAlready returns the identity of the store at storePath when it
// holds the upgraded data of manifest m (its metadata is m's, applied
// times included): a run was killed after the swap of the store.
func swappedAlready(storePath string, m *archive.Manifest) (string, bool) {
	st, err := bolt.Open(storePath, bolt.Options{ReadOnly: true})
	if err != nil {
		return "", false
	}
	defer st.Close()
	meta, err := upgrade.ReadStoreMetadata(st)
	if err != nil || !backup.HoldsManifest(meta, m) {
		return "", false
	}
	id, err := st.Identity()
	return id, err == nil
}
