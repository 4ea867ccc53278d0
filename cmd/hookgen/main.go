// Command hookgen checks an upgrade-hook registry (registry.yaml) and
// generates its typed Go registry.
//
//	hookgen init     [--product NAME] [--release V]  set up registry.yaml, hooks/, generated/ and a migrator main
//	hookgen generate [--registry FILE] [--out DIR]   write generated/registry.go and generated/hooks.sum
//	hookgen check    [--registry FILE] [--format F]  the registry rules, the hook functions' types, stale generated files
//	hookgen lint     [--against REF]... [--format F] no landed hook changed, against git history
//	hookgen audit    [--format F]                    lint over every commit of the registry's history
//	hookgen new      [--online] [--version V] NAME   add a hook on top, with a function and a test stub
//	hookgen amend    NUM --reason TEXT               record a reviewed change of a released hook
//	hookgen release  --version X.Y.Z [flags]         the release gate, then reproducible binaries
//	hookgen version  [--json]                        the hookreg version (also hookgen --version)
//
// Another product runs it as a tool of its module ("go get -tool
// github.com/hookreg/hookreg/cmd/hookgen", then "go tool hookgen init"). A
// new hook, from the module root:
//
//	$ hookgen new --online libsess.UpgradeSessions
//	$ $EDITOR hooks/libsess/upgradesessions.go hooks/libsess/upgradesessions_test.go
//	$ go generate ./...        # runs hookgen generate
//	$ hookgen check
//
// Diagnostics have the go vet form, FILE:LINE:COL: hook N: message [rule-id];
// --format json and --format github print them for machines. Exit status: 0
// success, 1 findings or a failed operation, 2 usage or environment errors.
// "hookgen help COMMAND" prints a command's flags and an example; the
// package internal/hookgen documents the behaviour in full.
//
// hookgen is a short-lived command whose heap is small (a lint of 2,000
// hooks peaks at about 45 MB of RSS either way): unless GOGC is set, it
// collects garbage when the heap has grown by 400% rather than 100%, which
// saves about a tenth of a lint's CPU.
package main

import (
	"os"
	"runtime/debug"

	"github.com/hookreg/hookreg/internal/hookgen"
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(hookgen.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
