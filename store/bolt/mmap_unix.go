//go:build unix

package bolt

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only, for checkPages, and
// returns them with the function that unmaps them; nil when it cannot
// (then checkPages reads the file).
func mapFile(f *os.File, size int64) ([]byte, func()) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	return mem, func() { syscall.Munmap(mem) }
}
