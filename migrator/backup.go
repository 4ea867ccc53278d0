package migrator

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "backup",
		Summary: "write a consistent backup of a store and its configuration",
		Usage: `
Usage: migrator backup --store S [--config DIR] [--compress zstd|none] --out FILE

Writes one archive FILE (see DESIGN.md §6) holding every table of the store
S and its upgrade metadata, all read in one read-only transaction (one
consistent snapshot), and the configuration files of the directory DIR:
regular files only, with their modes (a symbolic link or a special file is
refused). A store that holds its configuration files itself (the table
"_config", as after an offline upgrade or a restore without --config)
carries them the same way, and then --config must be omitted.

The archive is written to a temporary file beside FILE, synced and renamed
into place: FILE is never partial, even when the backup is killed. An
existing FILE is replaced. FILE gets mode 0600: it holds the product's
data. The archive is zstd-compressed unless --compress none.

Example:

	$ migrator backup --store broker.db --config etc/broker --out broker-5.0.1.tar.zst
	backed up broker.db to broker-5.0.1.tar.zst: data version 5.0.1, 3 tables, 120 records, 1 config file
`,
		New: func() command { return &backupOptions{} },
	})
}

// Flag names of backup.
const (
	flagCompress = "compress"
)

type backupOptions struct {
	store    string
	config   string
	compress string
	out      string
}

func (o *backupOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store: a bbolt file `path`")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `directory` to include")
	fs.StringVar(&o.compress, flagCompress, string(archive.Zstd), "compression: zstd or none")
	fs.StringVar(&o.out, flagOut, "", "the archive `file` to write")
}

func (o *backupOptions) Validate(args []string) error {
	switch {
	case o.store == "":
		return cliflag.Usagef("--%s is required", flagStore)
	case o.out == "":
		return cliflag.Usagef("--%s is required", flagOut)
	}
	if _, err := archive.ParseCompression(o.compress); err != nil {
		return cliflag.Usagef("--%s: %v", flagCompress, err)
	}
	return cliflag.Exactly(args)
}

func (o *backupOptions) Run(e *env) error {
	comp, _ := archive.ParseCompression(o.compress)
	if o.config != "" {
		if info, err := os.Stat(o.config); err != nil {
			return envErrorf("configuration directory: %w", err)
		} else if !info.IsDir() {
			return envErrorf("configuration directory %s is not a directory", o.config)
		}
	}
	st, err := openStore(o.store, openRead)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := WriteBackupFile(st, e.reg, o.out, BackupOptions{
		ConfigDir:   o.config,
		Compression: comp,
		Progress:    e.progress,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s: %s\n", o.store, o.out, summary(m))
	return nil
}

// summary describes the content of an archive in one line.
func summary(m *archive.Manifest) string {
	var records int64
	for _, t := range m.Tables {
		records += t.Records
	}
	return fmt.Sprintf("data version %s, %s, %s, %s", m.DataVersion,
		plural(int64(len(m.Tables)), "table"), plural(records, "record"), plural(int64(len(m.Config)), "config file"))
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// BackupOptions configure Backup.
type BackupOptions struct {
	// ConfigDir is the configuration directory whose regular files the
	// backup carries. When empty, the files held in the store's
	// [store.ConfigTable] (if any) are carried instead; a store that holds
	// some cannot be backed up with a ConfigDir.
	ConfigDir string
	// Compression of the archive; archive.Zstd when empty.
	Compression archive.Compression
	// Created is the creation time recorded in the archive; the current
	// time when zero. Set it for a deterministic archive.
	Created time.Time
	// Progress receives progress lines about long work; nil is quiet.
	Progress io.Writer
}

// Backup writes an archive of st to w: every table (the metadata table
// included) from one read-only transaction, so the archive is one
// consistent snapshot even while other goroutines write to st, and the
// configuration files (see [BackupOptions]). The record counts of the
// manifest are taken in that same transaction. Memory stays bounded by the
// archive's chunk size whatever the store size.
//
// The [store.ConfigTable] table is never carried as a table: its files
// become the archive's config/ members, as a restore without a
// configuration directory puts them back.
func Backup(st store.Store, reg *hook.Registry, w io.Writer, opts BackupOptions) (*archive.Manifest, error) {
	tx, err := st.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	defer tx.Rollback()
	meta, err := upgrade.ReadMetadata(tx)
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	names, err := tx.Tables()
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	m := archive.Manifest{
		Created:         created,
		Product:         meta.Product,
		Release:         reg.Release,
		RegistryDigest:  reg.Digest,
		DataVersion:     meta.DataVersion,
		LastUpgradeHook: meta.LastUpgradeHook,
		Applied:         manifestApplied(meta.Applied),
	}
	if m.Product == "" {
		m.Product = reg.Product
	}
	var total int64
	configInStore := false
	for _, name := range names {
		if name == store.ConfigTable {
			configInStore = true
			continue
		}
		info, err := countTable(tx, name)
		if err != nil {
			return nil, fmt.Errorf("backing up: %w", err)
		}
		m.Tables = append(m.Tables, info)
		total += info.Records
	}
	var cfg configSource
	switch {
	case configInStore && opts.ConfigDir != "":
		return nil, fmt.Errorf("backing up: the store holds its configuration files in table %q: omit the configuration directory %s", store.ConfigTable, opts.ConfigDir)
	case configInStore:
		cfg = storeConfig{tx}
	case opts.ConfigDir != "":
		root, err := os.OpenRoot(opts.ConfigDir)
		if err != nil {
			return nil, fmt.Errorf("backing up: opening configuration directory: %w", err)
		}
		defer root.Close()
		cfg = dirConfig{root: root, dir: opts.ConfigDir}
	}
	if cfg != nil {
		if m.Config, err = cfg.list(); err != nil {
			return nil, fmt.Errorf("backing up: %w", err)
		}
	}
	aw, err := archive.NewWriter(w, m, archive.Options{Compression: opts.Compression})
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	prog := newProgress(opts.Progress, "backup", total)
	for _, info := range m.Tables {
		if err := copyTable(tx, aw, info.Name, prog); err != nil {
			return nil, fmt.Errorf("backing up table %q: %w", info.Name, err)
		}
	}
	for _, c := range m.Config {
		data, err := cfg.read(c)
		if err != nil {
			return nil, fmt.Errorf("backing up configuration file %s: %w", c.Path, err)
		}
		if err := aw.Config(c.Path, c.Mode, data); err != nil {
			return nil, fmt.Errorf("backing up configuration file %s: %w", c.Path, err)
		}
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	prog.done()
	m.Format = archive.FormatVersion
	m.Created = m.Created.UTC().Truncate(time.Second)
	return &m, nil
}

// WriteBackupFile writes the backup of st (see [Backup]) to the file path
// safely: to a temporary file beside it, synced, then renamed into place and
// the directory synced. A failure or a kill never leaves a partial file at
// path; a failure leaves no temporary file either.
func WriteBackupFile(st store.Store, reg *hook.Registry, path string, opts BackupOptions) (*archive.Manifest, error) {
	f, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	defer f.abort()
	m, err := backupAsync(st, reg, f.File, opts)
	if err != nil {
		return nil, err
	}
	if err := f.commit(); err != nil {
		return nil, err
	}
	return m, nil
}

// backupAsync is Backup with the writes to f in another goroutine, so
// that reading the store and encoding overlap with the file system's work:
// a double buffer of writeBuffer bytes.
func backupAsync(st store.Store, reg *hook.Registry, f *os.File, opts BackupOptions) (*archive.Manifest, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// Hide f's ReadFrom, which would copy through a small buffer.
		_, err := io.CopyBuffer(struct{ io.Writer }{f}, pr, make([]byte, writeBuffer))
		pr.CloseWithError(err)
		done <- err
	}()
	bw := bufio.NewWriterSize(pw, writeBuffer)
	m, err := Backup(st, reg, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	pw.CloseWithError(err)
	if werr := <-done; err == nil && werr != nil {
		err = fmt.Errorf("writing %s: %w", f.Name(), werr)
	}
	return m, err
}

// writeBuffer is the size of each half of backupAsync's double buffer.
const writeBuffer = 1 << 20

func manifestApplied(applied []upgrade.Applied) []archive.AppliedHook {
	out := make([]archive.AppliedHook, 0, len(applied))
	for _, a := range applied {
		t, _ := time.Parse(time.RFC3339, a.AppliedAt)
		out = append(out, archive.AppliedHook{
			Num:            a.Num,
			Digest:         a.Digest,
			Release:        a.Release,
			AppliedAt:      t,
			Mode:           string(a.Mode),
			DigestMismatch: a.AllowDigestMismatch,
		})
	}
	return out
}

// countTable counts the records of a table and their encoded size.
func countTable(tx store.Tx, name string) (archive.TableInfo, error) {
	info := archive.TableInfo{Name: name}
	t, err := tx.Table(name)
	if err != nil {
		return info, err
	}
	err = t.Scan(nil, func(k, v []byte) error {
		info.Records++
		info.Bytes += archive.RecordSize(k, v)
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("counting table %q: %w", name, err)
	}
	return info, nil
}

func copyTable(tx store.Tx, aw *archive.Writer, name string, prog *progress) error {
	t, err := tx.Table(name)
	if err != nil {
		return err
	}
	if err := aw.Table(name); err != nil {
		return err
	}
	return t.Scan(nil, func(k, v []byte) error {
		prog.add(1)
		return aw.Record(k, v)
	})
}

// configSource lists and reads the configuration files of a backup.
type configSource interface {
	list() ([]archive.ConfigFile, error)
	read(c archive.ConfigFile) ([]byte, error)
}

// storeConfig is the configuration held in the store's ConfigTable.
type storeConfig struct{ tx store.Tx }

func (s storeConfig) list() ([]archive.ConfigFile, error) {
	t, err := s.tx.Table(store.ConfigTable)
	if err != nil {
		return nil, err
	}
	var files []archive.ConfigFile
	err = t.Scan(nil, func(k, v []byte) error {
		mode, data, err := store.DecodeConfigFile(v)
		if err != nil {
			return fmt.Errorf("configuration file %q in table %q: %w", k, store.ConfigTable, err)
		}
		files = append(files, archive.ConfigFile{Path: string(k), Mode: mode, Size: int64(len(data))})
		return nil
	})
	return files, err
}

func (s storeConfig) read(c archive.ConfigFile) ([]byte, error) {
	data, _, err := store.ReadConfigFile(s.tx, c.Path)
	return data, err
}

// dirConfig is a configuration directory, read through an os.Root so that
// nothing outside it is ever read.
type dirConfig struct {
	root *os.Root
	dir  string
}

// list lists the regular files below the directory, sorted by path.
// Symbolic links and special files are refused: a backup carries regular
// files only, and a link could point outside the directory.
func (d dirConfig) list() ([]archive.ConfigFile, error) {
	var files []archive.ConfigFile
	err := fs.WalkDir(d.root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := de.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("configuration file %s is a symbolic link: a backup carries regular files only; replace the link with a copy of its target", filepath.Join(d.dir, p))
		case !t.IsRegular():
			return fmt.Errorf("configuration file %s is not a regular file (%s): a backup carries regular files only", filepath.Join(d.dir, p), t)
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		if info.Size() > archive.MaxConfigSize {
			return fmt.Errorf("configuration file %s is %d bytes, more than the %d a backup carries", filepath.Join(d.dir, p), info.Size(), archive.MaxConfigSize)
		}
		files = append(files, archive.ConfigFile{Path: p, Mode: info.Mode().Perm(), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading configuration directory %s: %w", d.dir, err)
	}
	slices.SortFunc(files, func(a, b archive.ConfigFile) int { return bytes.Compare([]byte(a.Path), []byte(b.Path)) })
	return files, nil
}

// read reads a listed file and checks it has not changed since listing.
func (d dirConfig) read(c archive.ConfigFile) ([]byte, error) {
	f, err := d.root.Open(filepath.FromSlash(c.Path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || info.Mode().Perm() != c.Mode {
		return nil, errors.New("the file changed during the backup: run it again")
	}
	data, err := io.ReadAll(io.LimitReader(f, c.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != c.Size {
		return nil, errors.New("the file changed size during the backup: run it again")
	}
	return data, nil
}

// atomicFile is a file written beside its destination under a temporary
// name and renamed into place by commit, so that the destination is either
// its old self (or absent) or complete, never partial.
type atomicFile struct {
	*os.File
	dst       string
	committed bool
}

// createAtomic creates the temporary file for dst in dst's directory.
func createAtomic(dst string) (*atomicFile, error) {
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, envErrorf("creating a temporary file beside %s: %w", dst, err)
	}
	return &atomicFile{File: f, dst: dst}, nil
}

// commit syncs the file, renames it to its destination and syncs the
// directory.
func (a *atomicFile) commit() error {
	if err := a.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", a.Name(), err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", a.Name(), err)
	}
	if err := os.Rename(a.Name(), a.dst); err != nil {
		return fmt.Errorf("renaming %s into place: %w", a.dst, err)
	}
	a.committed = true
	return syncDir(filepath.Dir(a.dst))
}

// abort removes the temporary file unless it was committed; it can be
// deferred.
func (a *atomicFile) abort() {
	if !a.committed {
		a.Close()
		os.Remove(a.Name())
	}
}

// syncDir fsyncs a directory, so that a rename or a creation in it survives
// a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// progress reports the records done of a long step, at most twice a
// second, to a terminal. A nil *progress does nothing.
type progress struct {
	w      io.Writer
	what   string
	total  int64
	n      int64
	last   time.Time
	shown  bool
	ticker int
}

// newProgress returns a progress on w, or nil when w is nil.
func newProgress(w io.Writer, what string, total int64) *progress {
	if w == nil {
		return nil
	}
	return &progress{w: w, what: what, total: total, last: time.Now()}
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.n += n
	if p.ticker++; p.ticker%4096 != 0 || time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r%s: %d/%d records (%d%%)", p.what, p.n, p.total, 100*p.n/max(p.total, 1))
}

func (p *progress) done() {
	if p != nil && p.shown {
		fmt.Fprintf(p.w, "\r%s: %d/%d records (100%%)\n", p.what, p.n, p.total)
	}
}
