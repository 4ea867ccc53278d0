package hookgen

import (
	"context"
	"flag"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/lint"
)

var auditCmd = &spec{
	Name:    "audit",
	Summary: "check every commit in the history of the registry",
	Usage: `
Usage: hookgen audit [--since REV] [--registry FILE] [--format text|json|github]

Audit checks every commit in the history of HEAD that changed registry.yaml
or generated/hooks.sum against its parent (a merge against its first
parent), with the rules of "hookgen lint": no landed hook removed (except
retired below min_data_version), renumbered, edited or inserted below, and
no hooks.sum digest changed without a matching amendment. Each finding names
the offending commit; its position is in registry.yaml as it was at that
commit. It is the tool for adopting hookreg on an existing repository and
for CI on protected branches; --since REV accepts the history up to REV as
it is (the commit that adopted hookreg) and checks only what came after.
History is read in batch (one git log, one git cat-file), so it stays fast
on long histories. A hooks.sum that does not parse at a commit is an
environment error (exit status 2) naming the commit: its digests cannot be
checked. Digests of two algorithms (h3: before h4:, say) are compared through
the pairs hooks.sum records for the same code.

Example:

	$ hookgen audit
	registry.yaml:8:20: hook 10: commit 5d41402abc4b "tidy the registry": introduced_in changed from "0.9.0" to "1.0.0"; a landed hook never changes: set it back to "0.9.0" and add a new hook on top [immutable-version]
		offending commit 5d41402abc4b2a76b9719d911017c592ae4c6f1e "tidy the registry"
`,
	New: func() command { return &auditOptions{} },
}

// auditOptions are the options of hookgen audit.
type auditOptions struct {
	registry registryFlag
	format   formatFlag
	since    string
}

// flagSince names the commit after which audit checks the history.
const flagSince = "since"

func (o *auditOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	o.format.flags(fs)
	fs.StringVar(&o.since, flagSince, "", "check only the commits after `REV`")
}

func (o *auditOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	return o.format.validate()
}

func (o *auditOptions) Run(e *env) error {
	file, moduleDir, err := o.registry.resolve()
	if err != nil {
		return err
	}
	ds, err := lint.Audit(context.Background(), lint.Options{Registry: file, ModuleDir: moduleDir, Since: o.since})
	if err != nil {
		return cliflag.Env(err)
	}
	return o.format.report(e, ds)
}
