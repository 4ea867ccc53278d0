// Command hookgen checks an upgrade-hook registry and generates its typed Go
// registry. Run "hookgen help" for the commands.
package main

import (
	"os"

	"github.com/hookreg/hookreg/internal/hookgen"
)

func main() {
	os.Exit(hookgen.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
