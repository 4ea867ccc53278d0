package migrator

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/etcd"
)

// Flag names of an etcd:// store's connection; envFlags gives each its
// environment variable.
const (
	flagEtcdCACert       = "etcd-cacert"
	flagEtcdCert         = "etcd-cert"
	flagEtcdKey          = "etcd-key"
	flagEtcdUser         = "etcd-user"
	flagEtcdPasswordFile = "etcd-password-file"
)

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
}

func (f *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cacert, flagEtcdCACert, "", "etcd:// stores: verify the cluster with the CA certificate `file` (PEM)")
	fs.StringVar(&f.cert, flagEtcdCert, "", "etcd:// stores: the client certificate `file` (PEM), with --"+flagEtcdKey)
	fs.StringVar(&f.key, flagEtcdKey, "", "etcd:// stores: the client key `file` (PEM)")
	fs.StringVar(&f.user, flagEtcdUser, "", "etcd:// stores: authenticate as `user`, with the password of --"+flagEtcdPasswordFile+" or $"+envEtcdPassword)
	fs.StringVar(&f.passwordFile, flagEtcdPasswordFile, "", "etcd:// stores: the `file` holding the password of --"+flagEtcdUser)
}

// options returns the connection options of f, reading the files it
// names and the password from getenv. Errors name the flag and the file,
// never the file's content or the password.
func (f *etcdFlags) options(getenv func(string) string) (etcd.Options, error) {
	var opts etcd.Options
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
func openEtcd(e *env, spec string, conn *etcdFlags, mode openMode) (*etcd.Store, error) {
	endpoints, prefix, err := etcd.ParseURL(spec)
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
	st, err := etcd.Open(e.ctx, opts)
	switch {
	case errors.Is(err, store.ErrInUse):
		return nil, err
	case errors.Is(err, rpctypes.ErrNoSpace):
		// Taking the lock writes: a full cluster refuses it, as it
		// would refuse the commits.
		return nil, fmt.Errorf("%w: %w", err, etcd.ErrNoSpace)
	case errors.Is(err, fs.ErrNotExist):
		return nil, envErrorf("%w; run \"%s init --store %s\" first, or check the prefix", err, e.prog, spec)
	case err != nil:
		return nil, envErrorf("%w (is the cluster reachable at %s, and are --%s/--%s/--%s, --%s right?)", err, strings.Join(endpoints, ","), flagEtcdCACert, flagEtcdCert, flagEtcdKey, flagEtcdUser)
	}
	return st, nil
}

// clusterStatus is what status shows of an etcd store's cluster.
type clusterStatus struct {
	Generation  int64    `json:"generation"`
	Revision    int64    `json:"revision"`
	DBSize      int64    `json:"db_size"`
	DBSizeQuota int64    `json:"db_size_quota"`
	Members     int      `json:"members"`
	Endpoints   int      `json:"endpoints"`
	Alarms      []string `json:"alarms"`
}

func newClusterStatus(s etcd.Status) *clusterStatus {
	c := &clusterStatus{Generation: s.Generation, Revision: s.Revision, DBSize: s.DBSize, DBSizeQuota: s.DBSizeQuota,
		Members: s.Members, Endpoints: s.Endpoints, Alarms: s.Alarms}
	if c.Alarms == nil {
		c.Alarms = []string{}
	}
	return c
}

// writeText writes c for people, one line.
func (c *clusterStatus) writeText(w io.Writer) {
	fmt.Fprintf(w, "cluster: generation %d, revision %d, database %s of %s quota (%.0f%%), %d of %d members answered",
		c.Generation, c.Revision, bytesIEC(c.DBSize), bytesIEC(c.DBSizeQuota), 100*float64(c.DBSize)/float64(max(c.DBSizeQuota, 1)), c.Members, c.Endpoints)
	if len(c.Alarms) == 0 {
		fmt.Fprintln(w, ", no alarms")
		return
	}
	fmt.Fprintf(w, "\nALARMS: %s: writes fail until they are cleared (etcdctl alarm list, compact, defrag, alarm disarm)\n", strings.Join(c.Alarms, "; "))
}

// bytesIEC formats a size: "1.5 MiB".
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
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
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
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
