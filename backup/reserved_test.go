package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// TestReservedNames: a store that backs up restores exactly, or the backup
// refuses naming the table. A nested table named like a reserved one
// (app/_config) is the product's and round-trips; a nested table inside
// the reserved configuration table, which the backup carries as files
// only, is refused by name instead of being left out.
func TestReservedNames(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		path   []string
		refuse string
	}{
		{"nested _config is data", []string{"app", store.ConfigTable}, ""},
		{"a table inside _config", []string{store.ConfigTable, "inner"}, `the table "_config" holds the nested table "inner"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.db")
			st, err := bolt.Open(src, bolt.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := example.Build(ctx, st, generated.Registry, "5.0.1", example.Small); err != nil {
				t.Fatal(err)
			}
			tx, err := st.Begin(true)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := hook.CreatePath(tx, c.path...)
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Put([]byte("k"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "b.tar")
			_, err = backup.WriteFile(ctx, st, generated.Registry, out, backup.Options{})
			if c.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), c.refuse) {
					t.Fatalf("backup = %v, want a refusal naming the table", err)
				}
				if _, err := os.Stat(out); err == nil {
					t.Error("the refused backup left a file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "dst.db")
			if _, err := backup.Restore(ctx, generated.Registry, out, dst, backup.RestoreOptions{}); err != nil {
				t.Fatalf("a backup that verified does not restore: %v", err)
			}
			rst, err := bolt.Open(dst, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer rst.Close()
			rtx, _ := rst.Begin(false)
			defer rtx.Rollback()
			got, err := hook.OpenPath(rtx, c.path...)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := got.Get([]byte("k")); err != nil || string(v) != "v" {
				t.Errorf("restored %q = %q, %v", c.path, v, err)
			}
		})
	}
}
