package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// A product that holds its bbolt file open upgrades it at start-up: the
// online hooks run, and an offline hook stops the start, naming the
// command the operator runs.
func ExampleStart() {
	dir, _ := os.MkdirTemp("", "acme")
	defer os.RemoveAll(dir)

	// Release 1.0.0 of the product: a fresh install.
	reg := &hook.Registry{Product: "acme", Release: "1.0.0"}
	serve(dir, reg)

	// Release 1.0.1 adds an online hook: it runs at start-up.
	reg = &hook.Registry{Product: "acme", Release: "1.0.1", Hooks: []hook.Hook{
		{Num: 1, IntroducedIn: "1.0.1", AllowOnline: true, Name: "AddDefaults", Func: func(ctx context.Context, tx hook.Tx) error {
			t, err := tx.CreateTable("settings")
			if err != nil {
				return err
			}
			return t.Put([]byte("theme"), []byte("dark"))
		}},
	}}
	serve(dir, reg)

	// Release 2.0.0 adds an offline hook: the product refuses to start.
	reg.Release = "2.0.0"
	reg.Hooks = append(reg.Hooks, hook.Hook{Num: 2, IntroducedIn: "2.0.0", Name: "SplitSettings", Func: func(ctx context.Context, tx hook.Tx) error { return nil }})
	serve(dir, reg)

	// Output:
	// serving acme 1.0.0: data version 1.0.0
	// serving acme 1.0.1: data version 1.0.1 (applied hooks [1])
	// not starting: an online upgrade is refused: pending hooks do not allow online:
	// 	hook 2 (SplitSettings, introduced in 2.0.0)
	// an offline upgrade is needed: stop the product and run "acmectl migrate upgrade --offline --store acme.db"
}

// serve is the start of the product's server: it opens its bbolt file,
// which it keeps open, and upgrades it before serving.
func serve(dir string, reg *hook.Registry) {
	db, err := bbolt.Open(filepath.Join(dir, "acme.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	res, err := upgrade.Start(context.Background(), bolt.FromDB(db), reg, upgrade.StartOptions{
		OfflineCommand: "acmectl migrate upgrade --offline --store acme.db",
	})
	var refusal *upgrade.Refusal
	switch {
	case errors.As(err, &refusal):
		fmt.Println("not starting:", refusal)
		return
	case err != nil:
		fmt.Println("not starting:", err)
		return
	}
	var applied []int
	for _, a := range res.Applied {
		applied = append(applied, a.Num)
	}
	if len(applied) > 0 {
		fmt.Printf("serving %s %s: data version %s (applied hooks %v)\n", reg.Product, reg.Release, res.To, applied)
		return
	}
	fmt.Printf("serving %s %s: data version %s\n", reg.Product, reg.Release, res.To)
}
