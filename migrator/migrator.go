// Package migrator is the migrator command as a library: a product's own
// main passes its generated registry to Main, so the whole CLI is three
// lines:
//
//	func main() {
//		os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
//	}
//
// Usage:
//
//	migrator version [--json]
//	migrator init    --store S
//	migrator status  --store S [--json]
//	migrator plan    (--store S | --backup FILE) [--json]
//	migrator upgrade --store S --online [--config DIR] [--allow-digest-mismatch]
//	migrator upgrade --offline --in FILE --out FILE [--allow-digest-mismatch]
//	migrator backup  --store S [--config DIR] [--compress zstd|none] --out FILE
//	migrator verify  FILE
//	migrator restore FILE --store S [--config DIR]
//	migrator help    [COMMAND]
//
// For example, before upgrading a store in place:
//
//	$ migrator plan --store broker.db
//	data version 5.0.0, last upgrade hook 98; release 5.1.0
//	pending, in order:
//	  hook  99  5.0.1  online   libbar.UpgradeLibBar
//	  hook 100  5.1.0  offline  UpgradeLibBaz
//	after the upgrade: data version 5.1.0
//	online upgrade: refused, hook 100 is offline: run "migrator upgrade --offline"
//
// S is a bbolt file path (the embedded store). Flags may stand before or
// after the positional arguments; "-flag" and "--flag" are the same. A
// second migrator on the same store fails within seconds with "store is in
// use by another process". SIGINT and SIGTERM stop an upgrade cleanly
// between hooks or batches: what is committed stays, and a re-run resumes.
// Long work reports progress on stderr when stderr is a terminal.
//
// Exit status: 0 success; 1 a refused or failed operation (the refusal says
// why and what to do); 2 usage or environment errors (a bad flag, a missing
// or unreadable store or file).
package migrator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
)

// env is what a command runs with.
type env struct {
	ctx            context.Context
	reg            *hook.Registry
	stdin          io.Reader
	stdout, stderr io.Writer
	// progress receives progress lines: stderr when it is a terminal,
	// otherwise nil.
	progress io.Writer
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
	// hidden keeps an internal command out of "migrator help".
	hidden bool
}

// order is the order of "migrator help"; a registered command missing
// here is listed after these.
var order = []string{"version", "init", "status", "plan", "upgrade", "backup", "verify", "restore"}

// specs holds the commands; each command's file registers its spec from
// an init function.
var specs = map[string]*commandSpec{}

func register(s *commandSpec) { specs[s.name] = s }

func commands() []*commandSpec {
	var list []*commandSpec
	for _, name := range order {
		if s := specs[name]; s != nil && !s.hidden {
			list = append(list, s)
		}
	}
	var rest []string
	for name := range specs {
		if !slices.Contains(order, name) && !specs[name].hidden {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		list = append(list, specs[name])
	}
	return list
}

// envError is an environment error: exit status 2.
type envError struct{ err error }

func (e *envError) Error() string { return e.err.Error() }
func (e *envError) Unwrap() error { return e.err }

// envErrorf returns an environment error (exit status 2).
func envErrorf(format string, args ...any) error {
	return &envError{err: fmt.Errorf(format, args...)}
}

// Main runs the migrator for reg with args (without the program name) and
// returns the exit status: 0 success, 1 a refused or failed operation, 2
// usage or environment errors.
func Main(reg *hook.Registry, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{ctx: ctx, reg: reg, stdin: stdin, stdout: stdout, stderr: stderr}
	if isTerminal(stderr) {
		e.progress = stderr
	}
	err := dispatch(e, args)
	if err != nil {
		fmt.Fprintf(stderr, "migrator: %v\n", err)
	}
	return exitCode(err)
}

func exitCode(err error) int {
	var ee *envError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cliflag.ErrUsage), errors.As(err, &ee):
		return 2
	}
	return 1
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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
	spec := specs[name]
	if spec == nil {
		return cliflag.Usagef("unknown command %q (run \"migrator help\")", name)
	}
	cmd := spec.new()
	fs := flag.NewFlagSet("migrator "+spec.name, flag.ContinueOnError)
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
		return fmt.Errorf("%s: %w (run \"migrator help %s\")", spec.name, err, spec.name)
	}
	if err := cmd.run(e); err != nil {
		return fmt.Errorf("%s: %w", spec.name, err)
	}
	return nil
}

func help(e *env, args []string) error {
	switch len(args) {
	case 0:
		writeOverview(e.stdout)
		return nil
	case 1:
		spec := specs[args[0]]
		if spec == nil {
			return cliflag.Usagef("unknown command %q (run \"migrator help\")", args[0])
		}
		fs := flag.NewFlagSet("migrator "+spec.name, flag.ContinueOnError)
		spec.new().flags(fs)
		writeUsage(e.stdout, spec, fs)
		return nil
	}
	return cliflag.Usagef("help takes at most one command, got %d", len(args))
}

func writeOverview(w io.Writer) {
	fmt.Fprint(w, "migrator backs up, restores and upgrades the product's store with its upgrade hooks.\n\nUsage: migrator COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"migrator help COMMAND\" or \"migrator COMMAND --help\" for a command's flags and an example.\n")
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
