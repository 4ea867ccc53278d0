//go:build !linux

package backup

import "errors"

// exchange has no atomic form here: swapIn falls back to two renames.
func exchange(a, b string) error { return errors.ErrUnsupported }
