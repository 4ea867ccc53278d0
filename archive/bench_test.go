package archive_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
)

// benchRecords records of synth make 1 GiB of values.
const benchRecords = 1 << 20

// rawRecords reads the bytes of n records of synth back to back: the
// reference a plain copy moves.
type rawRecords struct {
	s    synth
	i, n int
	buf  []byte
}

func (r *rawRecords) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.i == r.n {
			return 0, io.EOF
		}
		k, v := r.s.record(r.i)
		r.i++
		r.buf = append(append(r.buf[:0], k...), v...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// BenchmarkArchive writes and reads an archive of 1 GiB of records, plain
// and zstd, each beside its reference measured in the same run: writing the
// same record bytes to a file with io.Copy, and reading the archive file
// with io.Copy (and, for scale, hashing it with sha256, which a read must
// do). ratio = the reference's time / the archive's (1 = as fast
// as a plain copy).
func BenchmarkArchive(b *testing.B) {
	for _, comp := range []archive.Compression{archive.None, archive.Zstd} {
		b.Run(string(comp), func(b *testing.B) {
			dir := b.TempDir()
			path, raw := filepath.Join(dir, "a.tar"), filepath.Join(dir, "raw")
			var write, copyIn, read, copyOut, sum time.Duration
			var size int64
			timed := func(d *time.Duration, fn func() error) {
				start := time.Now()
				if err := fn(); err != nil {
					b.Fatal(err)
				}
				*d += time.Since(start)
			}
			for b.Loop() {
				timed(&write, func() error {
					f, err := os.Create(path)
					if err != nil {
						return err
					}
					if err := synthetic(f, benchRecords, comp); err != nil {
						return err
					}
					return f.Close()
				})
				timed(&copyIn, func() error {
					f, err := os.Create(raw)
					if err != nil {
						return err
					}
					size, err = io.Copy(f, &rawRecords{n: benchRecords})
					if err != nil {
						return err
					}
					return f.Close()
				})
				timed(&read, func() error {
					f, err := os.Open(path)
					if err != nil {
						return err
					}
					defer f.Close()
					n := 0
					_, err = archive.Read(f, archive.Handler{Record: func([]byte, []byte) error { n++; return nil }})
					if err == nil && n != benchRecords {
						b.Fatalf("read %d records, want %d", n, benchRecords)
					}
					return err
				})
				timed(&copyOut, func() error {
					f, err := os.Open(path)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(io.Discard, f)
					return err
				})
				timed(&sum, func() error {
					f, err := os.Open(path)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(sha256.New(), f)
					return err
				})
			}
			info, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
			b.ReportMetric(mbps(write), "write-MB/s")
			b.ReportMetric(mbps(copyIn), "copy-in-MB/s")
			b.ReportMetric(copyIn.Seconds()/write.Seconds(), "write-ratio")
			b.ReportMetric(mbps(read), "read-MB/s")
			b.ReportMetric(float64(info.Size())*float64(b.N)/copyOut.Seconds()/1e6, "copy-out-MB/s")
			b.ReportMetric(copyOut.Seconds()/read.Seconds(), "read-ratio")
			b.ReportMetric(float64(info.Size())*float64(b.N)/sum.Seconds()/1e6, "sha256-MB/s")
			b.ReportMetric(float64(info.Size())/float64(size), "size-ratio")
		})
	}
}

// tablesArchive writes an archive of n tables of one record each, as a
// product with one table per tenant has.
func tablesArchive(b testing.TB, n int) []byte {
	c := content{tables: map[string][]record{}, config: map[string]configData{}}
	for i := range n {
		c.tables[fmt.Sprintf("acl.tenant-%07d", i)] = []record{{[]byte("rule-1"), []byte(`{"allow":true}`)}}
	}
	return write(b, c, archive.Options{})
}

// BenchmarkVerifyTables verifies archives of 10,000 and 80,000 tables of
// one record (one chunk) each; reading is linear when the second takes
// about 8 times the first. It reports verify-80k/verify-10k, which must
// stay <= 12 (reading was quadratic: a chunk's table was searched among all
// tables).
func BenchmarkVerifyTables(b *testing.B) {
	small, large := tablesArchive(b, 10_000), tablesArchive(b, 80_000)
	var ts, tl time.Duration
	for b.Loop() {
		for _, c := range []struct {
			data []byte
			d    *time.Duration
		}{{small, &ts}, {large, &tl}} {
			start := time.Now()
			if _, err := archive.Verify(bytes.NewReader(c.data)); err != nil {
				b.Fatal(err)
			}
			*c.d += time.Since(start)
		}
	}
	b.ReportMetric(ts.Seconds()/float64(b.N), "verify-10k-s")
	b.ReportMetric(tl.Seconds()/float64(b.N), "verify-80k-s")
	b.ReportMetric(tl.Seconds()/ts.Seconds(), "80k/10k")
}
