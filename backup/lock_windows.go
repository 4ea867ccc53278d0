package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// tryLock takes an exclusive lock on f without waiting; errWouldBlock when
// another process holds it. Windows locks files, not directories: a
// directory is not locked (the store file's own lock still keeps two
// migrators apart).
func tryLock(f *os.File) error {
	if info, err := f.Stat(); err == nil && info.IsDir() {
		return nil
	}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) {
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}

// fsID identifies a file system: its volume name.
type fsID string

// fileSystemSpace returns the bytes available to this user on the volume
// holding dir, and the volume's name.
func fileSystemSpace(dir string) (uint64, fsID, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, "", fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return 0, "", fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, "", fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	return avail, fsID(filepath.VolumeName(abs)), nil
}

// sameDevice reports whether a and b are on the same file system; on
// Windows it is not checked.
func sameDevice(a, b fs.FileInfo) bool { return true }
