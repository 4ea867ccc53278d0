//go:build unix

package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive flock on f without waiting; errWouldBlock when
// another process holds it.
func tryLock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) { unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// fsID identifies a file system.
type fsID unix.Fsid

// fileSystemSpace returns the bytes available to this user in the file
// system holding dir, and that file system's id.
func fileSystemSpace(dir string) (uint64, fsID, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fsID{}, fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), fsID(st.Fsid), nil
}

// sameDevice reports whether a and b are on the same file system: a
// rename between them can work (an entry that is a mount point is not).
func sameDevice(a, b fs.FileInfo) bool {
	sa, oka := a.Sys().(*syscall.Stat_t)
	sb, okb := b.Sys().(*syscall.Stat_t)
	return !oka || !okb || sa.Dev == sb.Dev
}
