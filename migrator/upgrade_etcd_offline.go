package migrator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
)

// offlineEtcdSuffix marks the private directory of an offline upgrade of
// an etcd store: ".NAME.upgrade-*" in the backup directory.
const offlineEtcdSuffix = ".upgrade-"

// runOfflineEtcd is "upgrade --offline --store etcd://HOST/PREFIX": the
// offline upgrade of a stopped product's cluster store, holding the
// store's lock throughout:
//
//  1. back the store up at one revision R into the backup directory, to
//     NAME.pre-upgrade-V-TIME.tar.zst (kept), and watch the current
//     generation G for changes after R;
//  2. upgrade that backup in the child process into a private directory
//     beside it;
//  3. restore the result into the store as a new generation, which is
//     switched to only if G is unchanged since R (etcd.IfUnchanged): a
//     product that was not stopped keeps its writes, and the run is
//     refused.
//
// A kill leaves G current, or the upgraded generation current and whole;
// running the command again redoes the upgrade, or finds nothing to do.
func (o *upgradeOptions) runOfflineEtcd(e *env) error {
	if err := checkBackupDir(o.backupDir); err != nil {
		return err
	}
	st, err := openEtcd(e, o.store, &o.etcd, openWrite)
	if err != nil {
		return err
	}
	defer st.Close()
	r := upgradeReport{Store: o.store, Applied: []appliedHook{}}
	done, err := o.checkOffline(e, st, &r)
	if err != nil || done {
		return err
	}
	r.PreUpgradeBackup = preUpgradeEtcdPath(o.backupDir, st.Prefix(), r.From, time.Now())
	if e.progress != nil {
		fmt.Fprintf(e.progress, "upgrade: backing up %s to %s\n", o.store, r.PreUpgradeBackup)
	}
	pinned := &revisionRecorder{Store: st}
	_, err = backup.WriteFile(e.ctx, pinned, e.reg, r.PreUpgradeBackup, backup.Options{Progress: e.progress})
	if pinned.compacted(err) != nil {
		return fmt.Errorf("%s: the cluster compacted revision %d while the pre-upgrade backup was reading it, and nothing was written: run the upgrade again; if compaction keeps overtaking it, raise the cluster's --auto-compaction-retention (%w)", o.store, pinned.rev, err)
	}
	if err != nil {
		return fmt.Errorf("%s: backing up before the upgrade: %w", o.store, err)
	}
	r.Revision = pinned.rev
	unchanged, stopWatch, err := st.WatchUnchanged(pinned.rev)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was changed (its backup: %s)", o.store, err, r.PreUpgradeBackup)
	}
	defer stopWatch()
	if err := failpoint.Inject("offline.etcd.backed-up"); err != nil {
		return err
	}

	name := etcdBackupName(st.Prefix())
	backup.RemoveStale(filepath.Join(o.backupDir, name), offlineEtcdSuffix)
	work, err := os.MkdirTemp(o.backupDir, "."+name+offlineEtcdSuffix+"*")
	if err != nil {
		return envErrorf("creating a private directory in %s: %w", o.backupDir, err)
	}
	defer os.RemoveAll(work)
	lock, err := os.Open(work)
	if err == nil {
		err = backup.Lock(lock)
	}
	if err != nil {
		return envErrorf("locking the private directory: %w", err)
	}
	defer lock.Close()
	upgraded := filepath.Join(work, "upgraded.tar.zst")
	res, err := runOffline(e, r.PreUpgradeBackup, upgraded, o.allowDigestMismatch, offlineSeal{}, "")
	if !o.json {
		reportHooks(e.stdout, res.Hooks)
	}
	if err != nil {
		return fmt.Errorf("%w; %s is unchanged (its backup: %s)", err, o.store, r.PreUpgradeBackup)
	}
	r.Applied = appliedHooks(res.Hooks)

	if e.progress != nil {
		fmt.Fprintf(e.progress, "upgrade: swapping in the upgraded data at %s\n", o.store)
	}
	m, err := backup.RestoreEtcd(e.ctx, e.reg, upgraded, unchanged, backup.RestoreOptions{Progress: e.progress, Warn: e.stderr})
	if changed := cluster.Registered().Changed(err); changed != nil {
		return fmt.Errorf("%s: refused: %w: the product is still writing, and switching to the upgraded data would lose its writes; nothing was changed: stop the product and run the upgrade again", o.store, changed)
	}
	if err != nil {
		return fmt.Errorf("%s: restoring the upgraded data: %w; the store holds the old data or the upgraded data, never a mix: run the upgrade again (its backup: %s)", o.store, err, r.PreUpgradeBackup)
	}
	if err := st.Close(); err != nil {
		return err
	}
	r.To = m.DataVersion
	if o.json {
		return writeJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "upgraded %s from data version %s to %s\n", o.store, r.From, r.To)
	fmt.Fprintf(e.stdout, "pre-upgrade backup: %s (revision %d)\n", r.PreUpgradeBackup, r.Revision)
	return nil
}

// etcdBackupName is the start of the names of an etcd store's files in
// the backup directory: its prefix without the leading slash, every byte
// outside [A-Za-z0-9._-] replaced by "_" ("/teams/broker": "teams_broker").
func etcdBackupName(prefix string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			return c
		}
		return '_'
	}, strings.TrimPrefix(prefix, "/"))
}

// preUpgradeEtcdPath names the pre-upgrade backup of the etcd store with
// prefix, of data version v, taken at t, in dir:
// NAME.pre-upgrade-V-TIME.tar.zst, with "-2", "-3"... before the
// extension when a backup of that second exists.
func preUpgradeEtcdPath(dir, prefix, v string, t time.Time) string {
	base := filepath.Join(dir, fmt.Sprintf("%s.pre-upgrade-%s-%s", etcdBackupName(prefix), v, t.UTC().Format("20060102T150405Z")))
	p := base + ".tar.zst"
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s-%d.tar.zst", base, i)
	}
}

// checkBackupDir refuses a backup directory that does not exist or is not
// a directory, before any work.
func checkBackupDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return envErrorf("--%s %s: the directory does not exist", flagBackupDir, dir)
	case err != nil:
		return envErrorf("--%s: %w", flagBackupDir, err)
	case !info.IsDir():
		return envErrorf("--%s %s is not a directory", flagBackupDir, dir)
	}
	return nil
}
