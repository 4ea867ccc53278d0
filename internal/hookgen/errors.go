package hookgen

import (
	"errors"

	"github.com/hookreg/hookreg/internal/cliflag"
)

// errFindings is returned by a command that printed diagnostics: Main exits
// with status 1 and prints nothing more.
var errFindings = errors.New("findings reported")

// environmentError marks an error of the environment rather than of the
// registry: an unreadable file, not a git repository, packages that do not
// load. Main exits with status 2 on it.
type environmentError struct{ err error }

func (e *environmentError) Error() string { return e.err.Error() }
func (e *environmentError) Unwrap() error { return e.err }

// envError marks err as an environment error (exit status 2); nil stays nil.
func envError(err error) error {
	if err == nil {
		return nil
	}
	return &environmentError{err: err}
}

// exitCode maps the error of a command to hookgen's exit status.
func exitCode(err error) int {
	var envErr *environmentError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cliflag.ErrUsage), errors.As(err, &envErr):
		return 2
	}
	return 1
}
