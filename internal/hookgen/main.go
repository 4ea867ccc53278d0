// Package hookgen is the hookgen command: it checks registry.yaml, proves
// against git history that no landed hook changed, and generates the typed
// registry. cmd/hookgen is its three-line main.
//
// Usage:
//
//	hookgen init     [--product NAME] [--release V] [--migrator DIR]
//	hookgen generate [--registry FILE] [--out DIR]
//	hookgen check    [--registry FILE] [--out DIR] [--format text|json|github]
//	hookgen lint     [--against REF]... [--format text|json|github]
//	hookgen audit    [--format text|json|github]
//	hookgen new      [--online] [--version V] NAME
//	hookgen amend    NUM --reason TEXT
//	hookgen release  --version X.Y.Z [--migrator PKG] [--cmd PKG]... [--platforms LIST]
//	                 [--fixtures DIR] [--seed-store FILE | --seed-cmd CMD] [--dist DIR]
//	hookgen version  [--json]   (also hookgen --version)
//	hookgen help     [COMMAND]
//
// In a module without hooks yet, "hookgen init" writes registry.yaml, the
// hook package, generated/ and a migrator main, and makes hookgen a tool of
// the module ("go tool hookgen"). For example, after editing registry.yaml:
//
//	$ hookgen check
//	registry.yaml:7:20: hook 100: introduced_in "5.2.0" is newer than release "5.1.0" [version-release]
//
// --registry defaults to registry.yaml at the module root (the nearest
// directory above the working directory that holds go.mod). Diagnostics are
// written in the go vet form to stderr; --format json (one object a line)
// and --format github (workflow annotations) write them to stdout.
//
// Exit status: 0 success; 1 findings or a failed operation; 2 usage or
// environment errors (a bad flag, an unreadable file, not a git repository,
// packages that do not load).
package hookgen

import (
	"fmt"
	"io"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/subcmd"
)

// env is what a command runs with: its standard streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type (
	command = subcmd.Command[*env]
	spec    = subcmd.Spec[*env]
)

// program is hookgen with its commands in the order "hookgen help" lists
// them.
var program = &subcmd.Program[*env]{
	Name:     "hookgen",
	Summary:  "hookgen checks an upgrade-hook registry (registry.yaml) and generates its typed Go registry.",
	Commands: []*spec{initCmd, generateCmd, checkCmd, lintCmd, auditCmd, newCmd, amendCmd, releaseCmd, versionCmd},
}

// Main runs hookgen with args (without the program name) and returns the
// exit status: 0 success, 1 findings or a failed operation, 2 usage or
// environment errors.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	err := program.Run(e, stdout, stderr, args)
	if err != nil && err != errFindings {
		fmt.Fprintf(stderr, "hookgen: %v\n", err)
	}
	return cliflag.ExitCode(err)
}
