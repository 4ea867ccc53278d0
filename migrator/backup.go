package migrator

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/subcmd"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/store"
)

func init() {
	register(&spec{
		Name:    "backup",
		Summary: "write a consistent backup of a store and its configuration",
		Usage: `
Usage: {{.Prog}} backup --store S [--config DIR] [--compress zstd|none] --out (FILE | -) [--json]

Writes one archive FILE (its format is archive/FORMAT.md in the hookreg
repository) holding every table, nested ones included, of the store
S and its upgrade metadata, all read in one read-only transaction (one
consistent snapshot), and the configuration files of the directory DIR:
regular files only, with their modes (a symbolic link or a special file is
refused). A store that holds its configuration files itself (the table
"_config", as after an offline upgrade or a restore without --config)
carries them the same way, and then --config must be omitted. A store S
directly in DIR is no configuration file: S, its pre-upgrade backups
(S.pre-upgrade-*) and the hidden files named after it (.S.*) are left out.

The archive is written to a temporary file beside FILE, synced and renamed
into place: FILE is never partial, even when the backup is killed. An
existing regular FILE is replaced; a FILE that is a symbolic link, a
device, a FIFO or a directory, the store itself (under any name) or inside
DIR is refused, and so is a store inside DIR. FILE gets mode 0600: it
holds the product's data. The archive is zstd-compressed unless --compress
none. With --json, one JSON object: the store, the file and its manifest.

--out - writes the archive to standard output, to pipe it into any
transfer or storage tool ("{{.Prog}} backup --store S --out - | ssh host
'cat > b.tar.zst'"); nothing else goes to standard output: the summary (or
the JSON) goes to standard error. A backup that fails leaves the stream
without its final SHA256SUMS, which every reader refuses.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd"). An
etcd store is read without its lock, at one revision (all its tables as
they were at that revision, whatever the product writes meanwhile), which
the backup reports ("revision" with --json). When the cluster compacts that
revision before the backup has read it all, the backup fails and writes
nothing: run it again, and if it keeps happening, raise the cluster's
--auto-compaction-retention above the backup's duration. The cluster is
read once: the records wait in a temporary file beside FILE (unlinked, as
large as the data) until the manifest, which comes first, is written. The
archive is the same as a bbolt store's: "{{.Prog}} restore" puts it into a
bbolt file.

Encryption and signatures: --recipient KEY (an age public key age1... or
an SSH public key ssh-ed25519/ssh-rsa ..., repeatable) and
--recipients-file FILE (one a line) encrypt the archive with age: FILE is
then a standard age file around the archive ("age -d -i KEY FILE" opens
it); --passphrase-file FILE encrypts with the passphrase on its first line
instead. --sign KEY signs the archive's SHA256SUMS with the SSH private key
KEY (format 4; "ssh-keygen -Y verify ... -n hookreg-backup" checks it by
hand, see archive/FORMAT.md); restore, verify, dump --backup, plan --backup
and upgrade --offline --in take --identity FILE ($HOOKREG_IDENTITY) and
--trusted-key FILE ($HOOKREG_TRUSTED_KEY). Keys and passphrases are only
ever read from files, never printed.

A running product holds its bbolt store locked, so this command waits 2
seconds for the lock and then fails ("store is in use by another
process"). To back it up while it runs, the product serves a consistent
backup of its open store itself, from one read transaction, with the
package github.com/hookreg/hookreg/backup: backup.Handler(db, registry,
opts) is an http.Handler that streams the archive (mount it behind the
product's authentication: "curl -fsS -o b.tar.zst https://HOST/admin/backup"),
and backup.WriteDB writes it to any io.Writer. The archive is the same as
this command's.

On a terminal, progress goes to standard error: each phase of the work on
a line, with a rate and an ETA where its total is known.
HOOKREG_PROGRESS=0 turns it off; standard output, and standard error that
is not a terminal, never carry it.

Example:

	$ {{.Prog}} backup --store {{.Store}} --config {{.Config}} --out {{.Backup}}
	backed up {{.Store}} to {{.Backup}}: data version {{.Release}}, 3 tables, 120 records, 1 config file
	$ {{.Prog}} backup --store {{.EtcdStore}} --out {{.Backup}}
	backed up {{.EtcdStore}} at revision 1874 to {{.Backup}}: data version {{.Release}}, 3 tables, 120 records, 0 config files
`,
		New: func() command { return &backupOptions{} },
	})
}

// Flag names of backup.
const (
	flagCompress = "compress"
)

type backupOptions struct {
	etcd     etcdFlags
	store    string
	config   string
	compress string
	out      string
	json     bool
	seal     sealFlags
}

func (o *backupOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.StringVar(&o.config, flagConfig, "", "the configuration `DIR` to include")
	fs.StringVar(&o.compress, flagCompress, string(archive.Zstd), "the `COMPRESSION`: zstd or none")
	fs.StringVar(&o.out, flagOut, "", "the archive `FILE` to write (- for standard output)")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
	o.seal.register(fs, true)
}

func (o *backupOptions) Validate(args []string) error {
	switch {
	case o.store == "":
		return cliflag.Usagef("--%s is required", flagStore)
	case o.out == "":
		return cliflag.Usagef("--%s is required", flagOut)
	}
	if _, err := archive.ParseCompression(o.compress); err != nil {
		return cliflag.Usagef("--%s: %v", flagCompress, err)
	}
	return cliflag.Exactly(args)
}

func (o *backupOptions) Run(e *env) error {
	comp, _ := archive.ParseCompression(o.compress)
	recipients, signer, err := o.seal.options()
	if err != nil {
		return err
	}
	if err := checkConfigDir(o.config); err != nil {
		return err
	}
	toStdout := o.out == stdio
	if toStdout && subcmd.IsTerminal(e.stdout) {
		return cliflag.Usagef("--%s -: standard output is a terminal; redirect it to a file or pipe it into a program", flagOut)
	}
	if !toStdout {
		if err := checkOut(o.out); err != nil {
			return err
		}
	} else if !isEtcd(o.store) {
		if err := backup.CheckLayout(o.store, o.config); err != nil {
			return err
		}
	}
	st, err := openStore(e, o.store, &o.etcd, openRead)
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("%w: a running product holds its bbolt store locked; stop it and run the backup again, or back it up while it runs through the product itself, "+
			"which serves a consistent backup of its open store with package backup (backup.Handler over HTTP, or backup.WriteDB; see \"%s help backup\")", err, e.prog)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	src := st
	var pinned *revisionRecorder
	if cs, ok := st.(cluster.Store); ok {
		pinned = &revisionRecorder{Store: cs}
		src = pinned
	}
	opts := backup.Options{
		ConfigDir:   o.config,
		Compression: comp,
		Progress:    e.progress,
		Recipients:  recipients,
		Signer:      signer,
	}
	var m *archive.Manifest
	out, report := o.out, e.stdout
	if toStdout {
		// The archive alone goes to standard output.
		out, report = "standard output", e.stderr
		opts.SpoolDir = os.TempDir()
		m, err = backup.WriteTo(e.ctx, src, e.reg, e.stdout, opts)
	} else {
		m, err = backup.WriteFile(e.ctx, src, e.reg, o.out, opts)
	}
	if compacted := pinned.compacted(err); compacted != nil {
		return fmt.Errorf("%s: the cluster compacted revision %d while the backup was reading it, so no consistent copy could be made and nothing was written to %s: "+
			"run the backup again; if compaction keeps overtaking it, run it when the product writes less, or raise the cluster's --auto-compaction-retention above the backup's duration (%w)",
			o.store, pinned.rev, out, compacted)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	r := archiveReport{Store: o.store, Backup: o.out, Manifest: m}
	at := ""
	if pinned != nil {
		r.Revision = pinned.rev
		at = fmt.Sprintf(" at revision %d", pinned.rev)
	}
	if o.json {
		return writeJSON(report, r)
	}
	fmt.Fprintf(report, "backed up %s%s to %s: %s\n", o.store, at, out, summary(m))
	return nil
}

// revisionRecorder is an etcd store that remembers the revision of the
// last transaction begun: the revision a backup reads at.
type revisionRecorder struct {
	cluster.Store
	rev int64
}

// revisioned is a transaction of a cluster store, which reads at one
// revision.
type revisioned interface{ Revision() int64 }

func (r *revisionRecorder) Begin(writable bool) (store.Tx, error) {
	tx, err := r.Store.Begin(writable)
	if t, ok := tx.(revisioned); ok {
		r.rev = t.Revision()
	}
	return tx, err
}

// compacted returns the cluster's error for the revision r read at being
// compacted away, when err is one; nil when it is not, or r is nil (a
// bbolt store).
func (r *revisionRecorder) compacted(err error) error {
	if r == nil || err == nil {
		return nil
	}
	return cluster.Registered().Compacted(err)
}

// summary describes the content of an archive in one line.
func summary(m *archive.Manifest) string {
	version := "data version " + m.DataVersion
	if backup.Unadopted(m) {
		version = "no hookreg metadata (data from before hookreg)"
	}
	return fmt.Sprintf("%s, %s, %s, %s", version,
		plural(m.TableCount, "table"), plural(m.RecordCount, "record"), plural(int64(len(m.Config)), "config file"))
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
