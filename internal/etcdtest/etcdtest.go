// Package etcdtest starts real etcd clusters inside a test binary: members
// of the go.etcd.io/etcd/server/v3 embed package on loopback, with free
// ports and temporary data directories. It is for tests only: nothing but
// _test.go files imports it, so the etcd server never links into the
// migrator (check with `go list -deps ./cmd/migrator | grep etcd/server`).
//
//	func TestMain(m *testing.M) {
//		c, err := etcdtest.Start(etcdtest.Config{Members: 3})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		c.Close()
//		os.Exit(code)
//	}
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config describes a cluster. Zero limits are etcd's defaults.
type Config struct {
	// Members is the number of members; 1 when zero.
	Members int
	// MaxTxnOps is the server's --max-txn-ops.
	MaxTxnOps uint
	// MaxRequestBytes is the server's --max-request-bytes.
	MaxRequestBytes uint
	// QuotaBackendBytes is the server's --quota-backend-bytes.
	QuotaBackendBytes int64
}

// Cluster is a running cluster.
type Cluster struct {
	// Endpoints are the members' client URLs.
	Endpoints []string
	members   []*embed.Etcd
	dir       string
}

// startTimeout bounds the wait for a cluster to elect a leader.
const startTimeout = 30 * time.Second

// Start starts a cluster and waits until every member serves clients. It
// retries with new ports when a port it picked was taken meanwhile.
func Start(cfg Config) (*Cluster, error) {
	var err error
	for range 3 {
		var c *Cluster
		if c, err = start(cfg); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func start(cfg Config) (*Cluster, error) {
	n := max(cfg.Members, 1)
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	c := &Cluster{dir: dir}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i]))
	}
	for i := range n {
		ec := embed.NewConfig()
		ec.Name = fmt.Sprintf("m%d", i)
		ec.Dir = fmt.Sprintf("%s/m%d", dir, i)
		peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		ec.InitialCluster = strings.Join(initial, ",")
		ec.InitialClusterToken = "etcdtest"
		ec.ClusterState = embed.ClusterStateFlagNew
		ec.TickMs, ec.ElectionMs = 50, 500
		ec.UnsafeNoFsync = true // a test cluster dies with the test
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		if cfg.MaxTxnOps > 0 {
			ec.MaxTxnOps = cfg.MaxTxnOps
		}
		if cfg.MaxRequestBytes > 0 {
			ec.MaxRequestBytes = cfg.MaxRequestBytes
		}
		ec.QuotaBackendBytes = cfg.QuotaBackendBytes
		c.Endpoints = append(c.Endpoints, client.String())
		e, err := embed.StartEtcd(ec)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starting etcd member %s: %w", ec.Name, err)
		}
		c.members = append(c.members, e)
	}
	deadline := time.After(startTimeout)
	for _, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			c.Close()
			return nil, fmt.Errorf("starting etcd: %w", err)
		case <-deadline:
			c.Close()
			return nil, errors.New("starting etcd: no leader elected in time")
		}
	}
	return c, nil
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Close stops every member and removes the data directories.
func (c *Cluster) Close() {
	for _, e := range c.members {
		e.Close()
	}
	os.RemoveAll(c.dir)
}
