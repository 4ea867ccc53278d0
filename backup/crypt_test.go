package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	bbolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
)

// keyKind is a kind of age recipient with its identity.
type keyKind struct {
	name      string
	recipient age.Recipient
	identity  age.Identity
}

func keyKinds(t testing.TB) []keyKind {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edID, err := agessh.NewEd25519Identity(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, err := agessh.NewRSAIdentity(rsaPriv)
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := age.NewScryptRecipient("correct horse battery staple")
	pr.SetWorkFactor(10)
	pi, _ := age.NewScryptIdentity("correct horse battery staple")
	return []keyKind{
		{"x25519", x.Recipient(), x},
		{"ssh-ed25519", edID.Recipient(), edID},
		{"ssh-rsa", rsaID.Recipient(), rsaID},
		{"passphrase", pr, pi},
	}
}

func newSigner(t testing.TB) ssh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedStore builds the example store with a record a forger wants to
// change ("zz"/"alice" = "role=plain").
func sealedStore(t testing.TB) string {
	path := filepath.Join(t.TempDir(), "s.db")
	db := exampleBoltDB(t, path)
	defer db.Close()
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("zz"))
		if err != nil {
			return err
		}
		return b.Put([]byte("alice"), []byte("role=plain"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func writeSealed(t testing.TB, src, out string, opts backup.Options) {
	t.Helper()
	st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, out, opts); err != nil {
		t.Fatal(err)
	}
}

// TestSealedRoundTrip encrypts to each kind of key and signs; the archive
// is a standard age file, and restores with the identity and the trusted
// key to the same data.
func TestSealedRoundTrip(t *testing.T) {
	src := sealedStore(t)
	want := rawDump(t, src, nil)
	signer := newSigner(t)
	for _, k := range keyKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "b.tar.zst.age")
			writeSealed(t, src, out, backup.Options{Recipients: []age.Recipient{k.recipient}, Signer: signer})
			data, _ := os.ReadFile(out)
			if !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) || bytes.Contains(data, []byte("role=plain")) {
				t.Fatal("not an age file")
			}
			// age -d opens it: the plaintext is an archive.
			plain, err := age.Decrypt(bytes.NewReader(data), k.identity)
			if err != nil {
				t.Fatal(err)
			}
			if m, err := archive.Verify(plain); err != nil || m.SignedBy != backup.Fingerprint(signer.PublicKey()) || m.Format != 4 {
				t.Fatalf("the plaintext: %v, %+v", err, m)
			}
			dst := filepath.Join(dir, "r.db")
			keys := backup.ReadKeys{Identities: []age.Identity{k.identity}, Trusted: []ssh.PublicKey{signer.PublicKey()}}
			if _, err := backup.Restore(t.Context(), generated.Registry, out, dst, backup.RestoreOptions{Keys: keys}); err != nil {
				t.Fatal(err)
			}
			if got := rawDump(t, dst, nil); !bytes.Equal(got, want) {
				t.Errorf("restored store differs:\n%s", diff(want, got))
			}
		})
	}
}

// refusedCleanly restores data into a new store with keys and wants err
// to match and nothing written.
func refusedCleanly(t *testing.T, data []byte, keys backup.ReadKeys, match func(error) bool) {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "r.db")
	_, err := backup.RestoreReader(t.Context(), generated.Registry, bytes.NewReader(data), "b", dst, backup.RestoreOptions{Keys: keys})
	if !match(err) {
		t.Errorf("restore: err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("restore wrote %v", entries)
	}
}

// TestSealedRefusals: a wrong key, no key, a truncated ciphertext and a
// flipped byte are refused, writing nothing; no error holds a secret.
func TestSealedRefusals(t *testing.T) {
	src := sealedStore(t)
	kinds := keyKinds(t)
	out := filepath.Join(t.TempDir(), "b.age")
	writeSealed(t, src, out, backup.Options{Recipients: []age.Recipient{kinds[0].recipient}})
	data, _ := os.ReadFile(out)
	right := backup.ReadKeys{Identities: []age.Identity{kinds[0].identity}}
	wrong := backup.ReadKeys{Identities: []age.Identity{kinds[1].identity, kinds[3].identity}}
	isEncrypted := func(err error) bool { return errors.Is(err, backup.ErrEncrypted) }
	isInvalid := func(err error) bool { return errors.Is(err, archive.ErrInvalid) }

	refusedCleanly(t, data, wrong, func(err error) bool {
		return isEncrypted(err) && strings.Contains(err.Error(), "no identity given decrypts it")
	})
	refusedCleanly(t, data, backup.ReadKeys{}, func(err error) bool {
		return isEncrypted(err) && strings.Contains(err.Error(), "give --identity")
	})
	for _, n := range []int{len(data) - 1, len(data) - 17, len(data) / 2, 200} {
		refusedCleanly(t, data[:n], right, isInvalid)
	}
	for _, at := range []int{len(data) - 5, len(data) / 2, 250} {
		flipped := bytes.Clone(data)
		flipped[at] ^= 1
		refusedCleanly(t, flipped, right, func(err error) bool { return isInvalid(err) || isEncrypted(err) })
	}
	secret := kinds[0].identity.(*age.X25519Identity).String()
	_, err := backup.RestoreReader(t.Context(), generated.Registry, bytes.NewReader(data), "b", filepath.Join(t.TempDir(), "r.db"), backup.RestoreOptions{Keys: wrong})
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Errorf("error %v", err)
	}
}

// forge rewrites the plain tar archive data: edit changes the members
// (name to content, in order), then SHA256SUMS is recomputed over every
// member but the signature, as a forger would.
func forge(t *testing.T, data []byte, edit func(names []string, members map[string][]byte) []string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var names []string
	members := map[string][]byte{}
	var hdrs []*tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		names = append(names, hdr.Name)
		members[hdr.Name] = body
		hdrs = append(hdrs, hdr)
	}
	names = edit(names, members)
	var sums strings.Builder
	for _, n := range names {
		if n == archive.SumsName || n == archive.SigName {
			continue
		}
		sum := sha256.Sum256(members[n])
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	members[archive.SumsName] = []byte(sums.String())
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := *hdrs[0]
		hdr.Name, hdr.Size, hdr.Mode = n, int64(len(members[n])), 0o644
		tw.WriteHeader(&hdr)
		tw.Write(members[n])
	}
	tw.Close()
	return buf.Bytes()
}

// TestForgery: a record changed with every checksum recomputed, a
// signature stripped, a signature by another key: refused when a trusted
// key is required, before anything is written.
func TestForgery(t *testing.T) {
	src := sealedStore(t)
	signer, other := newSigner(t), newSigner(t)
	out := filepath.Join(t.TempDir(), "b.tar")
	writeSealed(t, src, out, backup.Options{Compression: archive.None, Signer: signer})
	data, _ := os.ReadFile(out)
	trusted := backup.ReadKeys{Trusted: []ssh.PublicKey{signer.PublicKey()}}
	isInvalid := func(err error) bool { return errors.Is(err, archive.ErrInvalid) }
	isUntrusted := func(err error) bool { return errors.Is(err, backup.ErrUntrusted) }

	// The untouched archive restores.
	if _, err := backup.RestoreReader(t.Context(), generated.Registry, bytes.NewReader(data), "b", filepath.Join(t.TempDir(), "r.db"), backup.RestoreOptions{Keys: trusted}); err != nil {
		t.Fatal(err)
	}
	changed := forge(t, data, func(names []string, members map[string][]byte) []string {
		for _, n := range names {
			if bytes.Contains(members[n], []byte("role=plain")) {
				members[n] = bytes.Replace(members[n], []byte("role=plain"), []byte("role=admin"), 1)
				return names
			}
		}
		t.Fatal("no member holds the record")
		return nil
	})
	refusedCleanly(t, changed, trusted, isInvalid)
	refusedCleanly(t, changed, backup.ReadKeys{}, isInvalid)

	stripped := forge(t, changed, func(names []string, members map[string][]byte) []string {
		members[archive.ManifestName] = bytes.Replace(members[archive.ManifestName], []byte(`"format": 4`), []byte(`"format": 3`), 1)
		i := bytes.Index(members[archive.ManifestName], []byte(`  "signed_by"`))
		j := bytes.Index(members[archive.ManifestName][i:], []byte("\n"))
		members[archive.ManifestName] = append(members[archive.ManifestName][:i:i], members[archive.ManifestName][i+j+1:]...)
		return names[:len(names)-1]
	})
	refusedCleanly(t, stripped, trusted, func(err error) bool {
		return isUntrusted(err) && strings.Contains(err.Error(), "it is unsigned")
	})

	out2 := filepath.Join(t.TempDir(), "other.tar")
	writeSealed(t, src, out2, backup.Options{Compression: archive.None, Signer: other})
	byOther, _ := os.ReadFile(out2)
	refusedCleanly(t, byOther, trusted, func(err error) bool {
		return isUntrusted(err) && strings.Contains(err.Error(), backup.Fingerprint(other.PublicKey()))
	})
}
