package backup_test

import (
	"context"
	"fmt"

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
