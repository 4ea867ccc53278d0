package migrator

import (
	"errors"
	"flag"
	"fmt"

	"github.com/hookreg/hookreg/internal/cliflag"
)

func init() {
	register(&spec{
		Name:    "plan",
		Summary: "show what an upgrade of a store or a backup would run",
		Usage: `
Usage: {{.Prog}} plan (--store S | --backup FILE) [--json]

Plans the upgrade of the store S (opened read-only) or of the backup FILE
(from its manifest) to this release, without changing anything: the pending
hooks in order, the data version after the upgrade, and whether an online
upgrade is allowed. Exits 1 when the upgrade would be refused (another
product, data newer than the release, a downgrade, data older than the
oldest version this release upgrades, a changed applied hook), saying why.
With --json, one JSON object as "{{.Prog}} status --json" prints.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd"). An
etcd store is read without its lock.

Example:

	$ {{.Prog}} plan --store {{.Store}}
	{{if .Plan}}{{.Plan}}{{else}}data version {{.Release}}, last upgrade hook {{.LastHook}}; release {{.Release}}
	up to date: no pending hooks
{{end}}
	$ {{.Prog}} plan --store {{.EtcdStore}} --json
	{
	  "product": "{{.Product}}",
	  "release": "{{.Release}}",
	  ...
`,
		New: func() command { return &planOptions{} },
	})
}

// flagBackup names a backup archive.
const flagBackup = "backup"

type planOptions struct {
	etcd   etcdFlags
	store  string
	backup string
	json   bool
	keys   openFlags
}

func (o *planOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.StringVar(&o.backup, flagBackup, "", "a backup archive `FILE` to plan from its manifest")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
	o.keys.register(fs)
}

func (o *planOptions) Validate(args []string) error {
	if (o.store == "") == (o.backup == "") {
		return cliflag.Usagef("give either --%s or --%s", flagStore, flagBackup)
	}
	return cliflag.Exactly(args)
}

// errRefused reports a refused plan whose reason was already printed.
var errRefused = errors.New("the upgrade would be refused")

func (o *planOptions) Run(e *env) error {
	var r *planReport
	if o.backup != "" {
		meta, err := planBackup(e, o.backup, o.keys.files())
		if err != nil {
			return err
		}
		if r, err = planFor(e, meta); err != nil {
			return fmt.Errorf("%s: %w", o.backup, err)
		}
		r.Backup = o.backup
	} else {
		var err error
		if r, err = storePlan(e, o.store, &o.etcd, false); err != nil {
			return err
		}
	}
	if o.json {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
	} else {
		writePlanText(e, e.stdout, r)
	}
	if r.Refusal != "" {
		return errRefused
	}
	return nil
}
