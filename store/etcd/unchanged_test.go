package etcd

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/storetest"
)

// TestRestoreIfUnchanged restores over data read at a revision R while a
// product writes to it: a put or a delete seen by the watch before the
// switch, a put between that check and the switch (only the switch's
// range compare sees it) and a table created after R make Finish fail
// naming the change, with the old data current, the product's write in it
// and the new generation removed. Without a change the restore switches.
func TestRestoreIfUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name string
		// at is the failpoint where the product writes: before the
		// watch's check, or after it and before the switch.
		at     string
		change func(cli *clientv3.Client, gen string) error
		want   string
	}{
		{"none", "", nil, ""},
		{"put seen by the watch", "etcd.restore.verified", func(cli *clientv3.Client, gen string) error {
			_, err := cli.Put(context.Background(), gen+"t/users/alice", "product")
			return err
		}, `table "users", key "alice" was written at revision`},
		{"delete seen by the watch", "etcd.restore.verified", func(cli *clientv3.Client, gen string) error {
			_, err := cli.Delete(context.Background(), gen+"t/users/bob")
			return err
		}, `table "users", key "bob" was deleted at revision`},
		{"put after the check", "etcd.restore.unchanged", func(cli *clientv3.Client, gen string) error {
			_, err := cli.Put(context.Background(), gen+"t/users/bob", "product")
			return err
		}, `table "users", key "bob" was written at revision`},
		{"product delete after the check", "etcd.restore.unchanged", func(cli *clientv3.Client, gen string) error {
			p, err := OpenProduct(context.Background(), cli, strings.TrimSuffix(gen, "/g/1/"), nil)
			if err != nil {
				return err
			}
			defer p.Close()
			return p.Delete(context.Background(), "users", []byte("bob"))
		}, `the product deleted a record at revision`},
		{"table created", "etcd.restore.verified", func(cli *clientv3.Client, gen string) error {
			_, err := cli.Put(context.Background(), gen+"m/sessions", "")
			return err
		}, `table "sessions" was created at revision`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t, Options{})
			cli := client(t, cluster)
			p := prefix(t)
			storetest.Put(t, st, "users", "alice", "1", "bob", "2")
			tx := begin(t, st, false)
			rev := tx.(*Tx).Revision()
			tx.Rollback()
			u, err := st.WatchUnchanged(rev)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			var changeErr error
			failpoint.Hook = func(name string) error {
				if name == tc.at {
					changeErr = tc.change(cli, p+"/g/1/")
				}
				return nil
			}
			defer func() { failpoint.Hook = nil }()
			r, err := st.BeginRestore(IfUnchanged(u))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Abort()
			if err := r.Table("users"); err != nil {
				t.Fatal(err)
			}
			if err := r.Put([]byte("alice"), []byte("restored")); err != nil {
				t.Fatal(err)
			}
			err = r.Finish()
			if changeErr != nil {
				t.Fatal(changeErr)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := storetest.Records(t, st, "users"); got["alice"] != "restored" || len(got) != 1 {
					t.Errorf("after the restore: %q", got)
				}
				return
			}
			var ce *ChangedError
			if !errors.Is(err, ErrChanged) || !errors.As(err, &ce) || ce.Since != rev || ce.Revision <= rev || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Finish after a product write: %v, want %q", err, tc.want)
			}
			if err := r.Abort(); err != nil {
				t.Fatal(err)
			}
			if got := raw(t, cli, p+"/current"); got[p+"/current"] != "1" {
				t.Errorf("current: %q", got)
			}
			if got := storetest.Records(t, st, "users"); got["alice"] == "restored" {
				t.Errorf("the restored data is current: %q", got)
			}
			for k := range raw(t, cli, p) {
				if strings.Contains(k, "/g/2/") || strings.HasSuffix(k, "/gen/2") {
					t.Errorf("key %q of the refused restore left", k)
				}
			}
		})
	}
}

// TestWatchUnchangedRefusals: a read-only store, a revision the cluster
// compacted, and a generation switched after the revision are refused.
func TestWatchUnchangedRefusals(t *testing.T) {
	st := open(t, Options{})
	cli := client(t, cluster)
	storetest.Put(t, st, "t", "k", "v")
	tx := begin(t, st, false)
	rev := tx.(*Tx).Revision()
	tx.Rollback()

	ro, err := Open(context.Background(), Options{Endpoints: cluster.Endpoints, Prefix: prefix(t), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.WatchUnchanged(rev); err == nil {
		t.Error("a read-only store watched for changes")
	}

	resp, err := cli.Put(context.Background(), prefix(t)+"/g/1/t/t/k", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WatchUnchanged(rev); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("a watch from a compacted revision: %v", err)
	}

	r, err := st.BeginRestore()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Table("t"); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WatchUnchanged(resp.Header.Revision); !errors.Is(err, ErrGenerationChanged) {
		t.Errorf("a watch from before a switch: %v", err)
	}
}
