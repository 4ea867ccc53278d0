package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameChecker passes a zstd stream through unchanged while following its
// frame structure (RFC 8878 §3.1: frame header, then blocks, each with its
// size, then an optional checksum), so that what the decoder would skip
// silently is refused: skippable frames, and anything that is not a frame
// where one may start. It holds a few bytes of state whatever the stream
// size.
type frameChecker struct {
	r      io.Reader
	err    error
	off    int64 // bytes passed through
	skip   int64 // bytes of the current part to pass without looking
	state  int
	hdr    [8]byte
	have   int // bytes of hdr collected
	need   int // bytes hdr needs in this state
	frames int
	sum    bool // the current frame ends with a checksum
}

// frameChecker states: what the next bytes are.
const (
	fcMagic       = iota // a frame's magic number
	fcDescriptor         // a frame header descriptor
	fcBlockHeader        // a block header
)

const (
	zstdFrameMagic   = 0xFD2FB528
	skippableMask    = 0xFFFFFFF0
	skippableMagic   = 0x184D2A50
	blockTypeRLE     = 1
	blockTypeReserve = 3
)

func (c *frameChecker) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	for i := 0; i < n; {
		if c.skip > 0 {
			k := int64(n - i)
			if k > c.skip {
				k = c.skip
			}
			c.skip -= k
			i += int(k)
			continue
		}
		if c.have == 0 {
			c.need = [...]int{fcMagic: 4, fcDescriptor: 1, fcBlockHeader: 3}[c.state]
		}
		c.hdr[c.have] = p[i]
		c.have++
		i++
		if c.have == c.need {
			c.have = 0
			if ferr := c.step(c.off + int64(i) - int64(c.need)); ferr != nil {
				c.err = ferr
				return i - c.need, ferr
			}
		}
	}
	c.off += int64(n)
	return n, err
}

// step interprets the header bytes just collected, which started at off.
func (c *frameChecker) step(off int64) error {
	switch c.state {
	case fcMagic:
		magic := binary.LittleEndian.Uint32(c.hdr[:4])
		switch {
		case magic == zstdFrameMagic:
			c.state = fcDescriptor
			c.frames++
		case magic&skippableMask == skippableMagic:
			return fmt.Errorf("zstd skippable frame at byte %d: data outside the archive is not allowed", off)
		default:
			return fmt.Errorf("data after the zstd stream at byte %d", off)
		}
	case fcDescriptor:
		d := c.hdr[0]
		if d&0x08 != 0 {
			return fmt.Errorf("zstd frame header at byte %d: reserved bit set", off)
		}
		single := d&0x20 != 0
		c.sum = d&0x04 != 0
		n := [4]int64{0, 1, 2, 4}[d&3]  // dictionary ID
		n += [4]int64{0, 2, 4, 8}[d>>6] // frame content size
		if single && d>>6 == 0 {
			n++
		}
		if !single {
			n++ // window descriptor
		}
		c.skip = n
		c.state = fcBlockHeader
	case fcBlockHeader:
		h := uint32(c.hdr[0]) | uint32(c.hdr[1])<<8 | uint32(c.hdr[2])<<16
		last, typ, size := h&1 != 0, (h>>1)&3, int64(h>>3)
		switch typ {
		case blockTypeRLE:
			size = 1
		case blockTypeReserve:
			return fmt.Errorf("zstd block at byte %d: reserved block type", off)
		}
		c.skip = size
		if last {
			if c.sum {
				c.skip += 4
			}
			c.state = fcMagic
		}
	}
	return nil
}

// end checks that the stream ended after a whole frame.
func (c *frameChecker) end() error {
	if c.err != nil {
		return c.err
	}
	if c.frames == 0 || c.state != fcMagic || c.have != 0 || c.skip != 0 {
		return errors.New("truncated zstd stream")
	}
	return nil
}
