package migrator

import (
	"flag"
	"fmt"

	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/cliflag"
)

func init() {
	register(&spec{
		Name:    "backup",
		Summary: "write a consistent backup of a store and its configuration",
		Usage: `
Usage: {{.Prog}} backup --store S [--config DIR] [--compress zstd|none] --out FILE [--json]

Writes one archive FILE (its format is archive/FORMAT.md in the hookreg
repository) holding every table, nested ones included, of the store
S and its upgrade metadata, all read in one read-only transaction (one
consistent snapshot), and the configuration files of the directory DIR:
regular files only, with their modes (a symbolic link or a special file is
refused). A store that holds its configuration files itself (the table
"_config", as after an offline upgrade or a restore without --config)
carries them the same way, and then --config must be omitted.

The archive is written to a temporary file beside FILE, synced and renamed
into place: FILE is never partial, even when the backup is killed. An
existing regular FILE is replaced; a FILE that is a symbolic link, a
device, a FIFO or a directory, the store itself (under any name) or inside
DIR is refused, and so is a store inside DIR. FILE gets mode 0600: it
holds the product's data. The archive is zstd-compressed unless --compress
none. With --json, one JSON object: the store, the file and its manifest.

Example:

	$ {{.Prog}} backup --store {{.Store}} --config {{.Config}} --out {{.Backup}}
	backed up {{.Store}} to {{.Backup}}: data version {{.Release}}, 3 tables, 120 records, 1 config file
`,
		New: func() command { return &backupOptions{} },
	})
}

// Flag names of backup.
const (
	flagCompress = "compress"
)

type backupOptions struct {
	store    string
	config   string
	compress string
	out      string
	json     bool
}

func (o *backupOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", "the store: a bbolt file `path`")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `directory` to include")
	fs.StringVar(&o.compress, flagCompress, string(archive.Zstd), "compression: zstd or none")
	fs.StringVar(&o.out, flagOut, "", "the archive `file` to write")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
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
	if err := checkConfigDir(o.config); err != nil {
		return err
	}
	if err := checkOut(o.out); err != nil {
		return err
	}
	st, err := openStore(o.store, openRead)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := backup.WriteFile(e.ctx, st, e.reg, o.out, backup.Options{
		ConfigDir:   o.config,
		Compression: comp,
		Progress:    e.progress,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	if o.json {
		return writeJSON(e.stdout, archiveReport{Store: o.store, Backup: o.out, Manifest: m})
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s: %s\n", o.store, o.out, summary(m))
	return nil
}

// summary describes the content of an archive in one line.
func summary(m *archive.Manifest) string {
	var records int64
	for _, t := range m.Tables {
		records += t.Records
	}
	return fmt.Sprintf("data version %s, %s, %s, %s", m.DataVersion,
		plural(int64(len(m.Tables)), "table"), plural(records, "record"), plural(int64(len(m.Config)), "config file"))
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
