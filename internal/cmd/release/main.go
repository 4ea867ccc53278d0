// Command release is the program behind "make release VERSION=X.Y.Z"; see
// package internal/release.
package main

import (
	"os"

	"github.com/hookreg/hookreg/internal/release"
)

func main() {
	os.Exit(release.Main(os.Args[1:], os.Stdout, os.Stderr))
}
