// Package migrator is the migrator command as a library: a product's own
// main passes its generated registry to Main, so the whole CLI is three
// lines:
//
//	func main() {
//		os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
//	}
//
// A product whose own CLI nests the migrator under a subcommand names it
// with [Program], so that usage, help and errors show the command as
// typed ("acmectl migrate upgrade ..."); help examples derive from the
// registry.
//
// Usage:
//
//	migrator version [--json]                 (also: migrator --version)
//	migrator init    --store S [--data-version V] [--json]
//	migrator status  --store S [--json]
//	migrator plan    (--store S | --backup FILE) [--json]
//	migrator upgrade --online --store S [--config DIR] [--allow-digest-mismatch] [--json]
//	migrator upgrade --offline --store S [--config DIR] [--allow-digest-mismatch] [--json]
//	migrator upgrade --offline --store etcd://HOST:PORT/PREFIX [--backup-dir DIR] [--allow-digest-mismatch] [--json]
//	migrator upgrade --offline --in (FILE | -) --out FILE [--allow-digest-mismatch] [--json]
//	migrator backup  --store S [--config DIR] [--compress zstd|none] --out (FILE | -) [--json]
//	migrator verify  [--json] (FILE | -)
//	migrator restore (FILE | -) --store S [--config DIR] [--force] [--json]
//	migrator dump    (--store S | --backup FILE) [--table T] [--json]
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
//	online upgrade: refused, offline hooks 100: run "migrator upgrade --offline --store broker.db"
//
// S is a bbolt file path (the embedded store) or an etcd cluster and key
// prefix, etcd://host:port[,host:port]/prefix (the cluster store, for
// every command; "upgrade --offline --store" on it keeps its pre-upgrade
// backup in --backup-dir, and refuses to switch to the upgraded data when
// the product wrote to the store during the run). The flags
// --etcd-cacert, --etcd-cert, --etcd-key, --etcd-user and
// --etcd-password-file reach the cluster, or the variables
// HOOKREG_ETCD_CACERT, HOOKREG_ETCD_CERT, HOOKREG_ETCD_KEY,
// HOOKREG_ETCD_USER and HOOKREG_ETCD_PASSWORD_FILE, and HOOKREG_ETCD_PASSWORD
// holds the password itself (no flag does: a command line is visible to
// every user of the machine); none of them is ever printed. --etcd-timeout
// (HOOKREG_ETCD_TIMEOUT, default 10s) bounds each request to the cluster:
// without a quorum a command fails after it, naming the members that
// answered. status, plan,
// dump and backup read an etcd store without its lock, at one revision;
// init, restore and upgrade take the lock. The etcd store is linked only
// into a migrator whose main package imports it,
//
//	import _ "github.com/hookreg/hookreg/migrator/etcdstore"
//
// as a database/sql driver is; a migrator without it refuses an etcd://
// store and the --etcd-* flags with exit status 2, saying so.
//
// HOOKREG_STORE and HOOKREG_CONFIG in the environment stand for --store
// and --config when the command line gives neither them nor --backup or
// --in. Flags may stand before or after the positional arguments; "-flag"
// and "--flag" are the same. A second migrator on the same store fails
// within seconds with "store is in use by another process". SIGINT and
// SIGTERM stop every command at its next safe point, exit 1 and leave the
// target as it was: an upgrade between hooks or batches (what is committed
// stays, and a re-run resumes), a backup or a restore before its rename or
// swap (its temporary files removed), a verify or a plan at once. A second
// signal ends the process at once; a rerun completes or cleans up. Long
// work reports progress on stderr when stderr is a terminal: each phase on
// a line, with a rate and an ETA where its total is known;
// HOOKREG_PROGRESS=0 turns it off.
//
// The offline upgrade runs in a child process: the program re-executed with
// the arguments it was started with and the environment variable
// HOOKREG_OFFLINE_CHILD, which [Program.Main] recognizes wherever the
// product's main routes those arguments.
//
// Exit status: 0 success; 1 a refused or failed operation (the refusal says
// why and what to do); 2 usage or environment errors (a bad flag, a missing
// or unreadable store or file).
package migrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/subcmd"
	"github.com/hookreg/hookreg/store"
)

// env is what a command runs with.
type env struct {
	ctx            context.Context
	reg            *hook.Registry
	stdin          io.Reader
	stdout, stderr io.Writer
	// progress receives progress lines: a *backup.Progress on stderr
	// when it is a terminal and $HOOKREG_PROGRESS is not 0, otherwise
	// nil.
	progress io.Writer
	// prog is the command as invoked: "migrator", "acmectl migrate".
	prog string
	// getenv reads the environment (os.Getenv).
	getenv func(string) string
}

// envProgress set to 0 turns progress off on a terminal.
const envProgress = "HOOKREG_PROGRESS"

// phases returns the progress of long work, nil when it is not shown.
func (e *env) phases() *backup.Progress {
	p, _ := e.progress.(*backup.Progress)
	return p
}

type (
	command = subcmd.Command[*env]
	spec    = subcmd.Spec[*env]
)

// order is the order of "migrator help"; a registered command missing
// here is listed after these.
var order = []string{"version", "init", "status", "plan", "upgrade", "backup", "verify", "restore", "dump"}

// specs holds the commands; each command's file registers its spec from
// an init function. Their Usage is a text/template over [helpData].
var specs = map[string]*spec{}

func register(s *spec) { specs[s.Name] = s }

// commands returns every command, hidden ones included, in help order,
// with their help rendered for the program and registry of e.
func commands(e *env) []*spec {
	var names []string
	for _, name := range order {
		if specs[name] != nil {
			names = append(names, name)
		}
	}
	var rest []string
	for name := range specs {
		if !slices.Contains(order, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	data := newHelpData(e)
	var list []*spec
	for _, name := range append(names, rest...) {
		s := *specs[name]
		s.Usage = data.render(s.Name, s.Usage)
		newCmd := s.New
		s.New = func() command { return &envDefaults{command: newCmd(), getenv: e.getenv} }
		list = append(list, &s)
	}
	return list
}

// envErrorf returns an environment error (exit status 2).
func envErrorf(format string, args ...any) error {
	return cliflag.Env(fmt.Errorf(format, args...))
}

// Program is the migrator command line of one product: its registry and
// the name it is invoked by. A product whose own CLI nests the migrator
// under a subcommand names it so that usage, help and errors show the
// command an operator types:
//
//	case "migrate":
//		p := &migrator.Program{Registry: generated.Registry, Name: "acmectl migrate"}
//		os.Exit(p.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
type Program struct {
	// Registry is the product's generated registry.
	Registry *hook.Registry
	// Name is the command as invoked, as help, usage and error messages
	// show it; the base name of os.Args[0] when empty.
	Name string
}

// Main runs the migrator for reg with args (without the program name) and
// returns the exit status: 0 success, 1 a refused or failed operation, 2
// usage or environment errors. The program is named after os.Args[0]; see
// [Program] to name it otherwise.
func Main(reg *hook.Registry, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return (&Program{Registry: reg}).Main(args, stdin, stdout, stderr)
}

// Main runs the migrator with args (what follows the command's name) and
// returns the exit status: 0 success, 1 a refused or failed operation, 2
// usage or environment errors.
//
// In the child process of an offline upgrade (which re-executes the
// program with its own arguments, so that it reaches Main again however
// the product's CLI routes them), Main runs the child instead and exits
// the process: see "upgrade --offline".
func (p *Program) Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getenv("GOMEMLIMIT") == "" {
		// What the commands keep is bounded by their batches, but a
		// store's large values make bbolt write them twice per commit:
		// garbage the collector would let grow to several times the
		// live heap. A soft limit keeps it collected (GOMEMLIMIT sets
		// another).
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels ctx: every command stops at its next safe
	// point and cleans up. A second one gets the default behaviour (the
	// process ends), which every command also survives.
	context.AfterFunc(ctx, stop)
	failpoint.SetCommand(ctx)
	prog := p.Name
	if prog == "" {
		prog = filepath.Base(os.Args[0])
	}
	e := &env{ctx: ctx, reg: p.Registry, stdin: stdin, stdout: stdout, stderr: stderr, prog: prog, getenv: os.Getenv}
	if subcmd.IsTerminal(stderr) && os.Getenv(envProgress) != "0" {
		e.progress = backup.NewProgress(stderr)
	}
	if req, ok := childRequest(); ok {
		// The process exists for the child alone: nothing of the
		// product's main after Main runs in it. Only an offline
		// upgrade re-executes itself as a child, with its own args.
		var err error
		if isOfflineUpgrade(args) {
			err = runChild(e, req)
		} else {
			err = envErrorf("$%s is set on %q, which is not an offline upgrade: it is for the child process that \"upgrade --offline\" starts itself; unset it", childEnv, strings.Join(args, " "))
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		}
		stop()
		os.Exit(cliflag.ExitCode(err))
	}
	program := &subcmd.Program[*env]{
		Name:       prog,
		Summary:    fmt.Sprintf("%s backs up, restores and upgrades the %s store with its upgrade hooks.", prog, p.Registry.Product),
		Commands:   commands(e),
		WrapErrors: true,
		FlagGroups: []subcmd.FlagGroup{{
			Name:    "etcd",
			Prefix:  "etcd-",
			Summary: "the connection of an etcd:// store (TLS, authentication, request timeout)",
			Text: fmt.Sprintf(`Usage: %[1]s COMMAND --store etcd://host:port[,host:port]/prefix [--etcd-* flags]

Every command that takes --store S takes an etcd cluster and key prefix as
S, etcd://host:port[,host:port]/prefix, and these flags for its
connection: TLS (--etcd-cacert, and --etcd-cert with --etcd-key for a
client certificate), authentication (--etcd-user, with the password in
--etcd-password-file or $HOOKREG_ETCD_PASSWORD; never on the command line)
and the request timeout. Each flag defaults to the environment variable
it names. A migrator built without the cluster store refuses them.

Example:

	$ %[1]s status --store etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379/%[2]s --etcd-cacert ca.pem --etcd-user migrator --etcd-password-file /run/secrets/etcd`, prog, p.Registry.Product),
		}},
	}
	err := program.Run(e, stdout, stderr, args)
	code := cliflag.ExitCode(err)
	if errors.Is(err, store.ErrDamaged) {
		// A damaged store is an unreadable file, found when it is opened
		// or later while it is read: exit 2 either way.
		code = 2
	}
	switch {
	case err != nil && jsonRequested(args):
		line, _ := json.Marshal(jsonError{Error: fmt.Sprintf("%s: %v", prog, err), ExitStatus: code})
		fmt.Fprintf(stderr, "%s\n", line)
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	return code
}

// memoryLimit is the migrator's soft memory limit (see
// runtime/debug.SetMemoryLimit) unless $GOMEMLIMIT sets one.
const memoryLimit = 128 << 20

// jsonError is what a command given --json prints on standard error when
// it fails: the message a text run prints, and the exit status (1: a
// refused or failed operation; 2: usage or environment).
type jsonError struct {
	Error      string `json:"error"`
	ExitStatus int    `json:"exit_status"`
}

// jsonRequested reports whether args ask for JSON output (--json before
// any "--").
func jsonRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "-json", "--json=true", "-json=true":
			return true
		}
	}
	return false
}
