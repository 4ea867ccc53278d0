// Package storetest holds the helpers that the tests of several packages
// use on a store.Store, whatever its kind (bbolt or etcd): write records
// into a table or run a write transaction, read a table back as a map.
package storetest

import (
	"testing"

	"github.com/hookreg/hookreg/store"
)

// Put creates table (or opens it) and writes the records kv (key, value,
// key, value...) in one transaction.
func Put(t testing.TB, st store.Store, table string, kv ...string) {
	t.Helper()
	Update(t, st, func(tx store.Tx) error {
		tb, err := tx.CreateTable(table)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if err := tb.Put([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

// Update runs fn in one write transaction of st and commits it; an error
// of fn rolls it back and fails the test.
func Update(t testing.TB, st store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Records reads every record of table in a new read-only transaction.
func Records(t testing.TB, st store.Store, table string) map[string]string {
	t.Helper()
	m, err := TryRecords(st, table)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TryRecords is Records returning the error that kept it from reading.
func TryRecords(st store.Store, table string) (map[string]string, error) {
	tx, err := st.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	tb, err := tx.Table(table)
	if err != nil {
		return nil, err
	}
	return scan(tb)
}

// TableRecords reads every record of tb.
func TableRecords(t testing.TB, tb store.Table) map[string]string {
	t.Helper()
	m, err := scan(tb)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scan(tb store.Table) (map[string]string, error) {
	m := map[string]string{}
	err := tb.Scan(nil, func(k, v []byte) error {
		m[string(k)] = string(v)
		return nil
	})
	return m, err
}
