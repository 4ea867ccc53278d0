package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// ConfigDir is the configuration directory to replace with the
	// backup's files. When empty, the files go into the store's
	// [store.ConfigTable].
	ConfigDir string
	// Progress receives progress lines about long work; nil is quiet.
	Progress io.Writer
	// IfIdentity, when not empty, is the [bolt.Store.Identity] that the
	// store must still have: Restore checks it under the store's lock,
	// before it writes anything, and refuses with an error wrapping
	// [ErrStoreChanged] when the store changed (or is gone). The
	// one-command offline upgrade swaps its result in this way, so that
	// it never undoes a restore or a product's writes that came after its
	// backup.
	IfIdentity string
	// Keys decrypt an encrypted archive and name the signers it must
	// come from (see [ReadKeys]). A refusal (no identity, a wrong one, an
	// untrusted signer) comes before anything is written.
	Keys ReadKeys
	// Warn receives warnings, such as a restore into an etcd cluster
	// passing half its quota; nil is quiet.
	Warn io.Writer
	// EmptyConfig lets the restore of an archive that holds no
	// configuration files empty a ConfigDir that has some. Without it,
	// that restore is refused before anything is written, with an error
	// wrapping [ErrEmptiesConfig]: an archive made without a
	// configuration directory holds none, and restoring it with one
	// would remove every file there.
	EmptyConfig bool
}

// ErrStoreChanged is wrapped by the refusal of a Restore whose store no
// longer has RestoreOptions.IfIdentity.
var ErrStoreChanged = errors.New("the store changed since it was backed up")

// ErrEmptiesConfig is wrapped by the refusal of a Restore that would
// remove every file of RestoreOptions.ConfigDir: the archive holds no
// configuration files (it was made without a configuration directory)
// and RestoreOptions.EmptyConfig is not set.
var ErrEmptiesConfig = errors.New("the backup holds no configuration files")

// Restore replaces the store file storePath (and opts.ConfigDir) with the
// content of the backup archive at archivePath, in one pass over the
// archive: it decodes, hashes and checks the archive on one goroutine
// while another loads the records into a new store file beside storePath
// (and the configuration files into a new directory beside
// opts.ConfigDir), streaming with bounded memory. Nothing it writes before
// the swap is visible at storePath or opts.ConfigDir: the new store and
// directory are private temporary files until the end of the archive has
// been read and everything checked.
//
// It refuses another product's data, data that reg cannot upgrade (see
// [upgrade.PlanFor]), a manifest that disagrees with the metadata table
// the archive carries or with SHA256SUMS, any bad checksum, and data
// whose declared size would not fit in the free space at the destination
// (checked from the manifest, the archive's first member, before anything
// is written; the reader holds every table to its declared size). A
// refusal decided from the manifest still reads the archive to its end
// without writing, so that a damaged archive is reported as damaged. Once
// the whole archive is good it runs the store's consistency check on the
// new store, syncs it and swaps it in atomically, then the configuration
// directory the same way. On any error the old store and configuration are
// left exactly as they were and what was built is removed.
//
// A store lying directly in opts.ConfigDir (see [StoreInConfig]) is kept
// there with its own files: the new configuration is built in a stage
// inside the directory and its entries replace the old ones under a
// journal once the new store is swapped in; a kill after the journal is
// written leaves the configuration half swapped, which the next Restore
// (or [FinishConfigSwap]) completes first. An archive whose configuration
// would land on one of the store's files is refused before anything is
// written. So is an archive that holds no configuration files restored
// with an opts.ConfigDir that has some, which it would empty, unless
// opts.EmptyConfig is set ([ErrEmptiesConfig]).
//
// Refused before the archive is read: an archive that is not a regular
// file (a FIFO, a device), a store that is not a regular file, a store in
// a subdirectory of the configuration directory (see [CheckLayout]), a
// configuration directory that is a mount point or holds one (see
// [CheckReplaceable]: the old configuration is removed once replaced), a store in use by another process
// (Restore holds the store's exclusive lock, and for a store that does not
// exist yet the flock of its directory, so two restores of one store never
// interleave). A symbolic link as storePath or
// opts.ConfigDir is followed: its target is replaced and the link kept.
// The archive is read once, through one open file.
//
// When ctx is canceled, Restore stops at the next read of the archive
// (or before the swap), removes what it built and returns an error
// wrapping [ErrInterrupted]; once the swap has begun it completes it.
// Temporary files and directories left beside storePath and
// opts.ConfigDir by killed restores (".NAME.restore-*", see
// [RemoveStale]) are removed once the store's lock is held.
//
// Configuration files are restored with their recorded permissions
// clamped to a safe policy: never world-writable, always readable by the
// owner (archives carry permission bits only: no setuid, setgid or sticky
// bit).
func Restore(ctx context.Context, reg *hook.Registry, archivePath, storePath string, opts RestoreOptions) (*archive.Manifest, error) {
	f, err := OpenArchive(archivePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return RestoreReader(ctx, reg, f, archivePath, storePath, opts)
}

// RestoreReader is [Restore] reading the archive, named name in errors,
// from r: a pipe, which it reads once, to its end, whatever it holds.
// Nothing is written to storePath or opts.ConfigDir unless the whole
// archive is good, so a pipe cut short writes nothing.
func RestoreReader(ctx context.Context, reg *hook.Registry, r io.Reader, name, storePath string, opts RestoreOptions) (*archive.Manifest, error) {
	archivePath := name
	var err error
	if storePath, err = resolve(storePath); err != nil {
		return nil, envErrorf("store: %w", err)
	}
	configDir := opts.ConfigDir
	if configDir != "" {
		if configDir, err = resolve(configDir); err != nil {
			return nil, envErrorf("configuration directory: %w", err)
		}
		if info, err := os.Stat(configDir); err == nil && !info.IsDir() {
			return nil, envErrorf("configuration directory %s is not a directory", configDir)
		}
	}
	if info, err := os.Stat(storePath); err == nil && !info.Mode().IsRegular() {
		return nil, envErrorf("store %s is %s: name the store's file", storePath, atomicfile.Kind(info.Mode()))
	}
	if err := CheckLayout(storePath, configDir); err != nil {
		return nil, err
	}
	// Hold the old store's exclusive lock, so that no other process (a
	// product, another restore) uses it while it is replaced; without an
	// old store, the lock of its directory, which restores of a missing
	// store take. A damaged old store cannot be opened; restoring over it
	// is what a restore is for.
	old, dir, err, lockErr := lockOld(ctx, storePath)
	if lockErr != nil {
		return nil, fmt.Errorf("restoring %s: %w", storePath, lockErr)
	}
	if old != nil {
		defer old.Close()
	}
	if dir != nil {
		defer dir.Close()
	}
	switch {
	case err == nil:
		if opts.IfIdentity != "" {
			id, err := old.Identity()
			if err != nil {
				return nil, err
			}
			if id != opts.IfIdentity {
				return nil, fmt.Errorf("restoring %s: %w (then %s, now %s)", storePath, ErrStoreChanged, opts.IfIdentity, id)
			}
		}
	case errors.Is(err, store.ErrInUse):
		return nil, fmt.Errorf("restoring %s: %w", storePath, err)
	case errors.Is(err, fs.ErrNotExist) && opts.IfIdentity != "":
		return nil, fmt.Errorf("restoring %s: %w (it is gone)", storePath, ErrStoreChanged)
	}
	if err != nil && opts.IfIdentity != "" {
		return nil, fmt.Errorf("restoring %s: %w (it cannot be opened: %v)", storePath, ErrStoreChanged, err)
	}
	storeBase, inConfig := StoreInConfig(storePath, configDir)
	if err := CheckReplaceable(storePath, configDir); err != nil {
		return nil, err
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		if inConfig {
			if err := finishConfigSwap(configDir, storeBase); err != nil {
				return nil, err
			}
			// The journal's temporary file, of a run killed writing it.
			RemoveStale(journalName(storePath), ".tmp-")
		}
		RemoveStale(storePath, restoreSuffix)
		if configDir != "" {
			RemoveStale(configDir, restoreSuffix)
		}
	}
	if err := failpoint.Inject("restore.locked"); err != nil {
		return nil, err
	}
	l := &loading{reg: reg, name: archivePath, storePath: storePath, configDir: configDir, progress: opts.Progress, storeBase: storeBase, emptyConfig: opts.EmptyConfig}
	defer l.discard()
	m, err := check(reg, ctxReader{ctx, r}, archivePath, opts.Keys, archive.Handler{
		Manifest: l.manifest,
		Table:    l.table,
		TableEnd: l.tableEnd,
		Record:   l.record,
		Config:   l.config,
	})
	switch {
	case l.err != nil:
		return nil, fmt.Errorf("restoring %s: %w", archivePath, l.err)
	case err != nil:
		return nil, err
	case l.refused != nil:
		return nil, l.refused
	case l.b == nil: // check refuses what the manifest callback skips
		return nil, fmt.Errorf("restoring %s: the archive was checked but not loaded", archivePath)
	}
	if err := l.finish(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	b := l.b
	if err := b.lockNew(); err != nil {
		return nil, err
	}
	if err := failpoint.Inject("restore.before-swap"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w; nothing was restored", archivePath, interrupted(err))
	}
	if err := b.swap(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	return m, nil
}

// loading is the single pass of a restore into bbolt: the callbacks that
// [check] calls, after its own, as it reads the archive. The manifest
// (the first member) decides whether anything is built; the records and
// configuration files then go into the build, and nothing of it is kept
// unless the whole archive turns out good.
type loading struct {
	reg                  *hook.Registry
	name                 string // the archive's
	storePath, configDir string
	progress             io.Writer
	// storeBase is the store's file name when it lies directly in
	// configDir (see StoreInConfig), else "".
	storeBase string
	// emptyConfig is RestoreOptions.EmptyConfig.
	emptyConfig bool

	b    *build // nil until the manifest allowed the restore
	prog *Progress
	// err is the restore's own failure (writing the new store, a
	// failpoint), which the check reports as a refusal; refused is a
	// refusal decided from the manifest that is not the archive's fault
	// (free space), reported once the whole archive is known to be good.
	err     error
	refused error
}

// manifest checks what the manifest alone decides (what [check] refuses
// at the end, then the free space) and starts the build. A refused
// manifest builds nothing: the rest of the archive is only checked.
func (l *loading) manifest(m archive.Manifest) error {
	if checkManifest(l.reg, &m, l.name) != nil {
		return nil
	}
	if l.storeBase != "" {
		if err := checkCollisions(&m, l.storeBase, l.configDir); err != nil {
			l.refused = err
			return nil
		}
	}
	if l.configDir != "" && len(m.Config) == 0 && !l.emptyConfig {
		if err := checkKeepsConfig(l.configDir, l.storeBase); err != nil {
			l.refused = err
			return nil
		}
	}
	sizes := archiveSizes{tables: uint64(m.DataBytes), records: uint64(m.RecordCount), tableCount: uint64(m.TableCount), files: uint64(len(m.Config))}
	for _, c := range m.Config {
		sizes.config += uint64(c.Size)
	}
	configParent := ""
	if l.configDir != "" {
		configParent = parentDir(l.configDir)
	}
	if l.storeBase != "" {
		configParent = l.configDir // the new configuration is built inside it
	}
	if err := checkSpace(&sizes, parentDir(l.storePath), configParent); err != nil {
		l.refused = err
		return nil
	}
	if l.err = failpoint.Inject("restore.checked"); l.err != nil {
		return l.err
	}
	if l.b, l.err = newBuild(l.storePath, l.configDir, l.storeBase); l.err != nil {
		return l.err
	}
	l.prog = NewProgress(l.progress)
	l.prog.Count("restore: loading", "records", m.RecordCount)
	return nil
}

func (l *loading) table(t archive.TableInfo) error {
	if l.b == nil {
		return nil
	}
	l.err = l.b.pipe.table(t)
	return l.err
}

func (l *loading) tableEnd(t archive.TableInfo) error {
	if l.b == nil {
		return nil
	}
	l.err = l.b.pipe.end(t)
	return l.err
}

func (l *loading) record(key, value []byte) error {
	if l.b == nil {
		return nil
	}
	l.prog.Add(1)
	l.err = l.b.pipe.record(key, value)
	return l.err
}

func (l *loading) config(c archive.ConfigFile, data []byte) error {
	if l.b == nil {
		return nil
	}
	if l.err = l.b.pipe.close(); l.err == nil {
		l.err = l.b.config(c, data)
	}
	return l.err
}

// finish completes the new store and configuration directory once the
// whole archive is good: the last records loaded, the store checked while
// it is synced, the new directories synced.
func (l *loading) finish() error {
	b := l.b
	if err := b.pipe.close(); err != nil {
		return err
	}
	l.prog.Phase("restore: syncing and checking")
	defer l.prog.Done()
	if err := failpoint.Inject("restore.loaded"); err != nil {
		return err
	}
	if err := b.loader.FinishCheck(b.checkNew); err != nil {
		return err
	}
	if b.root != nil {
		for i := len(b.dirs) - 1; i >= 0; i-- {
			if err := atomicfile.SyncDir(filepath.Join(b.newConfig, b.dirs[i])); err != nil {
				return err
			}
		}
		if b.stage == "" {
			if err := os.Chmod(b.newConfig, b.configMode); err != nil {
				return envErrorf("giving the new configuration directory beside %s its mode: %w", b.configDir, err)
			}
		}
		if err := atomicfile.SyncDir(b.newConfig); err != nil {
			return err
		}
	}
	return nil
}

// discard removes what was built unless it was swapped in; it can be
// deferred.
func (l *loading) discard() {
	if l.b != nil {
		l.b.discard()
	}
}

// loadAgain is the second pass of the etcd restore over the archive f,
// read from its start: load reads it, and the whole file must hash to
// first, the hash of the checking pass, or it changed in between.
func loadAgain(ctx context.Context, f io.Reader, archivePath string, first hash.Hash, load func(io.Reader) error) error {
	second := sha256.New()
	if err := load(ctxReader{ctx, io.TeeReader(f, second)}); err != nil {
		return fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	if _, err := io.Copy(second, ctxReader{ctx, f}); err != nil {
		return readError(archivePath, err)
	}
	if !bytes.Equal(first.Sum(nil), second.Sum(nil)) {
		return fmt.Errorf("restoring %s: the file changed between the check and the restore: nothing was restored, run it again", archivePath)
	}
	return nil
}

// restoreSuffix marks the temporary files and directories of a restore:
// ".NAME.restore-*" beside the store and the configuration directory.
const restoreSuffix = ".restore-"

// readError is the error of a failed read of the archive at path: an
// interruption, or an environment error.
func readError(path string, err error) error {
	if errors.Is(err, ErrInterrupted) {
		return fmt.Errorf("restoring %s: %w; nothing was restored", path, err)
	}
	return envErrorf("reading backup %s: %w", path, err)
}

func parentDir(path string) string {
	return filepath.Dir(filepath.Clean(path))
}

// Verify checks the whole archive in r, named name: everything
// [archive.Verify] checks, and that the manifest says what the metadata
// table the archive carries says (product, data version, last upgrade
// hook, applied hooks). A bad archive is a failed operation; an
// unreadable file an environment error.
func Verify(r io.Reader, name string) (*archive.Manifest, error) {
	return verify(r, name, ReadKeys{}, archive.Handler{})
}

// VerifyWith is Verify, calling also's callbacks (when not nil) after its
// own as the archive streams: an error from them refuses the archive.
// Nothing they receive has been checked against SHA256SUMS yet.
func VerifyWith(r io.Reader, name string, also archive.Handler) (*archive.Manifest, error) {
	return verify(r, name, ReadKeys{}, also)
}

// VerifySealed is VerifyWith for an archive that may be encrypted or
// must be signed: it decrypts r with keys.Identities (see [Decrypt]) and
// checks its signature against keys.Trusted (see [ReadKeys]).
func VerifySealed(r io.Reader, name string, keys ReadKeys, also archive.Handler) (*archive.Manifest, error) {
	return verify(r, name, keys, also)
}

// CheckSealed is [Check] of an archive that may be encrypted or must be
// signed (see [VerifySealed]).
func CheckSealed(reg *hook.Registry, r io.Reader, name string, keys ReadKeys) (*archive.Manifest, error) {
	return check(reg, r, name, keys, archive.Handler{})
}

// verify is Verify, calling also's callbacks (when not nil) after its own:
// an error from them refuses the archive.
func verify(r io.Reader, name string, keys ReadKeys, also archive.Handler) (*archive.Manifest, error) {
	plain, err := Decrypt(r, name, keys.Identities)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	r = plain
	var meta metaTable
	var refused error
	h := archive.Handler{Table: meta.table, TableEnd: meta.end, Record: meta.record}
	if also.Manifest != nil {
		h.Manifest = func(m archive.Manifest) error {
			refused = also.Manifest(m)
			return refused
		}
	}
	if also.Table != nil {
		h.Table = func(t archive.TableInfo) error {
			if err := meta.table(t); err != nil {
				return err
			}
			refused = also.Table(t)
			return refused
		}
	}
	if also.TableEnd != nil {
		h.TableEnd = func(t archive.TableInfo) error {
			if err := meta.end(t); err != nil {
				return err
			}
			refused = also.TableEnd(t)
			return refused
		}
	}
	if also.Record != nil {
		h.Record = func(key, value []byte) error {
			if err := meta.record(key, value); err != nil {
				return err
			}
			refused = also.Record(key, value)
			return refused
		}
	}
	if also.Config != nil {
		h.Config = func(c archive.ConfigFile, data []byte) error {
			refused = also.Config(c, data)
			return refused
		}
	}
	trust(&h, name, keys, &refused)
	m, err := archive.Read(r, h)
	switch {
	case refused != nil:
		return nil, fmt.Errorf("backup %s: refused: %w", name, refused)
	case errors.Is(err, archive.ErrInvalid):
		return nil, fmt.Errorf("%s: %w", name, err)
	case errors.Is(err, ErrInterrupted):
		return nil, fmt.Errorf("%s: %w", name, err)
	case err != nil:
		return nil, envErrorf("%s: %w", name, err)
	}
	if err := meta.agrees(m); err != nil {
		return nil, fmt.Errorf("%s: %w: the manifest disagrees with the data: %w", name, archive.ErrInvalid, err)
	}
	return m, nil
}

// Check checks the whole archive in r (see [Verify]) and that reg may
// restore it.
func Check(reg *hook.Registry, r io.Reader, name string) (*archive.Manifest, error) {
	return check(reg, r, name, ReadKeys{}, archive.Handler{})
}

// check is Check, calling also's callbacks as verify does.
func check(reg *hook.Registry, r io.Reader, name string, keys ReadKeys, also archive.Handler) (*archive.Manifest, error) {
	m, err := verify(r, name, keys, also)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(reg, m, name); err != nil {
		return nil, err
	}
	return m, nil
}

// checkManifest refuses the archive name when reg may not restore what
// its manifest m records.
func checkManifest(reg *hook.Registry, m *archive.Manifest, name string) error {
	if _, err := upgrade.PlanFor(reg, ManifestMetadata(m)); err != nil {
		return fmt.Errorf("backup %s: refused: %w", name, err)
	}
	meta := false
	for _, t := range m.Tables {
		if t.Name == store.ConfigTable {
			return fmt.Errorf("backup %s: refused: it carries the reserved table %q; configuration files belong in config/ members", name, store.ConfigTable)
		}
		meta = meta || len(t.Parent) == 0 && t.Name == store.MetaTable
	}
	// A manifest that lists its tables (formats 1 and 2) says on its face
	// whether the metadata its data version needs is there: refused before
	// anything is loaded, not after (format 3 carries its tables in the
	// data; the check at the end of the read finds it there).
	if m.Format < 3 && !meta && m.DataVersion != "" && m.DataVersion != upgrade.UnadoptedVersion {
		return fmt.Errorf("backup %s: refused: the manifest records data version %s but lists no table %q, which would hold its upgrade metadata", name, m.DataVersion, store.MetaTable)
	}
	return nil
}

// Unadopted reports whether m is the manifest of a backup of data without
// hookreg metadata (written before the product adopted hookreg): its data
// version is [upgrade.UnadoptedVersion] and it records no hook.
func Unadopted(m *archive.Manifest) bool {
	return m.DataVersion == upgrade.UnadoptedVersion && m.LastUpgradeHook == nil && len(m.Applied) == 0
}

// ManifestMetadata returns the upgrade metadata a manifest records.
func ManifestMetadata(m *archive.Manifest) upgrade.Metadata {
	meta := upgrade.Metadata{
		Product:         m.Product,
		DataVersion:     m.DataVersion,
		LastUpgradeHook: m.LastUpgradeHook,
		Covered:         m.Covered,
	}
	for _, a := range m.Applied {
		meta.Applied = append(meta.Applied, upgrade.Applied{
			Num:                 a.Num,
			Name:                a.Name,
			Digest:              a.Digest,
			Release:             a.Release,
			AppliedAt:           a.AppliedAt.UTC().Format(time.RFC3339),
			Mode:                upgrade.Mode(a.Mode),
			AllowDigestMismatch: a.DigestMismatch,
		})
	}
	return meta
}

// build is a new store file (and configuration directory) being built
// beside the ones it replaces.
type build struct {
	storePath, configDir string
	newStore, newConfig  string
	loader               *bolt.Loader
	pipe                 *pipe // feeds loader
	root                 *os.Root
	// configLock holds the new configuration directory locked (see Lock)
	// and newLock the finished new store, until the swap is done.
	configLock *os.File
	newLock    *bolt.Store
	dirs       []string        // directories created under newConfig, each once
	dirSeen    map[string]bool // the members of dirs
	// open holds the directories of the last file written, opened one
	// inside the other (open[i] is the directory of the names at[:i+1],
	// below root): the next file in the same or a nearby directory opens
	// only what differs, so that writing the files is linear in their
	// number however deep they are (a path opened from the root each
	// time costs one open per level and file).
	open    []*os.Root
	at      []string
	swapped bool
	// stage, for a store lying directly in configDir (storeBase is its
	// name), is the stage ".S.restore-*" inside configDir whose "new"
	// is newConfig (see storedir.go).
	stage, storeBase string
	// configMode is the mode the new configuration directory (beside
	// configDir) gets once its files are written: the old one's. It is
	// built 0700, so that a read-only directory can be restored too.
	configMode fs.FileMode
}

func newBuild(storePath, configDir, storeBase string) (*build, error) {
	b := &build{storePath: storePath, configDir: configDir, storeBase: storeBase}
	dir, base := filepath.Split(storePath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+restoreSuffix+"*")
	if err != nil {
		return nil, envErrorf("creating the new store beside %s: %w", storePath, err)
	}
	b.newStore = tmp.Name()
	tmp.Close()
	os.Remove(b.newStore)
	if b.loader, err = bolt.NewLoader(b.newStore); err != nil {
		return nil, envErrorf("creating the new store beside %s: %w", storePath, err)
	}
	b.pipe = newPipe(b.loader)
	if configDir == "" {
		return b, nil
	}
	lockDir, err := b.createNewConfig()
	if err != nil {
		b.discard()
		return nil, err
	}
	if b.root, err = os.OpenRoot(b.newConfig); err != nil {
		b.discard()
		return nil, envErrorf("opening the new configuration directory: %w", err)
	}
	if b.configLock, err = os.Open(lockDir); err == nil {
		err = Lock(b.configLock)
	}
	if err != nil {
		b.discard()
		return nil, envErrorf("locking the new configuration directory: %w", err)
	}
	return b, nil
}

// createNewConfig creates the empty new configuration directory
// b.newConfig and returns the directory to lock while the restore builds
// it. For a store lying directly in configDir, that is the stage inside
// configDir, named as the store's temporary files are (a killed run's is
// removed as stale, unless its journal is there: then FinishConfigSwap
// completes it first), and newConfig is its "new"; otherwise newConfig
// itself, beside configDir and with its mode.
func (b *build) createNewConfig() (lockDir string, err error) {
	if b.storeBase != "" {
		if b.stage, err = os.MkdirTemp(b.configDir, "."+b.storeBase+restoreSuffix+"*"); err != nil {
			return "", envErrorf("creating the new configuration beside the store in %s: %w", b.configDir, err)
		}
		b.newConfig = filepath.Join(b.stage, "new")
		if err := os.Mkdir(b.newConfig, 0o700); err != nil {
			return "", envErrorf("creating the new configuration beside the store in %s: %w", b.configDir, err)
		}
		return b.stage, nil
	}
	parent, base := filepath.Split(filepath.Clean(b.configDir))
	if parent == "" {
		parent = "."
	}
	if b.newConfig, err = os.MkdirTemp(parent, "."+base+restoreSuffix+"*"); err != nil {
		return "", envErrorf("creating the new configuration directory beside %s: %w", b.configDir, err)
	}
	b.configMode = 0o755
	if info, err := os.Stat(b.configDir); err == nil {
		b.configMode = info.Mode().Perm()
	}
	return b.newConfig, nil
}

// lockNew holds the finished new store's exclusive lock until the swap is
// done, so that a process that opens the store path as soon as it names
// the new store waits until the configuration is swapped too.
func (b *build) lockNew() error {
	st, err := bolt.Open(b.newStore, bolt.Options{})
	if err != nil {
		return fmt.Errorf("opening the new store: %w", err)
	}
	b.newLock = st
	return nil
}

// lockOld opens the store storePath, holding its exclusive lock (old);
// err is bolt.Open's error, wrapping fs.ErrNotExist when there is no
// store: then it locks the store's directory (dir), and lockErr says why
// it could not. The lock is of the file that storePath names once it is
// held: a restore that waited for another one to finish would otherwise
// hold the lock of the store that one replaced, and a third restore, or
// the product, could open the new one meanwhile; likewise a store created
// while this one waited for its directory. It tries again then, a few
// times.
func lockOld(ctx context.Context, storePath string) (old *bolt.Store, dir *os.File, err, lockErr error) {
	for attempt := 0; ; attempt++ {
		before, statErr := os.Stat(storePath)
		old, err = bolt.Open(storePath, bolt.Options{Context: ctx})
		switch {
		case err == nil:
			if now, err := os.Stat(storePath); err == nil && statErr == nil && os.SameFile(before, now) {
				return old, nil, nil, nil
			}
			old.Close()
		case errors.Is(err, fs.ErrNotExist):
			dir, lerr := lockDir(parentDir(storePath))
			if lerr != nil {
				return nil, nil, err, lerr
			}
			if _, serr := os.Lstat(storePath); errors.Is(serr, fs.ErrNotExist) {
				return nil, dir, err, nil
			}
			dir.Close()
		case errors.Is(err, store.ErrInUse):
			return nil, nil, err, err
		default:
			return nil, nil, err, nil
		}
		if attempt == 10 {
			err = fmt.Errorf("%w: %s is replaced by another process as it is opened", store.ErrInUse, storePath)
			return nil, nil, err, err
		}
	}
}

// checkNew checks the new store, written and closed.
func (b *build) checkNew() error {
	st, err := bolt.Open(b.newStore, bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("opening the new store: %w", err)
	}
	err = st.Check()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checking the new store: %w", err)
	}
	return nil
}

// pipe hands the records archive.Read decodes (and hashes) in this
// goroutine to a goroutine that loads them into bbolt, in batches, so that
// the two overlap on two cores. A batch holds the tables that start among
// its records too, so that many small tables travel together rather than a
// batch (and a hand-over between the goroutines) each. Memory: batches of
// at most pipeBatchBytes of records and table names (or one larger
// record), queued up to pipeBatches of them and pipeQueueBytes (so that
// large values queue one at a time), and the chunks they point into (the
// reader does not reuse them).
type pipe struct {
	l     *bolt.Loader
	batch *loadBatch
	bytes int
	ch    chan *loadBatch
	room  *semaphore.Weighted // bytes of the queued batches
	done  chan struct{}
	err   error // the loader's error, read after done is closed
	quit  chan struct{}
	ended bool
	// resume is the table to go back to before the next record: the
	// parent of the table that ended last, nil when there is none.
	resume []string
	stop   atomic.Bool // set by abort: the loader skips what is left
	// free holds loaded batches, emptied, for the reader to fill again:
	// a batch's slices are allocated at their full size once, rather
	// than grown from nothing for every batch.
	free chan *loadBatch
}

// loadBatch is records to add and the tables to start or go back to
// among them, and what it takes of the queue's room.
type loadBatch struct {
	records [][2][]byte
	tables  []loadTable
	weight  int64
}

// loadTable is a table to start (with its sequence) or go back to before
// the record at index at of its batch (after the last when at is the
// number of records).
type loadTable struct {
	at       int
	path     []string
	sequence uint64
}

const (
	pipeBatchBytes   = 1 << 20
	pipeBatchRecords = 4096 // records and tables
	pipeBatches      = 4
	pipeQueueBytes   = pipeBatches * pipeBatchBytes
)

func newPipe(l *bolt.Loader) *pipe {
	p := &pipe{l: l, ch: make(chan *loadBatch, pipeBatches), room: semaphore.NewWeighted(pipeQueueBytes), done: make(chan struct{}), quit: make(chan struct{}), free: make(chan *loadBatch, pipeBatches+1)}
	go func() {
		defer close(p.done)
		for bt := range p.ch {
			if p.err == nil && !p.stop.Load() {
				if p.err = p.load(bt); p.err != nil {
					close(p.quit)
				}
			}
			p.room.Release(bt.weight)
			// Nothing of the batch stays reachable: the chunks its
			// records point into can go.
			clear(bt.records)
			clear(bt.tables)
			bt.records, bt.tables, bt.weight = bt.records[:0], bt.tables[:0], 0
			select {
			case p.free <- bt:
			default:
			}
		}
	}()
	return p
}

// load loads one batch, in the loader's goroutine.
func (p *pipe) load(bt *loadBatch) error {
	tables := bt.tables
	for i, kv := range bt.records {
		for len(tables) > 0 && tables[0].at == i {
			if err := p.l.Table(tables[0].path, tables[0].sequence); err != nil {
				return err
			}
			tables = tables[1:]
		}
		// The records point into archive chunks, which the reader
		// never reuses: no copy.
		if err := p.l.RecordRef(kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, t := range tables {
		if err := p.l.Table(t.path, t.sequence); err != nil {
			return err
		}
	}
	return nil
}

// flush sends the current batch; it fails when the loader failed. The
// failpoint restore.batch marks each batch handed to the loader, in the
// middle of a restore's single pass.
func (p *pipe) flush() error {
	if p.batch == nil {
		return nil
	}
	if err := failpoint.Inject("restore.batch"); err != nil {
		return err
	}
	// Wait for room in the queue: the loader releases it as it loads,
	// and always releases it all before it fails, so this never waits on
	// a failed loader for more than the batch it was loading.
	p.batch.weight = min(int64(p.bytes), pipeQueueBytes)
	if err := p.room.Acquire(context.Background(), p.batch.weight); err != nil {
		return err
	}
	select {
	case p.ch <- p.batch:
	case <-p.quit:
		p.room.Release(p.batch.weight)
		// The loader failed (a full disk, a file size limit): it waits
		// for the channel to close, not for more batches.
		p.ended = true
		close(p.ch)
		<-p.done
		return p.err
	}
	p.batch, p.bytes = nil, 0
	return nil
}

// add makes room in the current batch for an entry of size bytes,
// sending the batch when it is full.
func (p *pipe) add(size int) error {
	if p.batch != nil && (p.bytes+size > pipeBatchBytes || len(p.batch.records)+len(p.batch.tables) >= pipeBatchRecords) {
		if err := p.flush(); err != nil {
			return err
		}
	}
	if p.batch == nil {
		select {
		case p.batch = <-p.free:
		default:
			p.batch = &loadBatch{records: make([][2][]byte, 0, pipeBatchRecords)}
		}
	}
	p.bytes += size
	return nil
}

// startTable adds a table to start, or to go back to when sequence is
// 0 and it exists.
func (p *pipe) startTable(path []string, sequence uint64) error {
	size := 0
	for _, name := range path {
		size += len(name)
	}
	if err := p.add(size); err != nil {
		return err
	}
	p.batch.tables = append(p.batch.tables, loadTable{at: len(p.batch.records), path: path, sequence: sequence})
	return nil
}

func (p *pipe) table(t archive.TableInfo) error {
	p.resume = nil
	return p.startTable(t.Path(), t.Sequence)
}

// end ends table t: the records that follow (if any, in a format 3
// archive) go to the table it is nested in.
func (p *pipe) end(t archive.TableInfo) error {
	p.resume = t.Parent
	return nil
}

func (p *pipe) record(key, value []byte) error {
	if p.resume != nil {
		if err := p.startTable(p.resume, 0); err != nil {
			return err
		}
		p.resume = nil
	}
	if err := p.add(len(key) + len(value)); err != nil {
		return err
	}
	p.batch.records = append(p.batch.records, [2][]byte{key, value})
	return nil
}

// close sends what is left, waits for the loader and returns its error.
func (p *pipe) close() error {
	if p.ended {
		return p.err
	}
	err := p.flush()
	p.ended = true
	close(p.ch)
	<-p.done
	if err == nil {
		err = p.err
	}
	return err
}

// abort stops the loader without loading what is queued, and waits for
// it; after close it does nothing.
func (p *pipe) abort() {
	if p.ended {
		return
	}
	p.ended = true
	p.stop.Store(true)
	close(p.ch)
	<-p.done
}

// config writes one configuration file: into the new directory, or into
// the store's configuration table when there is none.
func (b *build) config(c archive.ConfigFile, data []byte) error {
	if b.root == nil {
		return b.loader.Put(store.ConfigTable, []byte(c.Path), store.EncodeConfigFile(c.Mode, data))
	}
	elems := strings.Split(c.Path, "/")
	dir, err := b.openDir(elems[:len(elems)-1])
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
	}
	mode := ConfigMode(c.Mode)
	f, err := dir.OpenFile(elems[len(elems)-1], os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // the umask may have cleared bits
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
	}
	return nil
}

// openDir returns the directory below the new configuration directory
// whose path elements are dir, creating what is missing, and keeps it and
// its parents open for the next file (see build.open).
func (b *build) openDir(dir []string) (*os.Root, error) {
	keep := 0
	for keep < len(b.at) && keep < len(dir) && b.at[keep] == dir[keep] {
		keep++
	}
	b.closeDirs(keep)
	for _, name := range dir[keep:] {
		parent := b.root
		if n := len(b.open); n > 0 {
			parent = b.open[n-1]
		}
		path := filepath.Join(append(b.at[:len(b.at):len(b.at)], name)...)
		if !b.dirSeen[path] {
			if err := parent.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
			if b.dirSeen == nil {
				b.dirSeen = map[string]bool{}
			}
			b.dirSeen[path] = true
			b.dirs = append(b.dirs, path)
		}
		r, err := parent.OpenRoot(name)
		if err != nil {
			return nil, err
		}
		b.open, b.at = append(b.open, r), append(b.at, name)
	}
	if n := len(b.open); n > 0 {
		return b.open[n-1], nil
	}
	return b.root, nil
}

// closeDirs closes the open directories beyond the first keep.
func (b *build) closeDirs(keep int) {
	for len(b.open) > keep {
		b.open[len(b.open)-1].Close()
		b.open = b.open[:len(b.open)-1]
	}
	b.at = b.at[:keep]
}

// swap moves the new store, then the new configuration directory, into
// place. If the directory cannot be swapped, the old store is put back.
func (b *build) swap() error {
	oldStore, undo, err := swapIn(b.newStore, b.storePath)
	if err != nil {
		if undo == nil && oldStore != "" {
			b.swapped = true // keep the old store where it is now
			return fmt.Errorf("swapping in the new store: %w; the old store is at %s", err, oldStore)
		}
		return fmt.Errorf("swapping in the new store: %w", err)
	}
	if err := failpoint.Inject("restore.store-swapped"); err != nil {
		return b.undo(undo, oldStore, err)
	}
	oldConfig := ""
	if b.configDir != "" {
		b.closeDirs(0)
		b.root.Close()
		b.root = nil
		err := failpoint.Inject("restore.config-swap")
		if err == nil && b.stage != "" {
			return b.swapEntries(undo, oldStore)
		}
		if err == nil {
			oldConfig, _, err = swapIn(b.newConfig, b.configDir)
		}
		if err != nil {
			return b.undo(undo, oldStore, fmt.Errorf("swapping in the new configuration directory: %w", err))
		}
	}
	b.swapped = true
	b.unlock()
	failpoint.Inject("restore.swapped")
	if oldStore != "" {
		os.Remove(oldStore)
	}
	if oldConfig != "" {
		removeAll(oldConfig)
	}
	return nil
}

// swapEntries replaces the configuration's entries in configDir, the
// store lying directly in it, with those of the stage, under the journal
// (see storedir.go), the new store already swapped in (undo puts the old
// one, now at oldStore, back).
func (b *build) swapEntries(undo func() error, oldStore string) error {
	j := journalName(b.storePath)
	if err := atomicfile.Write(j, []byte(filepath.Base(b.stage)+"\n"), 0o600); err != nil {
		return b.undo(undo, oldStore, envErrorf("writing the journal of the configuration swap: %w", err))
	}
	// From here on the swap goes forward: a failure or a kill leaves the
	// journal, and the next restore or upgrade completes it.
	b.swapped = true
	if err := failpoint.Inject("restore.config-journal"); err != nil {
		return err
	}
	err := completeSwap(b.configDir, b.stage, b.storeBase, j)
	b.unlock()
	if err != nil {
		return fmt.Errorf("swapping in the new configuration: %w; the new store is in place and the journal %s remains: run the restore again to complete the configuration's swap", err, j)
	}
	if oldStore != "" {
		os.Remove(oldStore)
	}
	return nil
}

// undo puts the old store back after the configuration directory could
// not be swapped in, and returns err.
func (b *build) undo(undo func() error, oldStore string, err error) error {
	if uerr := undo(); uerr != nil {
		b.swapped = true // keep the old store where it is now
		return fmt.Errorf("%w; putting the old store back also failed, it is at %s: %v", err, oldStore, uerr)
	}
	failpoint.Inject("restore.undone")
	return err
}

// unlock releases the locks on what was built.
func (b *build) unlock() {
	if b.newLock != nil {
		b.newLock.Close()
		b.newLock = nil
	}
	if b.configLock != nil {
		b.configLock.Close()
		b.configLock = nil
	}
}

// discard removes what was built unless it was swapped in; it can be
// deferred.
func (b *build) discard() {
	b.unlock()
	if b.swapped {
		return
	}
	if b.pipe != nil {
		b.pipe.abort()
	}
	if b.loader != nil {
		b.loader.Abort()
	}
	os.Remove(b.newStore)
	if b.root != nil {
		b.closeDirs(0)
		b.root.Close()
	}
	if b.stage != "" {
		os.RemoveAll(b.stage)
	} else if b.newConfig != "" {
		removeAll(b.newConfig)
	}
}

// swapIn moves the finished file or directory fresh onto dst, atomically:
// with one exchange where the system has it, so dst always names a whole
// old or a whole new one, and the directory synced. It returns where the
// old dst now is ("" when there was none) and a function that puts it back.
// On an error nothing has moved.
func swapIn(fresh, dst string) (old string, undo func() error, err error) {
	_, statErr := os.Lstat(dst)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		if err := os.Rename(fresh, dst); err != nil {
			return "", nil, err
		}
		undo = func() error { return os.Rename(dst, fresh) }
	default:
		err := exchange(fresh, dst)
		if err == nil {
			old = fresh
			undo = func() error { return exchange(fresh, dst) }
			break
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return "", nil, err
		}
		old = fresh + ".old"
		if err := os.Rename(dst, old); err != nil {
			return "", nil, err
		}
		if err := os.Rename(fresh, dst); err != nil {
			os.Rename(old, dst)
			return "", nil, err
		}
		undo = func() error {
			if err := os.Rename(dst, fresh); err != nil {
				return err
			}
			return os.Rename(old, dst)
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		if uerr := undo(); uerr != nil {
			return old, nil, fmt.Errorf("%w; putting the old one back also failed: %v", err, uerr)
		}
		return "", nil, err
	}
	return old, undo, nil
}

// envErrorf returns an environment error (exit status 2 in the migrator).
func envErrorf(format string, args ...any) error {
	return cliflag.Env(fmt.Errorf(format, args...))
}
