package hookgen

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteInitRollsBack: when a write fails (here go.mod, the last one),
// the files init wrote before are removed, leaving the module as it was.
func TestWriteInitRollsBack(t *testing.T) {
	root := t.TempDir()
	files := []initFile{{"registry.yaml", []byte("release: 1.0.0\n")}, {"hooks/doc.go", []byte("package hooks\n")}}
	modPath := filepath.Join(root, "go.mod")
	if err := os.Mkdir(modPath, 0o755); err != nil { // a directory: the write fails
		t.Fatal(err)
	}
	if _, err := writeInit(root, files, modPath, []byte("module example.com/x\n")); err == nil {
		t.Fatal("writeInit over a go.mod directory succeeded")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, f.name)); !os.IsNotExist(err) {
			t.Errorf("%s is left after a failed init: %v", f.name, err)
		}
	}
	names, err := writeInit(t.TempDir(), files, filepath.Join(t.TempDir(), "go.mod"), nil)
	if err != nil || len(names) != 2 {
		t.Errorf("writeInit = %v, %v; want the two files", names, err)
	}
}
