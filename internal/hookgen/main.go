// Package hookgen is the hookgen command: it checks registry.yaml, proves
// against git history that no landed hook changed, and generates the typed
// registry. See cmd/hookgen for the manual.
package hookgen

import (
	"fmt"
	"io"
)

// Main runs hookgen with args (without the program name) and returns the
// exit status: 0 success, 1 findings or a failed operation, 2 usage or
// environment errors.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "hookgen: not built yet")
	return 2
}
