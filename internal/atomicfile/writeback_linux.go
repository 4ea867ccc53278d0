package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing f's dirty pages to disk
// without waiting for them (sync_file_range), so that the final fsync finds
// little left to write. It is only a hint: errors are ignored, the fsync is
// what makes the file durable.
func StartWriteback(f *os.File) {
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
