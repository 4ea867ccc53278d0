package hookgen

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedIsCurrent checks that the committed generated/ of this
// repository is what a fresh Generate of its registry.yaml gives.
func TestGeneratedIsCurrent(t *testing.T) {
	c, ds, err := checkRegistry(registryFlag{path: filepath.Join("..", "..", "registry.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) > 0 {
		t.Fatalf("the repository's registry has findings: %v", ds)
	}
	dir := filepath.Join("..", "..", "generated")
	files, err := c.generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedNames(files) {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("generated/%s is stale: run go generate ./...", name)
		}
	}
}

// TestGenerateKeepsUnchangedFiles checks that generate does not rewrite a
// file whose bytes would not change, and rewrites one that would.
func TestGenerateKeepsUnchangedFiles(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n\nrequire github.com/hookreg/hookreg v0.0.0\n\nreplace github.com/hookreg/hookreg => "+root+"\n")
	write("registry.yaml", "release: 1.0.0\nhooks:\n  - num: 1\n    introduced_in: 1.0.0\n    allow_online: false\n    func: UpgradeA\n")
	write("hooks/hooks.go", "package hooks\n\nimport (\n\t\"context\"\n\n\t\"github.com/hookreg/hookreg/hook\"\n)\n\n// UpgradeA is a hook.\nfunc UpgradeA(ctx context.Context, tx hook.Tx) error { return nil }\n")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	t.Setenv("GONOSUMDB", "*")
	t.Chdir(dir)

	run := func() {
		t.Helper()
		var stderr bytes.Buffer
		if code := Main([]string{"generate"}, nil, &stderr, &stderr); code != 0 {
			t.Fatalf("hookgen generate: exit %d: %s", code, stderr.String())
		}
	}
	stat := func(name string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, "generated", name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	run()
	regBefore, sumBefore := stat("registry.go"), stat("hooks.sum")
	run()
	if !os.SameFile(regBefore, stat("registry.go")) || !os.SameFile(sumBefore, stat("hooks.sum")) {
		t.Errorf("generate rewrote unchanged files")
	}
	write("registry.yaml", "release: 1.0.0\nhooks:\n  - num: 1\n    introduced_in: 1.0.0\n    allow_online: true\n    func: UpgradeA\n")
	run()
	if os.SameFile(regBefore, stat("registry.go")) {
		t.Errorf("generate kept registry.go although allow_online changed")
	}
	if !os.SameFile(sumBefore, stat("hooks.sum")) {
		t.Errorf("generate rewrote hooks.sum although no digest changed")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "generated"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestIndependentOfGenerated checks that hookgen builds without generated/
// and hooks/: "go generate" must be able to repair a generated registry
// that no longer compiles (a hook renamed, a signature changed).
func TestIndependentOfGenerated(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/hookgen")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if dep == "github.com/hookreg/hookreg/generated" || dep == "github.com/hookreg/hookreg/hooks" || strings.HasPrefix(dep, "github.com/hookreg/hookreg/hooks/") {
			t.Errorf("cmd/hookgen depends on %s", dep)
		}
	}
}
