package backup_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
)

// A product backs up its own store with its registry, and restores it.
func ExampleWriteFile() {
	st, err := bolt.Open("broker.db", bolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	m, err := backup.WriteFile(context.Background(), st, generated.Registry, "broker.tar.zst", backup.Options{ConfigDir: "etc/broker"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("backed up data version", m.DataVersion)
}

func ExampleRestore() {
	m, err := backup.Restore(context.Background(), generated.Registry, "broker.tar.zst", "broker.db", backup.RestoreOptions{ConfigDir: "etc/broker"})
	if err != nil {
		fmt.Println(err) // the old store and configuration are untouched
		return
	}
	fmt.Println("restored data version", m.DataVersion)
}

// A running product serves consistent backups of the bbolt database it
// holds open, behind its own authentication: "curl -fsS -o b.tar.zst
// https://broker:8443/admin/backup" backs it up, and "migrator verify
// b.tar.zst" checks the download.
func ExampleHandler() {
	db, err := bbolt.Open("broker.db", 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /admin/backup", requireAdmin(backup.Handler(db, generated.Registry, backup.Options{})))
	// ... the product's own routes, then http.ListenAndServeTLS(...)
}

// requireAdmin stands for the product's authentication.
func requireAdmin(h http.Handler) http.Handler { return h }

// A product writes a backup of its open database wherever it likes: a
// file, an upload, a pipe.
func ExampleWriteDB() {
	db, err := bbolt.Open("broker.db", 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	m, err := backup.WriteDB(context.Background(), db, generated.Registry, os.Stdout, backup.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Fprintln(os.Stderr, "backed up data version", m.DataVersion)
}
