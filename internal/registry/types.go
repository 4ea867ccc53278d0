package registry

import (
	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/internal/diag"
)

// File is a parsed registry.yaml. Positions point into the file for
// diagnostics; a value's position is zero when its key is missing or the
// value did not parse (Parse reported it), so Check skips it.
type File struct {
	// Path is the file's name as given, used in diagnostics.
	Path string
	// Product names the product (default: the module path, filled in by
	// the caller that knows it).
	Product    string
	ProductPos diag.Position
	// Release is the release the tree builds, as written.
	Release    string
	ReleasePos diag.Position
	// Package is the hook package directory relative to the module root
	// (default "./hooks"), the same as relative to the registry when the
	// registry is at the module root, as usual.
	Package    string
	PackagePos diag.Position
	// MinDataVersion is the oldest data version upgraded ("" for none).
	MinDataVersion    string
	MinDataVersionPos diag.Position
	// HooksPos is the position of the hooks key.
	HooksPos diag.Position
	// Hooks in file order: newest (largest num) first.
	Hooks []Hook
}

// Hook is one entry of the hooks list.
type Hook struct {
	// Pos is the position of the list item (its first key).
	Pos diag.Position

	Num    int
	NumPos diag.Position
	// IntroducedIn as written; Version is its parse, nil when invalid.
	IntroducedIn    string
	Version         *semver.Version
	IntroducedInPos diag.Position
	AllowOnline     bool
	AllowOnlinePos  diag.Position
	// Maintenance marks a hook of a maintenance line (a patch release of
	// an older line than main's, landed on its maintenance branch): its
	// num is in its line's range (hook.MaintenanceNum) and it stands
	// where its introduced_in places it, outside the order of main's
	// numbers. MaintenancePos is zero when the key is absent.
	Maintenance    bool
	MaintenancePos diag.Position
	// Func as written: "UpgradeLibBaz" or "libfoo.UpgradeLibFoo".
	Func    string
	FuncPos diag.Position
	Doc     string
	// Amendments, oldest first: the reviewed changes of a released hook.
	Amendments []Amendment
}

// Amendment records one reviewed change of a released hook's code, written
// by hookgen amend:
//
//	amendments:
//	  - old: h2:...
//	    new: h2:...
//	    reason: fix CVE-2026-1234 in ACL parsing
type Amendment struct {
	Pos    diag.Position
	Old    string
	New    string
	Reason string
}

// Version returns the parsed release, nil when it is not a semantic
// version.
func (f *File) Version() *semver.Version {
	v, err := semver.StrictNewVersion(f.Release)
	if err != nil {
		return nil
	}
	return v
}
