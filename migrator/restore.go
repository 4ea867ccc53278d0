package migrator

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "restore",
		Summary: "replace a store and its configuration with a verified backup",
		Usage: `
Usage: {{.Prog}} restore (FILE | -) --store S [--config DIR] [--force] [--json]

Restores the backup FILE into the store S (a bbolt file, created when
missing, or an etcd store, see below) and its configuration files into the
directory DIR. The backup is read once: the new store (and DIR) is built
beside the old one as the backup streams in, and replaces nothing until
everything is checked (every checksum, the structure, the manifest against
the content); a backup of another product, or of data newer than this
release (or older than the oldest version it upgrades) is refused, and so
is a damaged one, with the new store discarded. The new store is then
opened and checked (bbolt's consistency check), synced, and swapped in with
an atomic rename; then DIR the same way (swapped in). A failure at any point
leaves the old store and the old configuration exactly as they were; a
restore killed between the two swaps leaves the new store with the old
configuration, and running it again completes it. A store in use by
another process (or by another restore) is refused, and so are a store
in a subdirectory of DIR, a DIR that is a mount point or holds one (the
old files are removed once replaced: a file system mounted inside would
be emptied), an archive whose manifest disagrees with its metadata table,
and one whose data would not fit in the free space. So is a store S that
exists and is not a bbolt store (a restore replaces S whole): --force
replaces it anyway. So is a backup that holds no configuration files (one
made without --config) restored with --config DIR where DIR has files: it
would remove them all; restore it without --config to keep DIR as it is,
or with --force to empty DIR. A symbolic link as S or DIR is followed: its target is
replaced, the link kept. Configuration files get their recorded modes,
never world-writable. With --json, one JSON object: the file, the store,
the manifest and the pending hooks.

Without --config the configuration files are kept in the store itself (the
table "_config"), where an offline upgrade and a later backup find them.

S may lie directly in DIR (--store /data/app.db --config /data): S, its
pre-upgrade backups (S.pre-upgrade-*) and the hidden files named after it
(.S.*) are then not configuration, and are kept. DIR is not swapped whole:
the new configuration is built inside DIR, and once S is swapped its
entries replace the old ones under the journal .S.config-swap. A restore
killed after the journal is written leaves DIR half swapped, nothing lost:
a backup refuses it, and the next restore or upgrade of S completes it
first. A backup whose configuration holds one of S's names is refused
before anything is written, and so is a DIR holding a mount point (it
cannot be renamed).

An etcd store (S = etcd://host:port[,host:port]/prefix, reached with the
--etcd-* flags of "{{.Prog}} help etcd") is restored under its lock:
the backup is checked against the cluster's limits and quota first, written
as a new generation in fenced batches, re-read and compared, and only then
made current in one transaction; the old generation is deleted after. A
restore killed at any point leaves the old data current, and the next
writable open removes the unfinished generation. Its configuration files go
into the store (the table "_config"): --config is refused. A product
reading through etcd.OpenProduct moves to the new generation.

An encrypted backup is opened with --identity FILE (an age identity file
or an SSH private key; repeatable; or $HOOKREG_IDENTITY) or
--passphrase-file FILE; a wrong key is refused before anything is written.
--trusted-key FILE (SSH public keys, one a line; or $HOOKREG_TRUSTED_KEY)
requires a signature by one of them: an unsigned backup, or one signed by
another key, is refused before anything is written, and one whose
signature does not match its content before anything is swapped in.

FILE - reads the backup from standard input, as it comes out of a pipe
("ssh host cat b.tar.zst | {{.Prog}} restore - --store S"): into a bbolt
store in the same single pass, so memory stays bounded and a pipe cut short
writes nothing; into an etcd store through a private temporary file in
$TMPDIR (unlinked at once, as large as the archive), since that restore
reads the archive twice.

Older data restores as it is: "{{.Prog}} plan --store S" then shows its
pending hooks.

On a terminal, progress goes to standard error: each phase of the work on
a line, with a rate and an ETA where its total is known.
HOOKREG_PROGRESS=0 turns it off; standard output, and standard error that
is not a terminal, never carry it.

Example:

{{if .Old}}	$ {{.Prog}} restore {{.OldBackup}} --store {{.Store}} --config {{.Config}}
	restored {{.OldBackup}} to {{.Store}} and {{.Config}}: data version {{.Old}}, 3 tables, 140 records, 1 config file
	pending hooks: {{.OldPending}} (see "{{.Prog}} plan --store {{.Store}}")
{{else}}	$ {{.Prog}} restore {{.Backup}} --store {{.Store}} --config {{.Config}}
	restored {{.Backup}} to {{.Store}} and {{.Config}}: data version {{.Release}}, 3 tables, 140 records, 1 config file
{{end}}`,
		New: func() command { return &restoreOptions{} },
	})
}

type restoreOptions struct {
	file   string
	store  string
	config string
	force  bool
	json   bool
	etcd   etcdFlags
	keys   openFlags
}

// flagForce lets restore replace a file that is not a bbolt store, and
// empty --config DIR with a backup that holds no configuration files.
const flagForce = "force"

func (o *restoreOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store to replace: a bbolt file `S` or etcd://host:port[,host:port]/prefix")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `DIR` to replace")
	fs.BoolVar(&o.force, flagForce, false, "replace --store even when it is not a bbolt store, and empty --config DIR with a backup that holds no configuration files")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
	o.etcd.register(fs)
	o.keys.register(fs)
}

func (o *restoreOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args, "FILE"); err != nil {
		return err
	}
	o.file = args[0]
	if o.store == "" {
		return cliflag.Usagef("--%s is required", flagStore)
	}
	if isEtcd(o.store) && o.config != "" {
		return cliflag.Usagef("--%s: an etcd store keeps its configuration files in the store (the table %q); restore without --%s", flagConfig, store.ConfigTable, flagConfig)
	}
	return nil
}

func (o *restoreOptions) Run(e *env) error {
	m, err := o.restore(e)
	if err != nil {
		return err
	}
	if !isEtcd(o.store) {
		// An interrupted one-command offline upgrade's result holds the
		// data this restore replaced: it will never be swapped in.
		if _, err := os.Stat(upgradedName(o.store)); err == nil {
			if err := removeIntent(o.store); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%s: discarded %s, the upgraded data of an interrupted \"upgrade --offline --store %s\": it was made from the data this restore replaced\n", e.prog, upgradedName(o.store), o.store)
		}
	}
	r := archiveReport{Backup: o.file, Store: o.store, Config: o.config, Manifest: m, Pending: []int{}}
	if p, err := upgrade.PlanFor(e.reg, backup.ManifestMetadata(m)); err == nil && !backup.Unadopted(m) {
		for _, h := range p.Pending {
			r.Pending = append(r.Pending, h.Num)
		}
	}
	if o.json {
		return writeJSON(e.stdout, r)
	}
	to := o.store
	if o.config != "" {
		to += " and " + o.config
	}
	name := o.file
	if name == stdio {
		name = stdinName
	}
	fmt.Fprintf(e.stdout, "restored %s to %s: %s\n", name, to, summary(m))
	switch {
	case backup.Unadopted(m):
		fmt.Fprintf(e.stdout, "no hookreg metadata: run \"%s init --store %s --data-version V\" with the release V that wrote the data to adopt it\n", e.prog, o.store)
	case len(r.Pending) > 0:
		fmt.Fprintf(e.stdout, "pending hooks: %s (see \"%s plan --store %s\")\n", joinInts(r.Pending), e.prog, o.store)
	}
	return nil
}

// restore restores the backup into a bbolt file or an etcd store.
func (o *restoreOptions) restore(e *env) (*archive.Manifest, error) {
	keys, err := o.keys.files().keys()
	if err != nil {
		return nil, err
	}
	opts := backup.RestoreOptions{ConfigDir: o.config, Progress: e.progress, Keys: keys, Warn: e.stderr, EmptyConfig: o.force}
	if isEtcd(o.store) {
		st, err := openEtcd(e, o.store, &o.etcd, openCreate)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		if o.file == stdio {
			// The etcd restore reads its archive twice: from a
			// private copy, gone when the process is.
			f, err := backup.Spool(e.ctx, e.stdin, "")
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return backup.RestoreEtcdFile(e.ctx, e.reg, f, stdinName, st.Target(), opts)
		}
		return backup.RestoreEtcd(e.ctx, e.reg, o.file, st.Target(), opts)
	}
	if !o.force {
		if err := checkBoltFile(o.store); err != nil {
			return nil, err
		}
	}
	var m *archive.Manifest
	if o.file == stdio {
		m, err = backup.RestoreReader(e.ctx, e.reg, e.stdin, stdinName, o.store, opts)
	} else {
		m, err = backup.Restore(e.ctx, e.reg, o.file, o.store, opts)
	}
	if errors.Is(err, store.ErrInUse) {
		return nil, inUse(err)
	}
	return m, err
}
