package archive_test

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/internal/sshsig"
)

// TestHostileSealed runs the hostile corpus (hostileCases and v3Cases)
// behind age encryption: decrypting in front of the reader changes
// nothing. Each archive, encrypted, is refused with the error the plain
// archive gets, and a restore of it (with a registry that accepts the
// base archive's manifest, so that the restore starts building) writes
// nothing: no store, the configuration directory as it was, no temporary
// file. The format 3 cases run signed too, by the key the restore
// trusts, the signature made again over each case's SHA256SUMS as the
// key's holder could: a good signature does not make a hostile archive
// acceptable, and the error is the same.
func TestHostileSealed(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(d []byte) ([]byte, error) { return sshsig.Sign(signer, sshsig.Namespace, d) }
	keys := backup.ReadKeys{Identities: []age.Identity{id}}
	trusting := backup.ReadKeys{Identities: []age.Identity{id}, Trusted: []ssh.PublicKey{signer.PublicKey()}}
	hostileReg := &hook.Registry{Product: "mqtt-broker", Release: "5.1.0", Hooks: []hook.Hook{
		{Num: 99, IntroducedIn: "5.0.1", Name: "Upgrade99", Digest: "h1:x"},
		{Num: 100, IntroducedIn: "5.1.0", Name: "Upgrade100", Digest: "h1:y"},
	}}
	v3Reg := &hook.Registry{Product: "p", Release: "1.0.0"}

	encrypt := func(t *testing.T, data []byte) []byte {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	// restore restores the encrypted archive into a new directory that
	// holds a configuration directory, and fails the test if it wrote
	// anything; it reports whether the restore started building (the
	// manifest was accepted) and its error.
	restore := func(t *testing.T, reg *hook.Registry, sealed []byte, keys backup.ReadKeys) (bool, error) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "etc")
		if err := os.Mkdir(cfg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg, "app.conf"), []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		building := false
		failpoint.Hook = func(name string) error {
			if name == "restore.checked" {
				building = true
			}
			return nil
		}
		defer func() { failpoint.Hook = nil }()
		_, err := backup.RestoreReader(t.Context(), reg, bytes.NewReader(sealed), "hostile.age", filepath.Join(dir, "s.db"), backup.RestoreOptions{ConfigDir: cfg, Keys: keys})
		if got := names(t, dir); !slices.Equal(got, []string{"etc"}) {
			t.Errorf("the restore left %q", got)
		}
		if got := names(t, cfg); !slices.Equal(got, []string{"app.conf"}) {
			t.Errorf("the restore left %q in the configuration directory", got)
		}
		if data, _ := os.ReadFile(filepath.Join(cfg, "app.conf")); string(data) != "old\n" {
			t.Errorf("the restore changed app.conf to %q", data)
		}
		return building, err
	}
	// check runs one archive plain and encrypted.
	check := func(t *testing.T, reg *hook.Registry, data []byte, keys backup.ReadKeys) {
		_, plainErr := archive.Read(bytes.NewReader(data), archive.Handler{})
		if !errors.Is(plainErr, archive.ErrInvalid) {
			t.Fatalf("plain: Read = %v, want an error wrapping ErrInvalid", plainErr)
		}
		sealed := encrypt(t, data)
		plain, err := backup.Decrypt(bytes.NewReader(sealed), "hostile.age", keys.Identities)
		if err != nil {
			t.Fatal(err)
		}
		_, sealedErr := archive.Read(plain, archive.Handler{})
		plain.Close()
		if sealedErr == nil || sealedErr.Error() != plainErr.Error() {
			t.Fatalf("encrypted: Read = %v\nplain: %v", sealedErr, plainErr)
		}
		_, err = restore(t, reg, sealed, keys)
		if !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), plainErr.Error()) {
			t.Fatalf("restore = %v\nwant the plain archive's error: %v", err, plainErr)
		}
	}

	// The format 3 bases pass the manifest's checks: a restore starts
	// building, so their cases reach the build. (The format 2 hostile
	// base records a data version and lists no metadata table: its
	// manifest alone refuses it, before anything is built.)
	for _, c := range []struct {
		name string
		reg  *hook.Registry
		data []byte
		keys backup.ReadKeys
	}{
		{"format 3 base", v3Reg, pack(t, v3Base(t), false), keys},
		{"signed format 3 base", v3Reg, pack(t, v3BaseSigned(t, backup.Fingerprint(signer.PublicKey()), sign), false), trusting},
	} {
		if building, err := restore(t, c.reg, encrypt(t, c.data), c.keys); !building {
			t.Fatalf("%s: the restore did not start building: %v", c.name, err)
		}
	}
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			check(t, hostileReg, tc.build(t, hostileBase(t)), keys)
		})
	}
	for _, tc := range v3Cases() {
		if tc.want == "\x00" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			check(t, v3Reg, tc.build(t, v3Base(t)), keys)
		})
		t.Run(tc.name+"/signed", func(t *testing.T) {
			ms := v3BaseSigned(t, backup.Fingerprint(signer.PublicKey()), sign)
			check(t, v3Reg, resign(t, tc.build(t, ms), sign), trusting)
		})
	}
}

// resign signs an archive's SHA256SUMS again with sign, as the holder of
// the key could after editing it; data that is not a tar holding both
// members is returned as it is.
func resign(t *testing.T, data []byte, sign func([]byte) ([]byte, error)) []byte {
	tr := tar.NewReader(bytes.NewReader(data))
	var ms []member
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return data
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return data
		}
		ms = append(ms, member{*hdr, body})
	}
	sums := slices.IndexFunc(ms, func(m member) bool { return m.hdr.Name == archive.SumsName })
	sig := slices.IndexFunc(ms, func(m member) bool { return m.hdr.Name == archive.SigName })
	if sums < 0 || sig < 0 {
		return data
	}
	digest := sha256.Sum256(ms[sums].data)
	s, err := sign(digest[:])
	if err != nil {
		t.Fatal(err)
	}
	ms[sig].data = s
	return pack(t, ms, false)
}

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// FuzzReadSealed reads FuzzReadArchive's inputs (its seeds: valid and
// hostile archives) encrypted with age, through backup.Decrypt: the
// manifest or the error is exactly the plain read's.
func FuzzReadSealed(f *testing.F) {
	for _, tc := range hostileCases() {
		f.Add(tc.build(f, hostileBase(f)))
	}
	for _, tc := range v3Cases() {
		f.Add(tc.build(f, v3Base(f)))
	}
	f.Add(pack(f, v3Base(f), false))
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, plainErr := archive.Read(bytes.NewReader(data), archive.Handler{})
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		plain, err := backup.Decrypt(&buf, "fuzz.age", []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		sm, sealedErr := archive.Read(plain, archive.Handler{})
		switch {
		case (plainErr == nil) != (sealedErr == nil):
			t.Fatalf("plain: %v; encrypted: %v", plainErr, sealedErr)
		case plainErr != nil && plainErr.Error() != sealedErr.Error():
			t.Fatalf("plain: %v\nencrypted: %v", plainErr, sealedErr)
		case plainErr == nil && !reflect.DeepEqual(m, sm):
			t.Fatalf("plain: %+v\nencrypted: %+v", m, sm)
		}
	})
}
