package migrator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/store"
)

// Flag names of an etcd:// store's connection; envFlags gives each its
// environment variable.
const (
	flagEtcdCACert       = "etcd-cacert"
	flagEtcdCert         = "etcd-cert"
	flagEtcdKey          = "etcd-key"
	flagEtcdUser         = "etcd-user"
	flagEtcdPasswordFile = "etcd-password-file"
	flagEtcdTimeout      = "etcd-timeout"
)

// defaultEtcdTimeout is --etcd-timeout's default: etcd's own request
// timeout is 5 s plus two election timeouts, so a request the cluster
// answers at all is answered well within it.
const defaultEtcdTimeout = cluster.DefaultRequestTimeout

// envEtcdPassword holds the password of --etcd-user itself. It has no
// flag: a command line is visible to every user of the machine.
const envEtcdPassword = "HOOKREG_ETCD_PASSWORD"

// isEtcd reports whether spec names an etcd store rather than a bbolt
// file.
func isEtcd(spec string) bool { return strings.HasPrefix(spec, "etcd:") }

// etcdFlags are how the migrator reaches an etcd:// store: TLS and
// credentials. Neither is ever printed: not in errors, not in status, not
// in --help (the flags have no defaults to show).
type etcdFlags struct {
	cacert, cert, key, user, passwordFile string
	timeout                               time.Duration
}

func (f *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cacert, flagEtcdCACert, "", "etcd:// stores: verify the cluster with the CA certificate `FILE` (PEM)")
	fs.StringVar(&f.cert, flagEtcdCert, "", "etcd:// stores: the client certificate `FILE` (PEM), with --"+flagEtcdKey)
	fs.StringVar(&f.key, flagEtcdKey, "", "etcd:// stores: the client key `FILE` (PEM)")
	fs.StringVar(&f.user, flagEtcdUser, "", "etcd:// stores: authenticate as `USER`, with the password of --"+flagEtcdPasswordFile+" or $"+envEtcdPassword)
	fs.StringVar(&f.passwordFile, flagEtcdPasswordFile, "", "etcd:// stores: the `FILE` holding the password of --"+flagEtcdUser)
	fs.DurationVar(&f.timeout, flagEtcdTimeout, defaultEtcdTimeout, "etcd:// stores: bound each request to the cluster, its retries through a member's death or an election included, to `DURATION`; without a quorum a command fails after it, naming the members that answered")
}

// options returns the connection options of f, reading the files it
// names and the password from getenv. Errors name the flag and the file,
// never the file's content or the password.
func (f *etcdFlags) options(getenv func(string) string) (cluster.Options, error) {
	var opts cluster.Options
	if f.timeout < 0 {
		return opts, cliflag.Usagef("--%s %s: want a positive duration, such as 10s", flagEtcdTimeout, f.timeout)
	}
	opts.RequestTimeout = f.timeout // 0: the default
	if (f.cert == "") != (f.key == "") {
		return opts, cliflag.Usagef("--%s and --%s go together", flagEtcdCert, flagEtcdKey)
	}
	if f.cacert != "" || f.cert != "" {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if f.cacert != "" {
		pem, err := readSmallFile(f.cacert, maxPEMFile)
		if err != nil {
			return opts, envErrorf("--%s: %w", flagEtcdCACert, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return opts, envErrorf("--%s %s: no PEM certificate in the file", flagEtcdCACert, f.cacert)
		}
		opts.TLS.RootCAs = pool
	}
	if f.cert != "" {
		certPEM, err := readSmallFile(f.cert, maxPEMFile)
		if err != nil {
			return opts, envErrorf("--%s: %w", flagEtcdCert, err)
		}
		keyPEM, err := readSmallFile(f.key, maxPEMFile)
		if err != nil {
			return opts, envErrorf("--%s: %w", flagEtcdKey, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return opts, envErrorf("--%s %s, --%s %s: %w", flagEtcdCert, f.cert, flagEtcdKey, f.key, err)
		}
		opts.TLS.Certificates = []tls.Certificate{cert}
	}
	password := getenv(envEtcdPassword)
	if f.passwordFile != "" {
		data, err := readSmallFile(f.passwordFile, maxPasswordFile)
		if err != nil {
			return opts, envErrorf("--%s: %w", flagEtcdPasswordFile, err)
		}
		password = strings.TrimRight(string(data), "\r\n")
	}
	switch {
	case f.user == "" && f.passwordFile != "":
		return opts, cliflag.Usagef("--%s needs --%s", flagEtcdPasswordFile, flagEtcdUser)
	case f.user != "" && password == "":
		return opts, cliflag.Usagef("--%s needs a password: --%s FILE or $%s", flagEtcdUser, flagEtcdPasswordFile, envEtcdPassword)
	}
	opts.Username, opts.Password = f.user, password
	return opts, nil
}

// openEtcd opens the etcd store spec. A read-only store takes no lock, so
// status, plan, dump and backup run beside a migrator that writes; a
// writable one takes the store's lock, and a store locked by another
// migrator is refused as on bbolt.
func openEtcd(e *env, spec string, conn *etcdFlags, mode openMode) (cluster.Store, error) {
	b, err := clusterBackend()
	if err != nil {
		return nil, err
	}
	endpoints, prefix, err := b.ParseURL(spec)
	if err != nil {
		return nil, cliflag.Usagef("--%s: %v", flagStore, err)
	}
	opts, err := conn.options(e.getenv)
	if err != nil {
		return nil, err
	}
	opts.Endpoints, opts.Prefix = endpoints, prefix
	opts.ReadOnly = mode == openRead
	opts.Create = mode == openCreate
	st, err := b.Open(e.ctx, opts)
	var full *cluster.FullError
	switch {
	case errors.Is(err, store.ErrInUse):
		return nil, err
	case errors.As(err, &full):
		return nil, full.Err
	case errors.Is(err, fs.ErrNotExist):
		return nil, envErrorf("%w; run \"%s init --store %s\" first, or check the prefix", err, e.prog, spec)
	case err != nil:
		return nil, envErrorf("%w%s", err, clusterHint(b, err))
	}
	return st, nil
}

// etcdPackage is the package that links the etcd cluster store into a
// migrator, imported by the migrator's main package for its side effect.
const etcdPackage = "github.com/hookreg/hookreg/migrator/etcdstore"

// clusterBackend returns the registered cluster store backend, or the
// usage error of a migrator built without one, which says how to add it.
func clusterBackend() (cluster.Backend, error) {
	if b := cluster.Registered(); b != nil {
		return b, nil
	}
	return nil, cliflag.Usagef("this migrator was built without the etcd cluster store, so it takes no etcd:// store and no --etcd-* flag; "+
		"to add it, import it in the migrator's main package (cmd/migrator/main.go): import _ %q, then run \"go mod tidy\" and build the migrator again", etcdPackage)
}

// clusterHint tells what to do about a cluster that did not answer, from
// the causes its members gave: "" when err is no such failure.
func clusterHint(b cluster.Backend, err error) string {
	members, ok := b.Unavailable(err)
	if !ok {
		if errors.Is(err, context.Canceled) {
			return ""
		}
		return fmt.Sprintf("; check --%s/--%s/--%s and --%s", flagEtcdCACert, flagEtcdCert, flagEtcdKey, flagEtcdUser)
	}
	all := ""
	answered, leader := 0, false
	for _, m := range members {
		all += " " + m.Down
		if m.Down == "" {
			answered++
			leader = leader || m.Leader
		}
	}
	switch {
	case strings.Contains(all, "unknown authority"):
		return fmt.Sprintf("; give the CA that signed the members' certificates with --%s", flagEtcdCACert)
	case strings.Contains(all, "does not look like a TLS handshake"), strings.Contains(all, "may serve plain connections"):
		return fmt.Sprintf("; the members serve plain connections: drop --%s/--%s/--%s, or name the cluster's TLS endpoints", flagEtcdCACert, flagEtcdCert, flagEtcdKey)
	case strings.Contains(all, "certificate required"), strings.Contains(all, "bad certificate"):
		return fmt.Sprintf("; the members require a client certificate their CA signed: --%s and --%s", flagEtcdCert, flagEtcdKey)
	case strings.Contains(all, "may require TLS"):
		return fmt.Sprintf("; the members serve TLS: give their CA with --%s (and a client certificate with --%s/--%s if they require one)", flagEtcdCACert, flagEtcdCert, flagEtcdKey)
	case strings.Contains(all, "x509:"), strings.Contains(all, "tls:"):
		return fmt.Sprintf("; check --%s/--%s/--%s", flagEtcdCACert, flagEtcdCert, flagEtcdKey)
	case answered > 0 && !leader:
		return "; the cluster has lost its quorum: start or repair the members that do not answer, then run again"
	case answered == 0:
		return fmt.Sprintf("; start the members, or check the endpoints and --%s (longer: --%s)", flagEtcdCACert, flagEtcdTimeout)
	}
	return fmt.Sprintf("; the cluster answers slowly: run again, or raise --%s", flagEtcdTimeout)
}

// Bounds of the files the etcd flags name: a password, and a PEM file of
// certificates or a key (a CA bundle of a few hundred certificates fits).
const (
	maxPasswordFile = 64 << 10
	maxPEMFile      = 4 << 20
)

// readSmallFile reads a file of at most limit bytes, refusing before it
// opens anything what is not a regular file: a FIFO would block the open,
// and a device such as /dev/zero would never end.
func readSmallFile(path string, limit int64) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a file", path, atomicfile.Kind(info.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a file this flag takes", path, limit)
	}
	return data, nil
}
