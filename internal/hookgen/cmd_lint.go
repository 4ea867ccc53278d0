package hookgen

import (
	"errors"
	"flag"
)

var lintCmd = &commandSpec{
	name:    "lint",
	summary: "prove against git history that no landed hook changed",
	usage:   "Usage: hookgen lint [--against REF]... [--format text|json|github]",
	new:     func() command { return &lintOptions{} },
}

// lintOptions are the options of hookgen lint.
type lintOptions struct{}

func (o *lintOptions) flags(fs *flag.FlagSet) {}

func (o *lintOptions) validate(args []string) error { return nil }

func (o *lintOptions) run(e *env) error { return errors.New("hookgen lint is not built yet") }
