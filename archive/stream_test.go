package archive_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hookreg/hookreg/archive"
)

func TestTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 1))
	c := content{
		tables: map[string][]record{"a": randomTable(r, 40, 50), "b": randomTable(r, 3, 5000), "c": {}},
		config: map[string]configData{"x.conf": {0o600, []byte("x = 1\n")}},
	}
	for _, comp := range []archive.Compression{archive.Zstd, archive.None} {
		data := write(t, c, archive.Options{Compression: comp, ChunkSize: 2000})
		step := max(1, len(data)/300)
		for n := 0; n < len(data); n += step {
			if _, err := archive.Verify(bytes.NewReader(data[:n])); !errors.Is(err, archive.ErrInvalid) {
				t.Fatalf("%s cut at %d of %d bytes: Verify = %v, want ErrInvalid", comp, n, len(data), err)
			}
		}
		for n := len(data) - 1100; n < len(data); n++ {
			if _, err := archive.Verify(bytes.NewReader(data[:n])); !errors.Is(err, archive.ErrInvalid) {
				t.Fatalf("%s cut at %d of %d bytes: Verify = %v, want ErrInvalid", comp, n, len(data), err)
			}
		}
	}
}

// failingReader fails after n bytes, like a disk error.
type failingReader struct {
	r io.Reader
	n int
}

var errDisk = errors.New("input/output error")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestReadErrorIsNotInvalid(t *testing.T) {
	data := write(t, sample(5), archive.Options{})
	_, err := archive.Verify(&failingReader{bytes.NewReader(data), len(data) / 2})
	if !errors.Is(err, errDisk) || errors.Is(err, archive.ErrInvalid) {
		t.Fatalf("Verify = %v, want the read error, not ErrInvalid", err)
	}
}

// TestTarTools checks the archive with the real tar, zstd and sha256sum.
func TestTarTools(t *testing.T) {
	for _, tool := range []string{"tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	c := sample(6)
	plain := write(t, c, archive.Options{Compression: archive.None, ChunkSize: 5000})
	compressed := write(t, c, archive.Options{Compression: archive.Zstd, ChunkSize: 5000})
	dir := t.TempDir()
	for name, data := range map[string][]byte{"b.tar": plain, "b.tar.zst": compressed} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	list := strings.Fields(run(dir, "tar", "-tf", "b.tar"))
	if list[0] != archive.ManifestName || list[len(list)-1] != archive.SumsName || !strings.HasPrefix(list[1], "tables/") {
		t.Errorf("tar -tf lists %v", list)
	}
	var wantMembers []string
	for _, m := range unpack(t, plain) {
		wantMembers = append(wantMembers, m.hdr.Name)
	}
	if strings.Join(list, "\n") != strings.Join(wantMembers, "\n") {
		t.Errorf("tar -tf lists\n%v\nwant\n%v", list, wantMembers)
	}
	x := filepath.Join(dir, "plain")
	os.Mkdir(x, 0o755)
	run(x, "tar", "-xf", "../b.tar")
	run(x, "sha256sum", "--strict", "-c", archive.SumsName)
	for p, f := range c.config {
		got, err := os.ReadFile(filepath.Join(x, "config", p))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("config/%s extracted by tar: %q, %v", p, got, err)
		}
	}

	if _, err := exec.LookPath("zstd"); err != nil {
		t.Log("zstd is not installed: the compressed archive is checked with tar only")
		return
	}
	z := filepath.Join(dir, "zstd")
	os.Mkdir(z, 0o755)
	run(dir, "zstd", "-q", "-d", "b.tar.zst", "-o", "zstd.tar")
	run(z, "tar", "-xf", "../zstd.tar")
	run(z, "sha256sum", "--strict", "-c", archive.SumsName)
	tz := filepath.Join(dir, "tar-zstd")
	os.Mkdir(tz, 0o755)
	run(tz, "tar", "--zstd", "-xf", "../b.tar.zst")
	run(tz, "sha256sum", "--strict", "-c", archive.SumsName)
	if got, err := os.ReadFile(filepath.Join(dir, "zstd.tar")); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("zstd -d gives another tar than the plain archive (%v)", err)
	}
	// An archive compressed by the zstd tool, at a high level, reads too.
	run(dir, "zstd", "-q", "-19", "b.tar", "-o", "tool.tar.zst")
	data, err := os.ReadFile(filepath.Join(dir, "tool.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := read(data); err != nil || len(got.tables) != len(c.tables) {
		t.Errorf("reading the archive compressed by zstd -19: %v", err)
	}
}

// synth generates deterministic records: 8-byte big-endian keys and 1 KiB
// JSON-like values with random identifiers, which the archive's zstd
// compresses about 6:1.
type synth struct {
	key   [8]byte
	value [1 << 10]byte
}

// record returns record i; the slices are reused by the next call.
func (s *synth) record(i int) (key, value []byte) {
	binary.BigEndian.PutUint64(s.key[:], uint64(i))
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	const hexDigits = "0123456789abcdef"
	var piece []byte
	for off := 0; off < len(s.value); off += copy(s.value[off:], piece) {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		piece = append(piece[:0], `{"client":"c-`...)
		for j := range 12 {
			piece = append(piece, hexDigits[x>>(4*j)&15])
		}
		piece = append(piece, `","topic":"site/`...)
		piece = append(piece, hexDigits[x>>48&15], hexDigits[x>>52&15])
		piece = append(piece, `/#","allow":true},`...)
	}
	return s.key[:], s.value[:]
}

// synthetic writes n records of synth to w as one table.
func synthetic(w io.Writer, n int, comp archive.Compression) error {
	var s synth
	k, v := s.record(0)
	m := archive.Manifest{
		Created: created, Product: "p", Release: "1.0.0", DataVersion: "1.0.0",
		Tables: []archive.TableInfo{{Name: "t", Records: int64(n), Bytes: int64(n) * archive.RecordSize(k, v)}},
	}
	aw, err := archive.NewWriter(w, m, archive.Options{Compression: comp})
	if err != nil {
		return err
	}
	if err := aw.Table("t"); err != nil {
		return err
	}
	for i := range n {
		if err := aw.Record(s.record(i)); err != nil {
			return err
		}
	}
	return aw.Close()
}

// TestMemoryBound streams 256 MiB of records through a Writer and a Reader
// connected by a pipe and checks that the live heap (measured after a
// collection, so that garbage the collector has not yet reclaimed does not
// count) stays far below that. With zstd both sides hold a few 2 MiB frames
// and the codec's windows: about 41 MiB together.
func TestMemoryBound(t *testing.T) {
	const (
		records = 256 << 10 // of 1 KiB: 256 MiB
		bound   = 48 << 20
	)
	for _, comp := range []archive.Compression{archive.Zstd, archive.None} {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(synthetic(pw, records, comp)) }()
		var peak uint64
		var ms runtime.MemStats
		n := 0
		_, err := archive.Read(pr, archive.Handler{Record: func(key, value []byte) error {
			if n++; n%16384 == 0 {
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
		if n != records {
			t.Fatalf("%s: read %d records, want %d", comp, n, records)
		}
		t.Logf("%s: %d MiB streamed, peak live heap %d MiB", comp, records>>10, peak>>20)
		if peak > bound {
			t.Errorf("%s: peak live heap %d MiB exceeds %d MiB for %d MiB of records", comp, peak>>20, bound>>20, records>>10)
		}
	}
}

// TestZstdLimits checks the decoder refuses a frame whose window exceeds
// its limit even when the content is tiny.
func TestZstdLimits(t *testing.T) {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(128<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(write(t, sample(7), archive.Options{Compression: archive.None}))
	zw.Write(make([]byte, 40<<20))
	zw.Close()
	_, err = archive.Verify(&buf)
	if !errors.Is(err, archive.ErrInvalid) {
		t.Fatalf("Verify = %v, want ErrInvalid", err)
	}
}

// TestMemoryManyChunks reads an archive of 200,000 one-record chunks: the
// reader keeps 8 bytes per member (of its checksum) and streams SHA256SUMS,
// so the live heap stays far below what keeping each member's name (and a
// set of names seen) took.
func TestMemoryManyChunks(t *testing.T) {
	const (
		chunks = 200_000
		bound  = 12 << 20
	)
	c := content{tables: map[string][]record{"events": nil}, config: map[string]configData{}}
	for i := range chunks {
		c.tables["events"] = append(c.tables["events"], record{fmt.Appendf(nil, "event-%08d", i), []byte("x")})
	}
	data := write(t, c, archive.Options{ChunkSize: 1})
	c = content{}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	n := 0
	_, err := archive.Read(bytes.NewReader(data), archive.Handler{Record: func(key, value []byte) error {
		if n++; n%50_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n != chunks {
		t.Fatalf("read %d records, want %d", n, chunks)
	}
	t.Logf("%d chunks: live heap grew by %d KiB while reading", chunks, (peak-base)>>10)
	if peak-base > bound {
		t.Errorf("reading %d one-record chunks grew the live heap by %d MiB, want under %d MiB", chunks, (peak-base)>>20, bound>>20)
	}
}
