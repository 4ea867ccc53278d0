package registry

import (
	"go/token"
	"os"
	"path/filepath"
	"testing"
)

// TestParseAhead checks that the files parsed ahead are the ones
// parseFiles gives (not parsed a second time), with the same errors, and
// that a file not parsed ahead (a cgo package's compiled file lies in the
// build cache) is parsed then.
func TestParseAhead(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.go":      "package hooks\n\nfunc A() {}\n",
		"b.go":      "package hooks\n\nfunc B( {}\n",
		"a_test.go": "package hooks\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(t.TempDir(), "c.go")
	if err := os.WriteFile(other, []byte("package hooks\n\nfunc C() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	ahead := parseAhead(fset, hookGoFiles([]string{dir}))
	names := []string{filepath.Join(dir, "a.go"), filepath.Join(dir, "b.go"), other}
	got, errs := parseFiles(fset, names, ahead)
	if len(ahead.files) != 2 {
		t.Fatalf("parsed ahead %d files, want a.go and b.go", len(ahead.files))
	}
	if len(got) != 3 || got[0] != ahead.files[names[0]].f || got[1] != ahead.files[names[1]].f {
		t.Fatalf("parseFiles gave %d files, not the ones parsed ahead", len(got))
	}
	if got[2].Name.Name != "hooks" || len(got[2].Decls) != 1 {
		t.Fatalf("the file not parsed ahead: %v", got[2].Decls)
	}
	_, plainErrs := parseFiles(token.NewFileSet(), names, nil)
	if len(errs) != 1 || len(plainErrs) != 1 || errs[0].Error() != plainErrs[0].Error() {
		t.Fatalf("errors %v, want those of a plain parse, %v", errs, plainErrs)
	}
}
