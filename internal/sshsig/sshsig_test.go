package sshsig_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/internal/sshsig"
)

// keygen makes a key pair of type typ with ssh-keygen in dir.
func keygen(t *testing.T, dir, typ string) (priv, pub string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen")
	}
	priv = filepath.Join(dir, typ)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "test", "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return priv, priv + ".pub"
}

// TestInteroperates signs with this package and verifies with ssh-keygen,
// with each key type, and refuses another namespace or message.
func TestInteroperates(t *testing.T) {
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			priv, pub := keygen(t, dir, typ)
			msg := []byte("deadbeef  MANIFEST.json\n")
			msgPath := filepath.Join(dir, "SHA256SUMS")
			os.WriteFile(msgPath, msg, 0o644)
			digest := sha256.Sum256(msg)
			pem, _ := os.ReadFile(priv)
			signer, err := ssh.ParsePrivateKey(pem)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := sshsig.Sign(signer, sshsig.Namespace, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			sigPath := msgPath + ".sig"
			os.WriteFile(sigPath, sig, 0o644)
			pubLine, _ := os.ReadFile(pub)
			allowed := filepath.Join(dir, "allowed_signers")
			os.WriteFile(allowed, append([]byte("backup "), pubLine...), 0o644)
			cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "backup", "-n", sshsig.Namespace, "-s", sigPath)
			cmd.Stdin = bytes.NewReader(msg)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
			}
			if _, err := sshsig.Verify(sig, sshsig.Namespace, digest[:]); err != nil {
				t.Fatal(err)
			}
			if _, err := sshsig.Verify(sig, "git", digest[:]); !errors.Is(err, sshsig.ErrBadSignature) {
				t.Errorf("another namespace: %v", err)
			}
			other := sha256.Sum256([]byte("other"))
			if _, err := sshsig.Verify(sig, sshsig.Namespace, other[:]); !errors.Is(err, sshsig.ErrBadSignature) {
				t.Errorf("another message: %v", err)
			}
		})
	}
}
