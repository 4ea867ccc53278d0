package backup

import (
	"errors"

	"golang.org/x/sys/unix"
)

// exchange atomically swaps the files or directories a and b, which must
// both exist (renameat2 with RENAME_EXCHANGE). It returns an error wrapping
// errors.ErrUnsupported when the file system cannot.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return errors.ErrUnsupported
	}
	return err
}
