package release_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/release"
)

// TestBuildReproducible builds the migrator of HEAD twice, from two clones
// at different paths and at different times, and wants identical bytes and
// the commit stamped in the build info. "make release" builds every target.
func TestBuildReproducible(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	head := gitOut(t, strings.TrimSpace(string(root)), "rev-parse", "HEAD")
	ctx := context.Background()
	var bins [2][]byte
	for i := range bins {
		src := filepath.Join(t.TempDir(), "clone"+string(rune('a'+i)), "hookreg")
		gitOut(t, ".", "clone", "--quiet", strings.TrimSpace(string(root)), src)
		out := filepath.Join(t.TempDir(), "migrator")
		if err := release.Build(ctx, src, release.Target{GOOS: "linux", GOARCH: "amd64"}, "./cmd/migrator", out); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		bins[i] = data
		info, err := exec.Command("go", "version", "-m", out).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(info, []byte("vcs.revision="+head)) || !bytes.Contains(info, []byte("vcs.modified=false")) {
			t.Errorf("build info of %s does not record commit %s, unmodified:\n%s", out, head, info)
		}
	}
	if !bytes.Equal(bins[0], bins[1]) {
		t.Errorf("two builds of commit %s differ (%d and %d bytes)", head, len(bins[0]), len(bins[1]))
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
