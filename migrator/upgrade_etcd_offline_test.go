package migrator_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/store/etcd"
)

// oldFixture is the release fixture the offline upgrades of an etcd store
// start from: its hooks 99 and 100 are pending, 100 offline.
const oldFixture = "5.0.0"

// fixtureStore returns a new etcd store holding the release fixture
// oldFixture (as generation 2), and its prefix.
func fixtureStore(t *testing.T) (url, prefix string) {
	t.Helper()
	url, prefix = etcdStore(t)
	fixture := filepath.Join("..", "testdata", "releases", oldFixture+".tar.zst")
	if code, _, stderr := runMigrator(t, "example", "restore", fixture, "--store", url); code != 0 {
		t.Fatalf("restoring the fixture: exit %d %s", code, stderr)
	}
	return url, prefix
}

// generations returns the current generation of the store at prefix and
// every generation that has a key (a marker P/gen/G or keys P/g/G/...).
func generations(t *testing.T, prefix string) (current string, all []string) {
	t.Helper()
	resp, err := etcdClient(t).Get(context.Background(), prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), prefix+"/")
		g := ""
		switch {
		case strings.HasPrefix(k, "gen/"):
			g = strings.TrimPrefix(k, "gen/")
		case strings.HasPrefix(k, "g/"):
			g, _, _ = strings.Cut(strings.TrimPrefix(k, "g/"), "/")
		}
		if g != "" && !slices.Contains(all, g) {
			all = append(all, g)
		}
	}
	cur, err := etcdClient(t).Get(context.Background(), prefix+"/current")
	if err != nil || len(cur.Kvs) != 1 {
		t.Fatalf("reading %s/current: %v", prefix, err)
	}
	slices.Sort(all)
	return string(cur.Kvs[0].Value), all
}

// appliedAt matches the time of an applied hook in a dump.
var appliedAt = regexp.MustCompile(`\\"applied_at\\":\\"[^\\]*\\"`)

// dumpOf dumps the store or backup (args), with the hooks' times masked.
func dumpOf(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := runMigrator(t, "example", append([]string{"dump"}, args...)...)
	if code != 0 || out == "" {
		t.Fatalf("dump %q: exit %d %s", args, code, stderr)
	}
	return appliedAt.ReplaceAllString(out, "TIME")
}

// TestEtcdOfflineProductWrites: a product that writes to the store during
// "upgrade --offline --store etcd://..." makes it refuse to switch to the
// upgraded data: a delete after the backup (seen by the watch), and a put
// just before the switch (seen by the switch's own compare). The old data
// stays current with the product's write in it, the upgraded generation
// is removed, the pre-upgrade backup is kept and the private directory is
// gone. While the command runs, a second migrator is refused.
func TestEtcdOfflineProductWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, at string
		write    func(p *etcd.Product, key []byte) error
	}{
		{"delete after the backup", "offline.etcd.backed-up", func(p *etcd.Product, key []byte) error {
			return p.Delete(context.Background(), "users", key)
		}},
		{"put before the switch", "etcd.restore.unchanged", func(p *etcd.Product, key []byte) error {
			return p.Put(context.Background(), "users", key, []byte("written by the product"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, prefix := fixtureStore(t)
			dir := t.TempDir()
			before := dumpOf(t, "--store", url)
			run := startPaused(t, migratorCmd(t, "example", "upgrade", "--offline", "--store", url, "--backup-dir", dir), tc.at)

			code, _, stderr := runMigrator(t, "example", "upgrade", "--offline", "--store", url, "--backup-dir", t.TempDir())
			if code != 1 || !strings.Contains(stderr, "store is in use by another process") {
				t.Errorf("a second migrator during the upgrade: exit %d %s", code, stderr)
			}
			p, err := etcd.OpenProduct(context.Background(), etcdClient(t), prefix, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			key := []byte("mqtt:device-000019")
			if err := tc.write(p, key); err != nil {
				t.Fatal(err)
			}
			code, stderr = run.resume(t)
			if code != 1 || !strings.Contains(stderr, "refused: the store's data changed after it was backed up: table \"users\", key \"mqtt:device-000019\" was") ||
				!strings.Contains(stderr, "stop the product and run the upgrade again") {
				t.Fatalf("upgrade with the product writing: exit %d\n%s", code, stderr)
			}
			if cur, all := generations(t, prefix); cur != "2" || !slices.Equal(all, []string{"2"}) {
				t.Errorf("after the refusal: generation %s current, generations %q left", cur, all)
			}
			resp, err := etcdClient(t).Get(context.Background(), prefix+"/g/2/t/users/"+string(key))
			if err != nil {
				t.Fatal(err)
			}
			after := dumpOf(t, "--store", url)
			switch tc.at {
			case "offline.etcd.backed-up":
				if len(resp.Kvs) != 0 {
					t.Errorf("the product's delete was undone")
				}
			default:
				if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "written by the product" {
					t.Errorf("the product's put was lost: %v", resp.Kvs)
				}
			}
			if after == before || !strings.Contains(after, "data_version\"  \""+oldFixture+"\"") {
				t.Errorf("the store after the refusal is not the old data with the product's write:\n%s", after)
			}
			got := names(t, dir)
			if len(got) != 1 || !strings.HasPrefix(got[0], etcdBackupName(prefix)+".pre-upgrade-"+oldFixture+"-") {
				t.Fatalf("the backup directory holds %q, want the pre-upgrade backup alone", got)
			}
			if code, _, stderr := runMigrator(t, "example", "verify", filepath.Join(dir, got[0])); code != 0 {
				t.Errorf("the pre-upgrade backup does not verify: %s", stderr)
			}
		})
	}
}

// revokeLocks revokes the leases of the migrators' locks on the store at
// prefix: the locks of killed migrators are released as when their
// leases expire.
func revokeLocks(t *testing.T, prefix string) {
	t.Helper()
	cli := etcdClient(t)
	resp, err := cli.Get(context.Background(), prefix+"/lock/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(kv.Lease)); err != nil {
			t.Fatal(err)
		}
	}
}

// etcdBackupName is the name the pre-upgrade backups of the store at
// prefix start with.
func etcdBackupName(prefix string) string {
	return strings.ReplaceAll(strings.TrimPrefix(prefix, "/"), "/", "_")
}

// TestEtcdOfflineCrash kills "upgrade --offline --store etcd://..." (the
// parent with SIGKILL, or its child) at each dangerous moment: after the
// backup, in the child, before the restore, while the new generation is
// written, just before and just after the switch, while the old
// generation is deleted. After each kill the current generation is the
// old data or the upgraded data, whole; running the command again
// completes the upgrade and leaves one generation; every pre-upgrade
// backup kept verifies and holds the old data.
func TestEtcdOfflineCrash(t *testing.T) {
	t.Parallel()
	// Each point, and the generation current after a kill there: the
	// old data (2) until the switch, the upgraded data (3) from then on.
	points := []struct{ name, gen string }{
		{"offline.etcd.backed-up", "2"},
		{"offline.child-started", "2"}, // in the child
		{"offline.etcd.backed-up>restore.checked", "2"},
		{"etcd.restore.batch-sent", "2"},
		{"etcd.restore.unchanged", "2"},
		{"etcd.restore.flipped", "3"},
		{"etcd.restore.deleted", "3"},
	}
	if testing.Short() {
		points = points[4:6]
	}
	// The old and the upgraded data, from an uninterrupted run.
	url, prefix := fixtureStore(t)
	fixtureDump := dumpOf(t, "--backup", filepath.Join("..", "testdata", "releases", oldFixture+".tar.zst"))
	old := dumpOf(t, "--store", url)
	dir := t.TempDir()
	if code, stdout, stderr := runMigrator(t, "example", "upgrade", "--offline", "--store", url, "--backup-dir", dir); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, stdout, stderr)
	}
	upgraded := dumpOf(t, "--store", url)
	if cur, all := generations(t, prefix); old == upgraded || cur != "3" || !slices.Equal(all, []string{"3"}) {
		t.Fatalf("the upgrade left generation %s current and generations %q", cur, all)
	}

	for _, point := range points {
		t.Run(point.name, func(t *testing.T) {
			url, prefix := fixtureStore(t)
			dir := t.TempDir()
			args := []string{"upgrade", "--offline", "--store", url, "--backup-dir", dir, "--json"}
			code, stdout, stderr := runMigrator(t, "example", withFailpointArgs(point.name+"=kill", args...)...)
			if code == 0 {
				t.Fatalf("the run was not killed at %s:\n%s%s", point.name, stdout, stderr)
			}
			cur, _ := generations(t, prefix)
			state := dumpOf(t, "--store", url)
			switch {
			case cur != point.gen:
				t.Fatalf("after the kill: generation %s current, want %s", cur, point.gen)
			case cur == "2" && state != old:
				t.Fatalf("after the kill: generation 2 does not hold the old data:\n%s", state)
			case cur == "3" && state != upgraded:
				t.Fatalf("after the kill: generation 3 does not hold the upgraded data:\n%s", state)
			}

			// The killed run's lock lasts as long as its lease (10 s):
			// end it now, as its expiry would.
			revokeLocks(t, prefix)
			code, stdout, stderr = runMigrator(t, "example", args...)
			if code != 0 {
				t.Fatalf("the run after the kill: exit %d\n%s%s", code, stdout, stderr)
			}
			var r struct{ To string }
			if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.To == oldFixture {
				t.Errorf("the run after the kill: %v %s", err, stdout)
			}
			if state := dumpOf(t, "--store", url); state != upgraded {
				t.Errorf("after the second run the store holds:\n%s", state)
			}
			if cur, all := generations(t, prefix); !slices.Equal(all, []string{cur}) {
				t.Errorf("after the second run: generation %s current, generations %q", cur, all)
			}
			kept := 0
			for _, name := range names(t, dir) {
				if strings.HasPrefix(name, "."+etcdBackupName(prefix)+".upgrade-") {
					continue // the killed run's private directory
				}
				if !strings.HasPrefix(name, etcdBackupName(prefix)+".pre-upgrade-"+oldFixture+"-") {
					t.Errorf("%s left in the backup directory", name)
					continue
				}
				kept++
				path := filepath.Join(dir, name)
				if code, _, stderr := runMigrator(t, "example", "verify", path); code != 0 {
					t.Errorf("the pre-upgrade backup %s does not verify: %s", name, stderr)
				} else if dumpOf(t, "--backup", path) != fixtureDump {
					t.Errorf("the pre-upgrade backup %s does not hold the old data", name)
				}
			}
			if kept == 0 {
				t.Errorf("no pre-upgrade backup kept in %q", names(t, dir))
			}
		})
	}
}

// TestEtcdOfflineSignal sends SIGTERM to "upgrade --offline --store
// etcd://..." after its backup and while it writes the new generation:
// it stops there, exits 1 saying it was interrupted, and leaves the old
// data current, one generation, and in the backup directory the
// pre-upgrade backup alone.
func TestEtcdOfflineSignal(t *testing.T) {
	for _, point := range []string{"offline.etcd.backed-up", "etcd.restore.batch-sent"} {
		t.Run(point, func(t *testing.T) {
			url, prefix := fixtureStore(t)
			dir := t.TempDir()
			old := dumpOf(t, "--store", url)
			code, stderr := interrupt(t, migratorCmd(t, "example", "upgrade", "--offline", "--store", url, "--backup-dir", dir), point, syscall.SIGTERM)
			if code != 1 || !strings.Contains(stderr, "interrupted") {
				t.Fatalf("upgrade after SIGTERM: exit %d\n%s", code, stderr)
			}
			if cur, all := generations(t, prefix); cur != "2" || !slices.Equal(all, []string{"2"}) {
				t.Errorf("after SIGTERM: generation %s current, generations %q", cur, all)
			}
			if dumpOf(t, "--store", url) != old {
				t.Errorf("the old data changed")
			}
			if got := names(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], etcdBackupName(prefix)+".pre-upgrade-") {
				t.Errorf("the backup directory holds %q", got)
			}
		})
	}
}
