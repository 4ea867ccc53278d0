package hookgen

import (
	"errors"
	"flag"

	"github.com/hookreg/hookreg/internal/cliflag"
)

const (
	flagOnline  = "online"
	flagVersion = "version"
)

var newCmd = &commandSpec{
	name:    "new",
	summary: "add a hook on top of registry.yaml, with a function and a test stub",
	usage: `
Usage: hookgen new [--online] [--version V] [--registry FILE] NAME

New adds hook NAME on top of registry.yaml with the next number, keeping the
file's comments and layout, and writes a function stub with the hook
signature and a test stub that fails until the hook is written. NAME is a
function of the hook package ("UpgradeSessions") or of a sub-package
("libsess.UpgradeSessions"). The hook is introduced in the release unless
--version says otherwise; --online lets it run on a live store.

Example:

	$ hookgen new --online libsess.UpgradeSessions
	hookgen: added hook 101 libsess.UpgradeSessions (5.1.0, online) to registry.yaml
	hookgen: wrote hooks/libsess/upgradesessions.go and hooks/libsess/upgradesessions_test.go
	$ go generate ./...
`,
	new: func() command { return &newOptions{} },
}

// newOptions are the options of hookgen new.
type newOptions struct {
	registry registryFlag
	online   bool
	version  string
	name     string
}

func (o *newOptions) flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.BoolVar(&o.online, flagOnline, false, "allow the hook to run on a live store")
	fs.StringVar(&o.version, flagVersion, "", "the release `V` that introduces the hook (default: the registry's release)")
}

func (o *newOptions) validate(args []string) error {
	if err := cliflag.Exactly(args, "NAME"); err != nil {
		return err
	}
	o.name = args[0]
	return nil
}

func (o *newOptions) run(e *env) error {
	return errors.New("hookgen new is not built yet")
}
