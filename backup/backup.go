// Package backup is the backup, verify and restore of a store, as a
// library: what the migrator's backup, verify, restore and offline upgrade
// commands do, for a product to call from its own code.
//
// A backup is one archive (see package archive for the format): every
// table of the store and its upgrade metadata, read in one read-only
// transaction, and the product's configuration files.
//
//	st, err := bolt.Open("broker.db", bolt.Options{ReadOnly: true})
//	// ...
//	m, err := backup.WriteFile(ctx, st, generated.Registry, "broker.tar.zst", backup.Options{ConfigDir: "etc/broker"})
//	// ...
//	m, err = backup.Restore(ctx, generated.Registry, "broker.tar.zst", "broker.db", backup.RestoreOptions{ConfigDir: "etc/broker"})
//
// Files are written safely: to a temporary file beside the destination,
// synced, then renamed (or, for a restore, exchanged) into place, so a
// failure or a kill never leaves a partial file at the destination.
//
// Errors caused by the environment (a file that cannot be opened or
// created) are marked as such, so that the migrator reports them with exit
// status 2 and a refused or failed operation with exit status 1.
//
// # Cost of many tables
//
// Memory is bounded by the batch sizes and the depth of nesting, never by
// the number of tables: a backup walks the tree with one cursor a level, a
// restore hands tables to the loader inside its batches of records and
// the loader counts each table as a record of its transaction (ten million
// tables back up, verify, restore and upgrade offline under 100 MB of
// RssAnon: BenchmarkManyTablesStore). What many small tables cost in CPU,
// measured (BenchmarkNested: a million records in 100,000 nested tables
// against the same records in one table), and what was done about it:
//
//   - A restore's check of the new store read the file through one
//     read-ahead window, refilled at every page that was outside it;
//     bbolt writes the buckets of a commit in a map's order, so a store
//     of many one-page buckets made it read the file sixty times over. It
//     reads through a small block cache now (store/bolt), and on unix in
//     place, from a read-only mapping of its own (the check of the
//     restored nested store: 0.27 s of CPU down to 0.22 s, most of the
//     rest being bbolt's own check; flat 0.11 s to 0.08 s). Alone, the
//     page check of the restored nested store costs 0.034 s of CPU, of
//     the flat one 0.017 s: the latency of touching 100,000 more pages in
//     tree order, which bbolt wrote in no order (mapping the file with
//     MAP_POPULATE, which maps every page at once, changed nothing).
//   - The loader keeps the buckets of the current path open, so a nested
//     table is created in its open parent and a parent resumed without a
//     look-up. (Looking the path up was not where the time went: creating
//     a bucket is two searches inside bbolt either way.) The batches that
//     carry records and tables to the loader are reused rather than grown
//     anew every 4,096 entries (5-8% of a restore, flat or nested). In a
//     profile of the nested restore, the loader's own code is under 1% of
//     its goroutine: the rest is bbolt's Put, bucket creation and commits.
//   - The archive reader hands a table's parent path as one slice to the
//     table's start and end and to its siblings, instead of copying it
//     for each (a verify of the nested store made 401,742 allocations,
//     now 101,731: one a table, its name). A verify costs 0.81-1.40 of
//     the flat one's CPU (goal 1.25: met in 13 runs of 14).
//   - Reading the archive's chunks into buffers bbolt is done with (a
//     chunk's buffer given back once the loader has committed after its
//     last record) instead of a new one each was tried: a quarter fewer
//     collections and 9-13 MB less peak RssAnon, but about 1.5% of a flat
//     restore's CPU and nothing measurable of a nested one's, for a
//     hand-over of buffers between the reader and bbolt's commits that a
//     mistake would turn into a corrupt store. Not kept.
//   - What is left of a nested restore's extra CPU is bbolt's. Per
//     restore, profiled: bbolt's commits 0.59 s against the flat store's
//     0.21 s (writing 100,000 more pages, one pwrite each: 0.25 s against
//     0.11 s; the restored nested store is 414 MB, the flat one 243 MB),
//     creating the buckets 0.12 s, bbolt's own check 0.20 s against
//     0.08 s, the page check 0.06 s against 0.03 s; reading the archive
//     0.32 s against 0.30 s. A restore does more than "bbolt compact
//     --no-sync": it syncs the store it wrote and checks it. Like for
//     like, in the same runs, the compact followed by "bbolt check" of
//     its output costs 1.08-1.58 times as much CPU on the nested store as
//     on the flat one (the compact alone 1.03-1.52), and the restore's
//     own ratio is 1.23-1.36 (2.0 in one run under load; goal 1.25: not
//     met). A restore costs 0.59-0.76 of the compact and check's CPU on
//     the nested store, 0.43-0.77 on the flat one (of the compact alone
//     0.64-0.85 and 0.44-0.81; goal on the nested store 1.0: met; these
//     measured with the chunk buffers above); adding the fsync of the
//     compacted file changes these by under 1%. By the profile, skipping bbolt's check of the
//     new store would bring the nested/flat ratio to about 1.25 (not
//     measured); it was not done: the restore keeps bbolt's own word on
//     the file it wrote.
//   - A backup walks the store twice, once to count (the manifest, which
//     holds the totals, is the archive's first member) and once to copy.
//     Each walk opens every bucket through bbolt (a search in the parent,
//     two cursors, about five small allocations) and touches its page; a
//     bare bbolt walk, nothing else, costs 0.11-0.14 s of CPU for the
//     100,000 one-page buckets against 0.03 s for the same records
//     in one bucket (bareWalk, measured beside the backups), and two such
//     walks make most of the nested backup's extra CPU over the flat one
//     (0.73-1.28 of it). The backup's own work a table is small: in a
//     profile of the nested backup, the archive writer's StartTable and
//     EndTable take 0.01 s, the count's callbacks 0.006 s. The archive
//     writer allocates its two chunk buffers at the chunk size instead of
//     growing them: 0.03-0.1 s of CPU off every backup, flat or nested
//     (flat 0.35-0.47 s before, 0.30-0.35 s after; nested 0.53-0.59 s,
//     0.47-0.56 s), and 10-15 MB off its peak RssAnon. The cheaper the
//     flat backup gets, the larger the ratio: a nested backup costs
//     1.40-1.80 times the flat one's CPU (before 1.24-1.39 in the same
//     session; goal 1.25: not met). Walking once would take
//     keeping what the first walk read: spooling it to a file, as the
//     etcd backup does, was tried and costs more than the second walk
//     (CPU of a backup, flat 0.37-0.42 s without, 0.51-0.52 s with;
//     nested 0.59 s without, 0.67 s with). The other ways, reading
//     bbolt's pages without bbolt or patching the totals into a manifest
//     written first (which a compressed or encrypted archive, written as
//     a stream, cannot take), were not taken.
//   - What bbolt itself allows, measured beside the backups
//     (BenchmarkNested: the flat backup's CPU plus the bare walks' extra
//     on the nested store): 1.53-1.54 of the flat backup with two walks,
//     which is what the backup measures (1.52-1.56), and 1.26-1.27 with
//     one, so even a format with the totals at the end could not bring a
//     backup that reads through bbolt to 1.25. Reading the store with
//     code of our own is declined on purpose: a misreading would make an
//     archive that verifies, and restores to the wrong data (see
//     docs/decisions.md, "bbolt files are read and written through
//     bbolt"). Likewise a restore writes only through bbolt's Put: the
//     same records loaded through the restore's loader with nothing else
//     take 0.61 of the tuned compact's time at 5M records (0.53-0.58 at
//     1M), and the restore adds its check of the file (BenchmarkBackupRestore,
//     load_floor).
package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/layout"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// Options configure Backup.
type Options struct {
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
	// Recipients, when not empty, encrypt the archive with age to each of
	// them (X25519 or SSH public keys, or one passphrase): the file is a
	// standard age file around the archive (see archive/FORMAT.md).
	Recipients []age.Recipient
	// Signer, when not nil, signs the archive's SHA256SUMS (an SSH
	// signature; the archive is then format 4 and its manifest names the
	// key).
	Signer ssh.Signer
	// SpoolDir, for a store whose reads go to a server
	// ([store.RemoteReader]: etcd), is where the backup keeps the records
	// it reads while counting them, in a temporary file (unlinked at once
	// where the system allows, so a kill leaves nothing; as large as the
	// data), so that it reads the store once. When empty, such a store is
	// read twice, once to count the records and once to copy them, at the
	// same snapshot. [WriteFile] spools beside its output.
	SpoolDir string
}

// Backup writes an archive of st to w: every table at every depth with its
// sequence (the metadata table included; through [store.TreeWalker] where
// the store's transactions implement it, as bbolt's do, else through the
// tables' Scan) from one read-only transaction, so the archive is one
// consistent snapshot even while other goroutines write to st, and the
// configuration files (see [Options]). The record counts of the
// manifest are taken in that same transaction (a store whose reads go to a
// server is read once, see [Options.SpoolDir]), and what the archive format
// cannot carry exactly (a value over [archive.MaxValueSize], a name over
// [archive.MaxNameLen] bytes once encoded) is refused, naming it, before
// anything is written. Memory stays bounded by the
// archive's chunk size whatever the store size.
//
// A store without upgrade metadata (data written before the product
// adopted hookreg) is backed up with data version [upgrade.UnadoptedVersion]
// and no metadata table, so it restores to a store without metadata again.
//
// The [store.ConfigTable] table is never carried as a table: its files
// become the archive's config/ members, as a restore without a
// configuration directory puts them back.
func Backup(st store.Store, reg *hook.Registry, w io.Writer, opts Options) (*archive.Manifest, error) {
	if len(opts.Recipients) > 0 {
		recipients := opts.Recipients
		opts.Recipients = nil
		return backupSealed(func(w io.Writer) (*archive.Manifest, error) { return Backup(st, reg, w, opts) }, w, recipients)
	}
	tx, err := st.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	defer tx.Rollback()
	meta, err := upgrade.ReadMetadata(tx)
	if errors.Is(err, upgrade.ErrNotInitialized) {
		// Data from before the product adopted hookreg: the backup is
		// the operator's safety net before adopting it.
		meta = upgrade.Metadata{DataVersion: upgrade.UnadoptedVersion}
	} else if err != nil {
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
		Covered:         meta.Covered,
	}
	if m.Product == "" {
		m.Product = reg.Product
	}
	if opts.Signer != nil {
		m.SignedBy = Fingerprint(opts.Signer.PublicKey())
	}
	sp, err := newSpool(st, tx, opts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	if sp != nil {
		defer sp.close()
	}
	totals, configInStore, err := countTables(tx, sp)
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	// Every record is counted (and, for a remote store, spooled).
	if err := failpoint.Inject("backup.counted"); err != nil {
		return nil, err
	}
	totals.Set(&m)
	total := m.RecordCount
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
		d := dirConfig{root: root, dir: opts.ConfigDir}
		if p, ok := st.(interface{ Path() string }); ok {
			if base, in := StoreInConfig(p.Path(), opts.ConfigDir); in {
				if err := pendingSwap(opts.ConfigDir, base); err != nil {
					return nil, fmt.Errorf("backing up: %w", err)
				}
				d.storeBase = base
			}
		}
		cfg = d
	}
	if cfg != nil {
		if m.Config, err = cfg.list(); err != nil {
			return nil, fmt.Errorf("backing up: %w", err)
		}
	}
	aw, err := archive.NewWriter(w, m, archive.Options{Compression: opts.Compression, Sign: signer(opts.Signer)})
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
	}
	defer aw.Abort()
	prog := NewProgress(opts.Progress)
	prog.Count("backup: writing", "records", total)
	if sp != nil {
		err = sp.copyTo(aw, prog)
	} else {
		err = copyTables(tx, aw, prog)
	}
	if err != nil {
		return nil, fmt.Errorf("backing up: %w", err)
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
	prog.Done()
	m.Format = aw.Format()
	m.Created = m.Created.UTC().Truncate(time.Second)
	return &m, nil
}

// WriteFile writes the backup of st (see [Backup]) to the file path
// safely: to a temporary file beside it, synced, then renamed into place and
// the directory synced. A failure or a kill never leaves a partial file at
// path; a failure leaves no temporary file either, and temporary files
// left by killed runs (".NAME.tmp-*", see [RemoveStale]) are removed.
//
// Refused before anything is written (see [CheckOutput] and
// [CheckLayout]): a path that exists and is not a regular file (a symbolic
// link, a device, a FIFO), a path that is the store file of st or one of
// its temporary files (compared by file identity), a path inside
// opts.ConfigDir (the backup would carry its own output; a pre-upgrade
// backup "S.pre-upgrade-*" beside a store S lying directly in
// opts.ConfigDir is one of the store's files, and allowed), and a store in
// a subdirectory of opts.ConfigDir. A store lying directly in
// opts.ConfigDir (see [StoreInConfig]) is left out of the configuration
// files with its own files; a configuration half swapped by a killed
// restore (see [FinishConfigSwap]) is refused.
//
// When ctx is canceled, WriteFile stops at its next write, removes its
// temporary file and returns an error wrapping [ErrInterrupted]; path is
// left as it was.
func WriteFile(ctx context.Context, st store.Store, reg *hook.Registry, path string, opts Options) (*archive.Manifest, error) {
	storePath := ""
	if p, ok := st.(interface{ Path() string }); ok {
		storePath = p.Path()
	}
	if err := CheckLayout(storePath, opts.ConfigDir); err != nil {
		return nil, err
	}
	avoidConfig := opts.ConfigDir
	if base, in := StoreInConfig(storePath, opts.ConfigDir); in && sameDir(path, storePath) && layout.Owned(base, filepath.Base(path)) {
		// A pre-upgrade backup beside a store in its configuration
		// directory: one of the store's files, which a backup leaves out.
		avoidConfig = ""
	}
	if err := CheckOutput(path, storePath, avoidConfig); err != nil {
		return nil, err
	}
	RemoveStale(path, ".tmp-")
	if opts.SpoolDir == "" {
		opts.SpoolDir = filepath.Dir(path)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, cliflag.Env(err)
	}
	defer f.Abort()
	if err := Lock(f.File); err != nil {
		return nil, cliflag.Env(err)
	}
	m, err := backupAsync(ctx, st, reg, f.File, opts)
	if err != nil {
		return nil, err
	}
	if err := failpoint.Inject("backup.written"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("backing up: %w; nothing was written to %s", interrupted(err), path)
	}
	if err := f.Commit(); err != nil {
		return nil, err
	}
	if err := failpoint.Inject("backup.committed"); err != nil {
		return nil, err
	}
	return m, nil
}

// backupAsync is Backup with the writes to f in another goroutine, so
// that reading the store and encoding overlap with the file system's work:
// a double buffer of writeBuffer bytes. The writes stop when ctx is done.
func backupAsync(ctx context.Context, st store.Store, reg *hook.Registry, f *os.File, opts Options) (*archive.Manifest, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// ctxWriter also hides f's ReadFrom, which would copy through a
		// small buffer.
		_, err := io.CopyBuffer(ctxWriter{ctx, &writeback{f: f}}, pr, make([]byte, writeBuffer))
		pr.CloseWithError(err)
		done <- err
	}()
	bw := bufio.NewWriterSize(pw, writeBuffer)
	m, err := Backup(st, reg, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	pw.CloseWithError(err)
	if werr := <-done; errors.Is(werr, ErrInterrupted) {
		err = fmt.Errorf("backing up: %w", werr)
	} else if err == nil && werr != nil {
		err = fmt.Errorf("writing %s: %w", f.Name(), werr)
	}
	return m, err
}

// writeBuffer is the size of each half of backupAsync's double buffer.
const writeBuffer = 1 << 20

// writeback writes to f and starts the writeback of every writebackBytes
// written (see startWriteback), so that the disk works while the backup
// goes on and the final fsync has only the tail left.
type writeback struct {
	f       *os.File
	pending int
}

// writebackBytes is how much writeback lets the file system hold before
// it starts writing.
const writebackBytes = 8 << 20

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.pending += n
	if w.pending >= writebackBytes {
		atomicfile.StartWriteback(w.f)
		w.pending = 0
	}
	return n, err
}

func manifestApplied(applied []upgrade.Applied) []archive.AppliedHook {
	out := make([]archive.AppliedHook, 0, len(applied))
	for _, a := range applied {
		t, _ := time.Parse(time.RFC3339, a.AppliedAt)
		out = append(out, archive.AppliedHook{
			Num:            a.Num,
			Name:           a.Name,
			Digest:         a.Digest,
			Release:        a.Release,
			AppliedAt:      t,
			Mode:           string(a.Mode),
			DigestMismatch: a.AllowDigestMismatch,
		})
	}
	return out
}

// isConfigTable reports whether path is the store's configuration table,
// which a backup carries as config/ members.
func isConfigTable(path []string) bool {
	return len(path) == 1 && path[0] == store.ConfigTable
}

// countTables counts every table of tx (but the configuration table,
// whose presence it reports) into the totals of a format 3 manifest. It
// refuses, naming it, anything the archive format cannot carry exactly,
// before anything is written. With a spool, it also keeps every table
// and record there. Memory: the path of the current table.
func countTables(tx store.Tx, sp *spool) (totals archive.Totals, configInStore bool, err error) {
	var cur []string
	err = store.WalkTree(tx, func(path []string, sequence uint64) error {
		if isConfigTable(path) {
			configInStore = true
			return store.SkipTable
		}
		if err := archive.ValidTablePath(path); err != nil {
			return fmt.Errorf("table %q cannot be backed up: %w", archive.EncodePath(path), err)
		}
		if err := failpoint.Inject("backup.table"); err != nil {
			return err
		}
		totals.StartTable(path[len(path)-1], sequence)
		cur = append(cur[:0], path...)
		if sp != nil {
			return sp.table(path, sequence)
		}
		return nil
	}, func(key, value []byte) error {
		if len(value) > archive.MaxValueSize {
			return fmt.Errorf("table %q: key %q cannot be backed up: its value of %d bytes exceeds the archive format's %d", archive.EncodePath(cur), truncate(key), len(value), archive.MaxValueSize)
		}
		totals.Record(key, value)
		if sp != nil {
			return sp.put(key, value)
		}
		return nil
	}, func(path []string) error {
		totals.EndTable()
		cur = append(cur[:0], path[:len(path)-1]...)
		if sp != nil {
			return sp.end()
		}
		return nil
	})
	if err != nil {
		return archive.Totals{}, false, fmt.Errorf("counting the records: %w", err)
	}
	return totals, configInStore, nil
}

// copyTables writes every table countTables counted.
func copyTables(tx store.Tx, aw *archive.Writer, prog *Progress) error {
	return store.WalkTree(tx, func(path []string, sequence uint64) error {
		if isConfigTable(path) {
			return store.SkipTable
		}
		return aw.StartTable(path, sequence)
	}, func(key, value []byte) error {
		prog.Add(1)
		return aw.Record(key, value)
	}, func([]string) error {
		return aw.EndTable()
	})
}

// truncate shortens a key for an error message.
func truncate(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}
