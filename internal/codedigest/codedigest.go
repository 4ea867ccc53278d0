// Package codedigest computes the code digest of an upgrade hook: a hash over
// everything of the product's own code that can change what the hook does.
//
// # The h4 algorithm
//
// [Scope.Compute] returns "h4:" digests, the algorithm hookgen writes to
// generated/hooks.sum: the h3 walk below ([Scope.ComputeH3]) over a scope
// that also holds the code the hook reaches in the modules go.sum pins
// (see "Dependencies"). It works on source files, not on the host's build:
// every package in scope is read from its directory with all its files, for
// every build context (any GOOS, GOARCH, cgo setting, build tag or Go
// version), so that the digest does not depend on the machine or the build
// cache of the run that computes it. Facts only the go command and the type
// checker know are taken from them ([Scope.UsePackages], given the packages
// hookgen loads anyway): the name of every imported package (its package
// clause: internal/text-fmt holding package textfmt, go.yaml.in/yaml/v3,
// gopkg.in/x.v3), alias types (a method declared on an alias receiver
// belongs to the named type), and whether the build uses vendor/.
//
// What is in scope: the packages of the main module, and of every module
// whose code go.sum does not pin: a replace to a local directory, a go.work
// use entry (a go.work replace overrides go.mod's), and vendor/ when the
// build uses it (as the go command reports: GOFLAGS=-mod=mod builds without
// it). In h4, also every other module (not the standard library) whose
// packages the reached code reaches, read from the module cache (see
// "Dependencies"); in h3, the digest records for those the version go.mod
// requires (see below). The standard library and the Go toolchain are not
// hashed.
//
// What is hashed, starting from the hook function and following every name
// a hashed piece of code uses (a package-level name of the same package,
// pkg.Name into another package in scope, the methods of every type used,
// both sides of a //go:linkname):
//
//   - each declaration (function, method, type, var, const; a grouped const
//     declaration as a whole) in a normal form that cannot lose a token: the
//     tokens go/printer prints for it (so also those the syntax tree holds
//     only as positions: an alias's "=", a call's "..."), after gofmt -s's
//     simplifications, without comments and layout (a semicolon is ";"
//     written or not, a comma before a closing bracket is dropped, number
//     literals are lower-cased); then the directives of its doc comments,
//     the import paths of the file's dot imports and, for every identifier
//     that names an import, the import path;
//   - a conditional Go file (a //go:build or +build line, a GOOS or GOARCH
//     file name suffix such as x_windows.go or x_arm64.go, or import "C") as
//     a whole: its name, constraint lines, directives, cgo preamble, imports
//     and declarations, these two as sorted sets; such files are the ones
//     that differ between builds, so all of them of every reached package
//     are hashed. A file no build compiles (its constraint is false for any
//     tags with "ignore" unset: a go generate program) is not;
//   - the non-Go sources of every reached package (.s, .c, .h, .syso, ...),
//     byte for byte, and of a cgo package also those in its subdirectories
//     (a preamble may #include "sub/x.h") and, in h4, those outside its
//     directory that its build reads: below a directory or the file a #cgo
//     line names with ${SRCDIR} (-I${SRCDIR}/../include), a file a quoted
//     #include names ("../../include/x.h") and what that file includes,
//     as far as they lie in the package's module;
//   - the files every //go:embed line of the package names (attached to its
//     var or not, in any file), names and bytes;
//   - package state: for every reached package and every package of the
//     scope that it imports, transitively, in any file: its init functions,
//     every package-level var whose initialiser may run code of the product
//     (a call of a function or method of the product, a function literal, a
//     blank "var _ =", or a call of the standard library or another module
//     that is given a value of the product, which may call its methods:
//     fmt.Sprint(v) calls v.String; in h4 also any call of the standard
//     library outside the packages that change nothing other code sees,
//     pureStd: os.Setenv("MODE", "v1") does, errors.New does not), their order (the initialisers, then the
//     init functions, in the order of the files as the go command sorts them
//     and of the source: swapping two or renaming a file so that it sorts
//     elsewhere changes it, moving an init function to another file in the
//     same place of the order does not), its blank imports, and its
//     //go:linkname (pull or push) and //go:debug directives;
//   - the go line and the godebug settings of go.mod (and go.work), the go
//     line of every other module in scope whose code is reached, and the
//     //go:debug lines of the main packages that build the product's
//     migrator (those whose imports reach [MigratorPkgPath]; every main
//     package when none does);
//   - for each module outside the scope that the reached code refers to
//     (pkg.Name) or imports for its side effects (import _), the version go.mod
//     requires: bumping it changes the digest, and the lint reports it
//     under its own rule. In h4 these are only the modules no requirement
//     provides (an untidy go.mod: "(not required in go.mod)"); the others
//     are in scope.
//
// Each piece is an item with a key that names its package directory, not
// its file: reformatting, reordering, comment edits and moving a
// declaration to another unconditional file of the package keep the digest.
// The digest is "h4:" ("h3:") followed by the standard base64 encoding of a SHA-256
// over the sorted "key hash" lines.
//
// Limits: data the hook reads at run time from disk or the network is not
// code and is not hashed; nor is the engine's own implementation of hook.Tx
// and the store (the hook reaches it only through the hook.Tx interface,
// never by name, so neither h3 nor h4 follows it), the standard library,
// the toolchain, the code of pinned modules in h3 (their version is
// recorded instead; h4 hashes what is reached of it), or code of the product
// outside the hook's import closure that writes a hook package's variables
// (a main package's init). Names are followed by syntax over every build
// (x.M follows M through the methods of the types the code names), which can
// include more than the hook runs but never less of what it names. The name
// of a package imported only by files the host's build does not compile,
// and outside the scope, is guessed from its path when the go command did
// not list it (last element without a major version, ".vN", "go-" or "-go").
//
// # Dependencies (h4)
//
// h4 follows names into every module the build takes from the module
// cache, as into the main module: a package of a required module (direct
// or indirect, as go.mod's require and replace and go.work's replace
// select it; for a tree the go command loaded, its own selection) is read
// from the module cache directory of that version, which go.sum verified
// when it was downloaded. What is reached there is hashed as local code
// is, package state and the go line of its go.mod included, and what that
// code reaches in further modules too (a hook calls a, a calls b: b's
// reached code counts). Keys name the module path and the package, not
// the version ("example.com/dep: func Greet"), so a bump that changes no
// reached piece (a README, a test, a package nothing reaches) keeps the
// digest, and one that does changes it; [Decl.Module] and [Decl.Version]
// say where such a piece lies, so that the lint names the module, both
// versions and the changed declaration. A version that is not in the
// module cache (the tree of an old reference) is fetched with "go mod
// download -json", under the user's GOPROXY and GOFLAGS; when that fails,
// the error names the module and version. Out of scope, as in h3: the
// standard library and the toolchain; the engine's implementation behind
// the hook.Tx interfaces (not reached by name); code a dependency reaches
// only through an interface or a function value the hook does not name
// (methods of the types named are followed, as in the main module).
//
// # Why not a call graph
//
// golang.org/x/tools has call graphs over SSA (go/ssa, go/callgraph/cha,
// rta, vta) that find what a function reaches through interfaces and method
// values. They were measured and not used: BenchmarkReachability, on this
// repository's three example hooks, loads every package of the program from
// source, builds SSA and a CHA call graph in 1.67 s, against 0.14 s for the
// load hookgen does anyway plus the three h3 digests (11.7 times). And an
// SSA program is one build (one GOOS, GOARCH, tag set) of the host, while
// the digest must cover every build and be the same on every machine;
// following names over the syntax of every file, and every method of every
// type named, already reaches what an interface call can reach in the
// product's code, without the type checker's single build deciding what is
// included.
//
// # Earlier algorithms and algorithm changes
//
// [ComputeH1] (type information of one host build, without package state,
// directives, other builds or non-Go files), [Scope.ComputeH2] (source
// over every build, with AST fields hashed by hand and names guessed from
// import paths) and [Scope.ComputeH3] (h4 without the code of pinned
// modules, whose required versions it records) are the algorithms of
// hookreg's earlier releases, kept
// unchanged: their digests remain in release fixtures, in the metadata of
// stores that applied hooks, and in hooks.sum at old references. So:
//
//   - the lint compares like with like: against a reference whose hooks.sum
//     holds an earlier algorithm's digest, it computes the current algorithm
//     over the reference's own tree (an earlier algorithm may be blind to
//     the change);
//   - when hookgen generate replaces an earlier algorithm's line of
//     hooks.sum, it keeps the pair as a further field ("h3:...->h4:..."):
//     the same code under both algorithms, checked twice: the current code
//     has the old digest under the old algorithm, and the tree of the commit
//     that first recorded the old digest has the current digest (for an
//     h3 digest, which recorded module versions, the second check alone:
//     after a bump that changes no reached code the current code has
//     another h3 digest and the same h4 one). The
//     generated registry carries these pairs with the amendments, so the
//     migrator accepts a store that applied the hook under h1, h2 or h3 (see
//     hook.Hook.Amendments).
//
// Example:
//
//	s, err := codedigest.NewScope(moduleDir)
//	// ...
//	s.UsePackages(pkgs) // from golang.org/x/tools/go/packages
//	res, err := s.Compute("example.com/broker/hooks/libfoo", "UpgradeLibFoo")
//	// res.Digest == "h4:2T4l...="
//	// res.Decls[0] == Decl{Name: "hooks/libfoo/users.go: func normalize", ...}
package codedigest

import (
	"path"
	"strings"
)

// Result is a hook's code digest and the pieces it covers.
type Result struct {
	// Digest is the algorithm prefix ("h4:", "h3:", "h2:", "h1:") followed by base64 of
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
	// Module and Version are set (h4) for a piece of a module read from
	// the module cache: its path and the version the build selects
	// ("v1.2.3", or "other/path v1.2.3" for a replacement). The key does
	// not name the version.
	Module, Version string
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
