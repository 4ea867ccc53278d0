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
// use by another process". SIGINT and SIGTERM stop every command at its
// next safe point, exit 1 and leave the target as it was: an upgrade
// between hooks or batches (what is committed stays, and a re-run
// resumes), a backup or a restore before its rename or swap (its temporary
// files removed), a verify or a plan at once. A second signal ends the
// process at once; a rerun completes or cleans up.
// Long work reports progress on stderr when stderr is a terminal.
//
// Exit status: 0 success; 1 a refused or failed operation (the refusal says
// why and what to do); 2 usage or environment errors (a bad flag, a missing
// or unreadable store or file).
package migrator

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/subcmd"
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

type (
	command = subcmd.Command[*env]
	spec    = subcmd.Spec[*env]
)

// order is the order of "migrator help"; a registered command missing
// here is listed after these.
var order = []string{"version", "init", "status", "plan", "upgrade", "backup", "verify", "restore"}

// specs holds the commands; each command's file registers its spec from
// an init function.
var specs = map[string]*spec{}

func register(s *spec) { specs[s.Name] = s }

// commands returns every command, hidden ones included, in help order.
func commands() []*spec {
	var list []*spec
	for _, name := range order {
		if s := specs[name]; s != nil {
			list = append(list, s)
		}
	}
	var rest []string
	for name := range specs {
		if !slices.Contains(order, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		list = append(list, specs[name])
	}
	return list
}

// envErrorf returns an environment error (exit status 2).
func envErrorf(format string, args ...any) error {
	return cliflag.Env(fmt.Errorf(format, args...))
}

// Main runs the migrator for reg with args (without the program name) and
// returns the exit status: 0 success, 1 a refused or failed operation, 2
// usage or environment errors.
func Main(reg *hook.Registry, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels ctx: every command stops at its next safe
	// point and cleans up. A second one gets the default behaviour (the
	// process ends), which every command also survives.
	context.AfterFunc(ctx, stop)
	e := &env{ctx: ctx, reg: reg, stdin: stdin, stdout: stdout, stderr: stderr}
	if isTerminal(stderr) {
		e.progress = stderr
	}
	program := &subcmd.Program[*env]{
		Name:       "migrator",
		Summary:    "migrator backs up, restores and upgrades the product's store with its upgrade hooks.",
		Commands:   commands(),
		WrapErrors: true,
	}
	err := program.Run(e, stdout, stderr, args)
	if err != nil {
		fmt.Fprintf(stderr, "migrator: %v\n", err)
	}
	return cliflag.ExitCode(err)
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
