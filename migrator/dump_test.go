package migrator_test

import (
	"path/filepath"
	"testing"

	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// TestDumpBinary: keys and values that are not UTF-8 are escaped in text
// and base64 in JSON; valid ones stay strings, empty values included.
func TestDumpBinary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	writeBolt(t, path, func(tx store.Tx) error {
		tb, err := tx.CreateTable("bin")
		if err != nil {
			return err
		}
		for k, v := range map[string]string{"\xff\x00": "\x80", "empty": "", "héllo": "wörld\n"} {
			if err := tb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		for _, name := range []string{"\xfe", "\xff"} { // two names U+FFFD would print alike
			odd, err := tb.CreateTable(name)
			if err != nil {
				return err
			}
			if err := odd.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})

	code, out, stderr := run("dump", "--store", path, "--json")
	want := `{"table":"bin","path":["bin"],"key":"empty","value":""}
{"table":"bin","path":["bin"],"key":"héllo","value":"wörld\n"}
{"table":"\"bin\"/\"\\xfe\"","path_base64":["Ymlu","/g=="],"key":"k","value":"v"}
{"table":"\"bin\"/\"\\xff\"","path_base64":["Ymlu","/w=="],"key":"k","value":"v"}
{"table":"bin","path":["bin"],"key_base64":"/wA=","value_base64":"gA=="}
`
	if code != 0 || out != want {
		t.Errorf("dump --json: %d %s\n%s\nwant:\n%s", code, stderr, out, want)
	}
	code, out, stderr = run("dump", "--store", path)
	want = `table bin
  "empty"  ""
  "héllo"  "wörld\n"
table "bin"/"\xfe"
  "k"  "v"
table "bin"/"\xff"
  "k"  "v"
table bin
  "\xff\x00"  "\x80"
`
	if code != 0 || out != want {
		t.Errorf("dump: %d %s\n%s\nwant:\n%s", code, stderr, out, want)
	}
}

// TestDumpTableQuoted: --table names a nested table by its path quoted as Go
// strings, whichever Go escape the user types for a byte ("\a" as dump
// prints it, or "\x07" for a binary ID), and every element may be quoted.
func TestDumpTableQuoted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	writeBolt(t, path, func(tx store.Tx) error {
		items, err := createPath(tx, "warehouses", "\x00\x00\x00\x07", "items")
		if err != nil {
			return err
		}
		return items.Put([]byte("saw"), []byte("1"))
	})

	want := "table \"warehouses\"/\"\\x00\\x00\\x00\\a\"/\"items\"\n  \"saw\"  \"1\"\n"
	for _, table := range []string{
		`"warehouses"/"\x00\x00\x00\a"/"items"`, // as printed
		`"warehouses"/"\x00\x00\x00\x07"/"items"`,
		`"warehouses"/"\000\000\000\007"/"items"`,
	} {
		code, out, stderr := run("dump", "--store", path, "--table", table)
		if code != 0 || out != want {
			t.Errorf("dump --table %s: %d %s\n%s\nwant:\n%s", table, code, stderr, out, want)
		}
	}
}

// writeBolt creates the bbolt store file path and fills it through fill,
// in one write transaction.
func writeBolt(t testing.TB, path string, fill func(tx store.Tx) error) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storetest.Update(t, st, fill)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// createPath creates (or opens) the tables of path, each nested in the
// one before, and returns the last.
func createPath(tx store.Tx, path ...string) (store.Table, error) {
	tb, err := tx.CreateTable(path[0])
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		tb, err = tb.CreateTable(name)
	}
	return tb, err
}
