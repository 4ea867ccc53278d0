//go:build !linux

package backup

// mountPoints is the mount table's list of mount points (see
// mounts_linux.go); elsewhere there is none, and the device numbers alone
// decide.
func mountPoints() []string { return nil }
