package hookgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/gitx"
	"github.com/hookreg/hookreg/internal/lint"
)

const flagReason = "reason"

var amendCmd = &spec{
	Name:    "amend",
	Summary: "record a reviewed change of a released hook",
	Usage: `
Usage: hookgen amend NUM... --reason TEXT [--registry FILE]

Amend is the one reviewable way to change the code of a hook that has
landed (a security fix, a reviewed bump of a dependency it uses): it
appends an amendment to each hook NUM in registry.yaml, with the same
reason (one change that touches many hooks is one review),

	amendments:
	  - old: h4:...        # the hook's code digest at the references
	    new: h4:...        # its code digest now
	    reason: TEXT

keeping the file's comments and layout. "hookgen lint" accepts a code change
(immutable-code, dependency-version) exactly when the amendments lead from
a reference's digest to the current one; "old" may be an h1:, h2: or h3:
digest of a reference older than the h4 algorithm. A dependency bump that
changes code several hooks reach is one review: amend them all in one run,
with one reason. Every hook is amended, or none. Make the change first, then amend,
regenerate and commit both; review the amendment like any code change. The
generated registry carries the amendments: the migrator built from it
upgrades stores that applied the hook before the change, and marks the hook
as amended.

Example:

	$ hookgen amend 98 --reason "fix CVE-2026-1234 in ACL parsing"
	hookgen: hook 98: recorded amendment from h4:2T4l...= (v5.0.0) to h4:Qm9v...= in registry.yaml
	$ hookgen amend 98 99 100 --reason "reviewed github.com/hookreg/hookreg v1.2.1"
	$ go generate ./... && hookgen lint
`,
	New: func() command { return &amendOptions{} },
}

// amendOptions are the options of hookgen amend.
type amendOptions struct {
	registry registryFlag
	reason   string
	nums     []int
}

func (o *amendOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.StringVar(&o.reason, flagReason, "", "why the released hook changes (`TEXT`, one line, required)")
}

func (o *amendOptions) Validate(args []string) error {
	if len(args) == 0 {
		return cliflag.Usagef("want NUM... (the numbers of the hooks to amend)")
	}
	for _, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n <= 0 {
			return cliflag.Usagef("NUM %q is not a hook number (a positive integer)", a)
		}
		o.nums = append(o.nums, n)
	}
	if strings.TrimSpace(o.reason) == "" {
		return cliflag.Usagef("--%s TEXT is required: say why the released hook changes", flagReason)
	}
	if strings.ContainsAny(o.reason, "\r\n") {
		return cliflag.Usagef("--%s: the reason is one line", flagReason)
	}
	return nil
}

func (o *amendOptions) Run(e *env) error {
	file, moduleDir, err := o.registry.resolve()
	if err != nil {
		return err
	}
	ams, err := lint.Amend(context.Background(), lint.Options{Registry: file, ModuleDir: moduleDir}, o.nums, o.reason)
	if errors.Is(err, gitx.ErrNotRepository) || errors.Is(err, gitx.ErrIncomplete) {
		return cliflag.Env(err)
	}
	if err != nil {
		return err
	}
	for _, am := range ams {
		fmt.Fprintf(e.stderr, "hookgen: hook %d: recorded amendment from %s (%s) to %s in %s\n", am.Num, am.Old, am.Ref, am.New, file)
	}
	return nil
}
