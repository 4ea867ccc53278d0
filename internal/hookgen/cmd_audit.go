package hookgen

import (
	"errors"
	"flag"
)

var auditCmd = &commandSpec{
	name:    "audit",
	summary: "check every commit in the history of the registry",
	usage:   "Usage: hookgen audit [--format text|json|github]",
	new:     func() command { return &auditOptions{} },
}

// auditOptions are the options of hookgen audit.
type auditOptions struct{}

func (o *auditOptions) flags(fs *flag.FlagSet) {}

func (o *auditOptions) validate(args []string) error { return nil }

func (o *auditOptions) run(e *env) error { return errors.New("hookgen audit is not built yet") }
