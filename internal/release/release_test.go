package release_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/hookgen"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/release"
	"github.com/hookreg/hookreg/internal/sha256sum"
)

const committed = "../../testdata/releases"

// TestCommittedFixtures fails when a committed fixture changed, has no
// SHA256SUMS line, or a release of the example product has no fixture.
func TestCommittedFixtures(t *testing.T) {
	sums, err := release.CheckFixtures(committed)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range example.Releases {
		if _, ok := sums[r+".tar.zst"]; !ok {
			t.Errorf("no fixture for release %s in %s (make release VERSION=%s writes it)", r, release.SumsFile, r)
		}
	}
}

// TestRelease cuts the release of HEAD from a fresh clone, as "make
// release" does, for the host platform only. The fixture of the release is
// removed first: the gate writes it with the migrator it built from the
// seed and stops; once it is committed, every gate check passes, including
// the fixture upgrade matrix, and dist holds the binaries, a release.json
// that names the registry, and a SHA256SUMS that sha256sum accepts.
func TestRelease(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	src := filepath.Join(t.TempDir(), "hookreg")
	gitOut(t, ".", "clone", "--quiet", strings.TrimSpace(string(root)), src)
	t.Chdir(src)
	// The gates below share the cache of their rebuilds with every test
	// binary's (see release.TestRebuildCache).
	cache, err := release.TestRebuildCache()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(release.EnvRebuildCache, cache)
	version := registryRelease(t, src)
	fixture := filepath.Join("testdata", "releases", version+".tar.zst")
	sumsFile := filepath.Join("testdata", "releases", release.SumsFile)
	sums := readSums(t, sumsFile)
	delete(sums, version+".tar.zst")
	if err := os.WriteFile(sumsFile, sha256sum.Format(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, src, "rm", "-q", fixture)
	commit(t, src, "the fixture of "+version+" is missing", "-a")

	args := []string{"release", "--version", version, "--platforms", "host", "--cmd", "./cmd/hookgen"}
	seed := []string{"--seed-cmd", `go run ./internal/cmd/seed "$HOOKREG_RELEASE" "$HOOKREG_STORE"`}
	code, stderr := run(t, append(args, seed...)...)
	if code != 1 || !strings.Contains(stderr, "release fixture "+filepath.ToSlash(fixture)+" was missing: it is written now") {
		t.Fatalf("release without its fixture: exit %d, stderr:\n%s\nwant exit 1 and the fixture written", code, stderr)
	}
	sum, err := sha256sum.File(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if got := readSums(t, sumsFile)[version+".tar.zst"]; got != sum {
		t.Errorf("%s records %q for the new fixture, want %q", release.SumsFile, got, sum)
	}
	if _, err := os.Stat("dist"); !os.IsNotExist(err) {
		t.Errorf("the release that wrote its fixture built dist: %v", err)
	}
	// The fixture is a backup by the migrator of this tree: its manifest
	// names the release and the registry digest of this tree.
	verify := exec.Command("go", "run", "./cmd/migrator", "verify", fixture)
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Fatalf("migrator verify %s: %v\n%s", fixture, err, out)
	}
	digest := strings.TrimSpace(string(must(exec.Command("go", "run", "./cmd/migrator", "version", "--json").Output())))
	var v struct {
		RegistryDigest string `json:"registry_digest"`
	}
	if err := json.Unmarshal([]byte(digest), &v); err != nil {
		t.Fatal(err)
	}
	if want := "release " + version + " (registry " + v.RegistryDigest + ")"; !strings.Contains(string(out), want) {
		t.Errorf("migrator verify of the new fixture:\n%s\nwant %q", out, want)
	}

	// A fixture is never overwritten: the release refuses the uncommitted
	// fixture (the tree is not clean), and once it is committed the seed is
	// not run again (a seed command that fails would stop the release).
	if code, stderr := run(t, append(args, seed...)...); code != 1 || !strings.Contains(stderr, "the tree is not clean") {
		t.Errorf("release with the fixture uncommitted: exit %d, stderr:\n%s", code, stderr)
	}
	gitOut(t, src, "add", "testdata/releases")
	commit(t, src, "the fixture of "+version)
	if code, stderr := run(t, append(args, "--seed-cmd", "false")...); code != 0 {
		t.Fatalf("release: exit %d, stderr:\n%s", code, stderr)
	}
	if got, err := sha256sum.File(fixture); err != nil || got != sum {
		t.Errorf("the release changed the fixture: sha256 %s (%v), want %s", got, err, sum)
	}
	dist := filepath.Join(src, "dist", version)
	host := runtime.GOOS + "-" + runtime.GOARCH
	for _, name := range []string{"migrator", "hookgen"} {
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		if _, err := os.Stat(filepath.Join(dist, host, name)); err != nil {
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
	if rel.Release != version || rel.Product == "" || rel.RegistryDigest != v.RegistryDigest || len(rel.Hooks) == 0 {
		t.Errorf("release.json = %s", data)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	// The same gate refuses a version the registry does not declare, and
	// builds nothing.
	if code, stderr := run(t, "release", "--version", "99.0.0", "--platforms", "host", "--dist", "dist99"); code != 1 || !strings.Contains(stderr, `registry.yaml says release "`+version+`", not "99.0.0"`) {
		t.Errorf("release 99.0.0: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat("dist99"); !os.IsNotExist(err) {
		t.Errorf("release 99.0.0 left dist99: %v", err)
	}

	// A release fixture that does not upgrade stops the release.
	bad := filepath.Join("testdata", "releases", "0.1.0.tar.zst")
	if err := os.WriteFile(bad, []byte("not a backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	sums = readSums(t, sumsFile)
	sums["0.1.0.tar.zst"] = must(sha256sum.File(bad))
	if err := os.WriteFile(sumsFile, sha256sum.Format(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, src, "add", "testdata/releases")
	commit(t, src, "a damaged fixture")
	if code, stderr := run(t, "release", "--version", version, "--platforms", "host", "--dist", "dist2"); code != 1 || !strings.Contains(stderr, "release fixture 0.1.0.tar.zst does not upgrade") {
		t.Errorf("damaged fixture: exit %d, stderr:\n%s\nwant a refusal naming 0.1.0.tar.zst", code, stderr)
	}
	if _, err := os.Stat("dist2"); !os.IsNotExist(err) {
		t.Errorf("a refused release left dist2: %v", err)
	}

	// A committed fixture that changed stops the release before anything
	// is built, naming it.
	if err := os.WriteFile(fixture, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit(t, src, "a changed fixture", "-a")
	code, stderr = run(t, append(args, "--dist", "dist3")...)
	if code != 1 || !regexp.MustCompile(`fixture `+regexp.QuoteMeta(version)+`\.tar\.zst changed: sha256 [0-9a-f]{64}, SHA256SUMS records `+sum).MatchString(stderr) {
		t.Errorf("changed fixture: exit %d, stderr:\n%s", code, stderr)
	}
}

// run runs hookgen in-process and returns its exit status and stderr.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := hookgen.Main(args, nil, &stdout, &stderr)
	return code, stderr.String()
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums, err := sha256sum.Parse(path, f)
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func commit(t *testing.T, dir, msg string, args ...string) {
	t.Helper()
	gitOut(t, dir, append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", msg}, args...)...)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
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
