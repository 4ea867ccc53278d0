package hookgen

import (
	"errors"
	"flag"
)

var amendCmd = &commandSpec{
	name:    "amend",
	summary: "record a reviewed change of a released hook",
	usage:   "Usage: hookgen amend NUM --reason TEXT",
	new:     func() command { return &amendOptions{} },
}

// amendOptions are the options of hookgen amend.
type amendOptions struct{}

func (o *amendOptions) flags(fs *flag.FlagSet) {}

func (o *amendOptions) validate(args []string) error { return nil }

func (o *amendOptions) run(e *env) error { return errors.New("hookgen amend is not built yet") }
