package archive_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
)

// record is one key/value pair of a table.
type record struct{ key, value []byte }

// content is everything an archive holds besides the manifest's scalars.
type content struct {
	tables map[string][]record
	config map[string]configData
}

type configData struct {
	mode fs.FileMode
	data []byte
}

var created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (c content) manifest() archive.Manifest {
	last := 100
	m := archive.Manifest{
		Created:         created,
		Product:         "mqtt-broker",
		Release:         "5.1.0",
		RegistryDigest:  "h1:abc",
		DataVersion:     "5.0.1",
		LastUpgradeHook: &last,
		Applied: []archive.AppliedHook{
			{Num: 99, Digest: "h1:x", Release: "5.0.1", AppliedAt: created, Mode: "online"},
			{Num: 100, Digest: "h1:y", Release: "5.1.0", AppliedAt: created, Mode: "offline", DigestMismatch: true},
		},
	}
	for _, name := range sortedKeys(c.tables) {
		t := archive.TableInfo{Name: name}
		for _, r := range c.tables[name] {
			t.Records++
			t.Bytes += archive.RecordSize(r.key, r.value)
		}
		m.Tables = append(m.Tables, t)
	}
	for _, p := range sortedKeys(c.config) {
		f := c.config[p]
		m.Config = append(m.Config, archive.ConfigFile{Path: p, Mode: f.mode, Size: int64(len(f.data))})
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// write writes c as an archive.
func write(t testing.TB, c content, opts archive.Options) []byte {
	t.Helper()
	return writeManifest(t, c.manifest(), c, opts)
}

// writeManifest writes c as an archive with manifest m.
func writeManifest(t testing.TB, m archive.Manifest, c content, opts archive.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(c.tables) {
		if err := w.Table(name); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.tables[name] {
			if err := w.Record(r.key, r.value); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range sortedKeys(c.config) {
		if err := w.Config(p, c.config[p].mode, c.config[p].data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// read reads an archive back into a content.
func read(data []byte) (*archive.Manifest, content, error) {
	return readConfig(data, nil)
}

// readConfig reads an archive back into a content, passing every
// configuration file also to config, when not nil, as it streams.
func readConfig(data []byte, config func(c archive.ConfigFile, data []byte) error) (*archive.Manifest, content, error) {
	got := content{tables: map[string][]record{}, config: map[string]configData{}}
	var open []string
	m, err := archive.Read(bytes.NewReader(data), archive.Handler{
		Table: func(t archive.TableInfo) error {
			open = append(open, t.String())
			got.tables[t.String()] = []record{}
			return nil
		},
		TableEnd: func(t archive.TableInfo) error {
			if len(open) == 0 || open[len(open)-1] != t.String() {
				return fmt.Errorf("table %q ends, %q is open", t, open)
			}
			if n := int64(len(got.tables[t.String()])); n != t.Records {
				return fmt.Errorf("table %q ends with %d records, %d were read", t, t.Records, n)
			}
			open = open[:len(open)-1]
			return nil
		},
		Record: func(key, value []byte) error {
			table := open[len(open)-1]
			got.tables[table] = append(got.tables[table], record{key, value})
			return nil
		},
		Config: func(c archive.ConfigFile, data []byte) error {
			got.config[c.Path] = configData{c.Mode, data}
			if config != nil {
				return config(c, data)
			}
			return nil
		},
	})
	return m, got, err
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// randomTable returns n records with distinct random binary keys, sorted,
// values of random lengths (some empty).
func randomTable(r *rand.Rand, n, maxValue int) []record {
	seen := map[string]bool{}
	recs := []record{}
	for len(recs) < n {
		k := randomBytes(r, 1+r.IntN(40))
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		v := []byte{}
		if r.IntN(5) > 0 {
			v = randomBytes(r, r.IntN(maxValue+1))
		}
		recs = append(recs, record{k, v})
	}
	sort.Slice(recs, func(i, j int) bool { return bytes.Compare(recs[i].key, recs[j].key) < 0 })
	return recs
}

func sample(seed uint64) content {
	r := rand.New(rand.NewPCG(seed, 1))
	c := content{
		tables: map[string][]record{
			"_hookreg": {{[]byte("data_version"), []byte("5.0.1")}, {[]byte("last_upgrade_hook"), []byte("100")}},
			"acl":      randomTable(r, 500, 300),
			"empty":    {},
			"users":    randomTable(r, 2000, 100),
			"big":      {{[]byte("k"), randomBytes(r, 3000)}, {[]byte("l"), []byte{}}, {[]byte("m"), randomBytes(r, 10)}},
		},
		config: map[string]configData{
			"broker.conf":      {0o644, []byte("listeners.tcp = 1883\n")},
			"certs/server.key": {0o600, randomBytes(r, 700)},
			"empty.conf":       {0o640, []byte{}},
			"scripts/run.sh":   {0o755, []byte("#!/bin/sh\n")},
		},
	}
	for i := range 20 {
		c.tables[fmt.Sprintf("t%02d", i)] = randomTable(r, r.IntN(30), 20)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	c := sample(1)
	for _, opts := range []archive.Options{
		{},
		{Compression: archive.None},
		{Compression: archive.Zstd, ChunkSize: 1000},
		{Compression: archive.None, ChunkSize: 1},
	} {
		t.Run(fmt.Sprintf("%s/%d", opts.Compression, opts.ChunkSize), func(t *testing.T) {
			data := write(t, c, opts)
			m, got, err := read(data)
			if err != nil {
				t.Fatal(err)
			}
			want := archive.Totaled(c.manifest())
			if !reflect.DeepEqual(*m, want) {
				t.Errorf("manifest:\n got %+v\nwant %+v", *m, want)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("content differs after the round trip")
			}
			vm, err := archive.Verify(bytes.NewReader(data))
			if err != nil || !reflect.DeepEqual(vm, m) {
				t.Errorf("Verify = %v, %v; want the manifest", vm, err)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	c := sample(2)
	for _, comp := range []archive.Compression{archive.Zstd, archive.None} {
		a := write(t, c, archive.Options{Compression: comp})
		b := write(t, c, archive.Options{Compression: comp})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two writes of the same content differ", comp)
		}
	}
	if a, b := write(t, sample(2), archive.Options{}), write(t, sample(3), archive.Options{}); bytes.Equal(a, b) {
		t.Error("different content gives the same bytes")
	}
}

func TestParseCompression(t *testing.T) {
	for _, s := range []string{"zstd", "none"} {
		if c, err := archive.ParseCompression(s); err != nil || string(c) != s {
			t.Errorf("ParseCompression(%q) = %q, %v", s, c, err)
		}
	}
	if _, err := archive.ParseCompression("gzip"); err == nil {
		t.Error("ParseCompression(gzip) succeeded")
	}
}

func TestErrInvalid(t *testing.T) {
	_, err := archive.Verify(bytes.NewReader([]byte("not an archive at all")))
	if !errors.Is(err, archive.ErrInvalid) {
		t.Fatalf("Verify(garbage) = %v, want ErrInvalid", err)
	}
}

// TestGolden pins the bytes of two archives: release fixtures are compared
// byte for byte, so a change of the format or of the zstd library's output
// must be noticed here first (and then needs a new format version or a
// decision about the fixtures).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		format int
		comp   archive.Compression
		want   string
	}{
		{3, archive.Zstd, "f4759db2c43399fba427b4e3e12275666571339229de06a3b42a8618a87749c5"},
		{3, archive.None, "716d27a6bd95510d57b9e0ee4a889298c58fe995fa32a9217f33b0fe7f5b681f"},
		// Format 2, as this package wrote it before format 3.
		{2, archive.Zstd, "0b4d204906df52fb201a2864ceeb4220338b3b5c9a5c31227a370226d8823637"},
		{2, archive.None, "e88e71a22c561bbe9b3aa0f3072a2f2f36255d7ac3f970ba834a6afb26a1c5c3"},
	} {
		got := fmt.Sprintf("%x", sha256.Sum256(write(t, sample(8), archive.WithFormat(archive.Options{Compression: tc.comp}, tc.format))))
		if got != tc.want {
			t.Errorf("format %d, %s: the archive of sample(8) has sha256 %s, want %s", tc.format, tc.comp, got, tc.want)
		}
	}
}

// TestReadsFormat1 reads the release fixtures, written in format 1 and
// never changed: a newer reader keeps reading every earlier format.
func TestReadsFormat1(t *testing.T) {
	paths, err := filepath.Glob("../testdata/releases/*.tar.zst")
	if err != nil || len(paths) < 4 {
		t.Fatalf("release fixtures: %v %v", paths, err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, c, err := read(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if m.Format != 1 || len(c.tables["users"]) == 0 {
			t.Errorf("%s: format %d, %d users", p, m.Format, len(c.tables["users"]))
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"mqtt-broker":    "mqtt-broker",
		"5.1.0 (hotfix)": "5.1.0 (hotfix)",
		"ünïcode":        "ünïcode",
		"":               `""`,
		" lead":          `" lead"`,
		"\x1b[31mred":    `"\x1b[31mred"`,
		"line\nbreak":    `"line\nbreak"`,
		"\xff":           `"\xff"`,
		`quo"te`:         `"quo\"te"`,
		"bidi\u202e":     `"bidi\u202e"`,
	} {
		if got := archive.Escape(in); got != want {
			t.Errorf("Escape(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNameEncoding(t *testing.T) {
	for name, want := range map[string]string{
		"users":         "users",
		"user sessions": "user%20sessions",
		"acl.v2":        "acl%2Ev2",
		"a/b":           "a%2Fb",
		"..":            "%2E%2E",
		"000001.rec":    "000001%2Erec",
		"%41":           "%2541",
		"\xff\x00":      "%FF%00",
	} {
		got := archive.EncodeName(name)
		if got != want {
			t.Errorf("EncodeName(%q) = %q, want %q", name, got, want)
		}
		if back, err := archive.DecodeName(got); err != nil || back != name {
			t.Errorf("DecodeName(%q) = %q, %v", got, back, err)
		}
		if n := archive.EncodedLen(name); n != len(want) {
			t.Errorf("encodedLen(%q) = %d, want %d", name, n, len(want))
		}
	}
	for _, bad := range []string{"", "a b", "%ff", "%41", "%4", "%", "a.b", "a/b"} {
		if _, err := archive.DecodeName(bad); err == nil {
			t.Errorf("DecodeName(%q) accepted a non-canonical form", bad)
		}
	}
}
