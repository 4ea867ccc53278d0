// Package codedigest computes the code digest of an upgrade hook: a hash over
// everything of the product's own code that can change what the hook does.
//
// # The h2 algorithm
//
// [Scope.Compute] returns "h2:" digests, the algorithm hookgen writes to
// generated/hooks.sum. It works on source files, not on the host's build:
// every package in scope is read from its directory with all its files, for
// every build context (any GOOS, GOARCH, cgo setting or Go version), so the
// digest does not depend on the machine, the environment or the build cache
// of the run that computes it.
//
// What is in scope: the packages of the main module, and of every module
// whose code go.sum does not pin: a replace to a local directory, a go.work
// use entry, and vendor/ (the vendored copy is what builds, so it is hashed).
// Other modules are pinned by go.sum; for them the digest records the
// version go.mod requires (see below). The standard library and the Go
// toolchain are not hashed.
//
// What is hashed, starting from the hook function and following every name
// a hashed piece of code uses (a package-level name of the same package,
// pkg.Name into another package in scope, the methods of every type used,
// both sides of a //go:linkname):
//
//   - each declaration (function, method, type, var, const; a grouped const
//     declaration as a whole) of an unconditional Go file, over its syntax
//     tree: positions and comments do not count, directive comments
//     (//go:embed, //go:noinline, //export, ...) do, and a //go:embed
//     declaration includes the embedded files' names and bytes;
//   - a conditional Go file (a //go:build or +build line, a GOOS or GOARCH
//     file name suffix such as x_windows.go or x_arm64.go, or import "C") as a
//     whole: its name, constraint lines, directives, cgo preamble and syntax
//     tree, comments excepted; such files are the ones that differ between
//     builds, so all of them of every reached package are hashed;
//   - the non-Go sources of every reached package (.s, .c, .h, .syso, ...),
//     byte for byte;
//   - package state: for every reached package and every package of the scope
//     that it imports, transitively, in any file, its init functions (in
//     order), every package-level var whose initialiser runs code of the
//     product (a call of a function in scope, a method call, a function
//     literal, or a blank "var _ ="), its blank imports, and its
//     //go:linkname and //go:debug directives;
//   - the go line and the godebug settings of go.mod (and go.work);
//   - for each module outside the scope that the reached code refers to
//     (pkg.Name) or imports for its side effects (import _), the version go.mod
//     requires: bumping it changes the digest, and the lint reports it
//     under its own rule.
//
// Each piece is an item with a key that names its package directory, not
// its file: reformatting, reordering, comment edits and moving a
// declaration to another unconditional file of the package keep the digest.
// The digest is "h2:" followed by the standard base64 encoding of a SHA-256
// over the sorted "key hash" lines.
//
// Limits: data the hook reads at run time from disk or the network is not
// code and is not hashed; nor is the engine's own implementation of hook.Tx
// and the store, the standard library, the toolchain, or code of the
// product outside the hook's import closure that writes a hook package's
// variables (a main package's init); names are followed by syntax, not by
// type (x.M follows M through the methods of the types the code names),
// which can include more than the hook runs but never less of what it
// names.
//
// # The h1 algorithm and algorithm changes
//
// [ComputeH1] is the algorithm of hookreg's first releases, kept unchanged:
// it follows type information of one host build and leaves out package
// state, directives, other build contexts and non-Go files. Its digests
// remain in release fixtures, in the metadata of stores that applied hooks,
// and in hooks.sum at old references. So:
//
//   - the lint compares like with like: against a reference whose hooks.sum
//     holds an h1 digest it computes the current h1 digest;
//   - when hookgen generate replaces an h1 line of hooks.sum with an h2 one
//     and the current h1 digest equals the recorded one, it keeps the pair
//     as a fourth field ("h1:...=h2:..."): the same code under both
//     algorithms. The generated registry carries these pairs with the
//     amendments, so the migrator accepts a store that applied the hook
//     under h1 (see hook.Hook.Amendments).
//
// Example:
//
//	s, err := codedigest.NewScope(moduleDir)
//	// ...
//	res, err := s.Compute("example.com/broker/hooks/libfoo", "UpgradeLibFoo")
//	// res.Digest == "h2:2T4l...="
//	// res.Decls[0] == Decl{Name: "hooks/libfoo/users.go: func normalize", ...}
package codedigest

import (
	"path"
	"strings"
)

// Result is a hook's code digest and the pieces it covers.
type Result struct {
	// Digest is the algorithm prefix ("h2:", "h1:") followed by base64 of
	// a SHA-256.
	Digest string
	// Decls are the pieces covered, sorted by Name.
	Decls []Decl
}

// Decl is one piece of code covered by a digest.
type Decl struct {
	// Name says where it is: the file, relative to the module root and
	// slash-separated, and the declaration ("hooks/libfoo/users.go: func
	// normalize", "hooks/acl.go: type rule", "hooks/x_windows.go: file
	// x_windows.go", "go.mod: require golang.org/x/text v0.3.0").
	Name string
	// Hash is the base64 SHA-256 of the piece.
	Hash string
	// ID is the key the digest is computed over; empty for h1, whose key
	// is derived from Name.
	ID string
}

// Key returns the piece's key: its name without the file name, so that
// moving a declaration between files of a package changes nothing
// ("hooks/libfoo: func normalize"). Compare Decls of two versions by Key.
func (d Decl) Key() string {
	if d.ID != "" {
		return d.ID
	}
	file, rest, ok := strings.Cut(d.Name, ": ")
	if !ok {
		return d.Name
	}
	return path.Dir(file) + ": " + rest
}

// Algorithm returns a digest's algorithm prefix without the colon ("h2").
func Algorithm(digest string) string {
	alg, _, _ := strings.Cut(digest, ":")
	return alg
}
