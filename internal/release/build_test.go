package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		if err := Build(ctx, src, Target{"linux", "amd64"}, "./cmd/migrator", out); err != nil {
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

func TestSHA256Sums(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"b/x": "hello\n", "a": ""} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := sha256sums(dir, []string{filepath.Join(dir, "b/x"), filepath.Join(dir, "a")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), got, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	want := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  b/x\n"
	if string(got) != want {
		t.Errorf("sha256sums =\n%s\nwant\n%s", got, want)
	}
}
