package migrator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "upgrade",
		Summary: "run the pending hooks: online on a store, or offline on a backup",
		Usage: `
Usage: migrator upgrade --store S --online [--config DIR] [--allow-digest-mismatch]
       migrator upgrade --offline --in FILE --out FILE [--allow-digest-mismatch]

Runs the pending hooks in ascending order, each in one transaction with its
metadata update, so that after a crash every hook is fully applied or not at
all and a re-run resumes.

--online upgrades the live store S in place. It is refused, listing them,
when a pending hook does not allow online. Hooks see the configuration
directory --config DIR (none when omitted) read-only.

--offline restores the backup --in into an isolated store in a child
process, runs the hooks there (they may change the configuration files the
backup carries) and writes the result as the new backup --out; the input is
never modified.

Refused, with nothing written: another product's data, a data version newer
than this release, a downgrade, data older than the oldest version this
release upgrades, and an applied hook whose code digest changed (unless
--allow-digest-mismatch, which is recorded with the hooks it applies). A
hook that fails or panics stops the run, naming it; its transaction is
rolled back. SIGINT or SIGTERM stop between hooks or batches; run again to
resume.

Example:

	$ migrator upgrade --store broker.db --online
	upgraded broker.db from data version 5.0.0 to 5.0.1: hook 99
`,
		New: func() command { return &upgradeOptions{} },
	})
}

// Flag names of upgrade.
const (
	flagOnline              = "online"
	flagOffline             = "offline"
	flagConfig              = "config"
	flagIn                  = "in"
	flagOut                 = "out"
	flagAllowDigestMismatch = "allow-digest-mismatch"
)

type upgradeOptions struct {
	store               string
	online              bool
	offline             bool
	config              string
	in                  string
	out                 string
	allowDigestMismatch bool
}

func (o *upgradeOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store to upgrade online: a bbolt file `path`")
	fs.BoolVar(&o.online, flagOnline, false, "upgrade the live store --store in place")
	fs.BoolVar(&o.offline, flagOffline, false, "upgrade the backup --in into the backup --out")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `directory` hooks read in an online upgrade")
	fs.StringVar(&o.in, flagIn, "", "the backup `file` to upgrade offline")
	fs.StringVar(&o.out, flagOut, "", "the upgraded backup `file` to write")
	fs.BoolVar(&o.allowDigestMismatch, flagAllowDigestMismatch, false, "proceed although an applied hook's code changed (recorded)")
}

func (o *upgradeOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	switch {
	case o.online == o.offline:
		return cliflag.Usagef("give either --%s or --%s", flagOnline, flagOffline)
	case o.online && o.store == "":
		return cliflag.Usagef("--%s needs --%s", flagOnline, flagStore)
	case o.online && (o.in != "" || o.out != ""):
		return cliflag.Usagef("--%s and --%s are for --%s", flagIn, flagOut, flagOffline)
	case o.offline && (o.in == "" || o.out == ""):
		return cliflag.Usagef("--%s needs --%s and --%s", flagOffline, flagIn, flagOut)
	case o.offline && (o.store != "" || o.config != ""):
		return cliflag.Usagef("--%s and --%s are for --%s (an offline upgrade works on backups)", flagStore, flagConfig, flagOnline)
	}
	return nil
}

func (o *upgradeOptions) Run(e *env) error {
	if o.offline {
		return runOffline(e, o)
	}
	if err := backup.CheckLayout(o.store, o.config); err != nil {
		return err
	}
	st, err := openStore(o.store, openWrite)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := upgrade.Run(e.ctx, st, e.reg, upgrade.Options{
		Online:              true,
		AllowDigestMismatch: o.allowDigestMismatch,
		Config:              upgrade.DirConfig(o.config),
		Log:                 e.progress,
	})
	if len(res.Applied) > 0 || res.To != res.From {
		fmt.Fprintf(e.stdout, "upgraded %s from data version %s to %s: %s\n", o.store, res.From, res.To, hookList(res.Applied))
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w; what is committed stays, run the upgrade again to resume", o.store, err)
		}
		return fmt.Errorf("%s: %w", o.store, err)
	}
	if len(res.Applied) == 0 && res.To == res.From {
		fmt.Fprintf(e.stdout, "%s is up to date: data version %s, no pending hooks\n", o.store, res.To)
	}
	return st.Close()
}

// hookList describes applied hooks: "hooks 98, 99".
func hookList(applied []upgrade.Applied) string {
	if len(applied) == 0 {
		return "no hooks"
	}
	nums := make([]string, len(applied))
	for i, a := range applied {
		nums[i] = fmt.Sprint(a.Num)
	}
	if len(nums) == 1 {
		return "hook " + nums[0]
	}
	return "hooks " + strings.Join(nums, ", ")
}
