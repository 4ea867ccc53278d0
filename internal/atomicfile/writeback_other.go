//go:build !linux

package atomicfile

import "os"

// StartWriteback does nothing on this system: the final fsync writes
// everything.
func StartWriteback(*os.File) {}
