package bolt

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestPageCheckerRead reads a file larger than the page checker's cache at
// random offsets and sizes (within a block, across blocks, past the end)
// and compares with direct reads: the cache evicts and refills blocks and
// never returns stale or short data.
func TestPageCheckerRead(t *testing.T) {
	size := int64(cacheBlocks*cacheBlock*3/2 + 12345)
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &pageChecker{f: f, size: size}
	for i := range 20000 {
		n := int64(4096)
		switch i % 5 {
		case 3:
			n = 1 + rng.Int64N(3*cacheBlock)
		case 4:
			n = 1 + rng.Int64N(64)
		}
		var off int64
		if i%7 == 0 {
			off = rng.Int64N(size) // anywhere, possibly across blocks or past the end
		} else {
			off = rng.Int64N(size/4096) * 4096 // a page
		}
		p := make([]byte, n)
		err := c.read(p, off)
		if off+n > size {
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("read of %d at %d past the end of %d: %v", n, off, size, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("read of %d at %d: %v", n, off, err)
		}
		if !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("read of %d at %d: wrong bytes", n, off)
		}
	}
	if len(c.cache.blocks) != cacheBlocks || len(c.cache.index) != cacheBlocks {
		t.Fatalf("cache of %d blocks (%d indexed), want %d", len(c.cache.blocks), len(c.cache.index), cacheBlocks)
	}
}
