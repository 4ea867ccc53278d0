package hookgen

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/diag"
)

const flagOut = "out"

var generateCmd = &spec{
	Name:    "generate",
	Summary: "write generated/registry.go and generated/hooks.sum from registry.yaml",
	Usage: `
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
	New: func() command { return &generateOptions{} },
}

// generateOptions are the options of hookgen generate.
type generateOptions struct {
	registry registryFlag
	out      string
}

func (o *generateOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.StringVar(&o.out, flagOut, "", "the output `DIR` (default: generated/ beside the registry)")
}

func (o *generateOptions) Validate(args []string) error {
	return cliflag.Exactly(args)
}

func (o *generateOptions) Run(e *env) error {
	c, ds, err := checkRegistry(o.registry)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		if err := diag.Write(e.stderr, "text", ds); err != nil {
			return fmt.Errorf("writing diagnostics: %w", err)
		}
		return fmt.Errorf("%s has findings: nothing generated: %w", c.file, errFindings)
	}
	dir := c.outDir(o.out)
	files, err := c.generate(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cliflag.Env(fmt.Errorf("creating the output directory: %w", err))
	}
	for _, name := range sortedNames(files) {
		path := filepath.Join(dir, name)
		unchanged, err := same(path, files[name])
		if err != nil {
			return err
		}
		if unchanged {
			continue
		}
		if err := atomicfile.Write(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}
