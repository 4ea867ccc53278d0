package bolt_test

import (
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/store/bolt"
)

// TestFromDB: the store over a product's own DB sees its buckets as
// tables, writes what the product then reads, and leaves the DB open when
// closed.
func TestFromDB(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "p.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		return b.Put([]byte("ada"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	st := bolt.FromDB(db)
	tx, err := st.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	users, err := tx.Table("users")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := users.Get([]byte("ada")); err != nil || string(v) != "1" {
		t.Fatalf("ada = %q, %v", v, err)
	}
	if err := users.Put([]byte("alan"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st.Path() != db.Path() {
		t.Errorf("path %q, want %q", st.Path(), db.Path())
	}
	if err := db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("users")).Get([]byte("alan")); string(v) != "2" {
			t.Errorf("the product reads alan = %q", v)
		}
		return nil
	}); err != nil {
		t.Fatalf("the DB was closed with the store: %v", err)
	}
}
