package archive_test

import (
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/hookreg/hookreg/archive"
)

// An archive of a table with a nested one and a configuration file,
// counted, written and read back.
func Example() {
	key, value := []byte("alice"), []byte(`{"role":"admin"}`)
	conf := []byte("listeners.tcp = 1883\n")
	m := archive.Manifest{
		Created:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Product:     "mqtt-broker",
		Release:     "5.1.0",
		DataVersion: "5.1.0",
		Config:      []archive.ConfigFile{{Path: "broker.conf", Mode: 0o644, Size: int64(len(conf))}},
	}
	// The manifest declares the totals: count what will be written.
	var tt archive.Totals
	tt.StartTable("users", 0)
	tt.Record(key, value)
	tt.StartTable("by-tenant", 7)
	tt.EndTable()
	tt.EndTable()
	tt.Set(&m)

	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, m, archive.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.StartTable([]string{"users"}, 0); err != nil {
		log.Fatal(err)
	}
	if err := w.Record(key, value); err != nil {
		log.Fatal(err)
	}
	if err := w.StartTable([]string{"users", "by-tenant"}, 7); err != nil {
		log.Fatal(err)
	}
	if err := w.Config("broker.conf", 0o644, conf); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// A restore verifies everything first, then streams the content.
	if _, err := archive.Verify(bytes.NewReader(buf.Bytes())); err != nil {
		log.Fatal(err)
	}
	_, err = archive.Read(bytes.NewReader(buf.Bytes()), archive.Handler{
		Manifest: func(m archive.Manifest) error {
			fmt.Printf("%s data version %s\n", m.Product, m.DataVersion)
			return nil
		},
		Table: func(t archive.TableInfo) error {
			fmt.Printf("table %s (sequence %d)\n", t, t.Sequence)
			return nil
		},
		TableEnd: func(t archive.TableInfo) error {
			fmt.Printf("end of %s: %d records\n", t, t.Records)
			return nil
		},
		Record: func(key, value []byte) error {
			fmt.Printf("  %s = %s\n", key, value)
			return nil
		},
		Config: func(c archive.ConfigFile, data []byte) error {
			fmt.Printf("config %s %v: %q\n", c.Path, c.Mode, data)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// mqtt-broker data version 5.1.0
	// table users (sequence 0)
	//   alice = {"role":"admin"}
	// table users/by-tenant (sequence 7)
	// end of users/by-tenant: 0 records
	// end of users: 1 records
	// config broker.conf -rw-r--r--: "listeners.tcp = 1883\n"
}
