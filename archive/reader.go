package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Handler receives an archive's content as Read streams it. Every field is
// optional. An error returned by a callback stops Read, which returns it
// unchanged.
//
// Nothing a callback receives has been checked against SHA256SUMS yet (it
// comes last): a caller that must not keep unchecked data writes it where
// nothing else uses it yet and discards it when Read returns an error. The
// manifest's declared sizes are enforced as the members stream (a table
// never holds more bytes than it declares), so Manifest may check them
// against free space before anything is written.
type Handler struct {
	// Manifest is called once, with the checked manifest, before anything else.
	Manifest func(m Manifest) error
	// Table is called when a table starts, for every table in path order
	// (also for an empty table), before its records: a table nested in
	// another starts after the table it is nested in, and ends before it.
	// In a format 3 archive, t holds no Records and Bytes yet (TableEnd
	// gives them). t.Parent may be the very slice given for the table's
	// TableEnd and for the tables beside it: the caller may keep it but
	// must not modify it.
	Table func(t TableInfo) error
	// TableEnd is called when a table ends, after its records and the
	// tables nested in it, with its Records and Bytes (checked). The table
	// it is nested in (if any) is then the current table again.
	TableEnd func(t TableInfo) error
	// Record is called for every record of the current table: the table
	// last given to Table and not yet to TableEnd. A table's records come
	// in key order; in a format 3 archive a nested table starts at its
	// place among the records of its parent (its name in key order among
	// them, as bbolt keeps them), and the parent's records after it come
	// after its end. The Reader does not reuse key and value: the caller
	// may keep them (bbolt's Put does until the commit) but must not
	// modify them.
	Record func(key, value []byte) error
	// Config is called for every configuration file, in path order, after
	// all tables. data stays valid after the call.
	Config func(c ConfigFile, data []byte) error
	// Signature is called with the SHA-256 digest of SHA256SUMS (whose
	// lines have all been checked) and the signature member of a signed
	// (format 4) archive, before Read checks that the archive ends there.
	// Without it a signature is read but not checked: whoever needs the
	// archive to come from a signer checks it here.
	Signature func(sumsDigest, sig []byte) error
}

// Reader limits beyond the member caps of the format.
const (
	// maxHeaderBytes caps the tar headers (PAX records included) and the
	// padding read between two members.
	maxHeaderBytes = 16 << 10
	// maxTrailing caps the zero padding after the end of the tar stream
	// (GNU tar pads to 10 KiB records).
	maxTrailing = 64 << 10
	// blockSize is the tar block size.
	blockSize = 512
	// zstd decoder limits: enough for archives made with the zstd tool's
	// default levels, far below the decoder's default of 64 GiB.
	zstdMaxWindow = 32 << 20
	zstdMaxMemory = 64 << 20
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// The starts of an age file, binary and armored (age-encryption.org/v1).
const (
	ageMagic = "age-encryption.org/"
	ageArmor = "-----BEGIN AGE ENCRYPTED FILE-----"
)

// Encrypted reports whether head, the start of a file, is the start of an
// age-encrypted file: an archive encrypted for its recipients (see
// FORMAT.md), which a reader decrypts before reading it.
func Encrypted(head []byte) bool {
	return bytes.HasPrefix(head, []byte(ageMagic)) || bytes.HasPrefix(head, []byte(ageArmor))
}

// Looks reports whether head, the first 512 bytes of a file (or all of a
// shorter one), starts like an archive: age-encrypted, zstd-compressed or a
// plain tar (its "ustar" magic). It is how a command given an archive
// where it wants a store says so, rather than what the store's library
// makes of it.
func Looks(head []byte) bool {
	return Encrypted(head) || bytes.HasPrefix(head, zstdMagic) ||
		len(head) >= 262 && string(head[257:262]) == "ustar"
}

// Verify reads the whole archive from r and checks everything: the
// structure, every member against its limits, the manifest against the
// content (tables, record counts and sizes, configuration files) and every
// checksum. It returns the manifest of a good archive.
func Verify(r io.Reader) (*Manifest, error) {
	return Read(r, Handler{})
}

// Read streams the archive from r to h, checking everything Verify checks
// as it goes; memory stays bounded by the largest member (plus the
// manifest and 8 bytes per member). It returns the manifest when the
// whole archive is good. Errors about the content wrap ErrInvalid and name
// the member; an error reading r is returned wrapped but does not.
func Read(r io.Reader, h Handler) (*Manifest, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	ar := &reader{h: h, src: src, table: -1, expect: sha256.New()}
	var data io.Reader = br
	if head, _ := br.Peek(len(ageArmor)); Encrypted(head) {
		return nil, invalid("", "encrypted with age: give --identity")
	}
	if magic, _ := br.Peek(len(zstdMagic)); bytes.Equal(magic, zstdMagic) {
		ar.frames = &frameChecker{r: br}
		zr, err := zstd.NewReader(ar.frames,
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxMemory),
			zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("reading archive: creating zstd decoder: %w", err)
		}
		defer zr.Close()
		data = zr
	}
	ar.data = &countReader{r: data}
	ar.tr = tar.NewReader(ar.data)
	if err := ar.run(); err != nil {
		return nil, err
	}
	return &ar.m, nil
}

// sourceReader remembers an error of the underlying reader, so that it is
// not reported as a bad archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// countReader counts the decompressed bytes.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type reader struct {
	h      Handler
	src    *sourceReader
	frames *frameChecker // nil for a plain tar
	data   *countReader
	tr     *tar.Reader
	m      Manifest

	prefixes []string  // per table: the member path prefix of its chunks
	counts   []int64   // per table: its number of chunks
	sums     []byte    // the first sumPrefix bytes of each member's sha256, in order
	expect   hash.Hash // sha256 of the SHA256SUMS the members read call for
	last     string    // the last member read

	table   int // index of the current table in m.Tables; len(m.Tables) once the tables are done
	chunks  int64
	records int64
	bytes   int64
	lastKey []byte
	config  int // next index in m.Config

	openV2 []int // formats 1 and 2: the indexes of the open tables

	// Format 3: the open tables (outermost first) and the totals so far;
	// lastKey is the current table's last entry, hasLast whether it has
	// one (at the top: the last top-level table's name).
	v3      bool
	open    []openRead
	path    []string
	encLen  int // the length of path encoded
	hasLast bool
	tables  int64
	total   int64
	read3   int64 // bytes of the table stream read
	ended   bool  // the table stream ended
}

// openRead is an open table of a format 3 stream.
type openRead struct {
	sequence       uint64
	records, bytes int64
	encLen         int // encLen of the path before it
	// parent is the TableInfo.Parent of the table, and children that of
	// the tables nested in it, made when the first of them starts: one
	// slice for a table's start and end and for all its siblings, rather
	// than a copy of the path for each (a tenth of a verify of 100,000
	// nested tables went into those copies).
	parent, children []string
}

// fail turns a stream error into the error to report: the source's own
// error when reading the source failed, else an invalid archive.
func (r *reader) fail(member string, err error) error {
	if r.src.err != nil {
		return fmt.Errorf("reading archive: %w", r.src.err)
	}
	if r.frames != nil && r.frames.err != nil {
		return invalid("", "%w", r.frames.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return invalid(member, "truncated archive: %v", io.ErrUnexpectedEOF)
	}
	return invalid(member, "%w", err)
}

// next returns the next member's header, checked for what no member may
// be, or io.EOF at the end of the tar stream.
func (r *reader) next() (*tar.Header, error) {
	before := r.data.n
	hdr, err := r.tr.Next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		where := "after the start"
		if r.last != "" {
			where = "after member " + strconv.Quote(r.last)
		}
		if r.src.err != nil || r.frames != nil && r.frames.err != nil {
			return nil, r.fail("", err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, invalid("", "truncated archive %s", where)
		}
		return nil, invalid("", "reading the tar header %s: %w", where, err)
	}
	name := hdr.Name
	if r.data.n-before > maxHeaderBytes {
		return nil, invalid(name, "tar header of %d bytes exceeds %d", r.data.n-before, maxHeaderBytes)
	}
	if strings.HasPrefix(name, "/") {
		return nil, invalid(name, "absolute path")
	}
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			return nil, invalid(name, "path traversal")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeSymlink:
		return nil, invalid(name, "symbolic link to %s", strconv.Quote(hdr.Linkname))
	case tar.TypeLink:
		return nil, invalid(name, "hard link to %s", strconv.Quote(hdr.Linkname))
	case tar.TypeChar, tar.TypeBlock:
		return nil, invalid(name, "device file")
	case tar.TypeFifo:
		return nil, invalid(name, "fifo")
	case tar.TypeDir:
		return nil, invalid(name, "directory member")
	default:
		return nil, invalid(name, "member of tar type %q (want a regular file)", hdr.Typeflag)
	}
	if name == r.last {
		return nil, invalid(name, "duplicate member")
	}
	r.last = name
	return hdr, nil
}

// body reads a member of a size already checked against its cap into a
// new buffer and records its checksum.
func (r *reader) body(hdr *tar.Header) ([]byte, error) {
	buf := make([]byte, hdr.Size)
	if _, err := io.ReadFull(r.tr, buf); err != nil {
		return nil, r.fail(hdr.Name, err)
	}
	sum := sha256.Sum256(buf)
	r.sums = append(r.sums, sum[:sumPrefix]...)
	fmt.Fprintf(r.expect, "%x  %s\n", sum, hdr.Name)
	return buf, nil
}

// sumPrefix is how much of each member's checksum a reader keeps: enough
// to name the member whose line of SHA256SUMS differs. The whole of
// SHA256SUMS is compared through a hash of the lines the members call for.
const sumPrefix = 8

func (r *reader) run() error {
	hdr, err := r.next()
	if err == io.EOF {
		return invalid("", "empty archive: %s is missing", ManifestName)
	}
	if err != nil {
		return err
	}
	if hdr.Name != ManifestName {
		return invalid(hdr.Name, "the first member must be %s", ManifestName)
	}
	if err := r.manifest(hdr); err != nil {
		return err
	}
	for {
		hdr, err := r.next()
		if err == io.EOF {
			return invalid("", "truncated archive: %s is missing after member %s", SumsName, strconv.Quote(r.last))
		}
		if err != nil {
			return err
		}
		switch name := hdr.Name; {
		case strings.HasPrefix(name, TablesDir) && r.v3:
			err = r.chunk3(hdr)
		case strings.HasPrefix(name, TablesDir):
			err = r.chunk(hdr)
		case strings.HasPrefix(name, ConfigDir):
			err = r.configFile(hdr)
		case name == SumsName:
			return r.checksums(hdr)
		case name == ManifestName:
			err = invalid(name, "duplicate member")
		default:
			err = invalid(name, "unknown member")
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) manifest(hdr *tar.Header) error {
	if hdr.Size > MaxManifestSize {
		return invalid(hdr.Name, "size %d exceeds %d", hdr.Size, MaxManifestSize)
	}
	data, err := r.body(hdr)
	if err != nil {
		return err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return invalid(hdr.Name, "%w", err)
	}
	r.m = *m
	r.v3 = m.Format >= 3
	r.prefixes = make([]string, len(m.Tables))
	for i, t := range m.Tables {
		r.prefixes[i] = memberPrefix(m.Format, t)
	}
	r.counts = make([]int64, len(m.Tables))
	if r.h.Manifest != nil {
		return r.h.Manifest(r.m)
	}
	return nil
}

// parseChunkName splits "<prefix>/<n>.rec", accepting only the canonical
// chunk name the Writer gives.
func parseChunkName(name string) (prefix string, n int64, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i < len(TablesDir) || !strings.HasSuffix(name, ".rec") {
		return "", 0, false
	}
	prefix = name[:i+1]
	n, err := strconv.ParseInt(strings.TrimSuffix(name[i+1:], ".rec"), 10, 64)
	if err != nil || n < 1 || chunkName(prefix, n) != name {
		return "", 0, false
	}
	return prefix, n, true
}

// startTable moves to table index i, ending the tables before it.
func (r *reader) startTable(i int) error {
	if r.v3 {
		return r.endStream3()
	}
	for r.table < i {
		if err := r.endTable(); err != nil {
			return err
		}
		r.table++
		r.chunks, r.records, r.bytes = 0, 0, 0
		r.lastKey = r.lastKey[:0]
		var p []string
		if r.table < len(r.m.Tables) {
			p = r.m.Tables[r.table].Path()
		}
		for len(r.openV2) > 0 && (p == nil || !isPrefix(r.m.Tables[r.openV2[len(r.openV2)-1]].Path(), p)) {
			t := r.m.Tables[r.openV2[len(r.openV2)-1]]
			r.openV2 = r.openV2[:len(r.openV2)-1]
			if r.h.TableEnd != nil {
				if err := r.h.TableEnd(t); err != nil {
					return err
				}
			}
		}
		if r.table < len(r.m.Tables) {
			r.openV2 = append(r.openV2, r.table)
			if r.h.Table != nil {
				if err := r.h.Table(r.m.Tables[r.table]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// chunk3 reads a chunk of a format 3 table stream.
func (r *reader) chunk3(hdr *tar.Header) error {
	name := hdr.Name
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, TablesDir), ".rec"), 10, 64)
	if err != nil || n < 1 || chunkName(TablesDir, n) != name {
		return invalid(name, "unknown member (want %s<000001>.rec)", TablesDir)
	}
	switch {
	case r.ended:
		return invalid(name, "table member after the config files")
	case n <= r.chunks:
		return invalid(name, "duplicate member")
	case n != r.chunks+1:
		return invalid(name, "member out of order (want %s)", chunkName(TablesDir, r.chunks+1))
	case hdr.Size == 0:
		return invalid(name, "empty chunk")
	case hdr.Size > MaxChunkSize:
		return invalid(name, "chunk of %d bytes exceeds %d", hdr.Size, MaxChunkSize)
	case hdr.Size > r.m.DataBytes-r.read3:
		return invalid(name, "more than the %d bytes of table data the manifest declares", r.m.DataBytes)
	}
	buf, err := r.body(hdr)
	if err != nil {
		return err
	}
	r.chunks = n
	r.read3 += hdr.Size
	entries := 0
	for p := buf; len(p) > 0; entries++ {
		var err error
		if p[0] == 0 {
			p, err = r.tableEntry(name, p)
		} else {
			p, err = r.record3(name, p)
		}
		if err != nil {
			return err
		}
	}
	if hdr.Size > ChunkSize && entries > 1 {
		return invalid(name, "chunk of %d bytes with %d entries exceeds %d", hdr.Size, entries, ChunkSize)
	}
	return nil
}

// current names the current table of a format 3 stream for messages.
func (r *reader) current() string {
	if len(r.path) == 0 {
		return "(none)"
	}
	return EncodePath(r.path)
}

// record3 decodes and checks a record entry at the start of p.
func (r *reader) record3(name string, p []byte) ([]byte, error) {
	klen, k := binary.Uvarint(p)
	if k <= 0 || klen == 0 || klen > MaxKeySize || klen > uint64(len(p)-k) {
		return nil, invalid(name, "record %d: bad key length", r.total+1)
	}
	size := k
	p = p[k:]
	key := p[:klen:klen]
	p = p[klen:]
	vlen, k := binary.Uvarint(p)
	if k <= 0 || vlen > MaxValueSize || vlen > uint64(len(p)-k) {
		return nil, invalid(name, "record %d (key %q): bad value length", r.total+1, truncateKey(key))
	}
	p = p[k:]
	value := p[:vlen:vlen]
	p = p[vlen:]
	size += int(klen) + k + int(vlen)
	switch {
	case len(r.open) == 0:
		return nil, invalid(name, "record %d (key %q) outside a table", r.total+1, truncateKey(key))
	case r.hasLast && bytes.Compare(key, r.lastKey) <= 0:
		return nil, invalid(name, "table %q: record %d: key %q is not after %q (keys and nested tables' names are strictly ascending)", r.current(), r.total+1, truncateKey(key), truncateKey(r.lastKey))
	case r.total == r.m.RecordCount:
		return nil, invalid(name, "more than the %d records the manifest declares", r.m.RecordCount)
	}
	t := &r.open[len(r.open)-1]
	t.records++
	t.bytes += int64(size)
	r.total++
	r.lastKey = append(r.lastKey[:0], key...)
	r.hasLast = true
	if r.h.Record != nil {
		if err := r.h.Record(key, value); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// tableEntry decodes and checks a table's start or end entry at the start
// of p.
func (r *reader) tableEntry(member string, p []byte) ([]byte, error) {
	if len(p) < 2 {
		return nil, invalid(member, "truncated entry after table %q", r.current())
	}
	kind := p[1]
	p = p[2:]
	switch kind {
	case entryTable:
		nlen, k := binary.Uvarint(p)
		if k <= 0 || nlen == 0 || nlen > MaxNameLen || nlen > uint64(len(p)-k) {
			return nil, invalid(member, "table %d: bad name length", r.tables+1)
		}
		name := string(p[k : k+int(nlen)])
		p = p[k+int(nlen):]
		seq, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, invalid(member, "table %d: bad sequence", r.tables+1)
		}
		p = p[k:]
		encLen := encodedLen(name)
		full := r.encLen + encLen
		if len(r.path) > 0 {
			full++
		}
		path := append(r.path, name) // r.path is the reader's own
		switch {
		case encLen > MaxNameLen:
			return nil, invalid(member, "table %q: name of %d bytes once encoded exceeds %d", truncateName(EncodePath(path)), encLen, MaxNameLen)
		case full > MaxTablePathLen:
			return nil, invalid(member, "table %q: path of %d bytes once encoded exceeds %d", truncateName(EncodePath(path)), full, MaxTablePathLen)
		case r.hasLast && name <= string(r.lastKey):
			what := "the last top-level table"
			if len(r.path) > 0 {
				what = fmt.Sprintf("the last entry of table %q (keys and nested tables' names are strictly ascending)", r.current())
			}
			return nil, invalid(member, "table %q is not after %q, %s", EncodePath(path), truncateKey(r.lastKey), what)
		case r.tables == r.m.TableCount:
			return nil, invalid(member, "more than the %d tables the manifest declares", r.m.TableCount)
		}
		r.tables++
		var parent []string
		if n := len(r.open); n > 0 {
			if r.open[n-1].children == nil {
				r.open[n-1].children = slices.Clone(r.path)
			}
			parent = r.open[n-1].children
		}
		r.open = append(r.open, openRead{sequence: seq, encLen: r.encLen, parent: parent})
		r.path = path
		r.encLen = full
		r.hasLast = false
		if r.h.Table != nil {
			if err := r.h.Table(TableInfo{Name: name, Sequence: seq, Parent: parent}); err != nil {
				return nil, err
			}
		}
		return p, nil
	case entryEnd:
		records, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, invalid(member, "end of table %q: bad record count", r.current())
		}
		p = p[k:]
		size, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, invalid(member, "end of table %q: bad size", r.current())
		}
		p = p[k:]
		if len(r.open) == 0 {
			return nil, invalid(member, "end of a table outside a table")
		}
		t := r.open[len(r.open)-1]
		if records != uint64(t.records) || size != uint64(t.bytes) {
			return nil, invalid(member, "table %q has %d records in %d bytes, its end entry declares %d in %d", r.current(), t.records, t.bytes, records, size)
		}
		name := r.path[len(r.path)-1]
		info := TableInfo{Name: name, Records: t.records, Bytes: t.bytes, Sequence: t.sequence, Parent: t.parent}
		r.open = r.open[:len(r.open)-1]
		r.path = r.path[:len(r.path)-1]
		r.encLen = t.encLen
		r.lastKey = append(r.lastKey[:0], name...)
		r.hasLast = true
		if r.h.TableEnd != nil {
			if err := r.h.TableEnd(info); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	return nil, invalid(member, "unknown entry kind %d after table %q", kind, r.current())
}

// endStream3 checks, when the first member after the table stream comes,
// that the stream is whole: every table ended, the manifest's totals met.
func (r *reader) endStream3() error {
	if r.ended {
		return nil
	}
	r.ended = true
	member := r.last
	if r.chunks > 0 {
		member = chunkName(TablesDir, r.chunks)
	}
	if len(r.open) > 0 {
		return invalid(member, "table %q does not end: the table data is truncated", r.current())
	}
	if r.tables != r.m.TableCount || r.total != r.m.RecordCount || r.read3 != r.m.DataBytes {
		return invalid(member, "the table data holds %d tables, %d records and %d bytes, the manifest declares %d, %d and %d", r.tables, r.total, r.read3, r.m.TableCount, r.m.RecordCount, r.m.DataBytes)
	}
	return nil
}

// endTable checks the current table's content against the manifest.
func (r *reader) endTable() error {
	if r.table < 0 || r.table >= len(r.m.Tables) {
		return nil
	}
	t := r.m.Tables[r.table]
	r.counts[r.table] = r.chunks
	if r.records != t.Records || r.bytes != t.Bytes {
		member := r.last
		if r.chunks > 0 {
			member = chunkName(r.prefixes[r.table], r.chunks)
		}
		return invalid(member, "table %q has %d records in %d bytes, the manifest declares %d in %d", t, r.records, r.bytes, t.Records, t.Bytes)
	}
	return nil
}

// locate finds the table of a chunk member. Members come in manifest
// order, so the search starts at the current table and stops after the
// first table with records (whose chunks would otherwise be missing):
// reading stays linear in the number of tables and members.
func (r *reader) locate(name, prefix string, n int64) (int, error) {
	if r.table >= len(r.m.Tables) {
		return 0, invalid(name, "table member after the config files")
	}
	if r.table >= 0 && r.prefixes[r.table] == prefix {
		switch {
		case n == r.chunks+1:
			return r.table, nil
		case n <= r.chunks:
			return 0, invalid(name, "duplicate member")
		}
		return 0, invalid(name, "member out of order")
	}
	for j := r.table + 1; j < len(r.m.Tables); j++ {
		if r.prefixes[j] == prefix {
			if n != 1 {
				return 0, invalid(name, "member out of order")
			}
			return j, nil
		}
		if r.m.Tables[j].Records > 0 {
			break
		}
	}
	if slices.Contains(r.prefixes, prefix) {
		return 0, invalid(name, "member out of order")
	}
	return 0, invalid(name, "table %q is not in the manifest", (strings.TrimSuffix(strings.TrimPrefix(prefix, TablesDir), "/")))
}

func (r *reader) chunk(hdr *tar.Header) error {
	name := hdr.Name
	prefix, n, ok := parseChunkName(name)
	if !ok {
		return invalid(name, "unknown member (want %s<table>/<000001>.rec)", TablesDir)
	}
	i, err := r.locate(name, prefix, n)
	if err != nil {
		return err
	}
	if err := r.startTable(i); err != nil {
		return err
	}
	t := r.m.Tables[i]
	switch {
	case hdr.Size == 0:
		return invalid(name, "empty chunk")
	case hdr.Size > MaxChunkSize:
		return invalid(name, "chunk of %d bytes exceeds %d", hdr.Size, MaxChunkSize)
	case hdr.Size > t.Bytes-r.bytes:
		return invalid(name, "table %q has more than the %d bytes the manifest declares", t, t.Bytes)
	}
	buf, err := r.body(hdr)
	if err != nil {
		return err
	}
	r.chunks = n
	inChunk := 0
	for p := buf; len(p) > 0; {
		klen, k := binary.Uvarint(p)
		if k <= 0 || klen == 0 || klen > MaxKeySize || klen > uint64(len(p)-k) {
			return invalid(name, "record %d: bad key length", r.records+1)
		}
		p = p[k:]
		key := p[:klen:klen]
		p = p[klen:]
		vlen, k := binary.Uvarint(p)
		if k <= 0 || vlen > MaxValueSize || vlen > uint64(len(p)-k) {
			return invalid(name, "record %d (key %q): bad value length", r.records+1, truncateKey(key))
		}
		p = p[k:]
		value := p[:vlen:vlen]
		p = p[vlen:]
		if r.records > 0 && bytes.Compare(key, r.lastKey) <= 0 {
			return invalid(name, "record %d: key %q is not after %q", r.records+1, truncateKey(key), truncateKey(r.lastKey))
		}
		if r.records == t.Records {
			return invalid(name, "table %q has more than the %d records the manifest declares", t, t.Records)
		}
		r.records++
		inChunk++
		r.lastKey = append(r.lastKey[:0], key...)
		if r.h.Record != nil {
			if err := r.h.Record(key, value); err != nil {
				return err
			}
		}
	}
	if hdr.Size > ChunkSize && inChunk > 1 {
		return invalid(name, "chunk of %d bytes with %d records exceeds %d", hdr.Size, inChunk, ChunkSize)
	}
	r.bytes += hdr.Size
	return nil
}

// truncateKey shortens a key for an error message.
func truncateKey(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}

func (r *reader) configFile(hdr *tar.Header) error {
	name := hdr.Name
	if err := r.startTable(len(r.m.Tables)); err != nil {
		return err
	}
	p := strings.TrimPrefix(name, ConfigDir)
	if r.config > 0 && r.m.Config[r.config-1].Path == p {
		return invalid(name, "duplicate member")
	}
	if r.config >= len(r.m.Config) || r.m.Config[r.config].Path != p {
		if _, found := slices.BinarySearchFunc(r.m.Config, p, func(c ConfigFile, p string) int { return strings.Compare(c.Path, p) }); found {
			return invalid(name, "member out of order")
		}
		return invalid(name, "config file %s is not in the manifest", strconv.Quote(p))
	}
	c := r.m.Config[r.config]
	if hdr.Mode&^int64(fs.ModePerm) != 0 {
		return invalid(name, "mode %#o has more than permission bits", hdr.Mode)
	}
	if fs.FileMode(hdr.Mode) != c.Mode || hdr.Size != c.Size {
		return invalid(name, "mode %v and size %d differ from the manifest's %v and %d", fs.FileMode(hdr.Mode), hdr.Size, c.Mode, c.Size)
	}
	data, err := r.body(hdr)
	if err != nil {
		return err
	}
	r.config++
	if r.h.Config != nil {
		return r.h.Config(c, data)
	}
	return nil
}

// members calls fn with the name of every member read before SHA256SUMS,
// in order, derived from the manifest and the chunk counts: the Reader
// keeps only their checksums.
func (r *reader) members(fn func(i int, name string) error) error {
	i := 0
	if err := fn(i, ManifestName); err != nil {
		return err
	}
	if r.v3 {
		for n := int64(1); n <= r.chunks; n++ {
			i++
			if err := fn(i, chunkName(TablesDir, n)); err != nil {
				return err
			}
		}
	}
	for t, count := range r.counts {
		for n := int64(1); n <= count; n++ {
			i++
			if err := fn(i, chunkName(r.prefixes[t], n)); err != nil {
				return err
			}
		}
	}
	for _, c := range r.m.Config {
		i++
		if err := fn(i, ConfigDir+c.Path); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) checksums(hdr *tar.Header) error {
	if err := r.startTable(len(r.m.Tables)); err != nil {
		return err
	}
	if r.config < len(r.m.Config) {
		return invalid(ConfigDir+r.m.Config[r.config].Path, "config file of the manifest is missing")
	}
	var want int64
	longest := 0
	r.members(func(_ int, name string) error {
		want += int64(2*sha256.Size + 2 + len(name) + 1)
		longest = max(longest, len(name))
		return nil
	})
	count := len(r.sums) / sumPrefix
	if hdr.Size > want {
		return invalid(SumsName, "size %d exceeds the %d bytes its %d lines need", hdr.Size, want, count)
	}
	actual := sha256.New()
	lines := bufio.NewReaderSize(io.TeeReader(r.tr, actual), max(4096, 2*sha256.Size+2+longest+1))
	err := r.members(func(i int, name string) error {
		line, err := lines.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			return invalid(SumsName, "member %s is not listed", strconv.Quote(name))
		}
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return r.fail(SumsName, err)
		}
		sum, path, ok := strings.Cut(strings.TrimSuffix(string(line), "\n"), "  ")
		digest, herr := hex.DecodeString(sum)
		if err != nil || !ok || herr != nil || len(digest) != sha256.Size || sum != strings.ToLower(sum) {
			return invalid(SumsName, "line %d: malformed (want \"<sha256 hex>  <member>\")", i+1)
		}
		if path != name {
			return invalid(SumsName, "line %d: lists %s where member %s is expected", i+1, strconv.Quote(path), strconv.Quote(name))
		}
		if got := r.sums[i*sumPrefix : (i+1)*sumPrefix]; !bytes.Equal(digest[:sumPrefix], got) {
			return invalid(name, "checksum mismatch: SHA256SUMS has %s, the member has %x...", sum, got)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if extra, err := lines.ReadString('\n'); extra != "" || err != io.EOF {
		if err != nil && err != io.EOF {
			return r.fail(SumsName, err)
		}
		return invalid(SumsName, "line %d: lists %s, which is not a member", count+1, strconv.Quote(strings.TrimSpace(extra)))
	}
	if !bytes.Equal(actual.Sum(nil), r.expect.Sum(nil)) {
		return invalid(SumsName, "checksum mismatch: a line differs from its member's sha256 after its first %d bytes", sumPrefix)
	}
	if r.m.Format >= 4 {
		if err := r.signature(actual.Sum(nil)); err != nil {
			return err
		}
	}
	end := (r.data.n+blockSize-1)/blockSize*blockSize + 2*blockSize
	last := r.last
	if hdr, err := r.next(); err != io.EOF {
		if err != nil {
			return err
		}
		return invalid(hdr.Name, "member after %s", last)
	}
	if r.data.n < end {
		return invalid("", "truncated archive: the end-of-archive blocks after %s are missing", SumsName)
	}
	return r.trailing()
}

// signature reads the signature member of a signed archive, which follows
// SHA256SUMS (whose digest is sums), and hands it to the handler.
func (r *reader) signature(sums []byte) error {
	hdr, err := r.next()
	if err == io.EOF {
		return invalid("", "truncated archive: %s is missing after %s (the manifest says it is signed by %s)", SigName, SumsName, r.m.SignedBy)
	}
	if err != nil {
		return err
	}
	if hdr.Name != SigName {
		return invalid(hdr.Name, "member after %s (want %s)", SumsName, SigName)
	}
	if hdr.Size > MaxSigSize {
		return invalid(hdr.Name, "size %d exceeds %d", hdr.Size, MaxSigSize)
	}
	sig := make([]byte, hdr.Size)
	if _, err := io.ReadFull(r.tr, sig); err != nil {
		return r.fail(hdr.Name, err)
	}
	if r.h.Signature != nil {
		return r.h.Signature(sums, sig)
	}
	return nil
}

// trailing checks that only zero padding, and not much, follows the end of
// the tar stream, and that the compressed stream ends properly: after its
// last frame, nothing (no skippable frame either).
func (r *reader) trailing() error {
	buf := make([]byte, 4096)
	var total int64
	for {
		n, err := r.data.Read(buf)
		total += int64(n)
		if bytes.Count(buf[:n], []byte{0}) != n || total > maxTrailing {
			return invalid("", "data after the end of the tar stream")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return r.fail("", fmt.Errorf("after the end of the tar stream: %w", err))
		}
	}
	if r.frames == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, r.frames); err != nil {
		return r.fail("", err)
	}
	if err := r.frames.end(); err != nil {
		return invalid("", "%w", err)
	}
	return nil
}
