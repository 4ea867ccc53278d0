package hookgen

import (
	"os"
	"path/filepath"
	"strings"
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

// TestInitStores: --stores takes bolt, with or without etcd, in any order,
// and refuses an unknown store or one without bolt; the migrator main
// imports the etcd backend exactly when etcd is named.
func TestInitStores(t *testing.T) {
	for _, tc := range []struct {
		stores string
		etcd   bool
		bad    string // part of the refusal, "" when accepted
	}{
		{"bolt", false, ""},
		{"bolt,etcd", true, ""},
		{" etcd , bolt ", true, ""},
		{"etcd", false, "built into every migrator"},
		{"bolt,mysql", false, `unknown store "mysql"`},
		{"", false, `unknown store ""`},
	} {
		o := &initOptions{release: defaultRelease, migrator: defaultMigrator, stores: tc.stores}
		err := o.Validate(nil)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("--stores %q: %v, want a refusal saying %q", tc.stores, err, tc.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("--stores %q: %v", tc.stores, err)
			continue
		}
		files, err := o.files("example.com/broker")
		if err != nil {
			t.Fatal(err)
		}
		main := string(files[len(files)-1].data)
		if got := strings.Contains(main, "\t_ \""+etcdBackend+"\""); got != tc.etcd {
			t.Errorf("--stores %q: main imports the etcd backend: %v, want %v:\n%s", tc.stores, got, tc.etcd, main)
		}
	}
}
