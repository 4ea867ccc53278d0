// Package registry reads registry.yaml, the list of a product's upgrade
// hooks, and checks it.
//
//	# Upgrade hooks, newest first: add new hooks at the top.
//	product: mqtt-broker      # optional; default: the module path
//	release: 5.1.0            # the release this tree builds
//	package: ./hooks          # optional; the package holding the hooks
//	min_data_version: 4.4.0   # optional; older data is refused
//	hooks:
//	  - num: 100
//	    introduced_in: 5.1.0
//	    allow_online: false
//	    func: UpgradeLibBaz          # hooks.UpgradeLibBaz
//	    doc: Split ACL rules by tenant.
//	  - num: 99
//	    introduced_in: 5.0.1
//	    allow_online: true
//	    func: libbar.UpgradeLibBar   # sub-package ./hooks/libbar
//
// Checking is three steps, each returning diagnostics with positions in the
// file and a rule id:
//
//	f, ds := registry.Parse("registry.yaml", data)      // strict YAML: keys, types, tabs
//	ds = append(ds, registry.Check(f)...)               // numbers, versions, online flags
//	funcs, fds, err := registry.LoadFuncs(moduleDir, f)  // the functions, type-checked
//
// Parse reads the YAML as yaml.v3 nodes so that every value keeps its
// position, and refuses what a lenient decoder would let through: unknown
// or duplicate keys, a value of the wrong type, tabs in the indentation,
// aliases, a second document, an empty file, a missing required key.
// Versions are strict semantic versions (github.com/Masterminds/semver/v3).
//
// Maintenance hooks. A hook added on a maintenance branch (release-2.16,
// for a patch release 2.16.1 after main has hooks of 2.17.0) says
// maintenance: true and takes a number of its line's range
// (hook.MaintenanceNum: 1002016001 is hook 1 of line 2.16), which no hook
// of main or of another line can take. Main carries it by merging the
// branch; in main's file it stands where its introduced_in places it
// (below 2.17.0's hooks, above 2.16.0's): version-order holds for every
// hook, num-order only among main's hooks and among each line's. Those
// are the only relaxations, and the marker is accepted only on a hook its
// line holds (internal/lint's maintenance-line rule).
//
// Loading. LoadFuncs type-checks the hook packages, the runtime package
// hook and the packages of the main module they reach (the roots) from
// source, as internal/codedigest needs them, and takes the types of every
// other package from export data, as go vet does. go/packages alone
// cannot load that way: with NeedTypes and without NeedDeps it asks go
// list for export data (-export) of every package it lists, the roots
// included, so the go command compiles the roots, with optimisation,
// although go/packages then type-checks them from source anyway; no mode
// gives export data for the dependencies only. After a one-line change of
// a 2,000-function hook package, go list -export -deps ./hooks took
// 0.40-0.51 s, go vet ./hooks 0.15 s: vet compiles only the dependencies
// of what it checks. So LoadFuncs runs two go lists at the same time: one
// of the roots' import graph (files, imports, modules: no types, so no
// export data and nothing compiled), one of the packages the roots import
// that are not roots, with their export data, which the build cache
// serves (they do not change with the hooks). The second starts from a
// guess, the roots' import declarations as go/build reads them, and is
// run again with the go command's set when the guess is not exactly that
// set (a build tag of GOFLAGS), so the result never depends on the guess.
// LoadFuncs then type-checks the roots itself, each after the roots it
// imports, with the choices of go/packages' loader (loadPackage):
// CompiledGoFiles parsed with comments, the go line of the package's
// module as the language version, the type sizes of the go command,
// parse and type errors appended to the go command's errors at their
// positions. A package that does not compile is reported once, from the
// type checker (the go command's compilation reported the errors a second
// time). When a package of another module imports a root back, its export
// data would hold a second copy of the root's types, and LoadFuncs loads
// with go/packages alone (LoadMode), compiling the roots as before.
//
// While the go command lists the packages, LoadFuncs parses the hook
// packages' files for the type checker (parseAhead) and has
// internal/codedigest parse and print them for the digests
// (codedigest.Scope.Prefetch): that work no longer waits for the lists.
//
// Measured with BenchmarkLint of internal/lint (2,000 hooks; for the
// flagged runs, every hook flagged by a change of the helper they call, a
// new text each iteration; -mod=readonly), on a quiet 2-core machine, 4
// runs each, alternating with the code before this load (same
// benchmark), lint over go vet ./... in the same run. On the module as
// hookgen init makes it (generated/registry.go importing the hooks,
// cmd/migrator linking the migrator): clean 0.81-0.91 (before 0.77-0.82),
// flagged 0.48-0.52 (before 1.44-1.52). On the hook package alone, where
// vet has nothing else to check: clean 2.04-2.35 (before 1.68-2.18: two go
// lists cost more than one, and the digests' 0.03 s saved does not make
// up for it), flagged 1.64-1.93 (before 3.04-3.46); a flagged lint takes
// 0.28-0.30 s (before 0.54-0.60 s).
package registry
