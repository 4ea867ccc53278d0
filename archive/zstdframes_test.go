package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// compressible returns n bytes of text-like data.
func compressible(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"user", "session", "tenant", "42", "\x00", "config", "value:", "{}", "broker"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(byte('a' + r.IntN(26)))
	}
	return b.Bytes()[:n]
}

func encodeFrames(t *testing.T, in []byte, workers, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	e, err := newFrameEncoder(&out, workers, zstdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	for p := in; len(p) > 0; p = p[min(len(p), chunk):] {
		if _, err := e.Write(p[:min(len(p), chunk)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decompress(t *testing.T, r io.Reader) []byte {
	t.Helper()
	zr, err := zstd.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestFramesDeterministic: the compressed bytes depend on the input only,
// not on the number of goroutines nor on how the input was cut into
// writes; they decompress to the input, one frame per frameSize bytes.
func TestFramesDeterministic(t *testing.T) {
	in := compressible(4*frameSize + 12345)
	one := encodeFrames(t, in, 1, 10240)
	for _, c := range []struct{ workers, chunk int }{{2, 10240}, {2, 1 << 20}, {3, 777}, {2, frameSize}} {
		if got := encodeFrames(t, in, c.workers, c.chunk); !bytes.Equal(got, one) {
			t.Errorf("%d goroutines, writes of %d bytes: %d bytes, unlike the %d bytes of one goroutine", c.workers, c.chunk, len(got), len(one))
		}
	}
	fc := &frameChecker{r: bytes.NewReader(one)}
	if got := decompress(t, fc); !bytes.Equal(got, in) {
		t.Fatalf("decompressed bytes differ from the input")
	}
	if err := fc.end(); err != nil {
		t.Fatal(err)
	}
	if fc.frames != 5 {
		t.Errorf("%d frames, want 5", fc.frames)
	}
	if len(one) > len(in)/2 {
		t.Errorf("compressed %d bytes to %d", len(in), len(one))
	}
}

// TestFramesEmpty: no input is still one valid frame.
func TestFramesEmpty(t *testing.T) {
	fc := &frameChecker{r: bytes.NewReader(encodeFrames(t, nil, 2, 1))}
	if got := decompress(t, fc); len(got) != 0 {
		t.Fatalf("%q", got)
	}
	if err := fc.end(); err != nil || fc.frames != 1 {
		t.Fatalf("%d frames, %v", fc.frames, err)
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

// TestFramesWriteError: a failing destination stops the writes early and
// is the error of Close; Abort and Close leave no goroutine behind.
func TestFramesWriteError(t *testing.T) {
	before := runtime.NumGoroutine()
	boom := errors.New("disk full")
	e, err := newFrameEncoder(&failAfter{n: 1, err: boom}, 2, zstdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	in := compressible(frameSize)
	var werr error
	for range 64 {
		if _, werr = e.Write(in); werr != nil {
			break
		}
	}
	if !errors.Is(werr, boom) {
		t.Errorf("64 frames written to a failing destination: Write said %v", werr)
	}
	if err := e.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: %v, want %v", err, boom)
	}
	a, err := newFrameEncoder(io.Discard, 2, zstdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	a.Write(in)
	a.Abort()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left behind", n-before)
	}
}
