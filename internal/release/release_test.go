package release

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/registry"
)

// TestRelease cuts the release of HEAD from a fresh clone for the host
// platform only: every gate check passes, including the fixture upgrade
// matrix with the migrator built from the clone, and dist holds the
// binaries, a release.json that names the registry, and a SHA256SUMS that
// sha256sum accepts.
func TestRelease(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	src := filepath.Join(t.TempDir(), "hookreg")
	gitOut(t, ".", "clone", "--quiet", strings.TrimSpace(string(root)), src)
	t.Chdir(src)
	version := registryRelease(t, src)
	host := Target{runtime.GOOS, runtime.GOARCH}
	if err := Run(context.Background(), Options{Dir: src, Version: version, Targets: []Target{host}, Log: t.Output()}); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(src, "dist", version)
	for _, pkg := range Commands {
		if _, err := os.Stat(binPath(dist, host, pkg)); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dist, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rel struct {
		Release        string `json:"release"`
		Product        string `json:"product"`
		RegistryDigest string `json:"registry_digest"`
		Hooks          []struct {
			Num    int    `json:"num"`
			Digest string `json:"digest"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(data, &rel); err != nil {
		t.Fatal(err)
	}
	if rel.Release != version || rel.Product == "" || !strings.HasPrefix(rel.RegistryDigest, "h1:") || len(rel.Hooks) == 0 {
		t.Errorf("release.json = %s", data)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	// The same gate refuses a version the registry does not declare, and
	// builds nothing.
	err = Run(context.Background(), Options{Dir: src, Version: "99.0.0", Targets: []Target{host}})
	if _, ok := err.(*Refusal); !ok {
		t.Errorf("release 99.0.0: got %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(src, "dist", "99.0.0")); !os.IsNotExist(err) {
		t.Errorf("release 99.0.0 left dist/99.0.0: %v", err)
	}

	// A release fixture that does not upgrade stops the release.
	if err := os.WriteFile(filepath.Join(src, "testdata", "releases", "0.1.0.tar.zst"), []byte("not a backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, src, "add", "testdata/releases")
	gitOut(t, src, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "a damaged fixture")
	err = Run(context.Background(), Options{Dir: src, Version: version, Targets: []Target{host}, Dist: "dist2"})
	if r, ok := err.(*Refusal); !ok || !strings.Contains(r.Reason, "release fixture 0.1.0.tar.zst does not upgrade") {
		t.Errorf("damaged fixture: got %v, want a refusal naming 0.1.0.tar.zst", err)
	}
	if _, err := os.Stat(filepath.Join(src, "dist2")); !os.IsNotExist(err) {
		t.Errorf("a refused release left dist2: %v", err)
	}
}

// registryRelease returns the release registry.yaml in dir declares.
func registryRelease(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "registry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, diags := registry.Parse("registry.yaml", data)
	if len(diags) > 0 {
		t.Fatal(diags[0].Text())
	}
	return f.Release
}
