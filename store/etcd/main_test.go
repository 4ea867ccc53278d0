package etcd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/store"
)

// cluster is the package's three-member cluster on loopback, shared by
// every test; each test works under its own prefix.
var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	etcdtest.MemberMain() // a member process of TestLeaderKilled
	migratorMain()        // the paused migrator of TestPausedMigrator
	c, err := etcdtest.Start(etcdtest.Config{Members: 3})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Close()
	os.Exit(code)
}

// prefix is the test's own key prefix, a new one for every run of the test
// (go test -count=N), the same for every call within one run.
func prefix(t testing.TB) string {
	p, _ := prefixes.LoadOrStore(t, fmt.Sprintf("/test/%s/%d", strings.ReplaceAll(t.Name(), "/", "_"), runs.Add(1)))
	return p.(string)
}

var (
	prefixes sync.Map // testing.TB → string
	runs     atomic.Int64
)

// client is a plain client of c: a product or an operator.
func client(t testing.TB, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// open opens a writable store at the test's prefix, creating it.
func open(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Endpoints == nil && opts.Client == nil {
		opts.Endpoints = cluster.Endpoints
	}
	if opts.Prefix == "" {
		opts.Prefix = prefix(t)
	}
	opts.Create = true
	st, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func begin(t testing.TB, st store.Store, writable bool) store.Tx {
	t.Helper()
	tx, err := st.Begin(writable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return tx
}

// raw returns every key under p and its value, as etcd holds them.
func raw(t testing.TB, cli *clientv3.Client, p string) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}
