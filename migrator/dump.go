package migrator

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store/etcd"
)

func init() {
	register(&spec{
		Name:    "dump",
		Summary: "print the records of a store or a backup",
		Usage: `
Usage: {{.Prog}} dump (--store S | --backup FILE) [--table T] [--json]

Prints every record of the store S (opened read-only, one consistent
snapshot) or of the backup FILE (verified whole first, so nothing is
printed from a damaged backup), table by table in name order and key order
within a table; with --table T, only the table T. The metadata table
_hookreg is a table like the others; a backup's configuration files are
not records ("{{.Prog}} verify" lists them).

Text output: a line "table NAME" before each table's records, then one line
per record: the key and the value, quoted as Go strings (non-printable bytes
escaped). With --json, one JSON object per line and record, {"table",
"key", "value"}, where key and value are strings when they are valid UTF-8
and otherwise given as "key_base64" or "value_base64" (standard base64).

S is a bbolt file path, or an etcd cluster and key prefix:
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags (TLS:
--etcd-cacert, --etcd-cert and --etcd-key; authentication: --etcd-user,
with the password in --etcd-password-file or $HOOKREG_ETCD_PASSWORD). An
etcd store is read without its lock, at one revision.

Example:

	$ {{.Prog}} dump --store {{.Store}} --table _hookreg
	table _hookreg
	  "data_version"  "{{.Release}}"
	  "last_upgrade_hook"  "{{.LastHook}}"
	  "product"  "{{.Product}}"
	$ {{.Prog}} dump --store {{.EtcdStore}} --table _hookreg --json
	{"table":"_hookreg","key":"data_version","value":"{{.Release}}"}
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
}

func (o *dumpOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.StringVar(&o.backup, flagBackup, "", "a backup archive `file`")
	fs.StringVar(&o.table, flagTable, "", "print only the table `T`")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object per record and line")
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
	names, err := tx.Tables()
	if err != nil {
		return fmt.Errorf("%s: %w", o.store, err)
	}
	if names, err = o.selectTable(names, o.store); err != nil {
		return err
	}
	for _, name := range names {
		t, err := tx.Table(name)
		if err != nil {
			return fmt.Errorf("%s: %w", o.store, err)
		}
		p.table(name)
		err = t.Scan(nil, func(k, v []byte) error { return p.record(name, k, v) })
		if et, ok := tx.(*etcd.Tx); ok && errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Errorf("%s: table %q: the cluster compacted revision %d while the dump was reading it, so the output is incomplete: run the dump again, or dump a backup (%w)", o.store, name, et.Revision(), rpctypes.ErrCompacted)
		}
		if err != nil {
			return fmt.Errorf("%s: table %q: %w", o.store, name, err)
		}
	}
	return nil
}

func (o *dumpOptions) dumpBackup(p *dumpPrinter) error {
	f, err := os.Open(o.backup)
	if err != nil {
		return envErrorf("opening backup: %w", err)
	}
	defer f.Close()
	m, err := backup.Verify(f, o.backup)
	if err != nil {
		return err
	}
	names := make([]string, len(m.Tables))
	for i, t := range m.Tables {
		names[i] = tableName(t)
	}
	if _, err := o.selectTable(names, o.backup); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return envErrorf("rereading backup %s: %w", o.backup, err)
	}
	current := ""
	_, err = archive.Read(f, archive.Handler{
		Table: func(t archive.TableInfo) error {
			current = tableName(t)
			if o.table == "" || current == o.table {
				p.table(current)
			}
			return nil
		},
		Record: func(k, v []byte) error {
			if o.table != "" && current != o.table {
				return nil
			}
			return p.record(current, k, v)
		},
	})
	if err != nil {
		return fmt.Errorf("backup %s: %w", o.backup, err)
	}
	return nil
}

// tableName names a table of a backup: a top-level table by its name, a
// nested one by its encoded path (see archive.EncodePath).
func tableName(t archive.TableInfo) string {
	if len(t.Parent) == 0 {
		return t.Name
	}
	return t.String()
}

// selectTable returns the tables to print: all of names, or --table,
// which must be one of them.
func (o *dumpOptions) selectTable(names []string, source string) ([]string, error) {
	if o.table == "" {
		return names, nil
	}
	for _, n := range names {
		if n == o.table {
			return []string{n}, nil
		}
	}
	return nil, fmt.Errorf("%s has no table %q (its tables: %s)", source, o.table, quoteList(names))
}

// dumpPrinter writes records as text or JSON lines.
type dumpPrinter struct {
	w    *bufio.Writer
	json bool
}

func (p *dumpPrinter) table(name string) {
	if !p.json {
		fmt.Fprintf(p.w, "table %s\n", quoteIfNeeded(name))
	}
}

// quoteIfNeeded returns name as it is when it is printable and has no
// space or quote, otherwise quoted as a Go string.
func quoteIfNeeded(name string) string {
	if q := strconv.Quote(name); q[1:len(q)-1] != name || strings.ContainsAny(name, " \"") || name == "" {
		return q
	}
	return name
}

// dumpRecord is one line of dump --json.
type dumpRecord struct {
	Table       string  `json:"table"`
	Key         string  `json:"key,omitempty"`
	KeyBase64   []byte  `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 []byte  `json:"value_base64,omitempty"`
}

func (p *dumpPrinter) record(table string, k, v []byte) error {
	if !p.json {
		fmt.Fprintf(p.w, "  %s  %s\n", strconv.Quote(string(k)), strconv.Quote(string(v)))
		return nil
	}
	r := dumpRecord{Table: table}
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
