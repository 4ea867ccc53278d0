package migrator_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/backup"
)

// TestReleaseFixtures: the committed release fixtures
// (testdata/releases/*.tar.zst, unsigned and never changed: each still has
// the sha256 its SHA256SUMS recorded) verify and restore with the current
// reader, and the restored store holds what the fixture holds. With
// --trusted-key an unsigned fixture is refused, before anything is
// written, saying it is unsigned and which signer is required; giving an
// --identity for a fixture that is not encrypted changes nothing.
func TestReleaseFixtures(t *testing.T) {
	sums, err := os.ReadFile("../testdata/releases/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(dir, "ops.pub")
	if err := os.WriteFile(trusted, ssh.MarshalAuthorizedKey(key), 0o600); err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(dir, "age.key")
	if err := os.WriteFile(identity, []byte("AGE-SECRET-KEY-1RL3DHTLQUY98C8UTTHCUJH2Y0ZZ6LNPSLWKUQLGMUELTNH9C943QH4GAGQ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(sums)))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: line %q", sc.Text())
		}
		n++
		t.Run(name, func(t *testing.T) {
			fixture := filepath.Join("..", "testdata", "releases", name)
			if got := fileSum(t, fixture); got != sum {
				t.Fatalf("the fixture changed: sha256 %s, SHA256SUMS says %s", got, sum)
			}
			if code, stdout, stderr := runMigrator(t, "example", "verify", fixture, "--identity", identity); code != 0 || !strings.Contains(stdout, "good archive") {
				t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
			}
			db := filepath.Join(t.TempDir(), "broker.db")
			if code, stdout, stderr := runMigrator(t, "example", "restore", fixture, "--store", db); code != 0 {
				t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
			}
			code, fromBackup, stderr := runMigrator(t, "example", "dump", "--backup", fixture, "--table", "users")
			if code != 0 || fromBackup == "" {
				t.Fatalf("dump --backup: exit %d\n%s", code, stderr)
			}
			if code, fromStore, stderr := runMigrator(t, "example", "dump", "--store", db, "--table", "users"); code != 0 || fromStore != fromBackup {
				t.Fatalf("dump --store of the restored store: exit %d, %s\n%q\nthe fixture holds\n%q", code, stderr, fromStore, fromBackup)
			}

			want := "it is unsigned, and a signature by " + backup.Fingerprint(key) + " is required"
			if code, _, stderr := runMigrator(t, "example", "verify", fixture, "--trusted-key", trusted); code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("verify --trusted-key: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
			}
			refused := filepath.Join(t.TempDir(), "refused.db")
			if code, _, stderr := runMigrator(t, "example", "restore", fixture, "--store", refused, "--trusted-key", trusted); code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("restore --trusted-key: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
			}
			if got := names(t, filepath.Dir(refused)); len(got) != 0 {
				t.Errorf("the refused restore left %q", got)
			}
		})
	}
	if n < 4 {
		t.Fatalf("%d release fixtures in SHA256SUMS", n)
	}
}
