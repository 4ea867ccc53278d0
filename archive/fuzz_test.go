package archive_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hookreg/hookreg/archive"
)

// FuzzReadArchive feeds arbitrary bytes to Read, seeded with valid and
// hostile archives. Read must never panic; every error must wrap ErrInvalid
// (the input is in memory, so no read fails); the configuration files it
// accepts are written with plain path joins (no os.Root), and nothing may
// appear outside the target directory; an accepted archive must verify
// again and survive a rewrite unchanged.
func FuzzReadArchive(f *testing.F) {
	small := content{
		tables: map[string][]record{
			"_hookreg": {{[]byte("data_version"), []byte("5.0.1")}},
			"a":        {{[]byte{0}, []byte{}}, {[]byte{1, 2}, []byte{0xff}}},
			"e":        {},
		},
		config: map[string]configData{"a.conf": {0o644, []byte("x")}, "d/b.conf": {0o600, nil}},
	}
	f.Add(write(f, small, archive.Options{}))
	f.Add(write(f, small, archive.Options{Compression: archive.None, ChunkSize: 4}))
	for _, tc := range hostileCases() {
		if data := tc.build(f, hostileBase(f)); len(data) <= 64<<10 {
			f.Add(data)
		}
	}
	for _, tc := range v3Cases() {
		f.Add(tc.build(f, v3Base(f)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		m, got, err := readConfig(data, func(c archive.ConfigFile, data []byte) error {
			p := filepath.Join(target, filepath.FromSlash(c.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, data, 0o600)
		})
		entries, rerr := os.ReadDir(dir)
		if rerr != nil || len(entries) != 1 || entries[0].Name() != "target" {
			t.Fatalf("after Read (%v), the parent of the target holds %v (%v)", err, entries, rerr)
		}
		if err != nil {
			if !errors.Is(err, archive.ErrInvalid) {
				t.Fatalf("Read = %v, want an error wrapping ErrInvalid", err)
			}
			return
		}
		if vm, err := archive.Verify(bytes.NewReader(data)); err != nil || !reflect.DeepEqual(vm, m) {
			t.Fatalf("Read accepted the archive, Verify = %v, %v", vm, err)
		}
		var rewritten []byte
		if m.Format >= 3 {
			rewritten = replay(t, data)
		} else {
			rewritten = writeManifest(t, *m, got, archive.Options{Compression: archive.None})
		}
		m2, got2, err := read(rewritten)
		if err != nil || !reflect.DeepEqual(m2, m) || !reflect.DeepEqual(got2, got) {
			t.Fatalf("the rewritten archive reads back differently: %v", err)
		}
	})
}

// replay rewrites a format 3 archive through a Writer, table start, record
// and table end as they come (its records may continue after a nested
// table, which a content cannot tell).
func replay(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	var w *archive.Writer
	_, err := archive.Read(bytes.NewReader(data), archive.Handler{
		Manifest: func(m archive.Manifest) (err error) {
			w, err = archive.NewWriter(&buf, m, archive.Options{Compression: archive.None})
			return err
		},
		Table:    func(tb archive.TableInfo) error { return w.StartTable(tb.Path(), tb.Sequence) },
		TableEnd: func(archive.TableInfo) error { return w.EndTable() },
		Record:   func(k, v []byte) error { return w.Record(k, v) },
		Config:   func(c archive.ConfigFile, data []byte) error { return w.Config(c.Path, c.Mode, data) },
	})
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		t.Fatalf("rewriting the archive: %v", err)
	}
	return buf.Bytes()
}
