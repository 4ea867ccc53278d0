package hookgen

import (
	"errors"
	"flag"

	"github.com/hookreg/hookreg/internal/cliflag"
)

const flagOut = "out"

var generateCmd = &commandSpec{
	name:    "generate",
	summary: "write generated/registry.go and generated/hooks.sum from registry.yaml",
	usage: `
Usage: hookgen generate [--registry FILE] [--out DIR]

Generate checks registry.yaml (its rules and the hook functions' types) and
writes the typed registry (registry.go) and the code digests (hooks.sum) to
DIR (default: generated/ beside the registry). A file is rewritten only when
its bytes change. When the registry has findings, they are printed and
nothing is written (exit status 1).

Example (what "go generate ./..." runs at the module root):

	$ hookgen generate
	$ git status --short generated/
	 M generated/hooks.sum
	 M generated/registry.go
`,
	new: func() command { return &generateOptions{} },
}

// generateOptions are the options of hookgen generate.
type generateOptions struct {
	registry registryFlag
	out      string
}

func (o *generateOptions) flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.StringVar(&o.out, flagOut, "", "the output `DIR` (default: generated/ beside the registry)")
}

func (o *generateOptions) validate(args []string) error {
	return cliflag.Exactly(args)
}

func (o *generateOptions) run(e *env) error {
	return errors.New("hookgen generate is not built yet")
}
