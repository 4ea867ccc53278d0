package migrator

import (
	"flag"
	"fmt"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "status",
		Summary: "show a store's data version, applied and pending hooks",
		Usage: `
Usage: {{.Prog}} status --store S [--json]

Shows the upgrade state of the store S, opened read-only: the product, the
data version, the last upgrade hook, the applied hooks (digest, release,
time, mode), the hooks this release would run, and whether an upgrade would
be refused. With --json, one JSON object with release, data_version,
last_upgrade_hook, pending, applied, online_ok (and refusal when refused).

An etcd store is opened without its lock, so status runs beside a
migrator at work; it also shows the cluster: the store's generation, the
revision read, the database size against the quota, how many members
answered and why the others did not (each member is asked at once, within
a second), the alarms (a NOSPACE alarm stops every write), the migrator
holding the lock (its process, since when, and when its lease expires: a
killed migrator's lock is free then), and the generations a killed restore
or offline upgrade left. With --json, they are the object "cluster":
generation, revision, db_size, db_size_quota, members, endpoints,
members_down, alarms, lock (null when free), leftover_generations.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd").

Example:

	$ {{.Prog}} status --store {{.Store}} --json
	{
	  "product": "{{.Product}}",
	  "release": "{{.Release}}",
	  "data_version": "{{.Release}}",
	  ...
	$ {{.Prog}} status --store {{.EtcdStore}}
	store {{.EtcdStore}}: product {{.Product}}
	cluster: generation 1, revision 1874, database 2.1 MiB of 2.0 GiB quota (0%), 2 of 3 members answered, no alarms
	member 10.0.0.3:2379 is DOWN: connect: connection refused
	lock: free
	...
`,
		New: func() command { return &statusOptions{} },
	})
}

type statusOptions struct {
	etcd  etcdFlags
	store string
	json  bool
}

func (o *statusOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
}

func (o *statusOptions) Validate(args []string) error {
	if o.store == "" {
		return cliflag.Usagef("--%s is required", flagStore)
	}
	return cliflag.Exactly(args)
}

func (o *statusOptions) Run(e *env) error {
	r, err := storePlan(e, o.store, &o.etcd, true)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "store %s: product %s\n", o.store, productOf(r))
	if r.Cluster != nil {
		r.Cluster.WriteText(e.stdout)
	}
	writePlanText(e, e.stdout, r)
	return nil
}

// storePlan reads the metadata of the store at path, read-only, and plans
// its upgrade; with withCluster, it adds the status of an etcd store's
// cluster.
func storePlan(e *env, path string, conn *etcdFlags, withCluster bool) (*planReport, error) {
	st, err := openStore(e, path, conn, openRead)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	meta, err := upgrade.ReadStoreMetadata(st)
	if err != nil {
		return nil, storeError(e, path, st, "", err)
	}
	var cs *cluster.Status
	if cst, ok := st.(cluster.Store); ok && withCluster {
		if cs, err = cst.ClusterStatus(); err != nil {
			return nil, envErrorf("%w", err)
		}
	}
	r, err := planFor(e, meta)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Store, r.Cluster = path, cs
	if !r.OnlineOK {
		r.OfflineCommand = offlineCommand(e, path, st, "")
	}
	return r, nil
}

func productOf(r *planReport) string {
	if r.Product == "" {
		return "(not recorded)"
	}
	return r.Product
}
