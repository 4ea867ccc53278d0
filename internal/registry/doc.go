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
package registry
