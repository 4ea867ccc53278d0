package migrator

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "init",
		Summary: "record a fresh install, or adopt data written before hookreg",
		Usage: `
Usage: {{.Prog}} init --store S [--data-version V] [--json]

Records the upgrade metadata of the store S (a bbolt file, created when
missing; an etcd store, created at its prefix when the prefix holds none).

Without --data-version, a fresh install of this release: data version = the
release ({{.Release}}), last upgrade hook = the largest hook number ({{.LastHook}}), so
that no hook runs on data this release wrote. A store that already holds
data (a record or a sequence in any table; empty tables that the product
created are no data) is refused: its data was written by an earlier
release, and recording it as this one would skip the hooks meant to
migrate it.

With --data-version V, a baseline for data written before the product
adopted hookreg: data version V and no last upgrade hook, so that every
hook introduced after V is pending ("{{.Prog}} plan --store S" lists them).
V is the release that wrote the data. Take a backup first: "{{.Prog}}
backup" works on a store without metadata.

A store that already has upgrade metadata is refused. With --json, one JSON
object with store, product, data_version and last_upgrade_hook.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd"). init
takes the store's lock, so a second migrator is refused.

Examples:

	$ {{.Prog}} init --store {{.Store}}
	initialized {{.Store}}: product {{.Product}}, data version {{.Release}}, last upgrade hook {{.LastHook}}
{{- if .Old}}

	$ {{.Prog}} init --store {{.Store}} --data-version {{.Old}}
	initialized {{.Store}}: product {{.Product}}, data version {{.Old}}, last upgrade hook none
{{- end}}

	$ {{.Prog}} init --store {{.EtcdStore}} --etcd-cacert ca.pem
	initialized {{.EtcdStore}}: product {{.Product}}, data version {{.Release}}, last upgrade hook {{.LastHook}}
`,
		New: func() command { return &initOptions{} },
	})
}

// flagDataVersion is the baseline version of init.
const flagDataVersion = "data-version"

type initOptions struct {
	etcd        etcdFlags
	store       string
	dataVersion string
	json        bool
}

func (o *initOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.StringVar(&o.dataVersion, flagDataVersion, "", "adopt data written before hookreg by release `V`: hooks introduced after V are pending")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
}

func (o *initOptions) Validate(args []string) error {
	if o.store == "" {
		return cliflag.Usagef("--%s is required", flagStore)
	}
	return cliflag.Exactly(args)
}

// initReport is the output of init --json.
type initReport struct {
	Store           string `json:"store"`
	Product         string `json:"product"`
	DataVersion     string `json:"data_version"`
	LastUpgradeHook *int   `json:"last_upgrade_hook"`
	Pending         []int  `json:"pending"`
}

func (o *initOptions) Run(e *env) error {
	if o.dataVersion != "" {
		// A version this release refuses is refused before a store
		// is created for it.
		if _, err := upgrade.BaselineMetadata(e.reg, o.dataVersion); err != nil {
			return fmt.Errorf("%s: %w", o.store, err)
		}
	}
	st, err := openStore(e, o.store, &o.etcd, openCreate)
	if err != nil {
		return err
	}
	defer st.Close()
	if o.dataVersion != "" {
		err = upgrade.Baseline(st, e.reg, o.dataVersion)
	} else if err = o.refuseData(e, st); err == nil {
		err = upgrade.Init(st, e.reg)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	meta, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	p, err := upgrade.PlanFor(e.reg, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	r := initReport{Store: o.store, Product: meta.Product, DataVersion: meta.DataVersion, LastUpgradeHook: meta.LastUpgradeHook, Pending: []int{}}
	for _, h := range p.Pending {
		r.Pending = append(r.Pending, h.Num)
	}
	if o.json {
		return writeJSON(e.stdout, r)
	}
	last := "none"
	if r.LastUpgradeHook != nil {
		last = fmt.Sprint(*r.LastUpgradeHook)
	}
	fmt.Fprintf(e.stdout, "initialized %s: product %s, data version %s, last upgrade hook %s\n", o.store, r.Product, r.DataVersion, last)
	if len(r.Pending) > 0 {
		fmt.Fprintf(e.stdout, "pending hooks: %s (see \"%s plan --store %s\")\n", joinInts(r.Pending), e.prog, o.store)
	}
	return nil
}

// refuseData refuses a fresh install on a store that holds data and no
// metadata: data written before the product adopted hookreg.
func (o *initOptions) refuseData(e *env, st store.Store) error {
	tx, err := st.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := upgrade.ReadMetadata(tx); err == nil {
		return nil // upgrade.Init refuses it
	}
	held, err := upgrade.HeldData(tx)
	if err != nil || held == nil {
		return err
	}
	return &upgrade.Refusal{Reason: fmt.Sprintf("the store holds data without hookreg metadata (table %s is not empty): data written before the product adopted hookreg; "+
		"give the release that wrote it with --%s V, so that the hooks introduced after V run (a fresh install would record it as release %s and skip them)",
		hook.FormatPath(held), flagDataVersion, e.reg.Release)}
}

// quoteList quotes up to five names: "a", "b", and 3 more.
func quoteList(names []string) string {
	var q []string
	for i, n := range names {
		if i == 5 {
			q = append(q, fmt.Sprintf("and %d more", len(names)-5))
			break
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return strings.Join(q, ", ")
}

// joinInts lists numbers: "98, 99, 100".
func joinInts(nums []int) string {
	s := make([]string, len(nums))
	for i, n := range nums {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
