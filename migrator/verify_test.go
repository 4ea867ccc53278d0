package migrator_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/migrator"
)

// verifyArchive writes a small archive and returns its bytes.
func verifyArchive(t *testing.T, comp archive.Compression) []byte {
	t.Helper()
	key, value, conf := []byte("alice"), []byte("{}"), []byte("port=1883\n")
	last := 99
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.Manifest{
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Product: "mqtt-broker", Release: "5.0.1",
		RegistryDigest: "h1:x", DataVersion: "5.0.1", LastUpgradeHook: &last,
		Tables: []archive.TableInfo{{Name: "empty"}, {Name: "users", Records: 1, Bytes: archive.RecordSize(key, value)}},
		Config: []archive.ConfigFile{{Path: "etc/broker.conf", Mode: 0o640, Size: int64(len(conf))}},
	}, archive.Options{Compression: comp})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		w.Table("empty"), w.Table("users"), w.Record(key, value), w.Config("etc/broker.conf", 0o640, conf), w.Close(),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return buf.Bytes()
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	good := verifyArchive(t, archive.Zstd)
	plain := verifyArchive(t, archive.None)
	bad := bytes.Replace(plain, []byte("port=1883"), []byte("port=1884"), 1)
	files := map[string][]byte{"good.tar.zst": good, "good.tar": plain, "bad.tar": bad, "cut.tar.zst": good[:len(good)-10]}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"good.tar.zst"}, 0, "good.tar.zst: good archive (format 2), created 2026-01-01T00:00:00Z\n" +
			"product mqtt-broker, release 5.0.1 (registry h1:x)\n" +
			"data version 5.0.1, last upgrade hook 99, 0 applied hooks\n" +
			"tables:\n  empty  0 records\n  users  1 records\n" +
			"config files:\n  etc/broker.conf  -rw-r-----  10 bytes\n", ""},
		{[]string{"good.tar"}, 0, "good.tar: good archive", ""},
		{[]string{"bad.tar"}, 1, "", `migrator: verify: bad.tar: invalid archive: member "config/etc/broker.conf": checksum mismatch`},
		{[]string{"cut.tar.zst"}, 1, "", "migrator: verify: cut.tar.zst: invalid archive: "},
		{[]string{"missing.tar"}, 2, "", "migrator: verify: open missing.tar: no such file or directory"},
		{[]string{}, 2, "", "migrator: verify: missing argument FILE"},
		{[]string{"good.tar", "bad.tar"}, 2, "", `migrator: verify: unexpected argument "bad.tar"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			code := migrator.Main(generated.Registry, append([]string{"verify"}, tc.args...), nil, &stdout, &stderr)
			if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || !strings.HasPrefix(stderr.String(), tc.stderr) {
				t.Errorf("verify %v: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout starting %q, stderr starting %q",
					tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("verify changed %s (%v)", name, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(files) {
		t.Errorf("verify left files behind: %d entries, want %d", len(entries), len(files))
	}
}
