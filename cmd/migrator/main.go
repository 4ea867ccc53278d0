// Command migrator backs up, restores and upgrades the example product's
// store with the hooks of the generated registry. Run "migrator help" for
// the commands.
package main

import (
	"os"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/migrator"
)

func main() {
	os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
