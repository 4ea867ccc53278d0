package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// OpenArchive opens the backup archive at path for reading ([Verify],
// [Check]), symbolic links followed. It refuses anything but a regular
// file, without blocking on a FIFO (it opens with O_NONBLOCK): an etcd
// restore reads its archive twice, which a pipe or a device cannot do,
// and a pipe or a device may never end.
func OpenArchive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, cliflag.Env(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, cliflag.Env(err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, envErrorf("%s is %s: name the archive file", path, atomicfile.Kind(info.Mode()))
	}
	return f, nil
}

// CheckOutput returns an error unless out may be written as a new file by
// an atomic rename: it does not exist, or it is a regular file. A
// symbolic link is refused rather than replaced or followed (a backup
// written through a link planted in a shared directory would replace the
// link's target), and so are device nodes, FIFOs, sockets and directories,
// which a rename would replace (as root, "--out /dev/null" would replace
// the system's /dev/null). The paths in avoid (a store, a configuration
// directory) must not be out or hold it, compared by file identity, not
// by name.
func CheckOutput(out string, avoid ...string) error {
	info, err := os.Lstat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return envErrorf("output %s: %w", out, err)
	case info.Mode()&fs.ModeSymlink != 0:
		return envErrorf("output %s is a symbolic link: name the file itself; an output is never written through a link", out)
	case !info.Mode().IsRegular():
		return envErrorf("output %s exists and is %s: refusing to replace it; name the archive file to write", out, atomicfile.Kind(info.Mode()))
	}
	for _, p := range avoid {
		if p == "" {
			continue
		}
		pinfo, err := os.Stat(p)
		if err != nil {
			continue
		}
		if pinfo.IsDir() {
			if inside(out, pinfo) {
				return envErrorf("output %s is inside %s", out, p)
			}
			continue
		}
		if info != nil && os.SameFile(info, pinfo) {
			return envErrorf("output %s is the store %s (the same file): choose another output", out, p)
		}
		if strings.HasPrefix(filepath.Base(out), "."+filepath.Base(p)+".") && sameDir(out, p) {
			return envErrorf("output %s would be a temporary file of the store %s: choose another output", out, p)
		}
	}
	return nil
}

// sameDir reports whether a and b are in the same directory (by identity).
func sameDir(a, b string) bool {
	da, erra := os.Stat(filepath.Dir(a))
	db, errb := os.Stat(filepath.Dir(b))
	return erra == nil && errb == nil && os.SameFile(da, db)
}

// inside reports whether the path p (which need not exist) is the
// directory dir or below it, comparing every existing directory on p's way
// to the root with dir by identity, so that links, bind mounts and
// "a/../b" cannot hide an overlap.
func inside(p string, dir fs.FileInfo) bool {
	abs, err := filepath.Abs(p)
	if err != nil {
		return false
	}
	for d := abs; ; d = filepath.Dir(d) {
		if info, err := os.Stat(d); err == nil && os.SameFile(info, dir) {
			return true
		}
		if d == filepath.Dir(d) {
			return false
		}
	}
}

// CheckLayout returns an error when the store file storePath and the
// configuration directory configDir overlap in a way the migrator cannot
// keep apart: the configuration directory being the store, or the store
// in a subdirectory of the configuration directory. A store directly in
// the configuration directory ("/data/app.db" with "/data") is allowed:
// the store and the files that belong to it (see [StoreInConfig]) are
// then not configuration.
func CheckLayout(storePath, configDir string) error {
	if configDir == "" {
		return nil
	}
	cinfo, err := os.Stat(configDir)
	if err != nil {
		return nil
	}
	if sinfo, err := os.Stat(storePath); err == nil && os.SameFile(sinfo, cinfo) {
		return envErrorf("the configuration directory %s is the store %s", configDir, storePath)
	}
	if _, in := StoreInConfig(storePath, configDir); in {
		return nil
	}
	if cinfo.IsDir() && inside(storePath, cinfo) {
		return envErrorf("the store %s is in a subdirectory of the configuration directory %s: keep the store directly in %s or outside it", storePath, configDir, configDir)
	}
	return nil
}

// StoreInConfig reports whether the store file storePath (which need not
// exist) lies directly in the configuration directory configDir, compared
// by identity, and returns the store's file name. In that layout the
// store, its pre-upgrade backups and the hidden files derived from its
// name (intents, temporary files, the journal of a
// restore's configuration swap) are not configuration: a backup leaves
// them out, a restore keeps them and refuses an archive whose
// configuration would land on one of their names.
func StoreInConfig(storePath, configDir string) (base string, in bool) {
	if configDir == "" || storePath == "" {
		return "", false
	}
	cinfo, err := os.Stat(configDir)
	if err != nil || !cinfo.IsDir() {
		return "", false
	}
	abs, err := filepath.Abs(storePath)
	if err != nil {
		return "", false
	}
	dinfo, err := os.Stat(filepath.Dir(abs))
	if err != nil || !os.SameFile(dinfo, cinfo) {
		return "", false
	}
	return filepath.Base(abs), true
}

// resolve follows a symbolic link at path (any number of levels, and
// links in its directories) and returns the path of its target; a path
// that does not exist is returned as it is. A restore replaces what a
// link points to and keeps the link.
func resolve(path string) (string, error) {
	info, err := os.Lstat(path)
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		return path, nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("following the symbolic link %s: %w", path, err)
	}
	return target, nil
}

// StaleAge is how old a temporary file or directory left by a killed run
// must be before the next run of the same command removes it: old enough
// that no run still creating it can be racing the removal.
const StaleAge = time.Minute

// RemoveStale removes what killed runs writing beside path left behind:
// the temporary files and directories "."+base(path)+suffix+"*" older than
// [StaleAge] that no live process holds locked (see [Lock]).
func RemoveStale(path, suffix string) {
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "."+escapeGlob(base)+suffix+"*"))
	for _, m := range matches {
		info, err := os.Lstat(m)
		if err != nil || time.Since(info.ModTime()) < StaleAge || locked(m) {
			continue
		}
		removeAll(m)
	}
}

// removeAll is os.RemoveAll, which also removes directories without
// write permission (an old configuration directory made read-only, and
// its copy a restore builds): when it fails, it makes every directory
// below path (on its file system) writable by its owner and tries again.
func removeAll(path string) {
	if os.RemoveAll(path) == nil {
		return
	}
	root, err := os.Lstat(path)
	if err != nil {
		return
	}
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err != nil || !sameDevice(info, root) {
			return filepath.SkipDir // another file system's mode is not ours to change
		}
		os.Chmod(p, 0o700)
		return nil
	})
	os.RemoveAll(path)
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// locked reports whether a live process holds the lock of path (a run
// still using its temporary file or directory).
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return errors.Is(err, errWouldBlock)
	}
	unlock(f)
	return false
}

// errWouldBlock is tryLock's error when another process holds the lock.
var errWouldBlock = errors.New("locked by another process")

// Lock takes an exclusive flock on the open file or directory f for its
// lifetime, so that [RemoveStale] never removes what a live run uses.
func Lock(f *os.File) error {
	if err := tryLock(f); err != nil {
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return nil
}

// lockDir takes the exclusive flock of the directory dir, waiting at most
// bolt.DefaultTimeout as opening a store does; closing the returned file
// releases it. A restore of a store that does not exist yet holds it, so
// that two restores of one new store never interleave.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, envErrorf("locking directory %s: %w", dir, err)
	}
	deadline := time.Now().Add(bolt.DefaultTimeout)
	for {
		err := tryLock(f)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, errWouldBlock) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, errWouldBlock) {
				return nil, fmt.Errorf("%w: another restore into %s (waited %s)", store.ErrInUse, dir, bolt.DefaultTimeout)
			}
			return nil, envErrorf("locking directory %s: %w", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeSpace returns the bytes available to this user in the file system
// holding dir, and that file system's id; tests replace it.
var freeSpace = fileSystemSpace

// What a bbolt store built by a restore takes, beyond its records' encoded
// bytes (archive.RecordSize): each record's leaf element, each table's
// bucket header, element and inline page (a table of a few records lives
// inline in its parent's page), the meta and freelist pages, and the
// pages' unused tails (the loader fills pages in key order, to about
// three quarters and more: counted as a third more).
const (
	recordOverhead = 16
	tableOverhead  = 64
	storePages     = 16 * 4096
	fileBlock      = 4096 // a configuration file takes whole blocks
)

// storeSpace estimates the bytes of the store a restore of m builds, with
// a margin proportional to it (an eighth, and 1 MiB): tiny records cost
// several times their encoded bytes, many tables more than their
// records, and neither a small backup nor a large one gets a fixed margin
// that is wrong for the other.
func storeSpace(m *archiveSizes) uint64 {
	need := addSat(addSat(m.tables, mulSat(recordOverhead, m.records)), mulSat(tableOverhead, m.tableCount))
	need = addSat(need, need/3)
	need = addSat(need, storePages)
	return addSat(addSat(need, need/8), 1<<20)
}

// addSat and mulSat are a+b and a*b, or the largest uint64 when they
// overflow: a manifest may declare totals up to the largest int64, and
// a margin that wrapped around to a small number would pass the free
// space check of an archive that fills the disk.
func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

func mulSat(a, b uint64) uint64 {
	if hi, lo := bits.Mul64(a, b); hi == 0 {
		return lo
	}
	return math.MaxUint64
}

// configSpace is storeSpace for the configuration files.
func configSpace(m *archiveSizes) uint64 {
	need := addSat(m.config, mulSat(fileBlock, m.files))
	return addSat(addSat(need, need/8), 1<<20)
}

// checkSpace refuses a restore of m whose declared data would not fit in
// the free space of the destinations, before anything is written.
func checkSpace(m *archiveSizes, storeDir, configParent string) error {
	storeAvail, storeFS, err := freeSpace(storeDir)
	if err != nil {
		return envErrorf("%w", err)
	}
	need := map[fsID]uint64{storeFS: storeSpace(m)}
	avail := map[fsID]uint64{storeFS: storeAvail}
	where := map[fsID]string{storeFS: storeDir}
	if configParent != "" {
		a, id, err := freeSpace(configParent)
		if err != nil {
			return envErrorf("%w", err)
		}
		need[id] = addSat(need[id], configSpace(m))
		avail[id] = a
		if where[id] == "" {
			where[id] = configParent
		}
	}
	for id, n := range need {
		if n > avail[id] {
			return envErrorf("not enough free space in %s: the backup declares %d bytes of records and %d of configuration files, which need about %d MiB there (with margin), and %d MiB are free",
				where[id], m.tables, m.config, n>>20, avail[id]>>20)
		}
	}
	return nil
}

// archiveSizes are the data sizes a manifest declares: its tables' bytes,
// records and tables, and its configuration files' bytes and number.
type archiveSizes struct{ tables, records, tableCount, config, files uint64 }

// ctxReader fails reads once ctx is done: a long read of an archive stops
// at the next read, with ctx's error.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := failpoint.Inject("backup.read"); err != nil {
		return 0, err
	}
	if err := c.ctx.Err(); err != nil {
		return 0, interrupted(err)
	}
	return c.r.Read(p)
}

// ctxWriter fails writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := failpoint.Inject("backup.write"); err != nil {
		return 0, err
	}
	if err := c.ctx.Err(); err != nil {
		return 0, interrupted(err)
	}
	return c.w.Write(p)
}

// ErrInterrupted is wrapped by the error of an operation stopped because
// its context was canceled (the migrator cancels it on SIGINT or SIGTERM):
// nothing was changed.
var ErrInterrupted = errors.New("interrupted")

func interrupted(err error) error {
	return fmt.Errorf("%w (%w)", ErrInterrupted, err)
}

// ContextReader returns r reading only while ctx is not done: a read
// after ctx is canceled fails with an error wrapping [ErrInterrupted]. The
// migrator wraps the archive it verifies in it, so that SIGINT stops a
// long verify.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }
