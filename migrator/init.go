package migrator

import (
	"flag"
	"fmt"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "init",
		Summary: "record a fresh install in a store",
		Usage: `
Usage: migrator init --store S

Records a fresh install of this release in the store S (a bbolt file,
created when missing): data version = the release, last upgrade hook = the
largest hook number, so that no hook runs on data this release wrote. A
store that already has upgrade metadata is refused.

Example:

	$ migrator init --store broker.db
	initialized broker.db: product mqtt-broker, data version 5.1.0, last upgrade hook 100
`,
		New: func() command { return &initOptions{} },
	})
}

type initOptions struct {
	store string
}

func (o *initOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store: a bbolt file `path`")
}

func (o *initOptions) Validate(args []string) error {
	if o.store == "" {
		return cliflag.Usagef("--%s is required", flagStore)
	}
	return cliflag.Exactly(args)
}

func (o *initOptions) Run(e *env) error {
	st, err := openStore(o.store, openCreate)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := upgrade.Init(st, e.reg); err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	last := "none"
	if n := len(e.reg.Hooks); n > 0 {
		last = fmt.Sprint(e.reg.Hooks[n-1].Num)
	}
	fmt.Fprintf(e.stdout, "initialized %s: product %s, data version %s, last upgrade hook %s\n", o.store, e.reg.Product, e.reg.Release, last)
	return st.Close()
}
