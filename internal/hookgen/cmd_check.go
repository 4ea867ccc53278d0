package hookgen

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/diag"
)

// ruleStale is the rule id of a generated file that differs from what
// hookgen generate would write.
const ruleStale = "stale"

var checkCmd = &spec{
	Name:    "check",
	Summary: "check registry.yaml, the hook functions and that generated/ is current",
	Usage: `
Usage: hookgen check [--registry FILE] [--out DIR] [--format text|json|github]

Check reports every finding of the registry rules (numbers, versions, the
online flag of patch-release hooks), of the hook functions (they exist, are
exported and have the hook signature, checked with type information) and
of the generated files (they are what "hookgen generate" would write now;
compared only when the registry itself has no findings). Exit status 1 when
there are findings. --out names the directory of the generated files when
they were generated with --out.

Example:

	$ hookgen check
	registry.yaml:12:5: hook 99: num 99 is not smaller than the num 100 above it (line 7); numbers decrease down the file [num-order]
	generated/registry.go: generated file is stale: run "go generate ./..." [stale]
`,
	New: func() command { return &checkOptions{} },
}

// checkOptions are the options of hookgen check.
type checkOptions struct {
	registry registryFlag
	out      string
	format   formatFlag
}

func (o *checkOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.StringVar(&o.out, flagOut, "", "the `DIR` of the generated files (default: generated/ beside the registry)")
	o.format.flags(fs)
}

func (o *checkOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	return o.format.validate()
}

func (o *checkOptions) Run(e *env) error {
	c, ds, err := checkRegistry(o.registry)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		dir := c.outDir(o.out)
		files, err := c.generate(dir)
		if err != nil {
			return err
		}
		wd, _ := os.Getwd()
		for _, name := range sortedNames(files) {
			path := filepath.Join(dir, name)
			current, err := same(path, files[name])
			if err != nil {
				return err
			}
			if !current {
				ds = append(ds, diag.Diagnostic{
					Pos:     diag.Position{File: displayPath(wd, path)},
					Rule:    ruleStale,
					Message: fmt.Sprintf("generated file is stale or missing: run \"go generate ./...\" (or \"hookgen generate\") and commit %s", name),
				})
			}
		}
	}
	return o.format.report(e, ds)
}
