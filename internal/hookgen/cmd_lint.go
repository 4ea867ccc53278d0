package hookgen

import (
	"context"
	"flag"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/lint"
)

const flagAgainst = "against"

var lintCmd = &spec{
	Name:    "lint",
	Summary: "prove against git history that no landed hook changed",
	Usage: `
Usage: hookgen lint [--against REF]... [--registry FILE] [--format text|json|github]

Lint compares registry.yaml and the code of its hooks with registry.yaml and
generated/hooks.sum at each reference commit, and reports, with positions in
registry.yaml:

  immutable-removed    a landed hook removed (unless introduced before
                       min_data_version: a retirement)
  immutable-num        a landed hook renumbered
  immutable-version    its introduced_in changed
  immutable-online     its allow_online changed
  immutable-func       its func changed
  immutable-code       its code digest changed (the hook function or any
                       declaration of the module it uses), naming the
                       declarations that changed; "hookgen amend" records
                       a reviewed change
  dependency-version   the code it reaches in a dependency (read from the
                       module cache) changed with the module's version:
                       names the module, both versions and the changed
                       declarations; a bump that changes no code the hook
                       reaches is no change
  immutable-amendment  a recorded amendment changed or removed
  amend-invalid        an amendment whose digests do not lead from the
                       reference's digest to the current one
  insert-below         a new hook below a landed one (new hooks go on top)
  released-version     a new hook introduced in a version already released

The references are the --against REFs (repeatable), or by default the merge
base with the default branch (origin/HEAD, else main, else master) and every
release tag (v followed by a semantic version). A reference without
registry.yaml has nothing to compare. Each finding names where the hook
landed: the commit that added it and the first release tag containing it.

A shallow clone is an environment error (exit status 2) that says to run
"git fetch --unshallow --tags"; a clone without its release tags, whose
registry names a release older than its own (or without the tag of a
release a hook was introduced in, after its oldest tag), one that says to
run "git fetch --tags". In a GitHub workflow, check out with fetch-depth: 0.
A registry.yaml or hooks.sum that does not parse at a reference is an
environment error too.

Example:

	$ hookgen lint
	registry.yaml:20:11: hook 98: code of func "libfoo.UpgradeLibFoo" changed since v5.0.0: digest "h4:2T4l..." is now "h4:Qm9v..."; changed: hooks/libfoo/users.go: func normalize; revert the change, or record a reviewed change with hookgen amend 98 --reason "..." [immutable-code]
		registry.yaml: hook 98 landed in commit 1a2b3c4d5e6f "Add libfoo upgrade", first released in v5.0.0
	$ hookgen lint --against origin/release-5.0 --format github
`,
	New: func() command { return &lintOptions{} },
}

// lintOptions are the options of hookgen lint.
type lintOptions struct {
	registry registryFlag
	format   formatFlag
	against  refList
}

// refList is a repeatable flag.
type refList []string

func (l *refList) String() string { return strings.Join(*l, ",") }

func (l *refList) Set(v string) error {
	if v == "" {
		return cliflag.Usagef("--%s: empty reference", flagAgainst)
	}
	*l = append(*l, v)
	return nil
}

func (o *lintOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	o.format.flags(fs)
	fs.Var(&o.against, flagAgainst, "compare with the commit `REF` (repeatable; default: the merge base with the default branch and every release tag)")
}

func (o *lintOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	return o.format.validate()
}

func (o *lintOptions) Run(e *env) error {
	file, moduleDir, err := o.registry.resolve()
	if err != nil {
		return err
	}
	ds, err := lint.Lint(context.Background(), lint.Options{Registry: file, ModuleDir: moduleDir, Against: o.against})
	if err != nil {
		return cliflag.Env(err)
	}
	return o.format.report(e, ds)
}
