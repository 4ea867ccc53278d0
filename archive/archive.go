// Package archive reads and writes hookreg backup archives: one file holding
// a product's tables, its upgrade metadata and its configuration files, as
// described in DESIGN.md §6.
//
// An archive is a POSIX tar stream, zstd-compressed by default ([Zstd]) or
// plain ([None]); a reader detects which by the zstd magic number. Its
// members, in this order:
//
//	MANIFEST.json                 the [Manifest]: versions, hooks, tables, config files
//	tables/<table>/000001.rec     the records of each table, in chunks of at most
//	tables/<table>/000002.rec     [ChunkSize] bytes (a larger record gets a chunk
//	...                           of its own), tables in ascending name order
//	config/<path>                 each configuration file, mode kept, in path order
//	SHA256SUMS                    the sha256 of every member above, sha256sum format
//
// A chunk is a sequence of records, each a uvarint key length, the key, a
// uvarint value length and the value, keys strictly ascending within a
// table, so any bytes round-trip exactly. Since SHA256SUMS comes last, a
// truncated archive is always detected, and the members can be checked with
// standard tools:
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
// oversized members, decompression bombs, a manifest that disagrees with the
// content, truncation and bad or missing checksums are refused with an error
// that wraps [ErrInvalid] and names the member. A caller that must not act
// on anything unchecked (a restore) first runs [Verify], then [Read] with a
// [Handler] that loads records as they stream and discards its work when
// Read returns an error: Read re-checks everything, because the file may
// change between the passes.
//
// Limits: a chunk is at most [MaxChunkSize] (one record of the largest key
// and value), MANIFEST.json at most [MaxManifestSize], a configuration file
// at most [MaxConfigSize], SHA256SUMS at most the size its lines need, tar
// headers at most 16 KiB, and what follows the end of the tar stream at most
// 64 KiB of zeros. The zstd decoder's window and memory are capped (32 MiB,
// 64 MiB, instead of the library's 64 GiB), and the decompressed bytes of
// each table are counted against the size the manifest declares, so the
// bytes an archive decompresses to are bounded by what its manifest
// declares, which a caller can check (free space) before writing anything.
// A Reader holds one member at a time plus about 100 bytes per member read
// (its name and checksum, for SHA256SUMS).
//
//	m, err := archive.Verify(f) // every checksum, the structure, the counts
//	...
//	f.Seek(0, io.SeekStart)
//	_, err = archive.Read(f, archive.Handler{
//		Table:  func(t archive.TableInfo) error { return createTable(t.Name) },
//		Record: func(table string, key, value []byte) error { return put(table, key, value) },
//		Config: func(c archive.ConfigFile, data []byte) error { return writeConfig(c, data) },
//	})
package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// FormatVersion is the archive format this package writes and reads.
const FormatVersion = 1

// Member names and limits of the format.
const (
	// ManifestName is the first member.
	ManifestName = "MANIFEST.json"
	// SumsName is the last member.
	SumsName = "SHA256SUMS"
	// TablesDir holds the table chunks: TablesDir + "<table>/000001.rec".
	TablesDir = "tables/"
	// ConfigDir holds the configuration files: ConfigDir + "<path>".
	ConfigDir = "config/"

	// ChunkSize is the largest chunk the Writer produces, unless a single
	// record is larger (it then has a chunk of its own).
	ChunkSize = 4 << 20
	// MaxKeySize is the largest key (bbolt's limit).
	MaxKeySize = 32 << 10
	// MaxValueSize is the largest value.
	MaxValueSize = 16 << 20
	// MaxChunkSize is the largest chunk member a Reader accepts: ChunkSize,
	// or one record of the largest key and value.
	MaxChunkSize = MaxKeySize + MaxValueSize + 2*maxUvarintLen
	// MaxManifestSize is the largest MANIFEST.json a Reader accepts.
	MaxManifestSize = 16 << 20
	// MaxConfigSize is the largest configuration file.
	MaxConfigSize = 16 << 20
	// MaxConfigPathLen is the longest configuration file path.
	MaxConfigPathLen = 1024
	// MaxTableNameLen is the longest table name.
	MaxTableNameLen = 128

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
type Manifest struct {
	// Format is FormatVersion; the Writer sets it.
	Format int `json:"format"`
	// Created is when the backup was taken (UTC, whole seconds); it is also
	// the modification time of every member. Set it for deterministic
	// archives; the Writer uses the current time when it is zero.
	Created time.Time `json:"created"`
	// Product names the product the data belongs to.
	Product string `json:"product"`
	// Release is the release of the migrator that wrote the archive.
	Release string `json:"release"`
	// RegistryDigest is that migrator's registry digest (hook.Registry.Digest).
	RegistryDigest string `json:"registry_digest"`
	// DataVersion is the version of the data.
	DataVersion string `json:"data_version"`
	// LastUpgradeHook is the number of the last applied hook; nil for data
	// from before hooks were tracked.
	LastUpgradeHook *int `json:"last_upgrade_hook,omitempty"`
	// Applied lists the applied hooks, as the upgrade metadata records them.
	Applied []AppliedHook `json:"applied"`
	// Tables lists every table in the archive in strictly ascending name
	// order, reserved tables ("_hookreg", "_config") included.
	Tables []TableInfo `json:"tables"`
	// Config lists the configuration files in strictly ascending path order.
	Config []ConfigFile `json:"config"`
}

// AppliedHook is the record of one applied upgrade hook.
type AppliedHook struct {
	Num            int       `json:"num"`
	Digest         string    `json:"digest"`
	Release        string    `json:"release"`
	AppliedAt      time.Time `json:"applied_at"`
	Mode           string    `json:"mode"`
	DigestMismatch bool      `json:"digest_mismatch,omitempty"`
}

// TableInfo declares one table: its name, its number of records and their
// encoded size (the sum of RecordSize over its records).
type TableInfo struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

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

// ValidTableName returns an error unless name is a valid table name: 1 to 128 bytes
// of [A-Za-z0-9._-], optionally after a leading "_" (reserved tables), and
// not "." or "..".
func ValidTableName(name string) error {
	if name == "" || len(name) > MaxTableNameLen {
		return fmt.Errorf("table name %q: length must be 1 to %d bytes", name, MaxTableNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("table name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("table name %q: byte %q is not allowed (want [A-Za-z0-9._-])", name, c)
		}
	}
	return nil
}

// ValidConfigPath returns an error unless p is a valid configuration file path: a
// relative, slash-separated path without "." or ".." elements, empty
// elements, backslashes or control characters, at most 1024 bytes.
func ValidConfigPath(p string) error {
	if p == "" || len(p) > MaxConfigPathLen {
		return fmt.Errorf("config path %q: length must be 1 to %d bytes", p, MaxConfigPathLen)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("config path %q is absolute", p)
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("config path %q: byte %q is not allowed", p, c)
		}
	}
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "..":
			return fmt.Errorf("config path %q escapes the config directory", p)
		case "", ".":
			return fmt.Errorf("config path %q is not clean", p)
		}
	}
	if !fs.ValidPath(p) {
		return fmt.Errorf("config path %q is not a valid path", p)
	}
	return nil
}

// check validates a manifest, as written or as read.
func (m *Manifest) check() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("unsupported format version %d (want %d)", m.Format, FormatVersion)
	}
	if m.Created.IsZero() {
		return errors.New("created is missing")
	}
	for _, f := range [...]struct{ name, v string }{{"product", m.Product}, {"release", m.Release}, {"data_version", m.DataVersion}} {
		if f.v == "" {
			return fmt.Errorf("%s is missing", f.name)
		}
	}
	for i, t := range m.Tables {
		if err := ValidTableName(t.Name); err != nil {
			return err
		}
		if i > 0 && m.Tables[i-1].Name >= t.Name {
			return fmt.Errorf("table %q: tables must be unique and in ascending name order (after %q)", t.Name, m.Tables[i-1].Name)
		}
		if t.Records < 0 || t.Bytes < 0 || t.Bytes < 3*t.Records || (t.Records == 0) != (t.Bytes == 0) {
			return fmt.Errorf("table %q: impossible size: %d records in %d bytes", t.Name, t.Records, t.Bytes)
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
				return fmt.Errorf("config file %q: its directory %q is a file", c.Path, dir)
			}
		}
		if i > 0 && m.Config[i-1].Path >= c.Path {
			return fmt.Errorf("config file %q: config files must be unique and in ascending path order (after %q)", c.Path, m.Config[i-1].Path)
		}
		if c.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("config file %q: mode %v is not a plain permission", c.Path, c.Mode)
		}
		if c.Size < 0 || c.Size > MaxConfigSize {
			return fmt.Errorf("config file %q: size %d is outside 0 to %d bytes", c.Path, c.Size, MaxConfigSize)
		}
	}
	return nil
}

func chunkName(table string, n int64) string {
	return fmt.Sprintf("%s%s/%06d.rec", TablesDir, table, n)
}
