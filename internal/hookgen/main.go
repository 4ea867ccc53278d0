// Package hookgen is the hookgen command: it checks registry.yaml, proves
// against git history that no landed hook changed, and generates the typed
// registry. cmd/hookgen is its three-line main.
//
// Usage:
//
//	hookgen generate [--registry FILE] [--out DIR]
//	hookgen check    [--registry FILE] [--out DIR] [--format text|json|github]
//	hookgen lint     [--against REF]... [--format text|json|github]
//	hookgen audit    [--format text|json|github]
//	hookgen new      [--online] [--version V] NAME
//	hookgen amend    NUM --reason TEXT
//	hookgen help     [COMMAND]
//
// For example, after editing registry.yaml:
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
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
)

// env is what a command runs with: its standard streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand: an options struct that declares its flags,
// validates the positional arguments and runs.
type command interface {
	flags(fs *flag.FlagSet)
	validate(args []string) error
	run(e *env) error
}

// commandSpec describes a subcommand for dispatch and help.
type commandSpec struct {
	name    string
	summary string
	// usage is the full help text: the synopsis, the flags' meaning and an
	// example.
	usage string
	new   func() command
}

// commands in the order "hookgen help" lists them.
func commands() []*commandSpec {
	return []*commandSpec{generateCmd, checkCmd, lintCmd, auditCmd, newCmd, amendCmd}
}

func lookup(name string) *commandSpec {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs hookgen with args (without the program name) and returns the
// exit status: 0 success, 1 findings or a failed operation, 2 usage or
// environment errors.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	err := dispatch(e, args)
	if err != nil && err != errFindings {
		fmt.Fprintf(stderr, "hookgen: %v\n", err)
	}
	return exitCode(err)
}

func dispatch(e *env, args []string) error {
	if len(args) == 0 {
		writeOverview(e.stderr)
		return cliflag.Usagef("missing command")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(e, args)
	}
	spec := lookup(name)
	if spec == nil {
		return cliflag.Usagef("unknown command %q (run \"hookgen help\")", name)
	}
	cmd := spec.new()
	fs := flag.NewFlagSet("hookgen "+spec.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.flags(fs)
	pos, err := cliflag.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(e.stdout, spec, fs)
		return nil
	}
	if err == nil {
		err = cmd.validate(pos)
	}
	if err != nil {
		return fmt.Errorf("%w (run \"hookgen help %s\")", err, spec.name)
	}
	return cmd.run(e)
}

func help(e *env, args []string) error {
	switch len(args) {
	case 0:
		writeOverview(e.stdout)
		return nil
	case 1:
		spec := lookup(args[0])
		if spec == nil {
			return cliflag.Usagef("unknown command %q (run \"hookgen help\")", args[0])
		}
		fs := flag.NewFlagSet("hookgen "+spec.name, flag.ContinueOnError)
		spec.new().flags(fs)
		writeUsage(e.stdout, spec, fs)
		return nil
	}
	return cliflag.Usagef("help takes at most one command, got %d", len(args))
}

func writeOverview(w io.Writer) {
	fmt.Fprint(w, "hookgen checks an upgrade-hook registry (registry.yaml) and generates its typed Go registry.\n\nUsage: hookgen COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"hookgen help COMMAND\" or \"hookgen COMMAND --help\" for a command's flags and an example.\n")
}

func writeUsage(w io.Writer, spec *commandSpec, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(spec.usage))
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
	}
}
