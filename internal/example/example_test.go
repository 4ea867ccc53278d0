package example_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store/bolt"
)

func TestBuildVerify(t *testing.T) {
	size := example.Size{Users: 30, Rules: 25000}
	for _, release := range example.Releases {
		t.Run(release, func(t *testing.T) {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := example.Build(context.Background(), st, generated.Registry, release, size); err != nil {
				t.Fatal(err)
			}
			tx, err := st.Begin(false)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := example.Verify(tx, release, size); err != nil {
				t.Fatal(err)
			}
			for _, other := range example.Releases {
				if other != release && example.Verify(tx, other, size) == nil {
					t.Errorf("the data of %s verifies as %s", release, other)
				}
			}
		})
	}
}
