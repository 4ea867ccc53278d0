package backup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
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
}

// Restore replaces the store file storePath (and opts.ConfigDir) with the
// content of the backup archive at archivePath. It verifies the whole
// archive first and refuses another product's data or data that reg cannot
// upgrade (see [upgrade.PlanFor]); then it loads the records into a new
// store file beside storePath, streaming with bounded memory and checking
// everything again as it goes, runs the store's consistency check on the
// result, syncs it and swaps it in atomically, then the configuration
// directory the same way. On any error the old store and configuration are
// left exactly as they were.
func Restore(reg *hook.Registry, archivePath, storePath string, opts RestoreOptions) (*archive.Manifest, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, envErrorf("opening backup: %w", err)
	}
	defer f.Close()
	m, err := Check(reg, f, archivePath)
	if err != nil {
		return nil, err
	}
	if info, err := os.Stat(storePath); err == nil && !info.Mode().IsRegular() {
		return nil, envErrorf("store %s is not a regular file", storePath)
	}
	if opts.ConfigDir != "" {
		if info, err := os.Stat(opts.ConfigDir); err == nil && !info.IsDir() {
			return nil, envErrorf("configuration directory %s is not a directory", opts.ConfigDir)
		}
	}
	// Hold the old store's lock, so that no other process uses it while
	// it is replaced. A damaged old store cannot be opened; restoring over
	// it is what a restore is for.
	if old, err := bolt.Open(storePath, bolt.Options{ReadOnly: true}); err == nil {
		defer old.Close()
	} else if errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("restoring %s: %w", storePath, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, envErrorf("rereading backup %s: %w", archivePath, err)
	}
	b, err := newBuild(storePath, opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	defer b.discard()
	if err := b.load(f, m, opts.Progress); err != nil {
		return nil, fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	if err := b.swap(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	return m, nil
}

// Verify checks the whole archive in r, named name. A bad archive
// is a failed operation; an unreadable file an environment error.
func Verify(r io.Reader, name string) (*archive.Manifest, error) {
	m, err := archive.Verify(r)
	if errors.Is(err, archive.ErrInvalid) {
		return nil, fmt.Errorf("backup %s: %w", name, err)
	}
	if err != nil {
		return nil, envErrorf("reading backup %s: %w", name, err)
	}
	return m, nil
}

// Check checks the whole archive in r and that reg may restore it.
func Check(reg *hook.Registry, r io.Reader, name string) (*archive.Manifest, error) {
	m, err := Verify(r, name)
	if err != nil {
		return nil, err
	}
	if _, err := upgrade.PlanFor(reg, ManifestMetadata(m)); err != nil {
		return nil, fmt.Errorf("backup %s: refused: %w", name, err)
	}
	for _, t := range m.Tables {
		if t.Name == store.ConfigTable {
			return nil, fmt.Errorf("backup %s: refused: it carries the reserved table %q; configuration files belong in config/ members", name, store.ConfigTable)
		}
	}
	return m, nil
}

// ManifestMetadata returns the upgrade metadata a manifest records.
func ManifestMetadata(m *archive.Manifest) upgrade.Metadata {
	meta := upgrade.Metadata{
		Product:         m.Product,
		DataVersion:     m.DataVersion,
		LastUpgradeHook: m.LastUpgradeHook,
	}
	for _, a := range m.Applied {
		meta.Applied = append(meta.Applied, upgrade.Applied{
			Num:                 a.Num,
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
	root                 *os.Root
	dirs                 []string // directories created under newConfig
	swapped              bool
}

func newBuild(storePath, configDir string) (*build, error) {
	b := &build{storePath: storePath, configDir: configDir}
	dir, base := filepath.Split(storePath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".restore-*")
	if err != nil {
		return nil, envErrorf("creating the new store beside %s: %w", storePath, err)
	}
	b.newStore = tmp.Name()
	tmp.Close()
	os.Remove(b.newStore)
	if b.loader, err = bolt.NewLoader(b.newStore); err != nil {
		return nil, envErrorf("creating the new store beside %s: %w", storePath, err)
	}
	if configDir != "" {
		parent, base := filepath.Split(filepath.Clean(configDir))
		if parent == "" {
			parent = "."
		}
		if b.newConfig, err = os.MkdirTemp(parent, "."+base+".restore-*"); err != nil {
			b.discard()
			return nil, envErrorf("creating the new configuration directory beside %s: %w", configDir, err)
		}
		mode := fs.FileMode(0o755)
		if info, err := os.Stat(configDir); err == nil {
			mode = info.Mode().Perm()
		}
		if err := os.Chmod(b.newConfig, mode); err != nil {
			b.discard()
			return nil, envErrorf("creating the new configuration directory beside %s: %w", configDir, err)
		}
		if b.root, err = os.OpenRoot(b.newConfig); err != nil {
			b.discard()
			return nil, envErrorf("opening the new configuration directory: %w", err)
		}
	}
	return b, nil
}

// load streams the archive into the new store and configuration
// directory; archive.Read checks every checksum and count again, so a
// file changed since the verify pass fails here.
func (b *build) load(r io.Reader, m *archive.Manifest, w io.Writer) error {
	var total int64
	for _, t := range m.Tables {
		total += t.Records
	}
	prog := newProgress(w, "restore", total)
	p := newPipe(b.loader)
	got, err := archive.Read(r, archive.Handler{
		Table: p.table,
		Record: func(key, value []byte) error {
			prog.add(1)
			return p.record(key, value)
		},
		Config: func(c archive.ConfigFile, data []byte) error {
			if err := p.close(); err != nil {
				return err
			}
			return b.config(c, data)
		},
	})
	if perr := p.close(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	if !got.Created.Equal(m.Created) || got.DataVersion != m.DataVersion || len(got.Tables) != len(m.Tables) {
		return errors.New("the backup changed while it was being restored")
	}
	if err := b.loader.Finish(); err != nil {
		return err
	}
	prog.done()
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
	if b.root != nil {
		for i := len(b.dirs) - 1; i >= 0; i-- {
			if err := atomicfile.SyncDir(filepath.Join(b.newConfig, b.dirs[i])); err != nil {
				return err
			}
		}
		if err := atomicfile.SyncDir(b.newConfig); err != nil {
			return err
		}
	}
	return nil
}

// pipe hands the records archive.Read decodes (and hashes) in this
// goroutine to a goroutine that loads them into bbolt, in batches, so that
// the two overlap on two cores. Memory: a few batches of at most
// pipeBatchBytes of records, and the chunks they point into (the reader
// does not reuse them).
type pipe struct {
	l     *bolt.Loader
	batch *loadBatch
	bytes int
	ch    chan *loadBatch
	done  chan struct{}
	err   error // the loader's error, read after done is closed
	quit  chan struct{}
	ended bool
}

// loadBatch is a table to start (when path is not nil) and records to add.
type loadBatch struct {
	path     []string
	sequence uint64
	records  [][2][]byte
}

const (
	pipeBatchBytes   = 1 << 20
	pipeBatchRecords = 4096
	pipeBatches      = 4
)

func newPipe(l *bolt.Loader) *pipe {
	p := &pipe{l: l, ch: make(chan *loadBatch, pipeBatches), done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(p.done)
		for bt := range p.ch {
			if p.err != nil {
				continue
			}
			if bt.path != nil {
				if p.err = l.Table(bt.path, bt.sequence); p.err != nil {
					close(p.quit)
					continue
				}
			}
			for _, kv := range bt.records {
				if p.err = l.Record(kv[0], kv[1]); p.err != nil {
					close(p.quit)
					break
				}
			}
		}
	}()
	return p
}

// flush sends the current batch; it fails when the loader failed.
func (p *pipe) flush() error {
	if p.batch == nil {
		return nil
	}
	select {
	case p.ch <- p.batch:
	case <-p.quit:
		<-p.done
		return p.err
	}
	p.batch, p.bytes = nil, 0
	return nil
}

func (p *pipe) table(t archive.TableInfo) error {
	if err := p.flush(); err != nil {
		return err
	}
	p.batch = &loadBatch{path: t.Path(), sequence: t.Sequence}
	return nil
}

func (p *pipe) record(key, value []byte) error {
	if p.batch == nil {
		p.batch = &loadBatch{}
	}
	p.batch.records = append(p.batch.records, [2][]byte{key, value})
	p.bytes += len(key) + len(value)
	if p.bytes >= pipeBatchBytes || len(p.batch.records) >= pipeBatchRecords {
		return p.flush()
	}
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

// config writes one configuration file: into the new directory, or into
// the store's configuration table when there is none.
func (b *build) config(c archive.ConfigFile, data []byte) error {
	if b.root == nil {
		return b.loader.Put(store.ConfigTable, []byte(c.Path), store.EncodeConfigFile(c.Mode, data))
	}
	name := filepath.FromSlash(c.Path)
	if dir := filepath.Dir(name); dir != "." {
		if err := b.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
		}
		for d := dir; d != "."; d = filepath.Dir(d) {
			b.dirs = append(b.dirs, d)
		}
	}
	f, err := b.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, c.Mode)
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = b.root.Chmod(name, c.Mode) // the umask may have cleared bits
	}
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", c.Path, err)
	}
	return nil
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
	oldConfig := ""
	if b.configDir != "" {
		b.root.Close()
		b.root = nil
		if oldConfig, _, err = swapIn(b.newConfig, b.configDir); err != nil {
			if uerr := undo(); uerr != nil {
				b.swapped = true // keep the old store where it is now
				return fmt.Errorf("swapping in the new configuration directory: %w; putting the old store back also failed, it is at %s: %v", err, oldStore, uerr)
			}
			return fmt.Errorf("swapping in the new configuration directory: %w", err)
		}
	}
	b.swapped = true
	if oldStore != "" {
		os.Remove(oldStore)
	}
	if oldConfig != "" {
		os.RemoveAll(oldConfig)
	}
	return nil
}

// discard removes what was built unless it was swapped in; it can be
// deferred.
func (b *build) discard() {
	if b.swapped {
		return
	}
	if b.loader != nil {
		b.loader.Abort()
	}
	os.Remove(b.newStore)
	if b.root != nil {
		b.root.Close()
	}
	if b.newConfig != "" {
		os.RemoveAll(b.newConfig)
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
