package hookreg_test

import (
	"os/exec"
	"strings"
	"testing"
)

// goEnv returns the value of "go env NAME" of the host.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
