package migrator

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
)

func init() {
	register(&spec{
		Name:    "verify",
		Summary: "check a backup archive: checksums, structure, manifest against content",
		Usage: `
Usage: {{.Prog}} verify FILE
       {{.Prog}} verify --json FILE

Reads the backup archive FILE (zstd-compressed or plain tar) to the end and
checks everything a restore relies on: every member's sha256 against
SHA256SUMS, the structure (member names, order, types and sizes; no links,
devices, absolute or escaping paths, duplicates or unknown members; no
decompression bomb), and the manifest against the content (every table with
its record count and size, every configuration file with its mode and
size). Then prints a summary (with --json, one JSON object: the file and
its manifest). Nothing is written.

Exit status: 0 a good archive; 1 a bad one (the error names the member); 2
a usage error or a missing or unreadable FILE.

Example:

	$ {{.Prog}} verify {{.Backup}}
	{{.Backup}}: good archive (format 1), created 2026-01-01T00:00:00Z
	product {{.Product}}, release {{.Release}} (registry h1:Qm9v...)
	data version {{.Release}}, last upgrade hook {{.LastHook}}, 0 applied hooks
	tables:
	  _hookreg       4 records
	  accounts     120 records
	config files:
	  app.json     -rw-r--r--  212 bytes
`,
		New: func() command { return &verifyOptions{} },
	})
}

type verifyOptions struct {
	file string
	json bool
}

func (o *verifyOptions) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
}

func (o *verifyOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args, "FILE"); err != nil {
		return err
	}
	o.file = args[0]
	return nil
}

func (o *verifyOptions) Run(e *env) error {
	f, err := backup.OpenArchive(o.file)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return cliflag.Env(err)
	}
	r := backup.ContextReader(e.ctx, f)
	if e.progress != nil {
		r = &verifyProgress{r: r, w: e.progress, file: o.file, total: info.Size(), last: time.Now()}
	}
	m, err := backup.Verify(r, o.file)
	if p, ok := r.(*verifyProgress); ok {
		p.done()
	}
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, archiveReport{Backup: o.file, Manifest: m})
	}
	writeVerifySummary(e.stdout, o.file, m)
	return nil
}

// writeVerifySummary prints what a good archive holds.
func writeVerifySummary(w io.Writer, file string, m *archive.Manifest) {
	fmt.Fprintf(w, "%s: good archive (format %d), created %s\n", archive.Escape(file), m.Format, m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "product %s, release %s (registry %s)\n", archive.Escape(m.Product), archive.Escape(m.Release), archive.Escape(m.RegistryDigest))
	last := "none"
	if m.LastUpgradeHook != nil {
		last = fmt.Sprint(*m.LastUpgradeHook)
	}
	fmt.Fprintf(w, "data version %s, last upgrade hook %s, %d applied hooks\n", archive.Escape(m.DataVersion), last, len(m.Applied))
	width := 0
	for _, t := range m.Tables {
		width = max(width, len(archive.Escape(tableName(t))))
	}
	fmt.Fprintf(w, "tables:%s\n", none(len(m.Tables)))
	for _, t := range m.Tables {
		fmt.Fprintf(w, "  %-*s  %d records\n", width, archive.Escape(tableName(t)), t.Records)
	}
	width = 0
	for _, c := range m.Config {
		width = max(width, len(archive.Escape(c.Path)))
	}
	fmt.Fprintf(w, "config files:%s\n", none(len(m.Config)))
	for _, c := range m.Config {
		fmt.Fprintf(w, "  %-*s  %v  %d bytes\n", width, archive.Escape(c.Path), c.Mode, c.Size)
	}
}

func none(n int) string {
	if n == 0 {
		return " none"
	}
	return ""
}

// verifyProgress reports how much of the file has been read, at most twice
// a second, on a terminal.
type verifyProgress struct {
	r     io.Reader
	w     io.Writer
	file  string
	total int64
	n     int64
	last  time.Time
	shown bool
}

func (p *verifyProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if time.Since(p.last) >= 500*time.Millisecond {
		p.last = time.Now()
		p.shown = true
		fmt.Fprintf(p.w, "\rverifying %s: %d%%", p.file, 100*p.n/max(p.total, 1))
	}
	return n, err
}

func (p *verifyProgress) done() {
	if p.shown {
		fmt.Fprintf(p.w, "\rverifying %s: %d%%\n", p.file, 100*p.n/max(p.total, 1))
	}
}
