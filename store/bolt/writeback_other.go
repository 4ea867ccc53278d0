//go:build !linux

package bolt

import "os"

// startWriteback does nothing here: the final fsync of a load writes
// everything.
func startWriteback(*os.File) {}
