package migrator

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/store"
)

func init() {
	register(&spec{
		Name:    "dump",
		Summary: "print the records of a store or a backup",
		Usage: `
Usage: {{.Prog}} dump (--store S | --backup FILE) [--table T] [--json]

Prints every record of the store S (opened read-only, one consistent
snapshot) or of the backup FILE (verified whole first, so nothing is
printed from a damaged backup), every table at every depth with its
sequence, in the store's order: a table's records in key order, each table
nested in it at its name's place among them. With --table T, only the
table T (a nested one by its path as printed, or with its names quoted
with other Go escapes: "\x07" for "\a"). The metadata table
_hookreg is a table like the others; a backup's configuration files are
not records ("{{.Prog}} verify" lists them).

Text output: a line "table PATH" before each table's records (and again
before its records after a nested table), then one line per record: the
key and the value, quoted as Go strings (non-printable bytes escaped).
PATH is the table's names joined by "/", each quoted as a Go string when
any of them holds other bytes than letters, digits and "._-", so that a
nested table ("a"/"b c") never reads as a top-level name holding a slash
("a/b c"); a table with a sequence shows it: "table users (sequence 42)".

With --json, one JSON object per line and record: {"table", "path", "key",
"value"}, where "table" is the path as text does, "path" the table's names
(a top-level table's alone), and key and value strings when they are valid
UTF-8; otherwise they are given as "path_base64" (every name),
"key_base64" or "value_base64" (standard base64), so that two different
names never print the same.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd"). An
etcd store is read without its lock, at one revision.

Example:

	$ {{.Prog}} dump --store {{.Store}} --table _hookreg
	table _hookreg
	  "data_version"  "{{.Release}}"
	  "last_upgrade_hook"  "{{.LastHook}}"
	  "product"  "{{.Product}}"
	$ {{.Prog}} dump --store {{.EtcdStore}} --table _hookreg --json
	{"table":"_hookreg","path":["_hookreg"],"key":"data_version","value":"{{.Release}}"}
	...
`,
		New: func() command { return &dumpOptions{} },
	})
}

// flagTable selects one table.
const flagTable = "table"

type dumpOptions struct {
	etcd                 etcdFlags
	store, backup, table string
	json                 bool
	keys                 openFlags
}

func (o *dumpOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.StringVar(&o.backup, flagBackup, "", "a backup archive `FILE`")
	fs.StringVar(&o.table, flagTable, "", "print only the table `T`")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object per record and line")
	o.keys.register(fs)
}

func (o *dumpOptions) Validate(args []string) error {
	if (o.store == "") == (o.backup == "") {
		return cliflag.Usagef("give either --%s or --%s", flagStore, flagBackup)
	}
	return cliflag.Exactly(args)
}

func (o *dumpOptions) Run(e *env) error {
	w := bufio.NewWriter(e.stdout)
	p := &dumpPrinter{w: w, json: o.json}
	var err error
	if o.store != "" {
		err = o.dumpStore(e, p)
	} else {
		err = o.dumpBackup(p)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func (o *dumpOptions) dumpStore(e *env, p *dumpPrinter) error {
	st, err := openStore(e, o.store, &o.etcd, openRead)
	if err != nil {
		return err
	}
	defer st.Close()
	tx, err := st.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Every table at every depth, in the store's order, whatever the
	// number of tables.
	sel := o.selector()
	err = store.WalkTree(tx, func(path []string, seq uint64) error {
		return sel.start(p, path, seq)
	}, func(k, v []byte) error {
		return sel.record(p, k, v)
	}, func(path []string) error {
		sel.end(p, path)
		return nil
	})
	if et, ok := tx.(revisioned); ok && cluster.Registered() != nil {
		if compacted := cluster.Registered().Compacted(err); compacted != nil {
			return fmt.Errorf("%s: the cluster compacted revision %d while the dump was reading it, so the output is incomplete: run the dump again, or dump a backup (%w)", o.store, et.Revision(), compacted)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	return sel.found(o.store)
}

func (o *dumpOptions) dumpBackup(p *dumpPrinter) error {
	keys, err := o.keys.files().keys()
	if err != nil {
		return err
	}
	f, err := os.Open(o.backup)
	if err != nil {
		return envErrorf("opening backup: %w", err)
	}
	defer f.Close()
	// The whole backup is verified first, and --table looked for, so
	// that nothing is printed from a damaged backup.
	look := o.selector()
	_, err = backup.VerifySealed(f, o.backup, keys, archive.Handler{
		Table: func(t archive.TableInfo) error {
			look.note(t.Path())
			look.seen = look.seen || look.matches(t.Path())
			return nil
		},
	})
	if err != nil {
		return err
	}
	if err := look.found(o.backup); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return envErrorf("rereading backup %s: %w", o.backup, err)
	}
	sel := o.selector()
	plain, err := backup.Decrypt(f, o.backup, keys.Identities)
	if err != nil {
		return err
	}
	defer plain.Close()
	_, err = archive.Read(plain, archive.Handler{
		Table: func(t archive.TableInfo) error {
			return sel.start(p, t.Path(), t.Sequence)
		},
		TableEnd: func(t archive.TableInfo) error {
			sel.end(p, t.Path())
			return nil
		},
		Record: func(k, v []byte) error {
			return sel.record(p, k, v)
		},
	})
	if err != nil {
		return fmt.Errorf("backup %s: %w", o.backup, err)
	}
	return nil
}

// selector passes to a printer the tables --table selects (every table
// without it), as a walk of a store or a backup gives them.
type selector struct {
	table string
	// quoted is table as a path of names quoted as Go strings
	// ("a"/"b\x07"), whatever escapes they use; nil when it is not one.
	quoted []string
	depth  int // the depth of the selected table while it is open, else 0
	seen   bool
	// top holds the first top-level tables' names, for the error of a
	// --table that names none; more counts the others.
	top  []string
	more int
}

func (o *dumpOptions) selector() *selector {
	return &selector{table: o.table, quoted: parseQuotedPath(o.table)}
}

// parseQuotedPath returns the names of a path whose every name is quoted as
// a Go string, joined by "/" ("a"/"b c"), or nil when s is not one.
func parseQuotedPath(s string) []string {
	var names []string
	for {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return nil
		}
		name, err := strconv.Unquote(q)
		if err != nil {
			return nil
		}
		names = append(names, name)
		s = s[len(q):]
		if s == "" {
			return names
		}
		if s[0] != '/' {
			return nil
		}
		s = s[1:]
	}
}

// matches reports whether --table names the table at path: as dump
// prints it (hook.FormatPath), as a path of names quoted as Go strings
// with any escapes ("\x07" for the "\a" dump prints), or a top-level
// table by its name as is.
func (s *selector) matches(path []string) bool {
	return s.table == "" || hook.FormatPath(path) == s.table || len(path) == 1 && path[0] == s.table ||
		s.quoted != nil && slices.Equal(path, s.quoted)
}

func (s *selector) start(p *dumpPrinter, path []string, seq uint64) error {
	s.note(path)
	switch {
	case s.table == "":
		p.start(path, seq)
	case s.depth > 0:
		p.inner++ // a table nested in the selected one: not printed
	case s.matches(path):
		s.seen = true
		s.depth = len(path)
		p.start(path, seq)
	default:
		return nil
	}
	return nil
}

func (s *selector) record(p *dumpPrinter, k, v []byte) error {
	if s.table != "" && (s.depth == 0 || p.inner > 0) {
		return nil
	}
	return p.record(k, v)
}

func (s *selector) end(p *dumpPrinter, path []string) {
	switch {
	case s.table == "":
		p.end(path)
	case s.depth > 0 && p.inner > 0:
		p.inner--
	case s.depth == len(path):
		s.depth = 0
		p.end(path)
	}
}

// note keeps a few top-level table names for found's error.
func (s *selector) note(path []string) {
	if len(path) == 1 {
		if len(s.top) < 6 {
			s.top = append(s.top, path[0])
		} else {
			s.more++
		}
	}
}

// found returns the error of a --table that named no table of source.
func (s *selector) found(source string) error {
	if s.table != "" && !s.seen {
		list := quoteList(s.top)
		if s.more > 0 {
			list = strings.Replace(list, "and 1 more", fmt.Sprintf("and %d more", s.more+1), 1)
		}
		return fmt.Errorf("%s has no table %q (its tables: %s)", source, s.table, list)
	}
	return nil
}

// dumpPrinter writes records as text or JSON lines. It follows the
// tables as they start and end: the records after a nested table's end
// are its parent's again, and the text output names the parent again
// before them.
type dumpPrinter struct {
	w       *bufio.Writer
	json    bool
	open    []openTable // the open tables, innermost last
	printed string      // the table the last "table" line named
	inner   int         // tables open inside the selected one (not printed)
}

func (p *dumpPrinter) start(path []string, seq uint64) {
	name := hook.FormatPath(path)
	p.open = append(p.open, openTable{name: name, path: slices.Clone(path)})
	if p.json {
		return
	}
	p.printed = name
	if seq != 0 {
		fmt.Fprintf(p.w, "table %s (sequence %d)\n", name, seq)
		return
	}
	fmt.Fprintf(p.w, "table %s\n", name)
}

func (p *dumpPrinter) end([]string) {
	if len(p.open) > 0 {
		p.open = p.open[:len(p.open)-1]
	}
}

// openTable is a table a dump is in: its path and how it prints.
type openTable struct {
	name string
	path []string
}

// dumpRecord is one line of dump --json.
type dumpRecord struct {
	// Table is the table's path as text (see hook.FormatPath), Path its
	// names, or PathBase64 when a name is not valid UTF-8.
	Table       string   `json:"table"`
	Path        []string `json:"path,omitempty"`
	PathBase64  [][]byte `json:"path_base64,omitempty"`
	Key         string   `json:"key,omitempty"`
	KeyBase64   []byte   `json:"key_base64,omitempty"`
	Value       *string  `json:"value,omitempty"`
	ValueBase64 []byte   `json:"value_base64,omitempty"`
}

func (p *dumpPrinter) record(k, v []byte) error {
	var cur openTable
	if len(p.open) > 0 {
		cur = p.open[len(p.open)-1]
	}
	table := cur.name
	if !p.json {
		if table != p.printed {
			p.printed = table
			fmt.Fprintf(p.w, "table %s\n", table)
		}
		fmt.Fprintf(p.w, "  %s  %s\n", strconv.Quote(string(k)), strconv.Quote(string(v)))
		return nil
	}
	r := dumpRecord{Table: table, Path: cur.path}
	for _, n := range cur.path {
		if !utf8.ValidString(n) {
			r.Path = nil
			for _, n := range cur.path {
				r.PathBase64 = append(r.PathBase64, []byte(n))
			}
			break
		}
	}
	if utf8.Valid(k) {
		r.Key = string(k)
	} else {
		r.KeyBase64 = k
	}
	if utf8.Valid(v) {
		s := string(v)
		r.Value = &s
	} else {
		r.ValueBase64 = v
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p.w.Write(line)
	return p.w.WriteByte('\n')
}
