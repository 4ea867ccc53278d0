package hookgen

import "errors"

// errFindings is returned by a command that printed diagnostics: Main exits
// with status 1 and prints nothing more. Environment errors (exit status 2)
// are marked with cliflag.Env.
var errFindings = errors.New("findings reported")
