// Package archive reads and writes hookreg backup archives: one file holding
// a product's tables (nested ones included), its upgrade metadata and its
// configuration files. The format is specified, version by version, in
// FORMAT.md beside this file; this package writes format 2 and reads
// formats 1 and 2.
//
// An archive is a POSIX tar stream, zstd-compressed by default ([Zstd]) or
// plain ([None]); a reader detects which by the zstd magic number. Its
// members, in this order:
//
//	MANIFEST.json                 the [Manifest]: versions, hooks, tables, config files
//	tables/<path>/000001.rec      the records of each table, in chunks of at most
//	tables/<path>/000002.rec      [ChunkSize] bytes (a larger record gets a chunk
//	...                           of its own), tables in manifest order
//	config/<path>                 each configuration file, mode kept, in path order
//	SHA256SUMS                    the sha256 of every member above, sha256sum format
//
// A table is named by its path: a top-level table ("users"), or a table
// nested in others, as bbolt nests buckets in buckets ("users/sessions").
// Names are arbitrary bytes; in member paths and in the manifest each name
// is encoded with [EncodeName] (bytes other than [A-Za-z0-9_-] become %XX)
// and the names of a path are joined with "/". A chunk is a sequence of
// records, each a uvarint key length, the key, a uvarint value length and
// the value, keys strictly ascending within a table, so any bytes
// round-trip exactly. Since SHA256SUMS comes last, a truncated archive is
// always detected, and the members can be checked with standard tools:
//
//	zstd -dc backup.tar.zst | tar -x && sha256sum -c SHA256SUMS
//
// Writing streams: the caller declares every table with its record count
// and size and every configuration file in the [Manifest] up front (a backup
// counts them in the same read transaction it then copies), then feeds the
// records; memory stays bounded by one chunk whatever the store size.
//
//	w, err := archive.NewWriter(f, archive.Manifest{
//		Created: time.Now(), Product: "mqtt-broker", Release: "5.1.0",
//		RegistryDigest: reg.Digest, DataVersion: "5.1.0",
//		Tables: []archive.TableInfo{{Name: "users", Records: 1, Bytes: archive.RecordSize([]byte("alice"), []byte("{}"))}},
//	}, archive.Options{})
//	if err != nil { ... }
//	w.Table("users")
//	w.Record([]byte("alice"), []byte("{}"))
//	if err := w.Close(); err != nil { ... } // checks counts, writes SHA256SUMS
//
// Reading streams too, and treats the input as hostile: paths that escape,
// absolute paths, links, devices, fifos, duplicate, unknown, misplaced or
// oversized members, decompression bombs, a manifest with duplicate or
// case-folded keys or that disagrees with the content, data after the end
// of the archive (zstd skippable frames included), truncation and bad or
// missing checksums are refused with an error that wraps [ErrInvalid] and
// names the member. A caller that must not act on anything unchecked (a
// restore) reads the archive once, with [Read] and a [Handler] that loads
// the records as they stream into something private (a new file beside
// the one it replaces), and uses that work only when Read returns nil:
// SHA256SUMS comes last and covers every member, so a bad checksum
// anywhere is found at the end, and the work is then discarded.
//
// Limits (see FORMAT.md): a chunk is at most [MaxChunkSize] (one record of
// the largest key and value), MANIFEST.json at most [MaxManifestSize], a
// configuration file at most [MaxConfigSize], an encoded name or path
// element at most 255 bytes, tar headers at most 16 KiB, and what follows
// the end of the tar stream at most 64 KiB of zeros. The zstd decoder's
// window and memory are capped (32 MiB, 64 MiB, instead of the library's
// 64 GiB), and the decompressed bytes of each table are counted against the
// size the manifest declares, so the bytes an archive decompresses to are
// bounded by what its manifest declares, which a caller can check (free
// space) before writing anything. A Reader holds the manifest, one member
// and 8 bytes per member read (of its checksum, for SHA256SUMS); it reads in
// time linear in the archive's size.
//
//	m, err := archive.Read(f, archive.Handler{
//		Manifest: func(m archive.Manifest) error { return checkFreeSpace(m) },
//		Table:    func(t archive.TableInfo) error { return createTable(t.Path()) },
//		Record:   func(key, value []byte) error { return put(key, value) },
//		Config:   func(c archive.ConfigFile, data []byte) error { return writeConfig(c, data) },
//	})
//	if err != nil {
//		discard() // a bad checksum, found at the end, or anything else
//		return err
//	}
//	swapIn() // every checksum matched
package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FormatVersion is the newest archive format this package reads and
// writes: a signed archive (see [Options.Sign]). It reads every earlier
// one (see FORMAT.md).
const FormatVersion = 4

// FormatUnsigned is the format of an archive without a signature, which
// the Writer writes so that every format 3 reader reads it.
const FormatUnsigned = 3

// Member names and limits of the format.
const (
	// ManifestName is the first member.
	ManifestName = "MANIFEST.json"
	// SumsName is the last member, or the last but the signature.
	SumsName = "SHA256SUMS"
	// SigName is the signature of SHA256SUMS, the last member of a
	// signed (format 4) archive.
	SigName = "SHA256SUMS.sig"
	// MaxSigSize bounds SigName.
	MaxSigSize = 16 << 10
	// TablesDir holds the table chunks: TablesDir + "<path>/000001.rec".
	TablesDir = "tables/"
	// ConfigDir holds the configuration files: ConfigDir + "<path>".
	ConfigDir = "config/"

	// ChunkSize is the largest chunk the Writer produces, unless a single
	// record is larger (it then has a chunk of its own).
	ChunkSize = 4 << 20
	// MaxKeySize is the largest key (bbolt's limit).
	MaxKeySize = 32 << 10
	// MaxValueSize is the largest value. bbolt allows larger ones; a
	// backup refuses them, naming the key.
	MaxValueSize = 16 << 20
	// MaxChunkSize is the largest chunk member a Reader accepts: ChunkSize,
	// or one record of the largest key and value.
	MaxChunkSize = MaxKeySize + MaxValueSize + 2*maxUvarintLen
	// MaxManifestSize is the largest MANIFEST.json.
	MaxManifestSize = 16 << 20
	// MaxConfigSize is the largest configuration file.
	MaxConfigSize = 16 << 20
	// MaxConfigPathLen is the longest configuration file path.
	MaxConfigPathLen = 1024
	// MaxNameLen is the longest path element, encoded: a table name after
	// [EncodeName], or an element of a configuration file path (the
	// NAME_MAX of common file systems, so that tar -x can write it).
	MaxNameLen = 255
	// MaxTablePathLen is the longest table path, encoded ([TableInfo.String]).
	MaxTablePathLen = 2048

	maxUvarintLen = 10
)

// ErrInvalid is wrapped by every error about an archive's content: a
// malformed, hostile, truncated or inconsistent archive.
var ErrInvalid = errors.New("invalid archive")

// FormatError is an error about an archive's content, naming the member
// where it was found (empty when it concerns the stream as a whole).
type FormatError struct {
	Member string
	Err    error
}

func (e *FormatError) Error() string {
	if e.Member == "" {
		return "invalid archive: " + e.Err.Error()
	}
	return fmt.Sprintf("invalid archive: member %q: %v", e.Member, e.Err)
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// Is reports that a FormatError matches ErrInvalid.
func (e *FormatError) Is(target error) bool { return target == ErrInvalid }

func invalid(member, format string, args ...any) error {
	return &FormatError{Member: member, Err: fmt.Errorf(format, args...)}
}

// Escape returns s as it may be printed on a terminal or in a log: s
// quoted as a Go string (control characters, invalid UTF-8 and other
// non-graphic characters escaped) when it holds any such byte, a quote, a
// backslash or a space at either end, or is empty; s itself otherwise.
// Manifest strings come from the archive, so a program prints them through
// Escape.
func Escape(s string) string {
	if s == "" || strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '"' || r == '\\' || !unicode.IsGraphic(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Compression is how the tar stream is compressed.
type Compression string

// The compressions.
const (
	// Zstd compresses with zstd (the default; ".tar.zst").
	Zstd Compression = "zstd"
	// None writes a plain tar (".tar").
	None Compression = "none"
)

// ParseCompression parses a --compress flag value: "zstd" or "none".
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd or none)", s)
}

// Manifest describes an archive; it is the first member, MANIFEST.json.
// Its JSON form is the one of the archive's format version (see FORMAT.md).
type Manifest struct {
	// Format is the archive's format version; the Writer sets
	// FormatUnsigned, or FormatVersion for a signed archive.
	Format int
	// SignedBy is the SHA-256 fingerprint of the public key that signed
	// the archive ("SHA256:...", as "ssh-keygen -l" prints it): set in a
	// format 4 archive, and only there.
	SignedBy string
	// Created is when the backup was taken (UTC, whole seconds); it is also
	// the modification time of every member. Set it for deterministic
	// archives; the Writer uses the current time when it is zero.
	Created time.Time
	// Product names the product the data belongs to.
	Product string
	// Release is the release of the migrator that wrote the archive.
	Release string
	// RegistryDigest is that migrator's registry digest (hook.Registry.Digest).
	RegistryDigest string
	// DataVersion is the version of the data.
	DataVersion string
	// LastUpgradeHook is the number of the last applied hook; nil for data
	// from before hooks were tracked.
	LastUpgradeHook *int
	// Applied lists the applied hooks, as the upgrade metadata records them.
	Applied []AppliedHook
	// Covered lists the maintenance hooks (numbers in strictly ascending
	// order) the release that installed the data contained, as the upgrade
	// metadata records them (format 3, optional; upgrade.Metadata.Covered).
	Covered []int
	// Tables lists every table of a format 1 or 2 archive, nested ones
	// included, in strictly ascending path order ([ComparePaths]: a table
	// comes before the tables nested in it), reserved tables ("_hookreg")
	// included. A format 3 manifest has none: its tables travel with
	// their records (see [Handler]), and the manifest holds the totals.
	// A Writer given Tables checks every table against them.
	Tables []TableInfo
	// TableCount, RecordCount and DataBytes are the totals of the tables:
	// the number of tables (nested ones included), of records, and the
	// bytes of the table data (format 3: the sum of the chunk members'
	// sizes; formats 1 and 2: of the tables' Bytes), which bounds what
	// the archive decompresses to. A reader sets them for every format; a
	// Writer computes them from Tables when Tables is given.
	TableCount, RecordCount, DataBytes int64
	// Config lists the configuration files in strictly ascending path order.
	Config []ConfigFile
}

// AppliedHook is the record of one applied upgrade hook.
type AppliedHook struct {
	Num int `json:"num"`
	// Name is the hook's function, as the registry names it (format 3;
	// absent in records from before hookreg recorded it).
	Name           string    `json:"name,omitempty"`
	Digest         string    `json:"digest"`
	Release        string    `json:"release"`
	AppliedAt      time.Time `json:"applied_at"`
	Mode           string    `json:"mode"`
	DigestMismatch bool      `json:"digest_mismatch,omitempty"`
}

// TableInfo declares one table: where it is, its number of records and
// their encoded size (the sum of RecordSize over its records).
type TableInfo struct {
	// Name is the table's name: any non-empty bytes whose encoded form
	// ([EncodeName]) is at most MaxNameLen bytes.
	Name string
	// Parent holds the names of the tables it is nested in, outermost
	// first; it is empty for a top-level table. (bbolt nests buckets in
	// buckets; a store without nesting has only top-level tables.)
	Parent []string
	// Records is the number of records, not counting nested tables.
	Records int64
	// Bytes is the encoded size of the records.
	Bytes int64
	// Sequence is the table's sequence number (bbolt's Bucket.Sequence),
	// 0 when unused. Format 1 has none.
	Sequence uint64
}

// Path returns the table's path: its parents' names and its own.
func (t TableInfo) Path() []string {
	return append(append(make([]string, 0, len(t.Parent)+1), t.Parent...), t.Name)
}

// String returns the table's encoded path ([EncodePath]), which is
// printable ASCII.
func (t TableInfo) String() string { return EncodePath(t.Path()) }

// ConfigFile declares one configuration file: its slash-separated path
// relative to the configuration directory, its permission bits and size.
type ConfigFile struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
	Size int64       `json:"size"`
}

// RecordSize returns the encoded size of a record, as counted in
// TableInfo.Bytes.
func RecordSize(key, value []byte) int64 {
	return int64(uvarintLen(uint64(len(key))) + len(key) + uvarintLen(uint64(len(value))) + len(value))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// EncodeName returns the form of a table name in member paths and in the
// manifest: bytes of [A-Za-z0-9_-] are kept, every other byte (".", "/",
// "%", spaces, control characters, non-ASCII and invalid UTF-8 alike)
// becomes "%" and two upper-case hex digits. So "user sessions" is
// "user%20sessions" and "acl.v2" is "acl%2Ev2"; an encoded name is never
// "." or "..", holds no "/", and never ends in ".rec".
func EncodeName(name string) string {
	n := 0
	for i := 0; i < len(name); i++ {
		if !plainByte(name[i]) {
			n++
		}
	}
	if n == 0 {
		return name
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(name)+2*n)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if plainByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

// encodedLen returns len(EncodeName(name)) without encoding it.
func encodedLen(name string) int {
	n := len(name)
	for i := 0; i < len(name); i++ {
		if !plainByte(name[i]) {
			n += 2
		}
	}
	return n
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// DecodeName reverses EncodeName. It accepts only the canonical encoding
// (upper-case hex, no needless escape), so every name has one form.
func DecodeName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty table name")
	}
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !plainByte(s[i]) {
				return "", fmt.Errorf("encoded table name %s: byte %q must be escaped", strconv.Quote(s), s[i])
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if !plainByte(c) {
				return "", fmt.Errorf("encoded table name %s: byte %q must be escaped", strconv.Quote(s), c)
			}
			b = append(b, c)
			continue
		}
		if i+3 > len(s) {
			return "", fmt.Errorf("encoded table name %s: incomplete escape", strconv.Quote(s))
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] || plainByte(byte(v)) {
			return "", fmt.Errorf("encoded table name %s: bad escape %q", strconv.Quote(s), s[i:i+3])
		}
		b = append(b, byte(v))
		i += 2
	}
	return string(b), nil
}

// EncodePath returns a table path's encoded form: its names encoded with
// EncodeName, joined with "/".
func EncodePath(path []string) string {
	enc := make([]string, len(path))
	for i, name := range path {
		enc[i] = EncodeName(name)
	}
	return strings.Join(enc, "/")
}

// DecodePath reverses EncodePath.
func DecodePath(s string) ([]string, error) {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		name, err := DecodeName(p)
		if err != nil {
			return nil, err
		}
		parts[i] = name
	}
	return parts, nil
}

// ComparePaths orders table paths: name by name, bytewise, a path before
// the paths it is a prefix of. It is the order of bbolt's own iteration,
// depth first, and of the manifest's tables.
func ComparePaths(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// ValidTableName returns an error unless name can be a table name in an
// archive: not empty, and at most MaxNameLen bytes once encoded.
func ValidTableName(name string) error {
	if name == "" {
		return errors.New("empty table name")
	}
	if n := encodedLen(name); n > MaxNameLen {
		return fmt.Errorf("table name %s: %d bytes once encoded, the archive format allows %d", strconv.Quote(truncateName(name)), n, MaxNameLen)
	}
	return nil
}

// ValidTablePath returns an error unless path can be a table path in an
// archive: valid names, at most MaxTablePathLen bytes once encoded.
func ValidTablePath(path []string) error {
	if len(path) == 0 {
		return errors.New("empty table path")
	}
	n := len(path) - 1 // the slashes
	for _, name := range path {
		if err := ValidTableName(name); err != nil {
			return err
		}
		n += encodedLen(name)
	}
	if n > MaxTablePathLen {
		return fmt.Errorf("table %q: path of %d bytes once encoded, the archive format allows %d", truncateName(EncodePath(path)), n, MaxTablePathLen)
	}
	return nil
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// validV1TableName is format 1's rule: 1 to 128 bytes of [A-Za-z0-9._-],
// not "." or "..".
func validV1TableName(name string) error {
	if name == "" || len(name) > 128 || name == "." || name == ".." {
		return fmt.Errorf("table name %s is not allowed in format 1", strconv.Quote(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !plainByte(c) && c != '.' {
			return fmt.Errorf("table name %s: byte %q is not allowed in format 1", strconv.Quote(name), c)
		}
	}
	return nil
}

// ValidConfigPath returns an error unless p is a valid configuration file
// path: a relative, slash-separated path without "." or ".." elements,
// empty elements, backslashes or control characters, at most
// MaxConfigPathLen bytes and MaxNameLen bytes an element.
func ValidConfigPath(p string) error {
	if p == "" || len(p) > MaxConfigPathLen {
		return fmt.Errorf("config path %s: length must be 1 to %d bytes", strconv.Quote(truncateName(p)), MaxConfigPathLen)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("config path %s is absolute", strconv.Quote(p))
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("config path %s: byte %q is not allowed", strconv.Quote(p), c)
		}
	}
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "..":
			return fmt.Errorf("config path %s escapes the config directory", strconv.Quote(p))
		case "", ".":
			return fmt.Errorf("config path %s is not clean", strconv.Quote(p))
		}
		if len(e) > MaxNameLen {
			return fmt.Errorf("config path %s: element of %d bytes exceeds %d", strconv.Quote(truncateName(p)), len(e), MaxNameLen)
		}
	}
	if !fs.ValidPath(p) {
		return fmt.Errorf("config path %s is not a valid path", strconv.Quote(p))
	}
	return nil
}

// check validates a manifest, as written or as read.
func (m *Manifest) check() error {
	if m.Format < 1 || m.Format > FormatVersion {
		return fmt.Errorf("unsupported format version %d (want 1 to %d)", m.Format, FormatVersion)
	}
	if (m.Format >= 4) != (m.SignedBy != "") {
		return fmt.Errorf("format %d with signed_by %q: format 4 is a signed archive's, and names its signer", m.Format, m.SignedBy)
	}
	if m.Format >= 3 {
		if len(m.Tables) > 0 {
			return fmt.Errorf("format %d lists no tables in the manifest", m.Format)
		}
		if err := checkTotals(m.TableCount, m.RecordCount, m.DataBytes); err != nil {
			return err
		}
	}
	if m.Created.IsZero() {
		return errors.New("created is missing")
	}
	for _, f := range [...]struct{ name, v string }{{"product", m.Product}, {"release", m.Release}, {"data_version", m.DataVersion}} {
		if f.v == "" {
			return fmt.Errorf("%s is missing", f.name)
		}
	}
	for _, a := range m.Applied {
		if a.Name != "" && m.Format < 3 {
			return fmt.Errorf("applied hook %d: format %d records no hook names", a.Num, m.Format)
		}
	}
	if len(m.Covered) > 0 && m.Format < 3 {
		return fmt.Errorf("format %d records no covered hooks", m.Format)
	}
	for i, n := range m.Covered {
		if n <= 0 || i > 0 && n <= m.Covered[i-1] {
			return fmt.Errorf("covered hooks %v: want positive numbers in strictly ascending order", m.Covered)
		}
	}
	// ancestors is the chain of tables the current one may be nested in.
	var ancestors [][]string
	for i, t := range m.Tables {
		p := t.Path()
		if m.Format == 1 {
			if len(t.Parent) > 0 || t.Sequence != 0 {
				return fmt.Errorf("table %q: format 1 has no nested tables or sequences", t)
			}
			if err := validV1TableName(t.Name); err != nil {
				return err
			}
		} else if err := ValidTablePath(p); err != nil {
			return err
		}
		if i > 0 && ComparePaths(m.Tables[i-1].Path(), p) >= 0 {
			return fmt.Errorf("table %q: tables must be unique and in ascending path order (after %q)", t, m.Tables[i-1])
		}
		for len(ancestors) > 0 && !isPrefix(ancestors[len(ancestors)-1], p) {
			ancestors = ancestors[:len(ancestors)-1]
		}
		if len(t.Parent) > 0 && (len(ancestors) == 0 || ComparePaths(ancestors[len(ancestors)-1], t.Parent) != 0) {
			return fmt.Errorf("table %q: the table it is nested in is not in the manifest", t)
		}
		ancestors = append(ancestors, p)
		if t.Records < 0 || t.Bytes < 0 || t.Bytes < 3*t.Records || (t.Records == 0) != (t.Bytes == 0) {
			return fmt.Errorf("table %q: impossible size: %d records in %d bytes", t, t.Records, t.Bytes)
		}
	}
	files := make(map[string]bool, len(m.Config))
	for _, c := range m.Config {
		files[c.Path] = true
	}
	for i, c := range m.Config {
		if err := ValidConfigPath(c.Path); err != nil {
			return err
		}
		for dir := path.Dir(c.Path); dir != "."; dir = path.Dir(dir) {
			if files[dir] {
				return fmt.Errorf("config file %s: its directory %s is a file", strconv.Quote(c.Path), strconv.Quote(dir))
			}
		}
		if i > 0 && m.Config[i-1].Path >= c.Path {
			return fmt.Errorf("config file %s: config files must be unique and in ascending path order (after %q)", strconv.Quote(c.Path), m.Config[i-1].Path)
		}
		if c.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("config file %s: mode %v is not a plain permission", strconv.Quote(c.Path), c.Mode)
		}
		if c.Size < 0 || c.Size > MaxConfigSize {
			return fmt.Errorf("config file %s: size %d is outside 0 to %d bytes", strconv.Quote(c.Path), c.Size, MaxConfigSize)
		}
	}
	return nil
}

func isPrefix(prefix, p []string) bool {
	return len(prefix) < len(p) && ComparePaths(prefix, p[:len(prefix)]) == 0
}

// checkTotals refuses totals no format 3 stream can have.
func checkTotals(tables, records, data int64) error {
	switch {
	case tables < 0 || records < 0 || data < 0:
		return fmt.Errorf("impossible totals: %d tables, %d records, %d bytes", tables, records, data)
	case tables == 0 && (records != 0 || data != 0):
		return fmt.Errorf("impossible totals: %d records in %d bytes without a table", records, data)
	case (data-minTableEntries*tables)/3 < records || data < minTableEntries*tables:
		return fmt.Errorf("impossible totals: %d tables and %d records in %d bytes", tables, records, data)
	}
	return nil
}

// memberPrefix returns the member path of a table's chunks, without the
// chunk name: TablesDir + "<encoded path>/" (format 1: the name as is).
func memberPrefix(format int, t TableInfo) string {
	if format == 1 {
		return TablesDir + t.Name + "/"
	}
	return TablesDir + t.String() + "/"
}

func chunkName(prefix string, n int64) string {
	return prefix + fmt.Sprintf("%06d.rec", n)
}

// The entries of a format 3 table stream besides records: a record's key
// length is never 0, so a 0 byte starts one of these, its kind next.
const (
	entryTable = 1 // uvarint(len(name)) name uvarint(sequence)
	entryEnd   = 2 // uvarint(records) uvarint(bytes)

	// minTableEntries is the smallest size of a table's start and end
	// entries together.
	minTableEntries = 2 + 1 + 1 + 1 + 2 + 1 + 1
)

// tableStartSize and tableEndSize are the sizes of a table's entries.
func tableStartSize(name string, sequence uint64) int64 {
	return int64(2 + uvarintLen(uint64(len(name))) + len(name) + uvarintLen(sequence))
}

func tableEndSize(records, bytes int64) int64 {
	return int64(2 + uvarintLen(uint64(records)) + uvarintLen(uint64(bytes)))
}

// Totals counts what a format 3 manifest declares ([Manifest.TableCount],
// [Manifest.RecordCount], [Manifest.DataBytes]) from the calls a [Writer]
// then takes, in the same order: a backup counts its store with it, then
// writes. Its memory is bounded by the depth of nesting.
type Totals struct {
	Tables, Records, Bytes int64
	open                   []tableCount
}

type tableCount struct{ records, bytes int64 }

// StartTable counts a table nested in the current one (a top-level table
// when none is open).
func (t *Totals) StartTable(name string, sequence uint64) {
	t.Tables++
	t.Bytes += tableStartSize(name, sequence)
	t.open = append(t.open, tableCount{})
}

// Record counts a record of the current table.
func (t *Totals) Record(key, value []byte) {
	n := RecordSize(key, value)
	t.Records++
	t.Bytes += n
	if len(t.open) > 0 {
		c := &t.open[len(t.open)-1]
		c.records++
		c.bytes += n
	}
}

// EndTable ends the current table; its parent becomes current again.
func (t *Totals) EndTable() {
	if len(t.open) == 0 {
		return
	}
	c := t.open[len(t.open)-1]
	t.open = t.open[:len(t.open)-1]
	t.Bytes += tableEndSize(c.records, c.bytes)
}

// Depth returns the number of open tables.
func (t *Totals) Depth() int { return len(t.open) }

// Set copies the totals into m (every open table ended first).
func (t *Totals) Set(m *Manifest) {
	for len(t.open) > 0 {
		t.EndTable()
	}
	m.TableCount, m.RecordCount, m.DataBytes = t.Tables, t.Records, t.Bytes
}

// totalsOf returns the format 3 totals of tables declared in path order.
func totalsOf(tables []TableInfo) Totals {
	var tt Totals
	var open [][]string
	for _, t := range tables {
		p := t.Path()
		for len(open) > 0 && !isPrefix(open[len(open)-1], p) {
			open = open[:len(open)-1]
			tt.EndTable()
		}
		open = append(open, p)
		tt.StartTable(t.Name, t.Sequence)
		tt.Records += t.Records
		tt.Bytes += t.Bytes
		tt.open[len(tt.open)-1] = tableCount{t.Records, t.Bytes}
	}
	for len(tt.open) > 0 {
		tt.EndTable()
	}
	return tt
}

// manifestJSON is the JSON form of a Manifest.
type manifestJSON struct {
	Format          int           `json:"format"`
	Created         time.Time     `json:"created"`
	Product         string        `json:"product"`
	Release         string        `json:"release"`
	RegistryDigest  string        `json:"registry_digest"`
	DataVersion     string        `json:"data_version"`
	LastUpgradeHook *int          `json:"last_upgrade_hook,omitempty"`
	SignedBy        string        `json:"signed_by,omitempty"`
	Applied         []AppliedHook `json:"applied"`
	Covered         []int         `json:"covered,omitempty"`
	Tables          *[]tableJSON  `json:"tables,omitempty"`
	TableCount      *int64        `json:"table_count,omitempty"`
	RecordCount     *int64        `json:"record_count,omitempty"`
	DataBytes       *int64        `json:"data_bytes,omitempty"`
	Config          []ConfigFile  `json:"config"`
}

// tableJSON is a table of the manifest: "name" in format 1, the encoded
// "path" in format 2.
type tableJSON struct {
	Name     string `json:"name,omitempty"`
	Path     string `json:"path,omitempty"`
	Records  int64  `json:"records"`
	Bytes    int64  `json:"bytes"`
	Sequence uint64 `json:"sequence,omitempty"`
}

// MarshalJSON returns the manifest's JSON form in its format version
// (FormatVersion when unset).
func (m Manifest) MarshalJSON() ([]byte, error) {
	j := manifestJSON{
		Format: m.Format, Created: m.Created, Product: m.Product, Release: m.Release,
		RegistryDigest: m.RegistryDigest, DataVersion: m.DataVersion,
		LastUpgradeHook: m.LastUpgradeHook, Applied: m.Applied, Covered: m.Covered, Config: m.Config,
		SignedBy: m.SignedBy,
	}
	if j.Format == 0 {
		j.Format = FormatUnsigned
	}
	if j.Format >= 3 {
		j.TableCount, j.RecordCount, j.DataBytes = &m.TableCount, &m.RecordCount, &m.DataBytes
		return json.Marshal(j)
	}
	tables := make([]tableJSON, 0, len(m.Tables))
	j.Tables = &tables
	for _, t := range m.Tables {
		tj := tableJSON{Records: t.Records, Bytes: t.Bytes, Sequence: t.Sequence}
		if j.Format == 1 {
			tj.Name = t.Name
		} else {
			tj.Path = t.String()
		}
		tables = append(tables, tj)
	}
	return json.Marshal(j)
}

// UnmarshalJSON parses a manifest strictly: known keys only, spelled
// exactly, each once (see ParseManifest for the checks of its content).
func (m *Manifest) UnmarshalJSON(data []byte) error {
	if err := checkKeys(data); err != nil {
		return err
	}
	var j manifestJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	out := Manifest{
		Format: j.Format, Created: j.Created, Product: j.Product, Release: j.Release,
		RegistryDigest: j.RegistryDigest, DataVersion: j.DataVersion,
		LastUpgradeHook: j.LastUpgradeHook, Applied: j.Applied, Covered: j.Covered, Config: j.Config,
		SignedBy: j.SignedBy,
	}
	if j.Covered != nil && len(j.Covered) == 0 {
		return errors.New(`"covered" is empty: leave it out`)
	}
	if j.Format >= 3 {
		if j.Tables != nil || j.TableCount == nil || j.RecordCount == nil || j.DataBytes == nil {
			return fmt.Errorf("format %d has \"table_count\", \"record_count\" and \"data_bytes\", and no \"tables\"", j.Format)
		}
		out.TableCount, out.RecordCount, out.DataBytes = *j.TableCount, *j.RecordCount, *j.DataBytes
		*m = out
		return nil
	}
	if j.Tables == nil || j.TableCount != nil || j.RecordCount != nil || j.DataBytes != nil {
		return fmt.Errorf("format %d has \"tables\", and no totals", j.Format)
	}
	out.Tables = make([]TableInfo, 0, len(*j.Tables))
	for _, tj := range *j.Tables {
		t := TableInfo{Records: tj.Records, Bytes: tj.Bytes, Sequence: tj.Sequence}
		switch {
		case j.Format == 1 && tj.Path == "":
			t.Name = tj.Name
		case j.Format != 1 && tj.Name == "":
			p, err := DecodePath(tj.Path)
			if err != nil {
				return err
			}
			t.Name = p[len(p)-1]
			if len(p) > 1 {
				t.Parent = p[:len(p)-1]
			}
		default:
			return fmt.Errorf("a table of format %d has \"path\" or \"name\" where the other is expected", j.Format)
		}
		out.Tables = append(out.Tables, t)
		out.TableCount++
		out.RecordCount += t.Records
		out.DataBytes += t.Bytes
	}
	*m = out
	return nil
}

// ParseManifest parses and checks a MANIFEST.json of any supported format
// version.
func ParseManifest(data []byte) (*Manifest, error) {
	var version struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &version); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if version.Format < 1 || version.Format > FormatVersion {
		return nil, fmt.Errorf("unsupported format version %d (want 1 to %d; a newer migrator may read it)", version.Format, FormatVersion)
	}
	var m Manifest
	if err := m.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("malformed manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// maxJSONDepth bounds the nesting of the manifest's JSON (it needs 3).
const maxJSONDepth = 8

// checkKeys refuses JSON whose objects repeat a key or spell one with
// anything but [a-z0-9_]: encoding/json would take the last of two equal
// keys and match keys case-insensitively (Unicode folding included), so
// two readers could see two different manifests.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return checkValue(dec, 0)
}

func checkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		// encoding/json leaves a field at its zero value for null: a
		// "sequence": null would read as 0. No field of the manifest is
		// nullable; an absent optional field is omitted.
		return errors.New("null is not a value of any manifest field: omit an optional field instead")
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key := tok.(string)
			for i := 0; i < len(key); i++ {
				if c := key[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
					return fmt.Errorf("key %s: keys are lower-case [a-z0-9_]", strconv.Quote(key))
				}
			}
			if seen[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			seen[key] = true
			if err := checkValue(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := checkValue(dec, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
