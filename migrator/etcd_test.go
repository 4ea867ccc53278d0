package migrator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/migrator"
	_ "github.com/hookreg/hookreg/migrator/etcdstore" // the migrator under test links the etcd cluster store, as cmd/migrator does
	"github.com/hookreg/hookreg/store/etcd"
)

// cluster is the process's shared etcd cluster (etcdtest.Shared), once a
// test has asked for a store on it; each test works under its own prefix.
var cluster atomic.Pointer[etcdtest.Cluster]

func TestMain(m *testing.M) {
	etcdtest.MemberMain() // a member process of TestEtcdClusterFaults
	code := m.Run()
	etcdtest.CloseShared()
	os.Exit(code)
}

// etcdStore returns the URL of a new store on the shared cluster, and its
// prefix.
func etcdStore(t testing.TB) (url, prefix string) {
	t.Helper()
	c := etcdtest.Shared(t)
	cluster.Store(c)
	var hosts []string
	for _, ep := range c.Endpoints {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	prefix = etcdtest.Prefix(t)
	return "etcd://" + strings.Join(hosts, ",") + prefix, prefix
}

func etcdClient(t testing.TB) *clientv3.Client { return cluster.Load().Client(t) }

// openEtcd opens the store at prefix writable: it holds the lock until
// closed.
func openEtcd(t testing.TB, prefix string) *etcd.Store {
	t.Helper()
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: cluster.Load().Endpoints, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// createTable creates table in the store at prefix with records kv.
func createTable(t testing.TB, prefix, table string, kv ...string) {
	t.Helper()
	st := openEtcd(t, prefix)
	defer st.Close()
	storetest.Put(t, st, table, kv...)
}

// shopRegistry is release 1.1.0 of the product "shop", whose online hook 1
// fills the table "items", and whose hook 2 is offline.
func shopRegistry(offline bool) *hook.Registry {
	r := &hook.Registry{Product: "shop", Release: "1.1.0", Hooks: []hook.Hook{{
		Num: 1, IntroducedIn: "1.1.0", AllowOnline: true, Name: "FillItems",
		Func: func(ctx context.Context, tx hook.Tx) error {
			t, err := tx.CreateTable("items")
			if err != nil {
				return err
			}
			for i := range 40 {
				if err := t.Put(fmt.Appendf(nil, "item-%02d", i), []byte{byte(i), 0xff, '\n'}); err != nil {
					return err
				}
			}
			return nil
		},
	}}}
	if offline {
		r.Release = "1.2.0"
		r.Hooks = append(r.Hooks, hook.Hook{Num: 2, IntroducedIn: "1.2.0", Name: "Offline", Func: func(context.Context, hook.Tx) error { return nil }})
	}
	return r
}

// TestEtcdCommands runs init, status, plan, upgrade --online, dump and
// backup on an etcd store, restores the backup into a bbolt file and
// compares the two dumps; a writable command waits for no second
// migrator, the read-only ones run beside it.
func TestEtcdCommands(t *testing.T) {
	t.Parallel()
	url, prefix := etcdStore(t)
	v100 := &hook.Registry{Product: "shop", Release: "1.0.0"}
	shop := shopRegistry(false)

	if code, out, stderr := migratorMain(v100, "init", "--store", url); code != 0 || !strings.Contains(out, "initialized "+url+": product shop, data version 1.0.0") {
		t.Fatalf("init: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := migratorMain(v100, "init", "--store", url); code != 1 || !strings.Contains(stderr, "already") {
		t.Errorf("init again: %d %s", code, stderr)
	}
	code, out, stderr := migratorMain(shop, "status", "--store", url)
	if code != 0 || !regexp.MustCompile(`(?m)^cluster: generation 1, revision [1-9][0-9]*, database [0-9.]+ [KM]iB of 2\.0 GiB quota \([0-9]+%\), 3 of 3 members answered, no alarms$`).MatchString(out) ||
		!strings.Contains(out, "data version 1.0.0") || !strings.Contains(out, "hook   1  1.1.0  online   FillItems") {
		t.Errorf("status: %d %s\n%s", code, stderr, out)
	}
	code, out, stderr = migratorMain(shop, "status", "--store", url, "--json")
	var status struct {
		DataVersion string `json:"data_version"`
		Cluster     *struct {
			Generation  int64    `json:"generation"`
			Revision    int64    `json:"revision"`
			DBSize      int64    `json:"db_size"`
			DBSizeQuota int64    `json:"db_size_quota"`
			Members     int      `json:"members"`
			Alarms      []string `json:"alarms"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(out), &status); code != 0 || err != nil {
		t.Fatalf("status --json: %d %v %s\n%s", code, err, stderr, out)
	}
	if c := status.Cluster; c == nil || c.Generation != 1 || c.Revision <= 0 || c.DBSize <= 0 || c.DBSizeQuota < c.DBSize || c.Members != 3 || c.Alarms == nil || len(c.Alarms) != 0 {
		t.Errorf("status --json: cluster %+v\n%s", c, out)
	}
	if code, out, _ := migratorMain(shop, "plan", "--store", url); code != 0 || !strings.Contains(out, "online upgrade: allowed") {
		t.Errorf("plan: %d\n%s", code, out)
	}

	// Another migrator holds the lock: the upgrade is refused within
	// seconds, the read-only commands run.
	holder := openEtcd(t, prefix)
	start := time.Now()
	code, _, stderr = migratorMain(shop, "upgrade", "--online", "--store", url)
	if code != 1 || !strings.Contains(stderr, "store is in use by another process") || time.Since(start) > 5*time.Second {
		t.Errorf("upgrade beside another migrator: exit %d after %s: %s", code, time.Since(start), stderr)
	}
	if code, _, stderr := migratorMain(shop, "status", "--store", url); code != 0 {
		t.Errorf("status beside another migrator: %d %s", code, stderr)
	}
	holder.Close()

	if code, out, stderr := migratorMain(shop, "upgrade", "--online", "--store", url); code != 0 || !strings.Contains(out, "from data version 1.0.0 to 1.1.0: hook 1") {
		t.Fatalf("upgrade: %d %s %s", code, out, stderr)
	}
	if code, out, _ := migratorMain(shop, "status", "--store", url); code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("status after the upgrade: %d\n%s", code, out)
	}

	dir := t.TempDir()
	archive := filepath.Join(dir, "shop.tar.zst")
	code, out, stderr = migratorMain(shop, "backup", "--store", url, "--out", archive, "--json")
	var report struct{ Revision int64 }
	if err := json.Unmarshal([]byte(out), &report); code != 0 || err != nil || report.Revision <= 0 {
		t.Fatalf("backup: %d %v %s\n%s", code, err, stderr, out)
	}
	boltPath := filepath.Join(dir, "shop.db")
	if code, _, stderr := migratorMain(shop, "restore", archive, "--store", boltPath); code != 0 {
		t.Fatalf("restore into bbolt: %d %s", code, stderr)
	}
	for _, format := range [][]string{{"--json"}, nil} {
		_, etcdDump, _ := migratorMain(shop, append([]string{"dump", "--store", url}, format...)...)
		_, boltDump, _ := migratorMain(shop, append([]string{"dump", "--store", boltPath}, format...)...)
		_, backupDump, _ := migratorMain(shop, append([]string{"dump", "--backup", archive}, format...)...)
		if !strings.Contains(etcdDump, "item-39") || etcdDump != boltDump || etcdDump != backupDump {
			t.Errorf("dump %q of the etcd store:\n%s\nof the bbolt store it restored to:\n%s\nof the backup:\n%s", format, etcdDump, boltDump, backupDump)
		}
	}

	// An online upgrade refused for an offline hook names the one
	// command that does it offline.
	code, _, stderr = migratorMain(shopRegistry(true), "upgrade", "--online", "--store", url)
	if code != 1 || !strings.Contains(stderr, "stop the product and run \"migrator upgrade --offline --store "+url+"\"") {
		t.Errorf("upgrade --online with an offline hook: exit %d\n%s", code, stderr)
	}
}

// TestEtcdStoreErrors: a bad URL is a usage error of every command, never
// repeated (it may hold a password), and a prefix without a store an
// environment error naming init; both exit 2.
func TestEtcdStoreErrors(t *testing.T) {
	url, _ := etcdStore(t)
	for _, tc := range []struct{ store, want string }{
		{"etcd://127.0.0.1:2379", "missing prefix"},
		{"etcd://user:pw@127.0.0.1:2379/p", "user information in the URL"},
		{url, "no store at this prefix"},
	} {
		commands := [][]string{{"status"}, {"upgrade", "--offline"}, {"restore", "f.tar.zst"}}
		if tc.store == url {
			commands = commands[:1]
		}
		for _, args := range commands {
			code, _, stderr := run(append(args, "--store", tc.store)...)
			if code != 2 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "pw@") {
				t.Errorf("%s --store %s: exit %d, want %q:\n%s", args[0], tc.store, code, tc.want, stderr)
			}
		}
	}
}

// TestEtcdSecrets: the password of an etcd store, from a file or the
// environment, and the key files appear in no output: not in help, not in
// status, not in errors.
func TestEtcdSecrets(t *testing.T) {
	url, _ := etcdStore(t)
	const secret = "s3cret-Pa55"
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\n"+secret+"\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runMigrator(t, "example", "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"env:HOOKREG_ETCD_PASSWORD=" + secret, "help", "etcd"}, 0, "etcd-user USER"},
		{[]string{"env:HOOKREG_ETCD_PASSWORD=" + secret, "status", "--store", url, "--etcd-user", "root", "--json"}, 0, `"cluster"`},
		{[]string{"env:HOOKREG_ETCD_USER=root", "env:HOOKREG_ETCD_PASSWORD_FILE=" + pwFile, "status", "--store", url}, 0, "cluster: generation 1"},
		{[]string{"status", "--store", url, "--etcd-user", "root"}, 2, "--etcd-user needs a password"},
		{[]string{"status", "--store", url, "--etcd-cert", pwFile, "--etcd-key", keyFile}, 2, "--etcd-cert " + pwFile},
		{[]string{"status", "--store", url, "--etcd-cacert", keyFile}, 2, "no PEM certificate"},
		{[]string{"status", "--store", url, "--etcd-cert", pwFile}, 2, "--etcd-cert and --etcd-key go together"},
	} {
		code, out, stderr := runMigrator(t, "example", tc.args...)
		if code != tc.code || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.want, out, stderr)
		}
		if strings.Contains(out+stderr, "s3cret") {
			t.Errorf("%q shows the secret:\n%s%s", tc.args, out, stderr)
		}
	}
}

// liveWriters write, overwrite and delete records of the table "live" of
// the store at prefix, as a product does, until stop is closed; they
// count their writes.
func liveWriters(t *testing.T, prefix string, stop chan struct{}) (writes *atomic.Int64, wait func()) {
	t.Helper()
	cli := etcdClient(t)
	p, err := etcd.OpenProduct(context.Background(), cli, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	writes = new(atomic.Int64)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Appendf(nil, "w%d-%03d", w, i%60)
				var err error
				if i%7 == 3 {
					err = p.Delete(context.Background(), "live", key)
				} else {
					err = p.Put(context.Background(), "live", key, fmt.Appendf(nil, "%d", i))
				}
				if err != nil {
					errs <- err
					return
				}
				writes.Add(1)
			}
		}()
	}
	return writes, func() {
		wg.Wait()
		p.Close()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// pausedBackup starts a backup of url by the migrator in a child process
// that pauses once its snapshot is pinned, before it reads the first
// table (the failpoint backup.table); resume continues it and returns its
// exit status and output.
func pausedBackup(t *testing.T, url, out string) (resume func() (int, string, string)) {
	t.Helper()
	cmd := migratorCmd(t, "example", "env:"+envFailpoint+"=backup.table=pause", "backup", "--store", url, "--out", out, "--json")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderr := bufio.NewReader(stderrPipe)
	if line, err := stderr.ReadString('\n'); err != nil || line != "failpoint backup.table\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the backup said %q, %v", line, err)
	}
	return func() (int, string, string) {
		stdin.Close()
		var rest strings.Builder
		bufio.NewReader(stderr).WriteTo(&rest)
		cmd.Wait()
		return cmd.ProcessState.ExitCode(), stdout.String(), rest.String()
	}
}

// waitWrites waits until the writers wrote n more records.
func waitWrites(t *testing.T, writes *atomic.Int64, n int64) {
	t.Helper()
	target := writes.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for writes.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the writers wrote %d records in 10 s", writes.Load()-target+n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEtcdBackupUnderWriters backs up an etcd store while product writers
// put and delete records, pausing the backup between its two reads of the
// store while they write: the archive holds the store exactly as it was
// at the revision the backup reports, which the writers had left behind.
func TestEtcdBackupUnderWriters(t *testing.T) {
	url, prefix := etcdStore(t)
	if code, _, stderr := runMigrator(t, "example", "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	createTable(t, prefix, "live", "w0-000", "seed")
	stop := make(chan struct{})
	writes, wait := liveWriters(t, prefix, stop)
	waitWrites(t, writes, 100)
	out := filepath.Join(t.TempDir(), "live.tar.zst")
	resume := pausedBackup(t, url, out)
	waitWrites(t, writes, 200)
	code, stdout, stderr := resume()
	close(stop)
	wait()
	var report struct{ Revision int64 }
	if err := json.Unmarshal([]byte(stdout), &report); code != 0 || err != nil || report.Revision <= 0 {
		t.Fatalf("backup: %d %v %s\n%s", code, err, stderr, stdout)
	}

	// The store at that revision, read directly, as dump --json prints it.
	resp, err := etcdClient(t).Get(context.Background(), prefix+"/g/1/t/", clientv3.WithPrefix(), clientv3.WithRev(report.Revision))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, kv := range resp.Kvs {
		table, key, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix+"/g/1/t/"), "/")
		if table == "live" {
			line, _ := json.Marshal(struct {
				Table string   `json:"table"`
				Path  []string `json:"path"`
				Key   string   `json:"key"`
				Value string   `json:"value"`
			}{table, []string{table}, key, string(kv.Value)})
			fmt.Fprintf(&want, "%s\n", line)
		}
	}
	code, got, stderr := runMigrator(t, "example", "dump", "--backup", out, "--table", "live", "--json")
	if code != 0 || got != want.String() {
		t.Errorf("the backup (exit %d %s):\n%s\nthe store at revision %d:\n%s", code, stderr, got, report.Revision, want.String())
	}
	if now, err := etcdClient(t).Get(context.Background(), prefix+"/current"); err != nil || now.Header.Revision < report.Revision+200 {
		t.Errorf("the writers did not write past the backup's revision %d: %v", report.Revision, err)
	}
}

// liveStore is a new etcd store of the example product with a table "live"
// of one record, and where to back it up: a new directory dir and the
// file out in it.
func liveStore(t *testing.T) (url, prefix, dir, out string) {
	t.Helper()
	url, prefix = etcdStore(t)
	if code, _, stderr := runMigrator(t, "example", "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	createTable(t, prefix, "live", "k", "v")
	dir = t.TempDir()
	return url, prefix, dir, filepath.Join(dir, "live.tar.zst")
}

// TestEtcdBackupCompacted compacts the cluster past the revision of a
// backup in progress: the backup fails saying so and what to do, and
// writes nothing.
func TestEtcdBackupCompacted(t *testing.T) {
	url, prefix, dir, out := liveStore(t)
	resume := pausedBackup(t, url, out)
	cli := etcdClient(t)
	resp, err := cli.Put(context.Background(), prefix+"/g/1/t/live/k", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := resume()
	if code != 1 || stdout != "" || !regexp.MustCompile(`the cluster compacted revision [0-9]+ while the backup was reading it.*nothing was written to `+regexp.QuoteMeta(out)+`: run the backup again.*--auto-compaction-retention`).MatchString(stderr) {
		t.Errorf("backup overtaken by compaction: exit %d %s\n%s", code, stdout, stderr)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("the failed backup left %q", got)
	}
}

// TestEtcdBackupSpoolKilled kills a backup of an etcd store once it has
// read (and spooled) every record: the spool file is gone with the
// process, and the next backup succeeds.
func TestEtcdBackupSpoolKilled(t *testing.T) {
	url, _, dir, out := liveStore(t)
	code, _, stderr := runMigrator(t, "example", "env:"+envFailpoint+"=backup.counted=kill", "backup", "--store", url, "--out", out)
	if code != -1 {
		t.Fatalf("backup killed at backup.counted: exit %d %s", code, stderr)
	}
	for _, name := range names(t, dir) {
		if strings.Contains(name, "spool") {
			t.Errorf("the killed backup left its spool file %s", name)
		}
	}
	if code, _, stderr := runMigrator(t, "example", "backup", "--store", url, "--out", out); code != 0 {
		t.Fatalf("backup after the kill: exit %d %s", code, stderr)
	}
	for _, name := range names(t, dir) {
		if strings.Contains(name, "spool") {
			t.Errorf("after the second backup the directory holds %s", name)
		}
	}
}

// blockingWriter blocks its first write until release is closed, after
// telling started.
type blockingWriter struct {
	strings.Builder
	once             sync.Once
	started, release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.started)
		<-w.release
	})
	return w.Builder.Write(p)
}

// TestEtcdDumpCompacted compacts the cluster past the revision of a dump
// that has printed its first records: the dump fails saying that its
// output is incomplete. The table is larger than what the members stream
// ahead of a reader that waits, so the compaction overtakes the dump.
func TestEtcdDumpCompacted(t *testing.T) {
	url, prefix := etcdStore(t)
	if code, _, stderr := migratorMain(waitRegistry, "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	createTable(t, prefix, "big")
	cli := etcdClient(t)
	// 40 MB: more than the members send ahead of a reader that waits.
	const records = 2000
	value := strings.Repeat("v", 20<<10)
	for i := 0; i < records; i += 50 {
		var ops []clientv3.Op
		for j := i; j < i+50; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/g/1/t/big/key-%04d", prefix, j), value))
		}
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	out := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	var stderr strings.Builder
	done := make(chan int)
	go func() {
		p := &migrator.Program{Registry: waitRegistry, Name: "migrator"}
		done <- p.Main([]string{"dump", "--store", url, "--table", "big"}, strings.NewReader(""), out, &stderr)
	}()
	<-out.started
	resp, err := cli.Put(context.Background(), prefix+"/g/1/t/big/key-0000", "changed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	close(out.release)
	code := <-done
	if code != 1 || !regexp.MustCompile(`the cluster compacted revision [0-9]+ while the dump was reading it, so the output is incomplete: run the dump again`).MatchString(stderr.String()) {
		t.Errorf("dump overtaken by compaction: exit %d\n%s", code, stderr.String())
	}
}

// TestEtcdStatusFull fills a cluster's quota: status shows the NOSPACE
// alarm in text and JSON, and an online upgrade fails without writing.
func TestEtcdStatusFull(t *testing.T) {
	t.Parallel()
	url, cli := quotaStore(t, 4<<20, "full")
	v100 := &hook.Registry{Product: "shop", Release: "1.0.0"}
	value := strings.Repeat("x", 1<<20)
	for i := 0; ; i++ {
		if _, err := cli.Put(context.Background(), fmt.Sprintf("/filler/%d", i), value); err != nil {
			break
		}
		if i == 20 {
			t.Fatal("20 MiB fit into a 4 MiB quota")
		}
	}
	code, out, stderr := migratorMain(v100, "status", "--store", url)
	if code != 0 || !regexp.MustCompile(`(?m)^ALARMS: member [0-9a-f]+: NOSPACE: writes fail until they are cleared`).MatchString(out) || !strings.Contains(out, "of 4.0 MiB quota") {
		t.Errorf("status of a full cluster: %d %s\n%s", code, stderr, out)
	}
	code, out, _ = migratorMain(v100, "status", "--store", url, "--json")
	if code != 0 || !regexp.MustCompile(`"alarms": \[\s*"member [0-9a-f]+: NOSPACE"\s*\]`).MatchString(out) {
		t.Errorf("status --json of a full cluster: %d\n%s", code, out)
	}
	code, _, stderr = migratorMain(shopRegistry(false), "upgrade", "--online", "--store", url)
	if code != 1 || !strings.Contains(stderr, "--quota-backend-bytes): compact and defragment it") {
		t.Errorf("upgrade of a full cluster: exit %d\n%s", code, stderr)
	}
}

// TestEtcdUpgradeUnderWriters upgrades an etcd store online while product
// writers keep writing another table: the product needs no pause, and
// the hook applies whole.
func TestEtcdUpgradeUnderWriters(t *testing.T) {
	t.Parallel()
	url, prefix := etcdStore(t)
	v100 := &hook.Registry{Product: "shop", Release: "1.0.0"}
	if code, _, stderr := migratorMain(v100, "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	createTable(t, prefix, "live")
	stop := make(chan struct{})
	writes, wait := liveWriters(t, prefix, stop)
	waitWrites(t, writes, 50)
	code, out, stderr := migratorMain(shopRegistry(false), "upgrade", "--online", "--store", url)
	waitWrites(t, writes, 50)
	close(stop)
	wait()
	if code != 0 || !strings.Contains(out, "hook 1") {
		t.Fatalf("upgrade beside the product's writers: %d %s %s", code, out, stderr)
	}
	_, items, _ := migratorMain(shopRegistry(false), "dump", "--store", url, "--table", "items", "--json")
	if n := strings.Count(items, "\n"); n != 40 {
		t.Errorf("the hook wrote %d records, want 40:\n%s", n, items)
	}
	// The product's table reads through the store as etcd holds it.
	resp, err := etcdClient(t).Get(context.Background(), prefix+"/g/1/t/live/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	_, live, _ := migratorMain(shopRegistry(false), "dump", "--store", url, "--table", "live")
	if got := strings.Count(live, "\n") - 1; got != len(resp.Kvs) || len(resp.Kvs) == 0 {
		t.Errorf("dump shows %d records of the product's table, etcd holds %d", got, len(resp.Kvs))
	}
}

// TestEtcdFixtures: every release fixture restores into an etcd store and
// into a bbolt file; "upgrade --offline --store" upgrades both, and they
// end with the same dump; status then says up to date, and the kept
// pre-upgrade backup of the etcd store holds the fixture's data.
func TestEtcdFixtures(t *testing.T) {
	t.Parallel()
	for _, fixture := range fixtures(t) {
		release := strings.TrimSuffix(filepath.Base(fixture), ".tar.zst")
		t.Run(release, func(t *testing.T) {
			url, _ := etcdStore(t)
			dir := t.TempDir()
			boltPath := filepath.Join(dir, "up.db")
			for _, args := range [][]string{
				{"restore", fixture, "--store", url},
				{"restore", fixture, "--store", boltPath},
				{"upgrade", "--offline", "--store", boltPath},
			} {
				if code, stdout, stderr := runMigrator(t, "example", args...); code != 0 {
					t.Fatalf("%q: exit %d\n%s%s", args, code, stdout, stderr)
				}
			}
			code, stdout, stderr := runMigrator(t, "example", "upgrade", "--offline", "--store", url, "--backup-dir", dir, "--json")
			var r struct {
				From, To         string
				PreUpgradeBackup string `json:"pre_upgrade_backup"`
				Revision         int64
				Applied          []struct{ Num int }
			}
			if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil {
				t.Fatalf("upgrade --offline --store %s: exit %d %v\n%s%s", url, code, err, stdout, stderr)
			}
			upToDate := release == generated.Registry.Release
			if r.From != release || r.To != generated.Registry.Release || (r.Revision > 0) == upToDate || (len(r.Applied) == 0) != upToDate {
				t.Errorf("upgrade --offline --json: %+v", r)
			}
			// The two upgrades ran at different times.
			appliedAt := regexp.MustCompile(`\\"applied_at\\":\\"[^\\]*\\"`)
			_, etcdDump, _ := runMigrator(t, "example", "dump", "--store", url)
			_, boltDump, _ := runMigrator(t, "example", "dump", "--store", boltPath)
			etcdDump, boltDump = appliedAt.ReplaceAllString(etcdDump, "TIME"), appliedAt.ReplaceAllString(boltDump, "TIME")
			if etcdDump != boltDump || !strings.Contains(etcdDump, `"applied/0000000100"  "{\"num\":100`) || !strings.Contains(etcdDump, "TIME") {
				t.Errorf("dump of the etcd store:\n%s\nof the bbolt store:\n%s", etcdDump, boltDump)
			}
			// The restore made generation 2, the upgrade 3.
			gen := "cluster: generation 3,"
			if upToDate {
				gen = "cluster: generation 2,"
			}
			if code, out, _ := runMigrator(t, "example", "status", "--store", url); code != 0 || !strings.Contains(out, "up to date") || !strings.Contains(out, gen) {
				t.Errorf("status after the upgrade: exit %d\n%s", code, out)
			}
			if upToDate {
				return
			}
			_, fixtureDump, _ := runMigrator(t, "example", "dump", "--backup", fixture)
			if _, preDump, _ := runMigrator(t, "example", "dump", "--backup", r.PreUpgradeBackup); preDump == "" || preDump != fixtureDump || filepath.Dir(r.PreUpgradeBackup) != dir {
				t.Errorf("the pre-upgrade backup %s:\n%s\nthe fixture:\n%s", r.PreUpgradeBackup, preDump, fixtureDump)
			}
			// The store, the two pre-upgrade backups, and nothing else.
			if got := names(t, dir); len(got) != 3 {
				t.Errorf("the backup directory holds %q", got)
			}
		})
	}
}

// quotaStore starts a one-member cluster of its own with the database
// quota quota, records a fresh install of release 1.0.0 of the product
// "shop" under /prefix, and returns the store's URL and a client of the
// cluster; both end with the test.
func quotaStore(t *testing.T, quota int64, prefix string) (string, *clientv3.Client) {
	t.Helper()
	c, err := etcdtest.Start(etcdtest.Config{QuotaBackendBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	url := "etcd://" + strings.TrimPrefix(c.Endpoints[0], "http://") + "/" + prefix
	v100 := &hook.Registry{Product: "shop", Release: "1.0.0"}
	if code, _, stderr := migratorMain(v100, "init", "--store", url); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return url, cli
}
