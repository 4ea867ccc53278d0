package upgrade_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hookreg/hookreg/upgrade"
)

// TestDirConfigWithStore: the hooks of an online upgrade of a store lying
// in its configuration directory neither list nor read the store's own
// files there; the configuration beside it they do.
func TestDirConfigWithStore(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"app.db", "app.db.pre-upgrade-1.tar.zst", ".app.db.upgraded.tar.zst", "app.db.yaml", "certs/key.pem", ".app.db.restore-1/new/x"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := upgrade.DirConfigWithStore(dir, "app.db")
	got, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app.db.yaml", "certs/key.pem"}; !slices.Equal(got, want) {
		t.Fatalf("List: %q, want %q", got, want)
	}
	for _, name := range []string{"app.db", ".app.db.restore-1/new/x"} {
		if _, err := c.ReadFile(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s): %v, want not found", name, err)
		}
	}
	if data, err := c.ReadFile("certs/key.pem"); err != nil || string(data) != "certs/key.pem" {
		t.Errorf("ReadFile(certs/key.pem): %q, %v", data, err)
	}
	// The plain view lists them all: the layout is the caller's to name.
	all, _ := upgrade.DirConfig(dir).List()
	if len(all) != 6 {
		t.Errorf("DirConfig lists %q", all)
	}
}
