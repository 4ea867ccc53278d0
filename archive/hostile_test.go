package archive_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hookreg/hookreg/archive"
)

// member is one tar member of an archive under test.
type member struct {
	hdr  tar.Header
	data []byte
}

// unpack splits a plain-tar archive into its members.
func unpack(t testing.TB, data []byte) []member {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var ms []member
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, member{*hdr, body})
	}
}

// pack writes members as a plain tar. With resum, SHA256SUMS is rewritten
// to match the other members (not the signature after it), so that a case
// is caught by its structure rather than by a checksum.
func pack(t testing.TB, ms []member, resum bool) []byte {
	t.Helper()
	if resum {
		var sums bytes.Buffer
		for _, m := range ms {
			if m.hdr.Name != archive.SumsName && m.hdr.Name != archive.SigName && m.hdr.Typeflag == tar.TypeReg {
				fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(m.data), m.hdr.Name)
			}
		}
		for i := range ms {
			if ms[i].hdr.Name == archive.SumsName {
				ms[i].data = sums.Bytes()
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		hdr := m.hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(m.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// headerOnly writes members as a tar that stops after the last header, as
// an archive declaring a member it never delivers.
func headerOnly(t testing.TB, ms []member, last tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(pack(t, ms, false))
	buf.Truncate(buf.Len() - 1024) // the end-of-archive blocks
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&last); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func index(ms []member, name string) int {
	for i, m := range ms {
		if m.hdr.Name == name {
			return i
		}
	}
	panic("no member " + name)
}

func insert(ms []member, i int, m ...member) []member {
	return append(ms[:i:i], append(m, ms[i:]...)...)
}

func regular(name string, data []byte) member {
	return member{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatPAX}, data}
}

func special(name string, typ byte, link string) member {
	return member{tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, Devmajor: 1, Devminor: 3}, nil}
}

// editManifest rewrites MANIFEST.json.
func editManifest(t testing.TB, ms []member, edit func(m map[string]any)) []member {
	t.Helper()
	i := index(ms, archive.ManifestName)
	var m map[string]any
	if err := json.Unmarshal(ms[i].data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ms[i].data = data
	return ms
}

// chunkData encodes records as a chunk.
func chunkData(recs ...[2]string) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, byte(len(r[0])))
		b = append(b, r[0]...)
		b = append(b, byte(len(r[1])))
		b = append(b, r[1]...)
	}
	return b
}

// hostileBase is a small valid archive: tables a (2 records in 2 chunks), b
// (1 record), empty (none); config files app.conf and dir/x.conf.
func hostileBase(t testing.TB) []member {
	c := content{
		tables: map[string][]record{
			"a":     {{[]byte("k1"), []byte("v1")}, {[]byte("k2"), []byte("v2")}},
			"b":     {{[]byte("x"), []byte("")}},
			"empty": {},
		},
		config: map[string]configData{
			"app.conf":   {0o644, []byte("a = 1\n")},
			"dir/x.conf": {0o600, []byte("secret\n")},
		},
	}
	return unpack(t, write(t, c, archive.WithFormat(archive.Options{Compression: archive.None, ChunkSize: 6}, 2)))
}

type hostileCase struct {
	name string
	// build returns the archive bytes from the base members.
	build func(t testing.TB, ms []member) []byte
	// want is found in the error text (it names the member).
	want string
}

func hostileCases() []hostileCase {
	resum := func(edit func(t testing.TB, ms []member) []member) func(testing.TB, []member) []byte {
		return func(t testing.TB, ms []member) []byte { return pack(t, edit(t, ms), true) }
	}
	keep := func(edit func(t testing.TB, ms []member) []member) func(testing.TB, []member) []byte {
		return func(t testing.TB, ms []member) []byte { return pack(t, edit(t, ms), false) }
	}
	return []hostileCase{
		{"absolute-path", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, regular("/etc/passwd", []byte("x")))
		}), `member "/etc/passwd": absolute path`},
		{"path-traversal", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, index(ms, "config/app.conf"), regular("config/../../evil", []byte("x")))
		}), `member "config/../../evil": path traversal`},
		{"symlink", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, index(ms, "config/app.conf"), special("config/link", tar.TypeSymlink, "/etc/passwd"))
		}), `member "config/link": symbolic link to "/etc/passwd"`},
		{"hardlink", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, index(ms, "config/app.conf"), special("config/hard", tar.TypeLink, "config/app.conf"))
		}), `member "config/hard": hard link`},
		{"char-device", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, special("config/null", tar.TypeChar, ""))
		}), `member "config/null": device file`},
		{"block-device", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, special("config/sda", tar.TypeBlock, ""))
		}), `member "config/sda": device file`},
		{"fifo", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, special("config/pipe", tar.TypeFifo, ""))
		}), `member "config/pipe": fifo`},
		{"directory", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, special("config/", tar.TypeDir, ""))
		}), `member "config/": directory member`},
		{"pax-global-header", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, member{tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"path": "x"}}, nil})
		}), `member "x": member of tar type 'g' (want a regular file)`},
		{"huge-tar-header", resum(func(_ testing.TB, ms []member) []member {
			ms[1].hdr.Format = tar.FormatPAX
			ms[1].hdr.PAXRecords = map[string]string{"comment": strings.Repeat("x", 20000)}
			return ms
		}), `member "tables/a/000001.rec": tar header of 21593 bytes exceeds 16384`},
		{"duplicate-member", resum(func(_ testing.TB, ms []member) []member {
			i := index(ms, "config/app.conf")
			return insert(ms, i+1, ms[i])
		}), `member "config/app.conf": duplicate member`},
		{"duplicate-manifest", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, ms[0])
		}), `member "MANIFEST.json": duplicate member`},
		{"unknown-member", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, regular("README", []byte("hi")))
		}), `member "README": unknown member`},
		{"unknown-table-member", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, regular("tables/a/1.rec", []byte("x")))
		}), `member "tables/a/1.rec": unknown member`},
		{"table-not-in-manifest", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, 1, regular("tables/zzz/000001.rec", chunkData([2]string{"k", "v"})))
		}), `member "tables/zzz/000001.rec": table "zzz" is not in the manifest`},
		{"config-not-in-manifest", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, index(ms, "config/app.conf"), regular("config/aaa.conf", []byte("x")))
		}), `member "config/aaa.conf": config file "aaa.conf" is not in the manifest`},
		{"manifest-not-first", resum(func(_ testing.TB, ms []member) []member {
			ms[0], ms[1] = ms[1], ms[0]
			return ms
		}), `member "tables/a/000001.rec": the first member must be MANIFEST.json`},
		{"chunks-out-of-order", resum(func(_ testing.TB, ms []member) []member {
			ms[1], ms[2] = ms[2], ms[1]
			return ms
		}), `member "tables/a/000002.rec": member out of order`},
		{"tables-out-of-order", resum(func(_ testing.TB, ms []member) []member {
			i := index(ms, "tables/b/000001.rec")
			ms = insert(ms, 1, ms[i])
			return append(ms[:i+1], ms[i+2:]...)
		}), `member "tables/b/000001.rec": member out of order`},
		{"table-after-config", resum(func(_ testing.TB, ms []member) []member {
			i := index(ms, "tables/b/000001.rec")
			b := ms[i]
			ms = append(ms[:i], ms[i+1:]...)
			return insert(ms, index(ms, "config/dir/x.conf"), b)
		}), `member "config/app.conf": table "b" has 0 records in 0 bytes, the manifest declares 1 in 3`},
		{"empty-table-after-config", resum(func(_ testing.TB, ms []member) []member {
			return insert(ms, index(ms, "config/dir/x.conf"), regular("tables/empty/000001.rec", chunkData([2]string{"k", "v"})))
		}), `member "tables/empty/000001.rec": table member after the config files`},
		{"config-out-of-order", resum(func(_ testing.TB, ms []member) []member {
			i := index(ms, "config/app.conf")
			ms[i], ms[i+1] = ms[i+1], ms[i]
			return ms
		}), `member "config/dir/x.conf": member out of order`},
		{"member-after-sums", keep(func(_ testing.TB, ms []member) []member {
			return append(ms, regular("late", []byte("x")))
		}), `member "late": member after SHA256SUMS`},
		{"oversized-manifest", func(t testing.TB, ms []member) []byte {
			return headerOnly(t, nil, tar.Header{Typeflag: tar.TypeReg, Name: archive.ManifestName, Size: archive.MaxManifestSize + 1, Mode: 0o644})
		}, `member "MANIFEST.json": size 16777217 exceeds 16777216`},
		{"oversized-chunk", func(t testing.TB, ms []member) []byte {
			ms = editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[0].(map[string]any)["bytes"] = 1 << 40
			})
			return headerOnly(t, ms[:1], tar.Header{Typeflag: tar.TypeReg, Name: "tables/a/000001.rec", Size: archive.MaxChunkSize + 1, Mode: 0o644})
		}, `member "tables/a/000001.rec": chunk of 16810005 bytes exceeds 16810004`},
		{"chunk-beyond-declared-bytes", func(t testing.TB, ms []member) []byte {
			return headerOnly(t, ms[:1], tar.Header{Typeflag: tar.TypeReg, Name: "tables/a/000001.rec", Size: 1 << 20, Mode: 0o644})
		}, `member "tables/a/000001.rec": table "a" has more than the 12 bytes the manifest declares`},
		{"oversized-config", func(t testing.TB, ms []member) []byte {
			return headerOnly(t, ms[:index(ms, "config/app.conf")], tar.Header{Typeflag: tar.TypeReg, Name: "config/app.conf", Size: archive.MaxConfigSize + 1, Mode: 0o644})
		}, `member "config/app.conf": mode -rw-r--r-- and size 16777217 differ from the manifest's -rw-r--r-- and 6`},
		{"empty-chunk", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "tables/b/000001.rec")].data = nil
			return ms
		}), `member "tables/b/000001.rec": empty chunk`},
		{"more-records-than-declared", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "tables/b/000001.rec")].data = chunkData([2]string{"x", ""}, [2]string{"y", ""})
			return editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[1].(map[string]any)["bytes"] = 6
			})
		}), `member "tables/b/000001.rec": table "b" has more than the 1 records the manifest declares`},
		{"fewer-records-than-declared", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[1].(map[string]any)["records"] = 2
				m["tables"].([]any)[1].(map[string]any)["bytes"] = 6
			})
		}), `member "tables/b/000001.rec": table "b" has 1 records in 3 bytes, the manifest declares 2 in 6`},
		{"declared-table-missing", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, "tables/b/000001.rec")
			return append(ms[:i], ms[i+1:]...)
		}), `table "b" has 0 records in 0 bytes, the manifest declares 1 in 3`},
		{"declared-config-missing", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, "config/dir/x.conf")
			return append(ms[:i], ms[i+1:]...)
		}), `member "config/dir/x.conf": config file of the manifest is missing`},
		{"config-mode-differs", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "config/app.conf")].hdr.Mode = 0o666
			return ms
		}), `member "config/app.conf": mode -rw-rw-rw- and size 6 differ from the manifest's -rw-r--r-- and 6`},
		{"config-setuid", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "config/app.conf")].hdr.Mode = 0o4755
			return ms
		}), `member "config/app.conf": mode 04755 has more than permission bits`},
		{"keys-out-of-order", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "tables/a/000001.rec")].data = chunkData([2]string{"k3", "v1"})
			return ms
		}), `member "tables/a/000002.rec": record 2: key "k2" is not after "k3"`},
		{"bad-key-length", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "tables/b/000001.rec")].data = []byte{0x7f, 'x', 0}
			return ms
		}), `member "tables/b/000001.rec": record 1: bad key length`},
		{"bad-value-length", resum(func(t testing.TB, ms []member) []member {
			ms[index(ms, "tables/b/000001.rec")].data = []byte{1, 'x', 0x05}
			return ms
		}), `member "tables/b/000001.rec": record 1 (key "x"): bad value length`},
		{"manifest-malformed", resum(func(t testing.TB, ms []member) []member {
			ms[0].data = []byte(`{"format": 1,`)
			return ms
		}), `member "MANIFEST.json": malformed JSON`},
		{"manifest-unknown-field", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) { m["surprise"] = true })
		}), `member "MANIFEST.json": malformed manifest: json: unknown field "surprise"`},
		{"manifest-format", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) { m["format"] = 5 })
		}), `member "MANIFEST.json": unsupported format version 5 (want 1 to 4`},
		{"manifest-format-4-unsigned", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) { m["format"] = 4 })
		}), `member "MANIFEST.json": malformed manifest: format 4 has "table_count"`},
		{"manifest-bad-table-name", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[0].(map[string]any)["path"] = ".."
			})
		}), `member "MANIFEST.json": malformed manifest: encoded table name ".."`},
		{"manifest-escaping-config", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) {
				m["config"].([]any)[0].(map[string]any)["path"] = "../app.conf"
			})
		}), `member "MANIFEST.json": config path "../app.conf" escapes the config directory`},
		{"manifest-duplicate-table", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[1].(map[string]any)["path"] = "a"
			})
		}), `member "MANIFEST.json": table "a": tables must be unique and in ascending path order`},
		{"manifest-no-product", resum(func(t testing.TB, ms []member) []member {
			return editManifest(t, ms, func(m map[string]any) { delete(m, "product") })
		}), `member "MANIFEST.json": product is missing`},
		{"bad-checksum", keep(func(t testing.TB, ms []member) []member {
			ms[index(ms, "config/dir/x.conf")].data = []byte("SECRET\n")
			return ms
		}), `member "config/dir/x.conf": checksum mismatch`},
		{"sums-missing", keep(func(t testing.TB, ms []member) []member {
			return ms[:len(ms)-1]
		}), `SHA256SUMS is missing after member "config/dir/x.conf"`},
		{"sums-malformed", keep(func(t testing.TB, ms []member) []member {
			ms[len(ms)-1].data = bytes.Replace(ms[len(ms)-1].data, []byte("  "), []byte(" *"), 1)
			return ms
		}), `member "SHA256SUMS": line 1: malformed`},
		{"sums-line-missing", keep(func(t testing.TB, ms []member) []member {
			d := ms[len(ms)-1].data
			ms[len(ms)-1].data = d[:bytes.LastIndexByte(d[:len(d)-1], '\n')+1]
			return ms
		}), `member "SHA256SUMS": member "config/dir/x.conf" is not listed`},
		{"sums-wrong-member", keep(func(t testing.TB, ms []member) []member {
			ms[len(ms)-1].data = bytes.Replace(ms[len(ms)-1].data, []byte("app.conf"), []byte("app.cong"), 1)
			return ms
		}), `member "SHA256SUMS": line 5: lists "config/app.cong" where member "config/app.conf" is expected`},
		{"sums-oversized", keep(func(t testing.TB, ms []member) []member {
			ms[len(ms)-1].data = append(ms[len(ms)-1].data, strings.Repeat("0", 64)+"  extra\n"...)
			return ms
		}), `member "SHA256SUMS": size 576 exceeds the 504 bytes its 6 lines need`},
		{"trailing-data", func(t testing.TB, ms []member) []byte {
			return append(pack(t, ms, false), "junk"...)
		}, `data after the end of the tar stream`},
		{"trailing-zeros", func(t testing.TB, ms []member) []byte {
			return append(pack(t, ms, false), make([]byte, 1<<20)...)
		}, `data after the end of the tar stream`},
		{"empty-file", func(t testing.TB, ms []member) []byte {
			return nil
		}, `empty archive: MANIFEST.json is missing`},
		{"zstd-window-bomb", func(t testing.TB, ms []member) []byte {
			var buf bytes.Buffer
			zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(256<<20), zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(pack(t, ms, false))
			zw.Write(make([]byte, 64<<20))
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}, `window size exceeded`},
		{"zstd-zeros-bomb", func(t testing.TB, ms []member) []byte {
			var buf bytes.Buffer
			zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(pack(t, ms, false))
			zw.Write(make([]byte, 256<<20))
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}, `data after the end of the tar stream`},
		{"sums-late-difference", keep(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.SumsName)
			sums := bytes.Clone(ms[i].data)
			j := bytes.IndexByte(sums, ' ') - 1 // the last hex digit of line 1
			if sums[j] == '0' {
				sums[j] = '1'
			} else {
				sums[j] = '0'
			}
			ms[i].data = sums
			return ms
		}), `member "SHA256SUMS": checksum mismatch: a line differs from its member's sha256 after its first 8 bytes`},
		{"zstd-skippable-frame", func(t testing.TB, ms []member) []byte {
			data := zstdOf(t, pack(t, ms, false))
			// A skippable frame (magic 0x184D2A5E, 5 bytes) after the archive:
			// zstd decoders skip it silently.
			return append(data, 0x5e, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 'h', 'i', 'd', 'd', 'n')
		}, `zstd skippable frame at byte`},
		{"zstd-skippable-frame-first", func(t testing.TB, ms []member) []byte {
			return append([]byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, zstdOf(t, pack(t, ms, false))...)
		}, `invalid archive`},
		{"zstd-garbage-after", func(t testing.TB, ms []member) []byte {
			return append(zstdOf(t, pack(t, ms, false)), "garbage!"...)
		}, `data after the zstd stream at byte`},
		{"manifest-duplicate-key", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.ManifestName)
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"product":`), []byte(`"product":"other","product":`), 1)
			return ms
		}), `member "MANIFEST.json": malformed manifest: duplicate key "product"`},
		{"manifest-null-value", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.ManifestName)
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"product":`), []byte(`"last_upgrade_hook":null,"product":`), 1)
			return ms
		}), `member "MANIFEST.json": malformed manifest: null is not a value of any manifest field`},
		{"manifest-case-folded-key", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.ManifestName)
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"product":`), []byte(`"Product":`), 1)
			return ms
		}), `member "MANIFEST.json": malformed manifest: key "Product": keys are lower-case`},
		{"manifest-unicode-folded-key", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.ManifestName)
			// U+017F (long s) folds to "s" in encoding/json's matching.
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"size":`), []byte("\"\u017fize\":"), 1)
			return ms
		}), `member "MANIFEST.json": malformed manifest: key "ſize": keys are lower-case`},
		{"manifest-nested-key-duplicate", resum(func(t testing.TB, ms []member) []member {
			i := index(ms, archive.ManifestName)
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"records":`), []byte(`"records":0,"records":`), 1)
			return ms
		}), `member "MANIFEST.json": malformed manifest: duplicate key "records"`},
		{"config-long-element", resum(func(t testing.TB, ms []member) []member {
			long := strings.Repeat("x", 256)
			ms = editManifest(t, ms, func(m map[string]any) {
				m["config"].([]any)[1].(map[string]any)["path"] = "dir/" + long
			})
			j := index(ms, "config/dir/x.conf")
			ms[j].hdr.Name, ms[j].hdr.Format = "config/dir/"+long, tar.FormatPAX
			return ms
		}), `element of 256 bytes exceeds 255`},
		{"table-name-not-encoded", resum(func(t testing.TB, ms []member) []member {
			ms = editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[1].(map[string]any)["path"] = "b c"
			})
			return ms
		}), `encoded table name "b c": byte ' ' must be escaped`},
		{"nested-table-without-parent", resum(func(t testing.TB, ms []member) []member {
			ms = editManifest(t, ms, func(m map[string]any) {
				m["tables"].([]any)[1].(map[string]any)["path"] = "a0/b"
			})
			ms[index(ms, "tables/b/000001.rec")].hdr.Name = "tables/a0/b/000001.rec"
			return ms
		}), `table "a0/b": the table it is nested in is not in the manifest`},
	}
}

// zstdOf compresses data as one zstd frame.
func zstdOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHostile(t *testing.T) {
	if _, err := archive.Verify(bytes.NewReader(pack(t, hostileBase(t), false))); err != nil {
		t.Fatalf("the base archive is refused: %v", err)
	}
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.build(t, hostileBase(t))
			calls := 0
			_, err := archive.Read(bytes.NewReader(data), archive.Handler{
				Config: func(c archive.ConfigFile, data []byte) error {
					calls++
					return nil
				},
			})
			if !errors.Is(err, archive.ErrInvalid) {
				t.Fatalf("Read = %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read = %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
}
