package archive_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
)

// signed writes a one-table archive, signed with sign when not nil.
func signed(t *testing.T, signedBy string, sign func([]byte) ([]byte, error)) ([]byte, error) {
	t.Helper()
	m := archive.Manifest{
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Product: "p", Release: "1.0.0", DataVersion: "1.0.0",
		SignedBy: signedBy,
	}
	var tt archive.Totals
	tt.StartTable("users", 0)
	tt.Record([]byte("k"), []byte("v"))
	tt.EndTable()
	tt.Set(&m)
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, m, archive.Options{Compression: archive.None, Sign: sign})
	if err != nil {
		return nil, err
	}
	if err := w.StartTable([]string{"users"}, 0); err != nil {
		t.Fatal(err)
	}
	w.Record([]byte("k"), []byte("v"))
	w.EndTable()
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TestSignature: a signed archive is format 4, names its signer, and
// hands the signature of SHA256SUMS's digest to the handler; an unsigned
// one is format 3 and has no signature.
func TestSignature(t *testing.T) {
	var digest []byte
	data, err := signed(t, "SHA256:test", func(d []byte) ([]byte, error) {
		digest = d
		return []byte("sig of " + string(d)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var gotDigest, gotSig []byte
	m, err := archive.Read(bytes.NewReader(data), archive.Handler{Signature: func(d, sig []byte) error {
		gotDigest, gotSig = d, sig
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != 4 || m.SignedBy != "SHA256:test" {
		t.Errorf("format %d signed by %q, want 4 by SHA256:test", m.Format, m.SignedBy)
	}
	if !bytes.Equal(gotDigest, digest) || string(gotSig) != "sig of "+string(digest) {
		t.Errorf("the handler got digest %x and signature %q", gotDigest, gotSig)
	}
	// The digest is SHA256SUMS's.
	i := bytes.Index(data, []byte("SHA256SUMS\x00"))
	if i < 0 {
		t.Fatal("no SHA256SUMS member")
	}
	sums := data[(i/512+1)*512:]
	sums = sums[:bytes.Index(sums, []byte{0})]
	if want := sha256.Sum256(sums); !bytes.Equal(digest, want[:]) {
		t.Errorf("signed digest %x, want SHA256SUMS's %x", digest, want)
	}
	// A refusal from the handler is Read's error.
	refused := errors.New("untrusted")
	if _, err := archive.Read(bytes.NewReader(data), archive.Handler{Signature: func(d, sig []byte) error { return refused }}); !errors.Is(err, refused) {
		t.Errorf("Read = %v, want the handler's refusal", err)
	}

	plain, err := signed(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	m, err = archive.Read(bytes.NewReader(plain), archive.Handler{Signature: func(d, sig []byte) error { called = true; return nil }})
	if err != nil || m.Format != 3 || m.SignedBy != "" || called {
		t.Errorf("unsigned: format %d, signed by %q, handler called %v, err %v", m.Format, m.SignedBy, called, err)
	}
	if _, err := signed(t, "", func([]byte) ([]byte, error) { return nil, nil }); err == nil {
		t.Error("a signed archive without a signer's name was written")
	}
}

// TestSignatureMissing: a manifest that says the archive is signed and no
// signature member (cut off after SHA256SUMS) is refused.
func TestSignatureMissing(t *testing.T) {
	data, err := signed(t, "SHA256:test", func(d []byte) ([]byte, error) { return []byte("sig"), nil })
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(archive.SigName+"\x00"))
	cut := append(data[:i/512*512:i/512*512], make([]byte, 1024)...)
	_, err = archive.Verify(bytes.NewReader(cut))
	if !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), "SHA256SUMS.sig is missing") {
		t.Errorf("Verify = %v, want the signature missing", err)
	}
}

// TestEncryptedSaysSo: an age file is not read as a damaged archive: the
// reader says what it is.
func TestEncryptedSaysSo(t *testing.T) {
	for _, head := range []string{"age-encryption.org/v1\n-> X25519 abc\n", "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"} {
		_, err := archive.Verify(strings.NewReader(head))
		if !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), "encrypted with age: give --identity") {
			t.Errorf("%q: Verify = %v", head[:10], err)
		}
	}
}
