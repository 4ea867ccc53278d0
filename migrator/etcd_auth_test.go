package migrator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hookreg/hookreg/internal/etcdtest"
)

// writeCert writes a certificate signed by parent (self-signed when nil)
// and its key as PEM files dir/name.pem and dir/name-key.pem.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestEtcdTLSAndPassword runs the migrator against a one-member cluster
// that serves only TLS, requires a client certificate signed by its CA and
// has authentication enabled: with the CA, the client certificate and the
// user's password (from a file or the environment) it works; without any
// one of them it fails with exit status 2, and the password shows nowhere.
func TestEtcdTLSAndPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "client"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	writeCert(t, dir, "other-ca", &x509.Certificate{
		SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "another CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	f := func(name string) string { return filepath.Join(dir, name) }
	plain, _ := etcdStore(t) // a cluster without TLS
	c, err := etcdtest.Start(etcdtest.Config{TLS: &etcdtest.TLS{CertFile: f("server.pem"), KeyFile: f("server-key.pem"), ClientCAFile: f("ca.pem")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const secret = "s3cret-Pa55"
	clientCert, err := tls.LoadX509KeyPair(f("client.pem"), f("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.UserAdd(ctx, "root", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	pwFile := f("pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongPw := f("wrong-pw")
	if err := os.WriteFile(wrongPw, []byte("not-it\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	url := "etcd://" + strings.TrimPrefix(c.Endpoints[0], "https://") + "/secure"
	tlsFlags := []string{"--etcd-cacert", f("ca.pem"), "--etcd-cert", f("client.pem"), "--etcd-key", f("client-key.pem")}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"init, password from a file", append([]string{"init", "--store", url, "--etcd-user", "root", "--etcd-password-file", pwFile}, tlsFlags...), 0, "initialized " + url},
		{"status, everything from the environment", []string{"env:HOOKREG_ETCD_CACERT=" + f("ca.pem"), "env:HOOKREG_ETCD_CERT=" + f("client.pem"), "env:HOOKREG_ETCD_KEY=" + f("client-key.pem"),
			"env:HOOKREG_ETCD_USER=root", "env:HOOKREG_ETCD_PASSWORD=" + secret, "status", "--store", url}, 0, "cluster: generation 1"},
		{"a wrong password", append([]string{"status", "--store", url, "--etcd-user", "root", "--etcd-password-file", wrongPw}, tlsFlags...), 2, "authentication failed"},
		{"no user", append([]string{"status", "--store", url}, tlsFlags...), 2, "permission denied"},
		// A TLS mistake fails at once (well within the 10 s of
		// --etcd-timeout), naming its cause and the flag to fix.
		{"no client certificate", []string{"env:HOOKREG_ETCD_PASSWORD=" + secret, "status", "--store", url, "--etcd-user", "root", "--etcd-cacert", f("ca.pem")}, 2, "certificate required"},
		{"a wrong CA", append([]string{"status", "--store", url, "--etcd-cacert", f("other-ca.pem")}, tlsFlags[2:]...), 2, "certificate signed by unknown authority"},
		{"TLS against a plain cluster", []string{"status", "--store", plain, "--etcd-cacert", f("ca.pem")}, 2, "it may serve plain connections, without TLS"},
		{"no TLS against a TLS cluster", []string{"status", "--store", url}, 2, "the members serve TLS: give their CA with --etcd-cacert"},
	} {
		start := time.Now()
		code, out, stderr := runMigrator(t, "example", tc.args...)
		took := time.Since(start)
		if code != tc.code || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("%s: exit %d after %s, want %d and %q:\n%s%s", tc.name, code, took.Round(time.Millisecond), tc.code, tc.want, out, stderr)
		}
		if tc.code != 0 && took > 5*time.Second {
			t.Errorf("%s: failed after %s, want at once", tc.name, took.Round(time.Millisecond))
		}
		t.Logf("%s: exit %d after %s: %s", tc.name, code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
		if strings.Contains(out+stderr, secret) {
			t.Errorf("%s shows the password:\n%s%s", tc.name, out, stderr)
		}
	}
}
