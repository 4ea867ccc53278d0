//go:build !unix

package migrator

import "io/fs"

// privateMode is false where mode bits do not say who may read a
// directory (Windows reports 0777 for every directory): the private
// directory's name and identity are checked, not its mode.
const privateMode = false

// ownedByMe is true where files have no owner uid: the private directory
// is in the user's own output directory.
func ownedByMe(fs.FileInfo) bool { return true }
