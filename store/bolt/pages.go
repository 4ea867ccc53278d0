package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
)

// bbolt's file layout (go.etcd.io/bbolt/internal/common), as far as
// checkPages reads it.
const (
	pageHeaderSize = 16 // id uint64, flags uint16, count uint16, overflow uint32
	elementSize    = 16 // branch: pos, ksize uint32, pgid uint64; leaf: flags, pos, ksize, vsize uint32
	bucketSize     = 16 // root pgid uint64, sequence uint64, then an inline page when root is 0
	branchFlag     = 0x01
	leafFlag       = 0x02
	freelistFlag   = 0x10
	bucketLeafFlag = 0x01
	metaMagic      = 0xED0CDAED
	metaSumOffset  = 56 // the meta's bytes covered by its checksum
	noFreelist     = ^uint64(0)
	maxPageCount   = 0xFFFF // a freelist count in its first element
)

// checkPages reads the store file at path on its own, not through bbolt's
// memory map, and checks that every page reachable from the current meta
// page (the bucket trees, inline buckets and the freelist) stays inside the
// file and every element inside its page: then nothing bbolt reads through
// its memory map points outside it. bbolt's own check runs in a goroutine
// of its own, where such a fault would crash the process; it runs after
// this one. With plain reads, it reads through a cache of cacheBlocks
// blocks of cacheBlock bytes, so that a tree whose pages follow each other in the file (a
// loaded store's) is read in a few large reads rather than one a page, and
// so is one whose pages are near each other in any order: bbolt writes
// the buckets of a transaction in a random order (a map's), and a store of
// many small nested buckets has one page each, so a tree walk jumps back
// and forth among the pages one commit wrote (a read window refilled at
// every jump read 60 times the file). Memory: the cache, one page per tree
// level and one bit per page.
//
// Where the system allows it (unix), the pages are read in place from a
// read-only mapping of the file of its own instead, under
// debug.SetPanicOnFault: every page is checked to lie inside the file
// before it is touched, and a fault (the file truncated meanwhile) is an
// error, not a crash. Reading in place saves copying the file twice (into
// the cache and from it): a fifth of the check of a store of 100,000
// nested buckets (0.27 s of CPU down to 0.22 s, bbolt's own check most of
// the rest), a quarter of a flat store's of the same records (0.11 s to
// 0.08 s).
func checkPages(path string) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	c := &pageChecker{f: f, size: info.Size()}
	root, freelist, err := c.meta()
	if err != nil {
		return err
	}
	if mapPages {
		if mem, unmap := mapFile(f, c.size); mem != nil {
			defer unmap()
			c.mem = mem
			if mappedHook != nil {
				mappedHook(path)
			}
			old := debug.SetPanicOnFault(true)
			defer func() {
				debug.SetPanicOnFault(old)
				if r := recover(); r != nil {
					if _, fault := r.(interface{ Addr() uintptr }); !fault {
						panic(r)
					}
					err = fmt.Errorf("reading the file faulted (was it truncated meanwhile?): %v", r)
				}
			}()
		}
	}
	c.seen = make([]bool, c.hwm)
	if freelist != noFreelist {
		if err := c.freelist(freelist); err != nil {
			return err
		}
	}
	return c.tree(root, 0)
}

type pageChecker struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64 // pages in use
	seen     []bool
	cache    blockCache
	pages    [][]byte // per tree level, the buffer of the page being checked
	// mem, when not nil, is the file mapped read-only (size bytes):
	// pages are read from it in place instead of through the cache.
	mem []byte
}

// mapPages is whether checkPages reads through a mapping of the file
// where the system allows it; tests turn it off to check the reads.
var mapPages = true

// mappedHook, when not nil, is called once checkPages has mapped the file
// (tests: to truncate it under the mapping).
var mappedHook func(path string)

// The page checker's cache: blocks of cacheBlock bytes at offsets that are
// multiples of it (a page, whose size is a power of two, fits in one
// unless it is larger or has overflow pages: those are read on their
// own), cacheBlocks of them, evicted by the clock algorithm.
const (
	cacheBlock  = 128 << 10
	cacheBlocks = 64
)

type blockCache struct {
	blocks []cacheEntry
	index  map[int64]int // block number -> index in blocks
	hand   int
}

type cacheEntry struct {
	num  int64  // block number
	data []byte // the bytes of the file at num*cacheBlock, up to cacheBlock (fewer at its end)
	used bool   // read since the clock hand last passed
}

// get returns the entry of block num, read from f when the cache does not
// hold it.
func (c *blockCache) get(f *os.File, num int64) (*cacheEntry, error) {
	if i, ok := c.index[num]; ok {
		e := &c.blocks[i]
		e.used = true
		return e, nil
	}
	if c.index == nil {
		c.index = make(map[int64]int, cacheBlocks)
	}
	var i int
	if len(c.blocks) < cacheBlocks {
		c.blocks = append(c.blocks, cacheEntry{data: make([]byte, cacheBlock)})
		i = len(c.blocks) - 1
	} else {
		for c.blocks[c.hand].used {
			c.blocks[c.hand].used = false
			c.hand = (c.hand + 1) % len(c.blocks)
		}
		i = c.hand
		c.hand = (c.hand + 1) % len(c.blocks)
		delete(c.index, c.blocks[i].num)
	}
	e := &c.blocks[i]
	n, err := f.ReadAt(e.data[:cacheBlock], num*cacheBlock)
	if n < cacheBlock && err != nil && err != io.EOF {
		e.data = e.data[:0]
		return nil, err
	}
	e.num, e.data, e.used = num, e.data[:n], true
	c.index[num] = i
	return e, nil
}

// read fills p with the bytes of the file at off, from the cache, or
// directly when they are not inside one block.
func (c *pageChecker) read(p []byte, off int64) error {
	num := off / cacheBlock
	if (off+int64(len(p))-1)/cacheBlock != num {
		n, err := c.f.ReadAt(p, off)
		if n == len(p) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	e, err := c.cache.get(c.f, num)
	if err != nil {
		return err
	}
	start := off - num*cacheBlock
	if start+int64(len(p)) > int64(len(e.data)) {
		return io.ErrUnexpectedEOF
	}
	copy(p, e.data[start:])
	return nil
}

// buffer returns the page buffer of tree level depth, of n bytes.
func (c *pageChecker) buffer(depth int, n int64) []byte {
	for len(c.pages) <= depth {
		c.pages = append(c.pages, nil)
	}
	if int64(cap(c.pages[depth])) < n {
		c.pages[depth] = make([]byte, n)
	}
	return c.pages[depth][:n]
}

// metaPage is what checkPages reads of a meta page.
type metaPage struct{ txid, root, freelist, pgid, pageSize uint64 }

// readMetas reads the two meta pages of f: each one's content, and whether
// it is valid (bbolt's magic number and checksum).
func readMetas(f io.ReaderAt) (metas [2]metaPage, valid [2]bool) {
	buf := make([]byte, pageHeaderSize+64)
	for i := range int64(2) {
		off := i * 4096
		if valid[0] {
			off = i * int64(metas[0].pageSize)
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			continue
		}
		m := buf[pageHeaderSize:]
		if binary.LittleEndian.Uint32(m[0:]) != metaMagic {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:metaSumOffset])
		if h.Sum64() != binary.LittleEndian.Uint64(m[metaSumOffset:]) {
			continue
		}
		metas[i] = metaPage{
			txid:     binary.LittleEndian.Uint64(m[48:]),
			root:     binary.LittleEndian.Uint64(m[16:]),
			freelist: binary.LittleEndian.Uint64(m[32:]),
			pgid:     binary.LittleEndian.Uint64(m[40:]),
			pageSize: uint64(binary.LittleEndian.Uint32(m[8:])),
		}
		valid[i] = true
	}
	return metas, valid
}

// metaFallback returns, when one of the store file's two meta pages is
// damaged and bbolt reads the store through the other, a warning saying
// so: the other page may hold the transaction before the last one, so the
// store may read one transaction back, silently. "" when both are valid
// (or neither: Open refuses that).
func metaFallback(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	metas, valid := readMetas(f)
	for i := range 2 {
		if !valid[i] && valid[1-i] {
			return fmt.Sprintf("meta page %d of %s is damaged, so the store reads through meta page %d (transaction %d), which may be one transaction older than the last commit; back it up now, then restore a backup if the last commit mattered (the next write rewrites the damaged page)", i, path, 1-i, metas[1-i].txid)
		}
	}
	return ""
}

// meta picks the meta page bbolt uses: the valid one with the larger
// transaction id.
func (c *pageChecker) meta() (root, freelist uint64, err error) {
	metas, valid := readMetas(c.f)
	var best metaPage
	found := false
	for i := range 2 {
		if valid[i] && (!found || metas[i].txid > best.txid) {
			best, found = metas[i], true
		}
	}
	if !found {
		return 0, 0, errors.New("no valid meta page")
	}
	if best.pageSize < 512 || best.pageSize > 1<<20 {
		return 0, 0, fmt.Errorf("page size %d", best.pageSize)
	}
	c.pageSize = int64(best.pageSize)
	if best.pgid < 4 || int64(best.pgid) > c.size/c.pageSize {
		return 0, 0, fmt.Errorf("the meta page claims %d pages, the file holds %d", best.pgid, c.size/c.pageSize)
	}
	c.hwm = best.pgid
	return best.root, best.freelist, nil
}

// page reads page id and its overflow pages into the buffer of tree level
// depth, checking its header.
func (c *pageChecker) page(id uint64, want uint16, depth int) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, fmt.Errorf("page %d is outside the %d pages in use", id, c.hwm)
	}
	if c.seen[id] {
		return nil, fmt.Errorf("page %d is reachable twice", id)
	}
	// The page first; its overflow pages, if any, once its header says
	// they are in use.
	hdr, err := c.at(depth, int64(id)*c.pageSize, c.pageSize)
	if err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	flags := binary.LittleEndian.Uint16(hdr[8:])
	switch {
	case binary.LittleEndian.Uint64(hdr) != id:
		return nil, fmt.Errorf("page %d has the id %d", id, binary.LittleEndian.Uint64(hdr))
	case flags&want == 0:
		return nil, fmt.Errorf("page %d has flags %#x", id, flags)
	case id+overflow >= c.hwm:
		return nil, fmt.Errorf("page %d and its %d overflow pages run past the %d pages in use", id, overflow, c.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		c.seen[p] = true
	}
	if overflow == 0 {
		return hdr, nil
	}
	buf, err := c.at(depth, int64(id)*c.pageSize, int64(overflow+1)*c.pageSize)
	if err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// at returns the n bytes of the file at off, for the tree level depth: in
// place from the mapping, or read into the level's buffer.
func (c *pageChecker) at(depth int, off, n int64) ([]byte, error) {
	if c.mem != nil {
		if off < 0 || n < 0 || off+n > int64(len(c.mem)) {
			return nil, io.ErrUnexpectedEOF
		}
		return c.mem[off : off+n : off+n], nil
	}
	buf := c.buffer(depth, n)
	if err := c.read(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

func (c *pageChecker) freelist(id uint64) error {
	p, err := c.page(id, freelistFlag, 0)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	n, start := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == maxPageCount {
		n, start = binary.LittleEndian.Uint64(p[pageHeaderSize:]), start+8
	}
	if n > uint64(len(p)) || start+8*n > uint64(len(p)) {
		return fmt.Errorf("freelist page %d: %d ids do not fit", id, n)
	}
	return nil
}

// maxPageDepth bounds the pages one path from the root page crosses:
// the page trees of nested buckets add up, and bbolt nests buckets as deep
// as a product likes. A backup carries paths of up to 2048 encoded bytes,
// so at most 1024 levels of buckets, each a page tree of a few levels; a
// deeper chain is a damaged file (a cycle is caught earlier: no page is
// reachable twice). Memory: one page buffer per level.
const maxPageDepth = 8 << 10

// tree checks the page tree of a bucket rooted at page id.
func (c *pageChecker) tree(id uint64, depth int) error {
	if depth > maxPageDepth {
		return fmt.Errorf("page %d: the page trees are nested deeper than %d", id, maxPageDepth)
	}
	p, err := c.page(id, branchFlag|leafFlag, depth)
	if err != nil {
		return err
	}
	return c.elements(p, id, depth)
}

// elements checks the elements of page p (a page of the file, or an
// inline page inside a leaf value).
func (c *pageChecker) elements(p []byte, id uint64, depth int) error {
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off : off+elementSize]
		if flags&branchFlag != 0 {
			pos, ksize := int64(binary.LittleEndian.Uint32(e[0:])), int64(binary.LittleEndian.Uint32(e[4:]))
			if int64(off)+pos+ksize > int64(len(p)) {
				return fmt.Errorf("page %d: element %d runs past the page", id, i)
			}
			if err := c.tree(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		if flags&leafFlag == 0 {
			return fmt.Errorf("page %d has flags %#x", id, flags)
		}
		lflags := binary.LittleEndian.Uint32(e[0:])
		pos, ksize, vsize := int64(binary.LittleEndian.Uint32(e[4:])), int64(binary.LittleEndian.Uint32(e[8:])), int64(binary.LittleEndian.Uint32(e[12:]))
		end := int64(off) + pos + ksize + vsize
		if end > int64(len(p)) {
			return fmt.Errorf("page %d: element %d runs past the page", id, i)
		}
		if lflags&bucketLeafFlag == 0 {
			continue
		}
		v := p[end-vsize : end]
		if len(v) < bucketSize {
			return fmt.Errorf("page %d: element %d: bucket header of %d bytes", id, i, len(v))
		}
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			if err := c.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[bucketSize:]
		if len(inline) < pageHeaderSize {
			return fmt.Errorf("page %d: element %d: inline bucket of %d bytes", id, i, len(inline))
		}
		if binary.LittleEndian.Uint16(inline[8:])&leafFlag == 0 {
			return fmt.Errorf("page %d: element %d: inline bucket is not a leaf", id, i)
		}
		if err := c.elements(inline, id, depth+1); err != nil {
			return err
		}
	}
	return nil
}
