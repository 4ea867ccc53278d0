package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Options configure a Writer.
type Options struct {
	// Compression is Zstd (the default when empty) or None.
	Compression Compression
	// ChunkSize is the target chunk size, at most (and by default)
	// ChunkSize; tests use small chunks to get many members.
	ChunkSize int
	// Sign, when not nil, signs the archive: it is given the SHA-256
	// digest of SHA256SUMS and returns the signature, written as the
	// member SHA256SUMS.sig (at most MaxSigSize bytes; see FORMAT.md).
	// The manifest must then name the signer (SignedBy), and the archive
	// is format 4.
	Sign func(sumsDigest []byte) ([]byte, error)

	// format is the format version written: FormatVersion, or an
	// earlier one for this package's tests of the readers of old formats.
	format int
}

// zstdOptions are fixed, so that the same input gives the same bytes on
// every machine. The Writer compresses independent frames of frameSize
// bytes on frameWorkers goroutines (the bytes do not depend on how many:
// TestZstdConcurrencyDeterministic), beside the goroutine that hashes the
// members: a backup uses both cores.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithWindowSize(4 << 20),
	zstd.WithEncoderCRC(true),
}

// Writer writes an archive as a stream. Create it with NewWriter, then call
// Table for every table of the manifest in order (nested ones included),
// Record for each of its records in ascending key order, Config for every
// configuration file in order, and Close (or Abort, to give up). After an
// error, every later call returns that error. A goroutine of the Writer
// hashes, compresses and writes the members while the caller encodes the
// next chunk; it ends with Close, Abort or an error.
type Writer struct {
	m         Manifest
	sign      func([]byte) ([]byte, error)
	zw        *frameEncoder
	tw        *tar.Writer
	modTime   time.Time
	chunkSize int

	table   int // index in m.Tables of the current table; -1 before the first
	records int64
	bytes   int64
	chunks  int64
	lastKey []byte
	buf     []byte
	config  int    // next index in m.Config
	prefix  string // member path prefix of the current table's chunks

	// Format 3: the open tables, outermost first, whose entries are in
	// the stream; lastKey is the current table's last entry (a record's
	// key or a nested table's name; at the top, the last top-level
	// table's name), hasLast whether it has one.
	v3      bool
	open    []openTable
	path    []string
	hasLast bool
	decl    []TableInfo // the tables the caller declared, if any
	tables  int64       // tables started
	total   int64       // records written
	data    int64       // bytes of the stream

	sums bytes.Buffer // written by the worker
	err  error

	// The worker goroutine hashes and writes the members (and compresses
	// them), while the caller's goroutine reads its store and encodes the
	// next chunk: two cores overlap. Two chunk buffers take turns.
	jobs    chan job
	free    chan []byte
	done    chan struct{}
	werr    error       // the worker's error, read after failed or done
	failed  atomic.Bool // set once werr is
	stopped bool
}

// openTable is an open table of a format 3 stream.
type openTable struct {
	records, bytes int64
	decl           int // its index in m.Tables, when declared
}

// job is a member for the worker to write.
type job struct {
	name  string
	mode  fs.FileMode
	data  []byte
	chunk bool // data is a chunk buffer, to be handed back
}

func (w *Writer) start() {
	w.jobs, w.free, w.done = make(chan job, 1), make(chan []byte, 2), make(chan struct{})
	// The two chunk buffers at the size a chunk reaches (no more than
	// the whole stream of a format 3 archive), rather than grown to it.
	size := 0
	if w.v3 {
		size = int(min(int64(w.chunkSize), w.m.DataBytes))
	}
	w.buf = make([]byte, 0, size)
	w.free <- make([]byte, 0, size)
	go func() {
		defer close(w.done)
		for j := range w.jobs {
			if w.werr == nil {
				if w.werr = w.member(j.name, j.mode, j.data); w.werr != nil {
					w.failed.Store(true)
				}
			}
			if j.chunk {
				w.free <- j.data[:0]
			}
		}
	}()
}

// send hands a member to the worker; a chunk buffer is replaced by the
// other one once the worker is done with it.
func (w *Writer) send(j job) error {
	if w.failed.Load() {
		return w.werr
	}
	w.jobs <- j
	if j.chunk {
		w.buf = <-w.free
	}
	return nil
}

// stop ends the worker and returns its error.
func (w *Writer) stop() error {
	if !w.stopped {
		w.stopped = true
		close(w.jobs)
		<-w.done
	}
	return w.werr
}

// stopAll stops the member goroutine and the compressing ones.
func (w *Writer) stopAll() {
	w.stop()
	if w.zw != nil {
		w.zw.Abort()
	}
}

// NewWriter checks m, writes its MANIFEST.json to w and returns the Writer
// for the rest. Closing the Writer does not close w.
func NewWriter(w io.Writer, m Manifest, opts Options) (*Writer, error) {
	m.Format = FormatUnsigned
	if opts.Sign != nil {
		if m.SignedBy == "" {
			return nil, errors.New("writing archive manifest: a signed archive names its signer (SignedBy)")
		}
		m.Format = FormatVersion
	}
	if opts.format != 0 {
		m.Format = opts.format
	}
	var decl []TableInfo
	if m.Format >= 3 && len(m.Tables) > 0 {
		if err := (&Manifest{Format: 2, Created: time.Unix(1, 0), Product: "-", Release: "-", DataVersion: "-", Tables: m.Tables}).check(); err != nil {
			return nil, fmt.Errorf("writing archive manifest: %w", err)
		}
		decl = m.Tables
		m.Tables = nil
		tt := totalsOf(decl)
		tt.Set(&m)
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	m.Created = m.Created.UTC().Truncate(time.Second)
	if m.Applied == nil {
		m.Applied = []AppliedHook{}
	}
	if m.Tables == nil && m.Format < 3 {
		m.Tables = []TableInfo{}
	}
	if m.Config == nil {
		m.Config = []ConfigFile{}
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("writing archive manifest: %w", err)
	}
	cs := opts.ChunkSize
	if cs <= 0 || cs > ChunkSize {
		cs = ChunkSize
	}
	aw := &Writer{m: m, modTime: m.Created, chunkSize: cs, table: -1, v3: m.Format >= 3, decl: decl, sign: opts.Sign}
	switch opts.Compression {
	case Zstd, "":
		zw, err := newFrameEncoder(w, frameWorkers, zstdOptions...)
		if err != nil {
			return nil, fmt.Errorf("creating zstd encoder: %w", err)
		}
		aw.zw = zw
		aw.tw = tar.NewWriter(zw)
	case None:
		aw.tw = tar.NewWriter(w)
	default:
		return nil, fmt.Errorf("writing archive: unknown compression %q", opts.Compression)
	}
	compact, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding archive manifest: %w", err)
	}
	var data bytes.Buffer
	if err := json.Indent(&data, compact, "", "  "); err != nil {
		return nil, fmt.Errorf("encoding archive manifest: %w", err)
	}
	if data.Len() >= MaxManifestSize {
		return nil, fmt.Errorf("writing archive manifest: %d bytes for %d tables and %d config files exceeds the format's %d", data.Len(), len(m.Tables), len(m.Config), MaxManifestSize)
	}
	if err := aw.member(ManifestName, 0o644, append(data.Bytes(), '\n')); err != nil {
		return nil, err
	}
	aw.start()
	return aw, nil
}

// member writes one member and records its checksum.
func (w *Writer) member(name string, mode fs.FileMode, data []byte) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     int64(mode),
		Size:     int64(len(data)),
		ModTime:  w.modTime,
		Format:   tar.FormatPAX,
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing archive member %q: %w", name, err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("writing archive member %q: %w", name, err)
	}
	sum := sha256.Sum256(data)
	fmt.Fprintf(&w.sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	w.stopAll()
	return err
}

// Table starts the records of the table at path (a top-level table's
// name, or the names down to a nested table), which must be the next table
// of the manifest. Every table of the manifest must be started, even an
// empty one.
func (w *Writer) Table(path ...string) error {
	if w.err != nil {
		return w.err
	}
	if w.v3 {
		var seq uint64
		if next := w.table + 1; next < len(w.decl) {
			seq = w.decl[next].Sequence
		}
		return w.StartTable(path, seq)
	}
	if err := w.endTable(); err != nil {
		return w.fail(err)
	}
	next := w.table + 1
	if next >= len(w.m.Tables) || ComparePaths(w.m.Tables[next].Path(), path) != 0 {
		want := "no more tables"
		if next < len(w.m.Tables) {
			want = fmt.Sprintf("table %q", w.m.Tables[next])
		}
		return w.fail(fmt.Errorf("writing archive: table %q is not the next table of the manifest (want %s)", EncodePath(path), want))
	}
	w.table = next
	w.prefix = memberPrefix(w.m.Format, w.m.Tables[next])
	w.records, w.bytes, w.chunks = 0, 0, 0
	w.lastKey = w.lastKey[:0]
	return nil
}

// StartTable starts the table at path with the sequence number sequence:
// a top-level table, or a table nested in one of the open tables. Open
// tables that do not hold it are ended first, so that tables given in
// path order need no [Writer.EndTable]. In a format 3 archive, the entries
// of a table (its records and the tables nested in it, by their names)
// are strictly ascending: a nested table comes at its place among its
// parent's records, as bbolt keeps them, and the parent's records after
// it follow its [Writer.EndTable].
func (w *Writer) StartTable(path []string, sequence uint64) error {
	if w.err != nil {
		return w.err
	}
	if !w.v3 {
		if w.table+1 < len(w.m.Tables) && w.m.Tables[w.table+1].Sequence != sequence {
			return w.fail(fmt.Errorf("writing archive: table %q: sequence %d, the manifest declares %d", EncodePath(path), sequence, w.m.Tables[w.table+1].Sequence))
		}
		return w.Table(path...)
	}
	if len(path) == 0 {
		return w.fail(errors.New("writing archive: empty table path"))
	}
	for len(w.open) > 0 && !(len(w.path) < len(path) && ComparePaths(w.path, path[:len(w.path)]) == 0) {
		if err := w.EndTable(); err != nil {
			return err
		}
	}
	if len(path) != len(w.path)+1 {
		return w.fail(fmt.Errorf("writing archive: table %q: the table it is nested in is not open", EncodePath(path)))
	}
	if err := ValidTablePath(path); err != nil {
		return w.fail(fmt.Errorf("writing archive: %w", err))
	}
	name := path[len(path)-1]
	if w.hasLast && name <= string(w.lastKey) {
		return w.fail(fmt.Errorf("writing archive: table %q is not after %q, the last entry of its parent", EncodePath(path), w.lastKey))
	}
	decl := -1
	if w.decl != nil {
		next := w.table + 1
		if next >= len(w.decl) || ComparePaths(w.decl[next].Path(), path) != 0 {
			want := "no more tables"
			if next < len(w.decl) {
				want = fmt.Sprintf("table %q", w.decl[next])
			}
			return w.fail(fmt.Errorf("writing archive: table %q is not the next table of the manifest (want %s)", EncodePath(path), want))
		}
		if w.decl[next].Sequence != sequence {
			return w.fail(fmt.Errorf("writing archive: table %q: sequence %d, the manifest declares %d", EncodePath(path), sequence, w.decl[next].Sequence))
		}
		w.table, decl = next, next
	}
	if w.tables == w.m.TableCount {
		return w.fail(fmt.Errorf("writing archive: table %q: more tables than the %d of the manifest", EncodePath(path), w.m.TableCount))
	}
	w.tables++
	if err := w.entry(tableStartSize(name, sequence)); err != nil {
		return w.fail(err)
	}
	w.buf = append(w.buf, 0, entryTable)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(name)))
	w.buf = append(w.buf, name...)
	w.buf = binary.AppendUvarint(w.buf, sequence)
	w.open = append(w.open, openTable{decl: decl})
	w.path = append(w.path, name)
	w.hasLast = false
	w.lastKey = w.lastKey[:0]
	return nil
}

// EndTable ends the current table of a format 3 archive: the records that
// follow go to the table it is nested in (none for a top-level table).
func (w *Writer) EndTable() error {
	if w.err != nil {
		return w.err
	}
	if !w.v3 {
		return nil
	}
	if len(w.open) == 0 {
		return w.fail(errors.New("writing archive: no table to end"))
	}
	t := w.open[len(w.open)-1]
	name := w.path[len(w.path)-1]
	if t.decl >= 0 {
		d := w.decl[t.decl]
		if t.records != d.Records || t.bytes != d.Bytes {
			return w.fail(fmt.Errorf("writing archive: table %q: wrote %d records in %d bytes, the manifest declares %d in %d", d, t.records, t.bytes, d.Records, d.Bytes))
		}
	}
	if err := w.entry(tableEndSize(t.records, t.bytes)); err != nil {
		return w.fail(err)
	}
	w.buf = append(w.buf, 0, entryEnd)
	w.buf = binary.AppendUvarint(w.buf, uint64(t.records))
	w.buf = binary.AppendUvarint(w.buf, uint64(t.bytes))
	w.open = w.open[:len(w.open)-1]
	w.path = w.path[:len(w.path)-1]
	w.lastKey = append(w.lastKey[:0], name...)
	w.hasLast = true
	return nil
}

// entry makes room in the chunk buffer for an entry of size bytes of a
// format 3 stream, counted against the manifest's DataBytes.
func (w *Writer) entry(size int64) error {
	if w.data+size > w.m.DataBytes {
		return fmt.Errorf("writing archive: more than the %d bytes of table data the manifest declares", w.m.DataBytes)
	}
	w.data += size
	if len(w.buf) > 0 && int64(len(w.buf))+size > int64(w.chunkSize) {
		return w.flush()
	}
	return nil
}

// record3 is Record in a format 3 archive.
func (w *Writer) record3(key, value []byte) error {
	if len(w.open) == 0 {
		return w.fail(errors.New("writing archive: record outside a table"))
	}
	t := &w.open[len(w.open)-1]
	if len(key) == 0 || len(key) > MaxKeySize || len(value) > MaxValueSize ||
		w.hasLast && bytes.Compare(key, w.lastKey) <= 0 ||
		w.total >= w.m.RecordCount || t.decl >= 0 && t.records >= w.decl[t.decl].Records {
		// The table's name only for the message: encoding it for every
		// record cost a tenth of a backup of many nested tables.
		name := EncodePath(w.path)
		switch {
		case len(key) == 0:
			return w.fail(fmt.Errorf("writing archive: table %q: empty key", name))
		case len(key) > MaxKeySize:
			return w.fail(fmt.Errorf("writing archive: table %q: key of %d bytes exceeds %d", name, len(key), MaxKeySize))
		case len(value) > MaxValueSize:
			return w.fail(fmt.Errorf("writing archive: table %q: key %q: value of %d bytes exceeds %d", name, key, len(value), MaxValueSize))
		case w.hasLast && bytes.Compare(key, w.lastKey) <= 0:
			return w.fail(fmt.Errorf("writing archive: table %q: key %q is not after %q", name, key, w.lastKey))
		case w.total >= w.m.RecordCount:
			return w.fail(fmt.Errorf("writing archive: table %q: more records than the %d of the manifest", name, w.m.RecordCount))
		default:
			return w.fail(fmt.Errorf("writing archive: table %q: more records than the %d of the manifest", name, w.decl[t.decl].Records))
		}
	}
	size := RecordSize(key, value)
	if err := w.entry(size); err != nil {
		return w.fail(err)
	}
	w.buf = appendRecord(w.buf, key, value)
	t.records++
	t.bytes += size
	w.total++
	w.lastKey = append(w.lastKey[:0], key...)
	w.hasLast = true
	return nil
}

// endTables3 ends the table stream of a format 3 archive and checks it
// against the manifest's totals.
func (w *Writer) endTables3() error {
	for len(w.open) > 0 {
		if err := w.EndTable(); err != nil {
			return err
		}
	}
	if w.decl != nil && w.table+1 < len(w.decl) {
		return fmt.Errorf("writing archive: table %q of the manifest was not written", w.decl[w.table+1])
	}
	if w.tables != w.m.TableCount || w.total != w.m.RecordCount || w.data != w.m.DataBytes {
		return fmt.Errorf("writing archive: wrote %d tables, %d records and %d bytes of table data, the manifest declares %d, %d and %d", w.tables, w.total, w.data, w.m.TableCount, w.m.RecordCount, w.m.DataBytes)
	}
	w.table = len(w.m.Tables)
	return w.flush()
}

// Record appends a record to the current table. Keys are non-empty, at most
// MaxKeySize bytes and strictly ascending; values at most MaxValueSize
// bytes. The Writer copies both slices.
func (w *Writer) Record(key, value []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.v3 {
		return w.record3(key, value)
	}
	if w.table < 0 || w.table >= len(w.m.Tables) {
		return w.fail(errors.New("writing archive: record outside a table"))
	}
	t := w.m.Tables[w.table]
	switch {
	case len(key) == 0:
		return w.fail(fmt.Errorf("writing archive: table %q: empty key", t))
	case len(key) > MaxKeySize:
		return w.fail(fmt.Errorf("writing archive: table %q: key of %d bytes exceeds %d", t, len(key), MaxKeySize))
	case len(value) > MaxValueSize:
		return w.fail(fmt.Errorf("writing archive: table %q: key %q: value of %d bytes exceeds %d", t, key, len(value), MaxValueSize))
	case w.records > 0 && bytes.Compare(key, w.lastKey) <= 0:
		return w.fail(fmt.Errorf("writing archive: table %q: key %q is not after %q", t, key, w.lastKey))
	case w.records >= t.Records:
		return w.fail(fmt.Errorf("writing archive: table %q: more records than the %d of the manifest", t, t.Records))
	}
	size := RecordSize(key, value)
	if len(w.buf) > 0 && int64(len(w.buf))+size > int64(w.chunkSize) {
		if err := w.flush(); err != nil {
			return w.fail(err)
		}
	}
	w.buf = appendRecord(w.buf, key, value)
	w.records++
	w.bytes += size
	w.lastKey = append(w.lastKey[:0], key...)
	return nil
}

func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.chunks++
	prefix := w.prefix
	if w.v3 {
		prefix = TablesDir
	}
	return w.send(job{name: chunkName(prefix, w.chunks), mode: 0o644, data: w.buf, chunk: true})
}

// endTable flushes the current table and checks it against the manifest.
func (w *Writer) endTable() error {
	if w.table < 0 || w.table >= len(w.m.Tables) {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	t := w.m.Tables[w.table]
	if w.records != t.Records || w.bytes != t.Bytes {
		return fmt.Errorf("writing archive: table %q: wrote %d records in %d bytes, the manifest declares %d in %d", t, w.records, w.bytes, t.Records, t.Bytes)
	}
	return nil
}

// endTables ends the tables before the config files or the end.
func (w *Writer) endTables() error {
	if w.v3 {
		return w.endTables3()
	}
	if err := w.endTable(); err != nil {
		return err
	}
	if w.table+1 < len(w.m.Tables) {
		return fmt.Errorf("writing archive: table %q of the manifest was not written", w.m.Tables[w.table+1])
	}
	w.table = len(w.m.Tables)
	return nil
}

// Config writes a configuration file, which must be the next one of the
// manifest, with the same mode and size.
func (w *Writer) Config(path string, mode fs.FileMode, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.config == 0 {
		if err := w.endTables(); err != nil {
			return w.fail(err)
		}
	}
	if w.config >= len(w.m.Config) || w.m.Config[w.config].Path != path {
		want := "no more config files"
		if w.config < len(w.m.Config) {
			want = fmt.Sprintf("%q", w.m.Config[w.config].Path)
		}
		return w.fail(fmt.Errorf("writing archive: config file %q is not the next config file of the manifest (want %s)", path, want))
	}
	c := w.m.Config[w.config]
	if c.Mode != mode.Perm() || c.Size != int64(len(data)) {
		return w.fail(fmt.Errorf("writing archive: config file %q: mode %v and size %d differ from the manifest's %v and %d", path, mode.Perm(), len(data), c.Mode, c.Size))
	}
	w.config++
	if err := w.send(job{name: ConfigDir + path, mode: c.Mode, data: bytes.Clone(data)}); err != nil {
		return w.fail(err)
	}
	return nil
}

// Format returns the format version the Writer writes.
func (w *Writer) Format() int { return w.m.Format }

// Abort ends a Writer that will not be closed, because the caller gave up
// after an error of its own; the archive is incomplete. After Close or an
// error of the Writer it does nothing, so it can be deferred.
func (w *Writer) Abort() {
	if w.err == nil {
		w.err = errors.New("writing archive: writer is aborted")
	}
	w.stopAll()
}

// Close checks that everything the manifest declares was written, writes
// SHA256SUMS and ends the tar and zstd streams. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.config == 0 {
		if err := w.endTables(); err != nil {
			return w.fail(err)
		}
	}
	if w.config < len(w.m.Config) {
		return w.fail(fmt.Errorf("writing archive: config file %q of the manifest was not written", w.m.Config[w.config].Path))
	}
	if err := w.stop(); err != nil {
		return w.fail(err)
	}
	sums := sha256.Sum256(w.sums.Bytes())
	if err := w.member(SumsName, 0o644, w.sums.Bytes()); err != nil {
		return w.fail(err)
	}
	if w.sign != nil {
		sig, err := w.sign(sums[:])
		if err == nil && len(sig) > MaxSigSize {
			err = fmt.Errorf("a signature of %d bytes exceeds the format's %d", len(sig), MaxSigSize)
		}
		if err != nil {
			return w.fail(fmt.Errorf("writing archive: %w", err))
		}
		if err := w.member(SigName, 0o644, sig); err != nil {
			return w.fail(err)
		}
	}
	if err := w.tw.Close(); err != nil {
		return w.fail(fmt.Errorf("writing archive: %w", err))
	}
	if w.zw != nil {
		if err := w.zw.Close(); err != nil {
			return w.fail(fmt.Errorf("writing archive: compressing: %w", err))
		}
	}
	w.err = errors.New("writing archive: writer is closed")
	return nil
}

// appendRecord appends the encoding of one record to b (see FORMAT.md):
// uvarint(len(key)) key uvarint(len(value)) value.
func appendRecord(b, key, value []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}
