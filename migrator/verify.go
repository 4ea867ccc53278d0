package migrator

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
)

func init() {
	register(&spec{
		Name:    "verify",
		Summary: "check a backup archive: checksums, structure, manifest against content",
		Usage: `
Usage: {{.Prog}} verify FILE
       {{.Prog}} verify --json FILE

Reads the backup archive FILE (zstd-compressed or plain tar; - reads it
from standard input, as it comes out of a pipe) to the end and
checks everything a restore checks: every member's sha256 against
SHA256SUMS, the structure (member names, order, types and sizes; no links,
devices, absolute or escaping paths, duplicates or unknown members; no
decompression bomb), the tables (names, nesting, order: no record key equal
to a nested table's name) and the manifest against the content (the totals
of tables, records and bytes, every table's record count and size, every
configuration file with its mode and size, the upgrade metadata). Then
prints a summary: every table at every depth in path order (a nested one as
parent/name, names quoted when they hold other bytes than letters, digits
and "._-"), with its records and sequence number, and the configuration
files; with --json, one JSON object: the file and its manifest (format 3:
the totals). Nothing is written; the table list is kept in a temporary file
while the archive is read, so memory does not grow with the tables.

Exit status: 0 a good archive; 1 a bad one (the error names the member); 2
a usage error or a missing or unreadable FILE.

On a terminal, progress goes to standard error: each phase of the work on
a line, with a rate and an ETA where its total is known.
HOOKREG_PROGRESS=0 turns it off; standard output, and standard error that
is not a terminal, never carry it.

Example:

	$ {{.Prog}} verify {{.Backup}}
	{{.Backup}}: good archive (format 3), created 2026-01-01T00:00:00Z
	product {{.Product}}, release {{.Release}} (registry h1:...)
	data version {{.Release}}, last upgrade hook {{.LastHook}}, ... applied hooks
	tables: ..., ... records
	  _hookreg  ... records
	  ...
	config files:
	  ...
`,
		New: func() command { return &verifyOptions{} },
	})
}

type verifyOptions struct {
	file string
	json bool
	keys openFlags
}

func (o *verifyOptions) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
	o.keys.register(fs)
}

func (o *verifyOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args, "FILE"); err != nil {
		return err
	}
	o.file = args[0]
	return nil
}

func (o *verifyOptions) Run(e *env) error {
	keys, err := o.keys.files().keys()
	if err != nil {
		return err
	}
	name := o.file
	var r io.Reader
	if o.file == stdio {
		name = stdinName
		r = backup.ContextReader(e.ctx, e.stdin)
	} else {
		f, err := backup.OpenArchive(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return cliflag.Env(err)
		}
		r = backup.ContextReader(e.ctx, f)
		if prog := e.phases(); prog != nil {
			prog.Count("verify: reading "+o.file, "bytes", info.Size())
			defer prog.Done()
			r = &verifyProgress{r: r, prog: prog}
		}
	}
	var list *tableList
	var h archive.Handler
	if !o.json {
		list = &tableList{}
		defer list.close()
		h = archive.Handler{Table: list.start, TableEnd: list.end}
	}
	m, err := backup.VerifySealed(r, name, keys, h)
	if p, ok := r.(*verifyProgress); ok {
		p.prog.Done()
	}
	if err == nil && list != nil {
		err = list.err
	}
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, archiveReport{Backup: o.file, Manifest: m})
	}
	return writeVerifySummary(e.stdout, name, m, list)
}

// tableList keeps the lines of verify's table list, in path order, as the
// archive streams: in memory up to tableListMemory bytes, then in a
// temporary file (unlinked where the system allows). A table's line is
// written when it starts, with room for its record count, which is
// written in place when it ends (after the tables nested in it).
type tableList struct {
	mem  []byte
	f    *os.File
	size int64   // bytes written
	open []int64 // the offsets of the open tables' counts
	err  error
}

const (
	tableListMemory = 4 << 20
	countWidth      = 20 // the digits of the largest record count
)

func (l *tableList) write(b []byte) int64 {
	off := l.size
	l.size += int64(len(b))
	if l.f == nil && len(l.mem)+len(b) > tableListMemory {
		f, err := os.CreateTemp("", ".hookreg-verify-*")
		if err != nil {
			l.err = cliflag.Env(fmt.Errorf("creating a temporary file for the table list: %w", err))
			return off
		}
		os.Remove(f.Name())
		l.f = f
		if _, err := f.Write(l.mem); err != nil {
			l.err = cliflag.Env(err)
		}
		l.mem = nil
	}
	if l.f == nil {
		l.mem = append(l.mem, b...)
	} else if _, err := l.f.Write(b); err != nil && l.err == nil {
		l.err = cliflag.Env(fmt.Errorf("writing the table list: %w", err))
	}
	return off
}

func (l *tableList) writeAt(b []byte, off int64) {
	if l.f == nil {
		copy(l.mem[off:], b)
	} else if _, err := l.f.WriteAt(b, off); err != nil && l.err == nil {
		l.err = cliflag.Env(fmt.Errorf("writing the table list: %w", err))
	}
}

// start writes a line: the path, the sequence and room for the count.
func (l *tableList) start(t archive.TableInfo) error {
	line := fmt.Appendf(nil, "%s\t%d\t%0*d\n", hook.FormatPath(t.Path()), t.Sequence, countWidth, 0)
	off := l.write(line)
	l.open = append(l.open, off+int64(len(line)-1-countWidth))
	return l.err
}

// end writes the record count of the table in its line.
func (l *tableList) end(t archive.TableInfo) error {
	off := l.open[len(l.open)-1]
	l.open = l.open[:len(l.open)-1]
	l.writeAt(fmt.Appendf(nil, "%0*d", countWidth, t.Records), off)
	return l.err
}

// each calls fn with every table's formatted path, sequence and records.
func (l *tableList) each(fn func(path string, seq, records string)) error {
	var r io.Reader = bytes.NewReader(l.mem)
	if l.f != nil {
		if _, err := l.f.Seek(0, io.SeekStart); err != nil {
			return cliflag.Env(err)
		}
		r = l.f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			return fmt.Errorf("reading the table list: malformed line %q", sc.Text())
		}
		records := strings.TrimLeft(fields[2], "0")
		if records == "" {
			records = "0"
		}
		fn(fields[0], fields[1], records)
	}
	if err := sc.Err(); err != nil {
		return cliflag.Env(fmt.Errorf("reading the table list: %w", err))
	}
	return nil
}

func (l *tableList) close() {
	if l.f != nil {
		l.f.Close()
		os.Remove(l.f.Name())
	}
}

// writeVerifySummary prints what a good archive holds: tables lists its
// tables.
func writeVerifySummary(w io.Writer, file string, m *archive.Manifest, tables *tableList) error {
	fmt.Fprintf(w, "%s: good archive (format %d), created %s\n", archive.Escape(file), m.Format, m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "product %s, release %s (registry %s)\n", archive.Escape(m.Product), archive.Escape(m.Release), archive.Escape(m.RegistryDigest))
	last := "none"
	if m.LastUpgradeHook != nil {
		last = fmt.Sprint(*m.LastUpgradeHook)
	}
	fmt.Fprintf(w, "data version %s, last upgrade hook %s, %d applied hooks\n", archive.Escape(m.DataVersion), last, len(m.Applied))
	if len(m.Covered) > 0 {
		fmt.Fprintf(w, "maintenance hooks the installing release contained: %s\n", joinInts(m.Covered))
	}
	if m.TableCount == 0 {
		fmt.Fprintf(w, "tables: none\n")
	} else {
		fmt.Fprintf(w, "tables: %d, %d records\n", m.TableCount, m.RecordCount)
	}
	err := tables.each(func(path, seq, records string) {
		if seq != "0" {
			fmt.Fprintf(w, "  %s  %s records, sequence %s\n", path, records, seq)
			return
		}
		fmt.Fprintf(w, "  %s  %s records\n", path, records)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "config files:%s\n", none(len(m.Config)))
	for _, c := range m.Config {
		fmt.Fprintf(w, "  %s  %v  %d bytes\n", archive.Escape(c.Path), c.Mode, c.Size)
	}
	return nil
}

func none(n int) string {
	if n == 0 {
		return " none"
	}
	return ""
}

// verifyProgress counts the bytes of the file read.
type verifyProgress struct {
	r    io.Reader
	prog *backup.Progress
}

func (p *verifyProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.prog.Add(int64(n))
	return n, err
}
