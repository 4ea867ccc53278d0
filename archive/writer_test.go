package archive_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hookreg/hookreg/archive"
)

func twoTables() content {
	return content{
		tables: map[string][]record{
			"a": {{[]byte("k1"), []byte("v1")}, {[]byte("k2"), []byte("v2")}},
			"b": {},
		},
		config: map[string]configData{"x.conf": {0o600, []byte("x")}},
	}
}

// TestWriterChecks feeds a Writer what its manifest does not declare.
func TestWriterChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		feed func(w *archive.Writer) error
		want string
	}{
		{"table-order", func(w *archive.Writer) error {
			return w.Table("b")
		}, `table "b" is not the next table of the manifest (want table "a")`},
		{"record-outside-table", func(w *archive.Writer) error {
			return w.Record([]byte("k"), nil)
		}, "record outside a table"},
		{"too-many-records", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			return w.Record([]byte("k3"), []byte("v3"))
		}, `table "a": more records than the 2 of the manifest`},
		{"keys-not-ascending", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k2"), []byte("v1"))
			return w.Record([]byte("k1"), []byte("v2"))
		}, `table "a": key "k1" is not after "k2"`},
		{"duplicate-key", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			return w.Record([]byte("k1"), []byte("v2"))
		}, `table "a": key "k1" is not after "k1"`},
		{"empty-key", func(w *archive.Writer) error {
			w.Table("a")
			return w.Record(nil, []byte("v"))
		}, `table "a": empty key`},
		{"key-too-large", func(w *archive.Writer) error {
			w.Table("a")
			return w.Record(make([]byte, archive.MaxKeySize+1), nil)
		}, `table "a": key of 32769 bytes exceeds 32768`},
		{"value-too-large", func(w *archive.Writer) error {
			w.Table("a")
			return w.Record([]byte("k"), make([]byte, archive.MaxValueSize+1))
		}, `value of 16777217 bytes exceeds 16777216`},
		{"fewer-records", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			return w.Table("b")
		}, `table "a": wrote 1 records in 6 bytes, the manifest declares 2 in 12`},
		{"other-bytes", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2-longer"))
			return w.Close()
		}, `table "a": wrote 2 records in 19 bytes, the manifest declares 2 in 12`},
		{"table-missing", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			return w.Close()
		}, `table "b" of the manifest was not written`},
		{"config-missing", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			w.Table("b")
			return w.Close()
		}, `config file "x.conf" of the manifest was not written`},
		{"config-unknown", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			w.Table("b")
			return w.Config("y.conf", 0o600, []byte("x"))
		}, `config file "y.conf" is not the next config file of the manifest (want "x.conf")`},
		{"config-mode", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			w.Table("b")
			return w.Config("x.conf", 0o644, []byte("x"))
		}, `config file "x.conf": mode -rw-r--r-- and size 1 differ from the manifest's -rw------- and 1`},
		{"config-size", func(w *archive.Writer) error {
			w.Table("a")
			w.Record([]byte("k1"), []byte("v1"))
			w.Record([]byte("k2"), []byte("v2"))
			w.Table("b")
			return w.Config("x.conf", 0o600, []byte("xy"))
		}, `config file "x.conf": mode -rw------- and size 2 differ from the manifest's -rw------- and 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := archive.NewWriter(io.Discard, twoTables().manifest(), archive.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.feed(w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %s", err, tc.want)
			}
			if err2 := w.Close(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Close after the error = %v, want the same error", err2)
			}
		})
	}
}

func TestWriterManifestChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *archive.Manifest)
		want string
	}{
		{"no-product", func(m *archive.Manifest) { m.Product = "" }, "product is missing"},
		{"no-data-version", func(m *archive.Manifest) { m.DataVersion = "" }, "data_version is missing"},
		{"bad-table-name", func(m *archive.Manifest) { m.Tables[0].Name = strings.Repeat(" ", 86) }, `table name "` + strings.Repeat(" ", 64) + `...": 258 bytes once encoded, the archive format allows 255`},
		{"table-order", func(m *archive.Manifest) { m.Tables[0], m.Tables[1] = m.Tables[1], m.Tables[0] }, `table "a": tables must be unique and in ascending path order (after "b")`},
		{"impossible-size", func(m *archive.Manifest) { m.Tables[0].Bytes = 5 }, `table "a": impossible size: 2 records in 5 bytes`},
		{"config-escapes", func(m *archive.Manifest) { m.Config[0].Path = "a/../../x" }, `config path "a/../../x" escapes the config directory`},
		{"config-absolute", func(m *archive.Manifest) { m.Config[0].Path = "/etc/x" }, `config path "/etc/x" is absolute`},
		{"config-unclean", func(m *archive.Manifest) { m.Config[0].Path = "a//x" }, `config path "a//x" is not clean`},
		{"config-mode", func(m *archive.Manifest) { m.Config[0].Mode |= 0o4000 }, `config file "x.conf": mode`},
		{"config-too-large", func(m *archive.Manifest) { m.Config[0].Size = archive.MaxConfigSize + 1 }, `config file "x.conf": size 16777217 is outside 0 to 16777216 bytes`},
		{"config-file-as-dir", func(m *archive.Manifest) {
			m.Config = append(m.Config, archive.ConfigFile{Path: "x.conf/y", Mode: 0o600})
		}, `config file "x.conf/y": its directory "x.conf" is a file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := twoTables().manifest()
			tc.edit(&m)
			_, err := archive.NewWriter(io.Discard, m, archive.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewWriter = %v, want an error containing %s", err, tc.want)
			}
		})
	}
	if _, err := archive.NewWriter(io.Discard, twoTables().manifest(), archive.Options{Compression: "gzip"}); err == nil {
		t.Error("NewWriter with compression gzip succeeded")
	}
}

// TestLargeRecords round-trips a value of the largest size (a chunk of its
// own, above ChunkSize) between small records.
func TestLargeRecords(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5, 0, 0xff}, archive.MaxValueSize/3)
	c := content{tables: map[string][]record{"t": {
		{[]byte("a"), []byte("small")},
		{bytes.Repeat([]byte("k"), archive.MaxKeySize), big},
		{[]byte("z"), []byte{}},
	}}, config: map[string]configData{}}
	data := write(t, c, archive.Options{})
	var chunks []int64
	for _, m := range unpack(t, decompress(t, data)) {
		if strings.HasPrefix(m.hdr.Name, archive.TablesDir) {
			chunks = append(chunks, m.hdr.Size)
		}
	}
	if len(chunks) != 3 || chunks[1] <= archive.ChunkSize {
		t.Errorf("chunk sizes %v: want the large record alone in a chunk above ChunkSize", chunks)
	}
	_, got, err := read(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.tables["t"]) != 3 || !bytes.Equal(got.tables["t"][1].value, big) || !bytes.Equal(got.tables["t"][2].value, []byte{}) {
		t.Error("the large record did not round-trip")
	}
}

// decompress returns the tar inside a zstd archive.
func decompress(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// limitWriter fails once n bytes were written, as a full disk does.
type limitWriter struct{ n int }

var errFull = errors.New("no space left on device")

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriterOutputError: an error of the underlying writer, met by the
// goroutine that writes the members, reaches the caller (from Record,
// Config or Close) and ends that goroutine.
func TestWriterOutputError(t *testing.T) {
	c := sample(2)
	for _, comp := range []archive.Compression{archive.None, archive.Zstd} {
		size := len(write(t, c, archive.Options{Compression: comp, ChunkSize: 4096}))
		for _, limit := range []int{2000, size / 3, size * 2 / 3, size - 1} {
			w, err := archive.NewWriter(&limitWriter{n: limit}, c.manifest(), archive.Options{Compression: comp, ChunkSize: 4096})
			if err != nil {
				if !errors.Is(err, errFull) {
					t.Fatalf("%s, %d bytes: NewWriter = %v", comp, limit, err)
				}
				continue
			}
			err = func() error {
				for _, name := range sortedKeys(c.tables) {
					if err := w.Table(name); err != nil {
						return err
					}
					for _, r := range c.tables[name] {
						if err := w.Record(r.key, r.value); err != nil {
							return err
						}
					}
				}
				for _, p := range sortedKeys(c.config) {
					if err := w.Config(p, c.config[p].mode, c.config[p].data); err != nil {
						return err
					}
				}
				return w.Close()
			}()
			if !errors.Is(err, errFull) {
				t.Errorf("%s, %d bytes: writing = %v, want the output's error", comp, limit, err)
			}
			w.Abort()
		}
	}
}
