// Package etcdtest starts real etcd clusters inside a test binary: members
// of the go.etcd.io/etcd/server/v3 embed package on loopback, with free
// ports and temporary data directories. It is for tests only: nothing but
// _test.go files and the demo's internal/cmd/etcdcluster imports it, so the
// etcd server never links into the migrator (check with
// `go list -deps ./cmd/migrator | grep etcd/server`).
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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Config describes a cluster. Zero limits are etcd's defaults.
type Config struct {
	// Members is the number of members; 1 when zero.
	Members int
	// Processes runs every member in a child process (the test binary
	// again, see MemberMain), so that a test can SIGKILL one.
	Processes bool
	// MaxTxnOps is the server's --max-txn-ops.
	MaxTxnOps uint
	// MaxRequestBytes is the server's --max-request-bytes.
	MaxRequestBytes uint
	// QuotaBackendBytes is the server's --quota-backend-bytes.
	QuotaBackendBytes int64
	// TLS, when set, serves clients over TLS only (https:// endpoints).
	TLS *TLS
}

// TLS are the PEM files of a cluster that serves clients over TLS.
type TLS struct {
	// CertFile and KeyFile are the server's certificate (valid for
	// 127.0.0.1) and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, is the CA that signs the client
	// certificates, and the members require one (--client-cert-auth).
	ClientCAFile string
}

// Cluster is a running cluster.
type Cluster struct {
	// Endpoints are the members' client URLs.
	Endpoints []string
	members   []*embed.Etcd
	procs     []*exec.Cmd
	confs     []member // of procs
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
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i]))
	}
	for i := range n {
		m := member{
			Name:            fmt.Sprintf("m%d", i),
			Dir:             fmt.Sprintf("%s/m%d", dir, i),
			Peer:            fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			Client:          fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i+1]),
			TLS:             cfg.TLS,
			InitialCluster:  strings.Join(initial, ","),
			MaxTxnOps:       cfg.MaxTxnOps,
			MaxRequestBytes: cfg.MaxRequestBytes,
			Quota:           cfg.QuotaBackendBytes,
		}
		c.Endpoints = append(c.Endpoints, m.Client)
		if cfg.Processes {
			cmd, err := m.spawn()
			if err != nil {
				c.Close()
				return nil, err
			}
			c.procs = append(c.procs, cmd)
			c.confs = append(c.confs, m)
			continue
		}
		e, err := embed.StartEtcd(m.config())
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starting etcd member %s: %w", m.Name, err)
		}
		c.members = append(c.members, e)
	}
	if cfg.Processes {
		if err := c.waitLeader(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
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
	for _, p := range c.procs {
		if p.ProcessState == nil {
			p.Process.Signal(syscall.SIGCONT)
			p.Process.Kill()
			p.Wait()
		}
	}
	os.RemoveAll(c.dir)
}

// Kill SIGKILLs member i of a cluster of Processes.
func (c *Cluster) Kill(i int) error {
	p := c.procs[i]
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing etcd member %d: %w", i, err)
	}
	p.Wait()
	return nil
}

// Stop SIGSTOPs member i of a cluster of Processes: it keeps its
// connections open and answers nothing, as a frozen machine or a
// partition. Cont resumes it.
func (c *Cluster) Stop(i int) error {
	if err := c.procs[i].Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pausing etcd member %d: %w", i, err)
	}
	return nil
}

// Cont SIGCONTs member i, paused by Stop.
func (c *Cluster) Cont(i int) error {
	if err := c.procs[i].Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resuming etcd member %d: %w", i, err)
	}
	return nil
}

// Restart starts member i again, killed by Kill, on its data directory
// and ports.
func (c *Cluster) Restart(i int) error {
	cmd, err := c.confs[i].spawn()
	if err != nil {
		return err
	}
	c.procs[i] = cmd
	return nil
}

// Leader returns the index of the member that leads.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	return c.member(ctx, true)
}

// Follower returns the index of a member that serves clients and does
// not lead.
func (c *Cluster) Follower(ctx context.Context) (int, error) {
	return c.member(ctx, false)
}

// member returns the index of the first member that answers and leads (or
// follows a leader).
func (c *Cluster) member(ctx context.Context, leads bool) (int, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	for i, ep := range c.Endpoints {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(rctx, ep)
		cancel()
		if err == nil && st.Leader != 0 && (st.Leader == st.Header.MemberId) == leads {
			return i, nil
		}
	}
	if leads {
		return 0, errors.New("finding the etcd leader: no member leads")
	}
	return 0, errors.New("finding an etcd follower: no member follows a leader")
}

func (c *Cluster) waitLeader() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if _, err := c.Leader(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("starting etcd: no leader elected in time")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// member is the configuration of one member, passed to a child process in
// the environment variable memberEnv.
type member struct {
	Name, Dir, Peer, Client, InitialCluster string
	MaxTxnOps, MaxRequestBytes              uint
	Quota                                   int64
	TLS                                     *TLS
}

const memberEnv = "HOOKREG_ETCDTEST_MEMBER"

func (m member) config() *embed.Config {
	ec := embed.NewConfig()
	ec.Name, ec.Dir = m.Name, m.Dir
	peer, _ := url.Parse(m.Peer)
	client, _ := url.Parse(m.Client)
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	ec.InitialCluster = m.InitialCluster
	ec.InitialClusterToken = "etcdtest"
	ec.ClusterState = embed.ClusterStateFlagNew
	ec.TickMs, ec.ElectionMs = 50, 500
	ec.UnsafeNoFsync = true // a test cluster dies with the test
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if m.MaxTxnOps > 0 {
		ec.MaxTxnOps = m.MaxTxnOps
	}
	if m.MaxRequestBytes > 0 {
		ec.MaxRequestBytes = m.MaxRequestBytes
	}
	ec.QuotaBackendBytes = m.Quota
	if m.TLS != nil {
		ec.ClientTLSInfo = transport.TLSInfo{CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile, TrustedCAFile: m.TLS.ClientCAFile, ClientCertAuth: m.TLS.ClientCAFile != ""}
	}
	return ec
}

// spawn starts the member in a child process: the running test binary,
// whose TestMain calls MemberMain first.
func (m member) spawn() (*exec.Cmd, error) {
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	return cmd, nil
}

// MemberMain runs an etcd member and never returns when the process is one
// that Start spawned; otherwise it returns at once. A TestMain of a
// package that starts clusters of Processes calls it first.
func MemberMain() {
	js := os.Getenv(memberEnv)
	if js == "" {
		return
	}
	var m member
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(2)
	}
	parent := os.Getppid()
	e, err := embed.StartEtcd(m.config())
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(2)
	}
	// Die with the test: a member outliving it would keep its ports.
	for {
		select {
		case err := <-e.Err():
			fmt.Fprintln(os.Stderr, "etcdtest:", err)
			os.Exit(1)
		case <-time.After(200 * time.Millisecond):
			if os.Getppid() != parent {
				os.Exit(1)
			}
		}
	}
}

// shared is the cluster of Shared.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
	runs atomic.Int64
}

// Shared returns the process's three-member cluster, started by the first
// test that asks for it and shared by the others, each under its own
// Prefix. TestMain stops it with CloseShared after m.Run.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	c, err := SharedCluster()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SharedCluster is Shared for a caller without a testing.TB (a testscript
// command). Prefixes under it come from NextPrefix.
func SharedCluster() (*Cluster, error) {
	shared.once.Do(func() { shared.c, shared.err = Start(Config{Members: 3}) })
	return shared.c, shared.err
}

// CloseShared stops the cluster of Shared, if a test started it.
func CloseShared() {
	if shared.c != nil {
		shared.c.Close()
	}
}

// Prefix returns a key prefix that no other call returned in this process
// (go test -count=N included): /test/NAME/N, NAME the test's name with
// every byte outside [A-Za-z0-9] written as "_", so that it also fits in
// an etcd:// URL.
func Prefix(t testing.TB) string {
	return NextPrefix(t.Name())
}

// NextPrefix is Prefix for a caller without a testing.TB: /test/NAME/N.
func NextPrefix(name string) string {
	return fmt.Sprintf("/test/%s/%d", nameRE.ReplaceAllString(name, "_"), shared.runs.Add(1))
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9]`)

// Client returns a plain client of c, as a product or an operator has,
// closed when the test ends; its unary requests go through interceptors,
// in order, when given (such as an RPCCounter's Intercept).
func (c *Cluster) Client(t testing.TB, interceptors ...grpc.UnaryClientInterceptor) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if len(interceptors) > 0 {
		cfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(interceptors...)}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
