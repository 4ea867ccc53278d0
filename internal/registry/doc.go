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
package registry
