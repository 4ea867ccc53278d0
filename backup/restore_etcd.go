package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/store"
)

// ClusterStore is the cluster store RestoreEtcd writes and VerifyEtcd
// and EtcdSpaceNeeded check against. Package backup does not import the
// etcd client, so that a program built without the cluster store links
// none of it: etcdstore.Target (package
// github.com/hookreg/hookreg/migrator/etcdstore) gives the ClusterStore of
// an open *etcd.Store.
type ClusterStore interface {
	// Name names the store in errors.
	Name() string
	// Prefix is the store's key prefix.
	Prefix() string
	// PathRecordChecker returns the function that refuses, naming it,
	// a record too large for one request to the cluster (see
	// etcd.Store.PathRecordChecker).
	PathRecordChecker() func(path []string, key, value []byte) error
	// GenerationKeys counts the keys of the current generation and their
	// bytes.
	GenerationKeys() (keys, keyBytes int64, err error)
	// Space reads the cluster's database size, quota and alarms.
	Space() (ClusterSpace, error)
	// BeginRestore starts writing a new generation (see
	// etcd.Store.BeginRestore).
	BeginRestore() (ClusterRestore, error)
}

// ClusterSpace is the room in a cluster's database: its size, the
// quota it is checked against, and the alarms raised.
type ClusterSpace struct {
	DBSize, DBSizeQuota int64
	Alarms              []string
}

// ClusterRestore is a new generation of a ClusterStore being written (see
// etcd.Restore): it becomes current at Finish, and Abort removes it.
type ClusterRestore interface {
	Table(name string) error
	TablePath(path []string, seq uint64) error
	ResumePath(path []string) error
	Put(key, value []byte) error
	// Records is the number of records written per table, by the
	// table's archive name.
	Records() map[string]int64
	Finish() error
	Abort() error
}

// RestoreEtcd replaces every table of the etcd store st with the content
// of the backup archive at archivePath. st must be open writable: it holds
// the cluster-wide lock for the whole restore. The archive's configuration
// files go into the store's [store.ConfigTable]; opts.ConfigDir must be
// empty (a cluster has no configuration directory).
//
// Before anything is written it checks the whole archive as [Restore]
// does (checksums, manifest against metadata, reg may upgrade it) and
// refuses, naming the table or key, any record or configuration file too
// large for one request to the cluster (see etcd.Store.CheckRecord);
// then it refuses data that would not fit
// under the cluster's quota (see [EtcdSpaceNeeded]) or a cluster that has
// an alarm raised.
//
// It then writes the data, nested tables and sequences included, as a new
// generation with etcd.Store.BeginRestore,
// reading the archive a second time through the same open file (a file
// rewritten between the passes is refused), checks that the generation
// holds exactly the tables and record counts of the manifest, verifies it
// by reading it back and makes it current in one step. Until that step
// the old data stays current and whole; an error, a canceled ctx or a
// killed process leaves it current, and what was written is removed (by
// this call, or by the next writable open of the store).
//
// The restore options of st go to etcd.Store.BeginRestore: with
// etcd.IfUnchanged (a watch from the revision the archive's data was
// read at, for an offline upgrade of a stopped product) the restore also
// refuses to switch when the current data changed after that revision,
// with an error wrapping etcd.ErrChanged that names the key; the current
// generation then stays current and the new one is removed.
func RestoreEtcd(ctx context.Context, reg *hook.Registry, archivePath string, st ClusterStore, opts RestoreOptions) (*archive.Manifest, error) {
	if opts.ConfigDir != "" {
		return nil, fmt.Errorf("restoring %s into %s: a cluster store keeps its configuration files in table %q: omit the configuration directory %s", archivePath, st.Name(), store.ConfigTable, opts.ConfigDir)
	}
	f, err := OpenArchive(archivePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return RestoreEtcdFile(ctx, reg, f, archivePath, st, opts)
}

// RestoreEtcdFile is [RestoreEtcd] reading the archive, named name in
// errors, from f, which it reads twice from its start (f is at its start):
// a pipe goes through [Spool] first.
func RestoreEtcdFile(ctx context.Context, reg *hook.Registry, f io.ReadSeeker, name string, st ClusterStore, opts RestoreOptions) (_ *archive.Manifest, err error) {
	archivePath := name
	if opts.ConfigDir != "" {
		return nil, fmt.Errorf("restoring %s into %s: a cluster store keeps its configuration files in table %q: omit the configuration directory %s", archivePath, st.Name(), store.ConfigTable, opts.ConfigDir)
	}
	prog := NewProgress(opts.Progress)
	defer prog.Done()
	prog.Phase("restore: checking")
	first := sha256.New()
	checks := etcdChecks(st)
	withTables := collectTables(&checks)
	m, err := check(reg, ctxReader{ctx, io.TeeReader(f, first)}, archivePath, opts.Keys, checks)
	if err != nil {
		return nil, err
	}
	withTables(m)
	if _, err := io.Copy(first, ctxReader{ctx, f}); err != nil {
		return nil, readError(archivePath, err)
	}
	if err := checkEtcdSpace(st, m, opts.Warn); err != nil {
		return nil, err
	}
	if err := failpoint.Inject("restore.checked"); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, envErrorf("rereading backup %s: %w", archivePath, err)
	}
	rs, err := st.BeginRestore()
	if err != nil {
		return nil, err
	}
	defer func() {
		// A failed restore removes its new generation, or says why it
		// left it (a cluster that did not answer: the next writable
		// open removes it).
		if aerr := rs.Abort(); aerr != nil && err != nil {
			err = fmt.Errorf("%w; %v", err, aerr)
		}
	}()
	if err := loadAgain(ctx, f, archivePath, first, func(r io.Reader) error {
		plain, err := Decrypt(r, archivePath, opts.Keys.Identities)
		if err != nil {
			return err
		}
		defer plain.Close()
		return loadEtcd(plain, rs, m, prog)
	}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w; nothing was restored", archivePath, interrupted(err))
	}
	prog.Phase("restore: committing")
	if err := rs.Finish(); err != nil {
		return nil, fmt.Errorf("restoring %s: %w", archivePath, err)
	}
	return m, nil
}

// VerifyEtcd checks the whole archive in r, named name, as [Verify] does,
// and that the etcd store st (which may be open read-only) can hold it, as
// [RestoreEtcd] checks before writing anything: no record or
// configuration file too large for one request at the store's limits.
//
// The manifest it returns lists the tables (the Tables of a format 3
// manifest are taken from the data, where that format carries them).
func VerifyEtcd(r io.Reader, name string, st ClusterStore) (*archive.Manifest, error) {
	checks := etcdChecks(st)
	withTables := collectTables(&checks)
	m, err := verify(r, name, ReadKeys{}, checks)
	if err == nil {
		withTables(m)
	}
	return m, err
}

// collectTables makes h keep every table, with its record count and size,
// as the archive streams, and returns the function that sets them as the
// Tables of its format 3 manifest (which has only totals): a cluster
// store's tables are top-level, and its restore keeps a count per table
// anyway.
func collectTables(h *archive.Handler) func(m *archive.Manifest) {
	var tables []archive.TableInfo
	h.TableEnd = func(t archive.TableInfo) error {
		tables = append(tables, t)
		return nil
	}
	return func(m *archive.Manifest) {
		if m.Format >= 3 {
			m.Tables = tables
		}
	}
}

// etcdChecks refuses what the etcd store st cannot hold, naming the table
// or key.
func etcdChecks(st ClusterStore) archive.Handler {
	checkRecord := st.PathRecordChecker()
	var path []string
	return archive.Handler{
		Table: func(t archive.TableInfo) error {
			path = t.Path()
			return nil
		},
		Record: func(key, value []byte) error { return checkRecord(path, key, value) },
		Config: func(c archive.ConfigFile, data []byte) error {
			return checkRecord([]string{store.ConfigTable}, []byte(c.Path), store.EncodeConfigFile(c.Mode, data))
		},
	}
}

// loadEtcd streams the archive into the restore's generation, then checks
// that it wrote the manifest's tables and records.
func loadEtcd(r io.Reader, rs ClusterRestore, m *archive.Manifest, prog *Progress) error {
	var total int64
	for _, t := range m.Tables {
		total += t.Records
	}
	prog.Count("restore: loading", "records", total)
	config := false
	got, err := archive.Read(r, archive.Handler{
		Table: func(t archive.TableInfo) error { return rs.TablePath(t.Path(), t.Sequence) },
		TableEnd: func(t archive.TableInfo) error {
			if len(t.Parent) == 0 {
				return nil
			}
			return rs.ResumePath(t.Parent)
		},
		Record: func(key, value []byte) error {
			prog.Add(1)
			return rs.Put(key, value)
		},
		Config: func(c archive.ConfigFile, data []byte) error {
			if !config {
				config = true
				if err := rs.Table(store.ConfigTable); err != nil {
					return err
				}
			}
			return rs.Put([]byte(c.Path), store.EncodeConfigFile(c.Mode, data))
		},
	})
	if err != nil {
		return err
	}
	if !got.Created.Equal(m.Created) || got.DataVersion != m.DataVersion || got.TableCount != m.TableCount {
		return errors.New("the backup changed while it was being restored")
	}
	sums := rs.Records()
	want := len(m.Tables)
	if len(m.Config) > 0 {
		want++
		if n := sums[archive.EncodeName(store.ConfigTable)]; n != int64(len(m.Config)) {
			return fmt.Errorf("wrote %d configuration files, the manifest lists %d", n, len(m.Config))
		}
	}
	for _, t := range m.Tables {
		if n, ok := sums[t.String()]; !ok || n != t.Records {
			return fmt.Errorf("table %q: wrote %d records, the manifest says %d", t, n, t.Records)
		}
	}
	if len(sums) != want {
		return fmt.Errorf("wrote %d tables, the manifest lists %d", len(sums), want)
	}
	prog.Done()
	return nil
}

// etcdRecordOverhead is what etcd keeps per key beyond its key and value,
// in its bbolt file (the revision key, the key's metadata, page headers),
// rounded up; etcdTombstoneOverhead is the same for a deleted key's
// tombstone, which holds the key without a value. Measured on etcd v3.7:
// about 60 and 45 bytes (TestEtcdSpaceNeeded).
const (
	etcdRecordOverhead    = 128
	etcdTombstoneOverhead = 96
)

// etcdLargeRecord is the average record size from which a table's data
// counts twice: bbolt keeps up to four such values in one leaf, which it
// copies whole whenever one is added, and the copy cannot reuse the pages
// a concurrent reader (the restore's own verification) still holds;
// measured, large values grew the database by up to 1.42x their size.
const etcdLargeRecord = 1 << 10

// EtcdSpaceNeeded estimates the bytes a restore of m adds to the database
// of the cluster of st, that is to its DbSize (the high-water mark of the
// bbolt file's pages, which the quota --quota-backend-bytes checks):
//   - each record of the new generation: its key as the store lays it
//     out, its value and etcdRecordOverhead; the values twice in a table
//     whose records average etcdLargeRecord or more;
//   - the removal of the current generation: a tombstone per key, its key
//     and etcdTombstoneOverhead (the old revisions stay until a
//     compaction);
//
// plus a quarter and 1 MiB as margin. The space the old generation frees
// is not counted: etcd reuses it only after a compaction, and the new
// generation is whole before the old one goes. It reads the current
// generation's keys (not its values).
func EtcdSpaceNeeded(st ClusterStore, m *archive.Manifest) (int64, error) {
	const genKey = len("/g/9223372036854775807/t/")
	root := len(st.Prefix())
	var need int64
	for _, t := range m.Tables {
		name := 3 * len(t.Name) // the longest the store's encoding makes it
		for _, p := range t.Parent {
			name += 3*len(p) + 2 // a nested table's parents and separators
		}
		need += t.Bytes + t.Records*int64(root+genKey+name+etcdRecordOverhead)
		if t.Records > 0 && t.Bytes/t.Records >= etcdLargeRecord {
			need += t.Bytes
		}
	}
	for _, c := range m.Config {
		need += c.Size + int64(len(c.Path)+root+genKey+len(store.ConfigTable)+etcdRecordOverhead)
	}
	keys, keyBytes, err := st.GenerationKeys()
	if err != nil {
		return 0, err
	}
	need += keyBytes + keys*etcdTombstoneOverhead
	return need + need/4 + 1<<20, nil
}

// checkEtcdSpace refuses a restore that would not fit under the cluster's
// quota, or into a cluster with an alarm raised. It adds the estimate to
// DbSize, not to DbSizeInUse (smaller by the free pages): etcd checks its
// quota against DbSize, the file's high-water mark, and bbolt reuses a free
// page only once no reader holds it and only where a run of free pages is
// long enough, so the free space cannot be counted on.
//
// A restore that passes half the quota is warned about on warn (each
// restore or offline upgrade writes the whole data set again, and the old
// generations' revisions stay until a compaction and a defragmentation).
func checkEtcdSpace(st ClusterStore, m *archive.Manifest, warn io.Writer) error {
	status, err := st.Space()
	if err != nil {
		return envErrorf("restoring into %s: %w", st.Name(), err)
	}
	if len(status.Alarms) > 0 {
		return envErrorf("restoring into %s: the cluster has alarms raised (%s): resolve them first (etcdctl alarm list)", st.Name(), strings.Join(status.Alarms, "; "))
	}
	need, err := EtcdSpaceNeeded(st, m)
	if err != nil {
		return envErrorf("restoring into %s: %w", st.Name(), err)
	}
	if status.DBSizeQuota > 0 && status.DBSize+need > status.DBSizeQuota {
		return envErrorf("restoring into %s: refused: the restore needs about %d bytes and the cluster's database uses %d of its %d-byte quota (--quota-backend-bytes), %d short: compact and defragment the cluster, or raise its quota",
			st.Name(), need, status.DBSize, status.DBSizeQuota, status.DBSize+need-status.DBSizeQuota)
	}
	if warn != nil && status.DBSizeQuota > 0 && status.DBSize+need > status.DBSizeQuota/2 {
		fmt.Fprintf(warn, "warning: after this restore the database of %s may use about %d of its %d-byte quota (%d now, about %d more): past half of it; compact away the old revisions and defragment each member (docs/cluster.md, Quota)\n",
			st.Name(), status.DBSize+need, status.DBSizeQuota, status.DBSize, need)
	}
	return nil
}
