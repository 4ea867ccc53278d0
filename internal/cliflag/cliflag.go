// Package cliflag parses command lines in the form both hookreg tools share:
// flags may stand before or after the positional arguments, "-flag" and
// "--flag" are the same, and "--" ends the flags.
//
//	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
//	store := fs.String("store", "", "the store")
//	args, err := cliflag.Parse(fs, []string{"backup.tar.zst", "--store", "data.db"})
//	// args == []string{"backup.tar.zst"}, *store == "data.db"
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// ErrUsage marks errors in a command line; commands exit with status 2 on it.
var ErrUsage = errors.New("usage")

// UsageError is a command-line error: a bad flag, a missing or extra argument.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Is reports that a UsageError matches ErrUsage.
func (e *UsageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Parse parses args with fs and returns the positional arguments, wherever
// they stand among the flags. Errors wrap ErrUsage; flag.ErrHelp is
// returned as is.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Msg: longFlags(err.Error())}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// longFlags rewrites the flag package's errors to name flags as the usage
// texts do, "--name" ("flag provided but not defined: -store" becomes
// "unknown flag --store").
func longFlags(msg string) string {
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		return "unknown flag --" + strings.TrimPrefix(name, "-")
	}
	for _, p := range []string{"flag needs an argument: -", "for flag -"} {
		if i := strings.Index(msg, p); i >= 0 {
			j := i + len(p)
			if !strings.HasPrefix(msg[j:], "-") {
				return msg[:j] + "-" + msg[j:]
			}
		}
	}
	return msg
}

// Exactly checks that there are exactly n positional arguments, naming them
// in the error.
func Exactly(args []string, names ...string) error {
	switch {
	case len(args) < len(names):
		return Usagef("missing argument %s", names[len(args)])
	case len(args) > len(names):
		return Usagef("unexpected argument %q", args[len(names)])
	}
	return nil
}

// EnvError marks an error of the environment rather than of the input: an
// unreadable file, not a git repository, packages that do not load. Commands
// exit with status 2 on it.
type EnvError struct{ Err error }

func (e *EnvError) Error() string { return e.Err.Error() }
func (e *EnvError) Unwrap() error { return e.Err }

// Env marks err as an environment error; nil stays nil.
func Env(err error) error {
	if err == nil {
		return nil
	}
	return &EnvError{Err: err}
}

// ExitCode maps a command's error to the exit status both tools use: 0
// success, 2 a usage or environment error, 1 anything else (findings, a
// refused or failed operation).
func ExitCode(err error) int {
	var envErr *EnvError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage), errors.As(err, &envErr):
		return 2
	}
	return 1
}
