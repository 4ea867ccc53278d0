// Package migrator is the migrator command as a library: a product's own
// main passes its generated registry to Main.
//
//	func main() {
//		os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
//	}
package migrator

import (
	"fmt"
	"io"

	"github.com/hookreg/hookreg/hook"
)

// Main runs the migrator for reg with args (without the program name) and
// returns the exit status: 0 success, 1 a refused or failed operation, 2
// usage or environment errors.
func Main(reg *hook.Registry, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "migrator: release %s: not built yet\n", reg.Release)
	return 2
}
