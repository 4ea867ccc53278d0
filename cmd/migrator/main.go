// Command migrator backs up, restores and upgrades the example product's
// store with the hooks of the generated registry. Run "migrator help" for
// the commands. It links both store backends: bbolt, built into package
// migrator, and the etcd cluster store of package migrator/etcdstore.
package main

import (
	"os"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/migrator"
	_ "github.com/hookreg/hookreg/migrator/etcdstore" // the etcd cluster store
)

func main() {
	os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
