// Command seed writes the example product's data, as release RELEASE
// leaves it, into the new bbolt store STORE (example.Build, example.Small):
// the seed from which the release gate writes this repository's release
// fixtures. "make release" runs it as
//
//	hookgen release --seed-cmd 'go run ./internal/cmd/seed "$HOOKREG_RELEASE" "$HOOKREG_STORE"'
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store/bolt"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: seed RELEASE STORE")
		os.Exit(2)
	}
	if err := seed(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "seed: %v\n", err)
		os.Exit(1)
	}
}

func seed(release, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists already", path)
	}
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := example.Build(context.Background(), st, generated.Registry, release, example.Small); err != nil {
		return err
	}
	return st.Close()
}
