package archive_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/archive"
)

// stream builds a format 3 table stream entry by entry.
type stream []byte

func (s stream) start(name string, seq uint64) stream {
	s = append(s, 0, 1)
	s = binary.AppendUvarint(s, uint64(len(name)))
	s = append(s, name...)
	return binary.AppendUvarint(s, seq)
}

func (s stream) rec(key, value string) stream {
	s = binary.AppendUvarint(s, uint64(len(key)))
	s = append(s, key...)
	s = binary.AppendUvarint(s, uint64(len(value)))
	return append(s, value...)
}

func (s stream) end(records, size int) stream {
	s = append(s, 0, 2)
	s = binary.AppendUvarint(s, uint64(records))
	return binary.AppendUvarint(s, uint64(size))
}

// recSize is the entry size of a record.
func recSize(key, value string) int {
	return int(archive.RecordSize([]byte(key), []byte(value)))
}

// v3Base is a valid format 3 archive: table a (records k1, k3 around
// the nested table a/k2, which holds x) and table b (empty).
func v3Base(t testing.TB) []member { return v3BaseSigned(t, "", nil) }

// v3BaseSigned is v3Base, signed by signedBy with sign when sign is not
// nil (format 4).
func v3BaseSigned(t testing.TB, signedBy string, sign func([]byte) ([]byte, error)) []member {
	var w bytes.Buffer
	m := archive.Manifest{Created: created, Product: "p", Release: "1.0.0", DataVersion: "1.0.0", SignedBy: signedBy}
	var tt archive.Totals
	tt.StartTable("a", 0)
	tt.Record([]byte("k1"), []byte("v1"))
	tt.StartTable("k2", 5)
	tt.Record([]byte("x"), []byte(""))
	tt.EndTable()
	tt.Record([]byte("k3"), []byte("v3"))
	tt.EndTable()
	tt.StartTable("b", 0)
	tt.EndTable()
	tt.Set(&m)
	m.Config = []archive.ConfigFile{{Path: "app.conf", Mode: 0o644, Size: 2}}
	aw, err := archive.NewWriter(&w, m, archive.Options{Compression: archive.None, ChunkSize: 12, Sign: sign})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return aw.StartTable([]string{"a"}, 0) },
		func() error { return aw.Record([]byte("k1"), []byte("v1")) },
		func() error { return aw.StartTable([]string{"a", "k2"}, 5) },
		func() error { return aw.Record([]byte("x"), []byte("")) },
		func() error { return aw.EndTable() },
		func() error { return aw.Record([]byte("k3"), []byte("v3")) },
		func() error { return aw.StartTable([]string{"b"}, 0) },
		func() error { return aw.Config("app.conf", 0o644, []byte("x\n")) },
		aw.Close,
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return unpack(t, w.Bytes())
}

// withStream replaces the table chunks by one chunk holding s.
func withStream(ms []member, s stream) []member {
	var out []member
	for _, m := range ms {
		if strings.HasPrefix(m.hdr.Name, archive.TablesDir) {
			if m.hdr.Name == archive.TablesDir+"000001.rec" {
				out = append(out, regular(m.hdr.Name, s))
			}
			continue
		}
		out = append(out, m)
	}
	return out
}

// totals sets the manifest's totals.
func totals(t testing.TB, ms []member, tables, records, size int) []member {
	return editManifest(t, ms, func(m map[string]any) {
		m["table_count"], m["record_count"], m["data_bytes"] = tables, records, size
	})
}

// good is the base's stream, in one chunk.
func goodStream() stream {
	return stream(nil).start("a", 0).rec("k1", "v1").start("k2", 5).rec("x", "").end(1, recSize("x", "")).
		rec("k3", "v3").end(2, recSize("k1", "v1")+recSize("k3", "v3")).start("b", 0).end(0, 0)
}

func v3Cases() []hostileCase {
	edit := func(fn func(t testing.TB, ms []member) []member) func(testing.TB, []member) []byte {
		return func(t testing.TB, ms []member) []byte { return pack(t, fn(t, ms), true) }
	}
	// one puts s in one chunk with totals that match it, so that only
	// its structure is wrong.
	one := func(s stream, tables, records int) func(testing.TB, []member) []byte {
		return edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, s), tables, records, len(s))
		})
	}
	g := goodStream()
	pad := strings.Repeat("v", 20) // a value that makes the totals possible
	return []hostileCase{
		{"v3-good-one-chunk", one(g, 3, 3), "\x00"}, // accepted: checked apart
		{"v3-more-records", edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, g), 3, 4, len(g))
		}), `the table data holds 3 tables, 3 records and 43 bytes, the manifest declares 3, 4 and 43`},
		{"v3-fewer-records", edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, g), 3, 2, len(g))
		}), `more than the 2 records the manifest declares`},
		{"v3-fewer-tables", edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, g), 2, 3, len(g))
		}), `more than the 2 tables the manifest declares`},
		{"v3-fewer-bytes", edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, g), 3, 3, len(g)-1)
		}), `more than the 42 bytes of table data the manifest declares`},
		{"v3-impossible-totals", edit(func(t testing.TB, ms []member) []member {
			return totals(t, withStream(ms, g), 0, 3, len(g))
		}), `impossible totals`},
		{"v3-manifest-lists-tables", edit(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) { m["tables"] = []any{} })
		}), `format 3 has "table_count", "record_count" and "data_bytes", and no "tables"`},
		{"v3-tables-out-of-order", one(stream(nil).start("b", 0).end(0, 0).start("a", 0).end(0, 0), 2, 0),
			`table "a" is not after "b", the last top-level table`},
		{"v3-duplicate-table", one(stream(nil).start("a", 0).end(0, 0).start("a", 0).end(0, 0), 2, 0),
			`table "a" is not after "a"`},
		{"v3-key-equals-nested-table", one(stream(nil).start("a", 0).rec("k", "v").start("k", 0).end(0, 0).end(1, recSize("k", "v")), 2, 1),
			`table "a/k" is not after "k", the last entry of table "a"`},
		{"v3-nested-table-equals-key", one(stream(nil).start("a", 0).start("k", 0).end(0, 0).rec("k", "v").end(1, recSize("k", "v")), 2, 1),
			`table "a": record 1: key "k" is not after "k"`},
		{"v3-keys-out-of-order", one(stream(nil).start("a", 0).rec("k2", "").rec("k1", "").end(2, 2*recSize("k1", "")), 1, 2),
			`key "k1" is not after "k2"`},
		{"v3-record-outside-table", one(stream(nil).rec("k", "v").start("a", 0).end(0, 0), 1, 1),
			`record 1 (key "k") outside a table`},
		{"v3-nested-parent-missing", one(stream(nil).start("a", 0).end(0, 0).end(0, 0).start("b", 0).end(0, 0), 2, 0),
			`end of a table outside a table`},
		{"v3-table-not-ended", one(stream(nil).start("a", 0).rec("k", pad).start("l", 0).end(0, 0), 2, 1),
			`table "a" does not end`},
		{"v3-wrong-table-count", one(stream(nil).start("a", 0).rec("k", "v").end(2, recSize("k", "v")), 1, 1),
			`table "a" has 1 records in 4 bytes, its end entry declares 2 in 4`},
		{"v3-unknown-entry", one(append(stream(nil).start("a", 0).rec("k", pad), 0, 9), 1, 1),
			`unknown entry kind 9 after table "a"`},
		{"v3-empty-name", one(stream(nil).start("", 0).rec("k", pad).end(1, recSize("k", pad)), 1, 1),
			`table 1: bad name length`},
		{"v3-truncated-entry", one(append(stream(nil).start("a", 0).rec("k", pad), 0), 1, 1),
			`truncated entry after table "a"`},
		{"v3-chunk-gap", edit(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.TablesDir+"000002.rec")
			return append(ms[:i:i], ms[i+1:]...)
		}), `member "tables/000003.rec": member out of order (want tables/000002.rec)`},
		{"v3-old-member-name", edit(func(t testing.TB, ms []member) []member {
			return insert(ms, 1, regular(archive.TablesDir+"a/000001.rec", chunkData([2]string{"k", "v"})))
		}), `member "tables/a/000001.rec": unknown member (want tables/<000001>.rec)`},
		{"v3-chunk-after-config", edit(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.TablesDir+"000001.rec")
			c := ms[i]
			ms = append(ms[:i:i], ms[i+1:]...)
			return insert(ms, index(ms, archive.SumsName), c)
		}), `member out of order`},
	}
}

func TestHostileFormat3(t *testing.T) {
	base := v3Base(t)
	if len(base) < 6 {
		t.Fatalf("the base has %d members, want several chunks", len(base))
	}
	if _, err := archive.Verify(bytes.NewReader(pack(t, base, false))); err != nil {
		t.Fatalf("the base archive is refused: %v", err)
	}
	for _, tc := range v3Cases() {
		t.Run(tc.name, func(t *testing.T) {
			ms := v3Base(t)
			data := tc.build(t, ms)
			_, err := archive.Verify(bytes.NewReader(data))
			if tc.want == "\x00" {
				if err != nil {
					t.Fatalf("Verify = %v, want a good archive", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v\nwant an error containing %s", err, tc.want)
			}
		})
	}
}

// TestTreeOrder reads a nested table in the middle of its parent's
// records back in order, with the parent current again after it.
func TestTreeOrder(t *testing.T) {
	var got []string
	var open []string
	_, err := archive.Read(bytes.NewReader(pack(t, v3Base(t), false)), archive.Handler{
		Table: func(tb archive.TableInfo) error {
			open = append(open, tb.String())
			got = append(got, fmt.Sprintf("start %s %d", tb, tb.Sequence))
			return nil
		},
		TableEnd: func(tb archive.TableInfo) error {
			open = open[:len(open)-1]
			got = append(got, fmt.Sprintf("end %s %d %d", tb, tb.Records, tb.Bytes))
			return nil
		},
		Record: func(k, v []byte) error {
			got = append(got, fmt.Sprintf("%s %s=%s", open[len(open)-1], k, v))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "start a 0|a k1=v1|start a/k2 5|a/k2 x=|end a/k2 1 3|a k3=v3|end a 2 12|start b 0|end b 0 0"
	if s := strings.Join(got, "|"); s != want {
		t.Errorf("read\n%s\nwant\n%s", s, want)
	}
}

// manyTables writes n tables, half top-level and each of those holding
// one nested table with a record, through a pipe.
func manyTables(w io.Writer, n int, comp archive.Compression) error {
	m := archive.Manifest{Created: created, Product: "p", Release: "1.0.0", DataVersion: "1.0.0"}
	name := func(i int) string { return fmt.Sprintf("table-%09d", i) }
	var tt archive.Totals
	for i := 0; i < n/2; i++ {
		tt.StartTable(name(i), uint64(i))
		tt.StartTable("nested", 0)
		tt.Record([]byte("k"), []byte("v"))
		tt.EndTable()
		tt.EndTable()
	}
	tt.Set(&m)
	aw, err := archive.NewWriter(w, m, archive.Options{Compression: comp})
	if err != nil {
		return err
	}
	path := []string{"", "nested"}
	for i := 0; i < n/2; i++ {
		path[0] = name(i)
		if err := aw.StartTable(path[:1], uint64(i)); err != nil {
			return err
		}
		if err := aw.StartTable(path, 0); err != nil {
			return err
		}
		if err := aw.Record([]byte("k"), []byte("v")); err != nil {
			return err
		}
	}
	return aw.Close()
}

// TestMemoryManyTables streams a million tables (half of them nested)
// through a Writer and a Reader: the live heap does not grow with the
// number of tables, as it did with format 2's manifest (which could not
// even hold them). The 10-million-table run is BenchmarkManyTables.
func TestMemoryManyTables(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	peak := streamTables(t, n, archive.Zstd)
	t.Logf("%d tables: peak live heap %d MiB", n, peak>>20)
	if bound := uint64(48 << 20); peak > bound {
		t.Errorf("%d tables: peak live heap %d MiB, want under %d MiB", n, peak>>20, bound>>20)
	}
}

func streamTables(t testing.TB, n int, comp archive.Compression) uint64 {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(manyTables(pw, n, comp)) }()
	var peak uint64
	var ms runtime.MemStats
	tables := 0
	m, err := archive.Read(pr, archive.Handler{Table: func(archive.TableInfo) error {
		if tables++; tables%(n/8) == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	}})
	pr.CloseWithError(err)
	if err != nil {
		t.Fatal(err)
	}
	if tables != n || m.TableCount != int64(n) {
		t.Fatalf("read %d tables (manifest: %d), want %d", tables, m.TableCount, n)
	}
	return peak
}

// BenchmarkManyTables streams ten million tables through a Writer and a
// Reader (about a minute) and reports the peak live heap.
func BenchmarkManyTables(b *testing.B) {
	for range b.N {
		peak := streamTables(b, 10_000_000, archive.Zstd)
		b.ReportMetric(float64(peak>>20), "MiB-heap")
	}
}

var _ = tar.TypeReg

// TestParentsDeep: the Parent of every table given to Table and TableEnd
// is its path's parent, at every depth, and a Parent kept from an earlier
// call stays as it was while the tables after it come (the reader hands
// one slice to a table's siblings and keeps its own path apart).
func TestParentsDeep(t *testing.T) {
	paths := [][]string{{"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "d"}, {"a", "e"}, {"a", "e", "f"}, {"g"}, {"g", "h"}}
	var w bytes.Buffer
	m := archive.Manifest{Created: created, Product: "p", Release: "1.0.0", DataVersion: "1.0.0"}
	var tt archive.Totals
	depth := 0
	for _, p := range paths {
		for ; depth >= len(p); depth-- {
			tt.EndTable()
		}
		tt.StartTable(p[len(p)-1], 0)
		tt.Record([]byte("0"), []byte(strings.Join(p, "/")))
		depth++
	}
	tt.Set(&m)
	aw, err := archive.NewWriter(&w, m, archive.Options{Compression: archive.None, ChunkSize: 40})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if err := aw.StartTable(p, 0); err != nil {
			t.Fatal(err)
		}
		if err := aw.Record([]byte("0"), []byte(strings.Join(p, "/"))); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	type kept struct {
		parent []string
		want   string
	}
	var all []kept
	var starts, ends []string
	note := func(t archive.TableInfo) string {
		all = append(all, kept{t.Parent, strings.Join(t.Parent, "/")})
		return strings.Join(t.Path(), "/")
	}
	_, err = archive.Read(bytes.NewReader(w.Bytes()), archive.Handler{
		Table:    func(t archive.TableInfo) error { starts = append(starts, note(t)); return nil },
		TableEnd: func(t archive.TableInfo) error { ends = append(ends, note(t)); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(starts, " "), "a a/b a/b/c a/b/d a/e a/e/f g g/h"; got != want {
		t.Errorf("tables started: %s, want %s", got, want)
	}
	if got, want := strings.Join(ends, " "), "a/b/c a/b/d a/b a/e/f a/e a g/h g"; got != want {
		t.Errorf("tables ended: %s, want %s", got, want)
	}
	for i, k := range all {
		if got := strings.Join(k.parent, "/"); got != k.want {
			t.Errorf("call %d: a Parent kept from it reads %q at the end, it was %q", i, got, k.want)
		}
	}
}
