package migrator

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "restore",
		Summary: "replace a store and its configuration with a verified backup",
		Usage: `
Usage: migrator restore FILE --store S [--config DIR]

Restores the backup FILE into the store S (a bbolt file, created when
missing) and its configuration files into the directory DIR. Everything is
checked first (every checksum, the structure, the manifest against the
content); a backup of another product, or of data newer than this release
(or older than the oldest version it upgrades) is refused. The new store is
built beside the old one, re-checked as it streams in, opened and checked
(bbolt's consistency check), synced, and swapped in with an atomic rename;
then DIR the same way (built beside it, swapped in). A failure at any point
leaves the old store and the old configuration exactly as they were; a
restore killed between the two swaps leaves the new store with the old
configuration, and running it again completes it. A store in use by
another process (or by another restore) is refused, and so are a store
inside DIR, an archive whose manifest disagrees with its metadata table,
and one whose data would not fit in the free space. A symbolic link as S
or DIR is followed: its target is replaced, the link kept. Configuration
files get their recorded modes, never world-writable.

Without --config the configuration files are kept in the store itself (the
table "_config"), where an offline upgrade and a later backup find them.

Older data restores as it is: "migrator plan --store S" then shows its
pending hooks.

Example:

	$ migrator restore broker-4.4.0.tar.zst --store broker.db --config etc/broker
	restored broker-4.4.0.tar.zst to broker.db: data version 4.4.0, 3 tables, 140 records, 1 config file
	pending hooks: 98, 99, 100 (see "migrator plan --store broker.db")
`,
		New: func() command { return &restoreOptions{} },
	})
}

type restoreOptions struct {
	file   string
	store  string
	config string
}

func (o *restoreOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store to replace: a bbolt file `path`")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `directory` to replace")
}

func (o *restoreOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args, "FILE"); err != nil {
		return err
	}
	o.file = args[0]
	if o.store == "" {
		return cliflag.Usagef("--%s is required", flagStore)
	}
	if strings.HasPrefix(o.store, "etcd://") {
		return cliflag.Usagef("--%s %s: etcd stores are not supported by this migrator yet; use a bbolt file path", flagStore, o.store)
	}
	return nil
}

func (o *restoreOptions) Run(e *env) error {
	m, err := backup.Restore(e.ctx, e.reg, o.file, o.store, backup.RestoreOptions{ConfigDir: o.config, Progress: e.progress})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s to %s: %s\n", o.file, o.store, summary(m))
	if p, err := upgrade.PlanFor(e.reg, backup.ManifestMetadata(m)); err == nil && len(p.Pending) > 0 {
		nums := make([]string, len(p.Pending))
		for i, h := range p.Pending {
			nums[i] = fmt.Sprint(h.Num)
		}
		fmt.Fprintf(e.stdout, "pending hooks: %s (see \"migrator plan --store %s\")\n", strings.Join(nums, ", "), o.store)
	}
	return nil
}
