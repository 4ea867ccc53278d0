//go:build unix

package migrator

import (
	"io/fs"
	"os"
	"syscall"
)

// privateMode reports whether directory modes say who may read them:
// os.MkdirTemp makes the offline upgrade's private directory 0700.
const privateMode = true

// ownedByMe reports whether the file is owned by this process's user.
func ownedByMe(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
