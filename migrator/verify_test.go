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

// verifyArchive writes a small archive and returns its bytes: product
// and data version as the manifest records them, and the metadata table
// records meta (as a store holds them, keys in order).
func verifyArchive(t *testing.T, comp archive.Compression, product, version string, meta [][2]string) []byte {
	t.Helper()
	key, value, conf := []byte("alice"), []byte("{}"), []byte("port=1883\n")
	last := 99
	var metaBytes int64
	for _, r := range meta {
		metaBytes += archive.RecordSize([]byte(r[0]), []byte(r[1]))
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.Manifest{
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Product: product, Release: "5.0.1",
		RegistryDigest: "h1:x", DataVersion: version, LastUpgradeHook: &last,
		Tables: []archive.TableInfo{{Name: "_hookreg", Records: int64(len(meta)), Bytes: metaBytes}, {Name: "empty"}, {Name: "users", Records: 1, Bytes: archive.RecordSize(key, value)}},
		Config: []archive.ConfigFile{{Path: "etc/broker.conf", Mode: 0o640, Size: int64(len(conf))}},
	}, archive.Options{Compression: comp})
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{w.Table("_hookreg")}
	for _, r := range meta {
		steps = append(steps, w.Record([]byte(r[0]), []byte(r[1])))
	}
	steps = append(steps, w.Table("empty"), w.Table("users"), w.Record(key, value), w.Config("etc/broker.conf", 0o640, conf), w.Close())
	for _, step := range steps {
		if step != nil {
			t.Fatal(step)
		}
	}
	return buf.Bytes()
}

// metaRecords are the metadata table records of data version 5.0.1 of
// product mqtt-broker, last upgrade hook 99, no applied hook records.
func metaRecords(version string) [][2]string {
	return [][2]string{{"data_version", version}, {"last_upgrade_hook", "99"}, {"product", "mqtt-broker"}}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	good := verifyArchive(t, archive.Zstd, "mqtt-broker", "5.0.1", metaRecords("5.0.1"))
	plain := verifyArchive(t, archive.None, "mqtt-broker", "5.0.1", metaRecords("5.0.1"))
	bad := bytes.Replace(plain, []byte("port=1883"), []byte("port=1884"), 1)
	// The manifest says 5.0.1, the table the restore would write 6.0.0.
	disagree := verifyArchive(t, archive.None, "mqtt-broker", "5.0.1", metaRecords("6.0.0"))
	noMeta := verifyArchive(t, archive.None, "mqtt-broker", "5.0.1", nil)
	// A manifest string that would drive the terminal.
	escape := verifyArchive(t, archive.None, "mqtt\x1b[2J-broker\u202e", "5.0.1", [][2]string{{"data_version", "5.0.1"}, {"last_upgrade_hook", "99"}})
	files := map[string][]byte{"good.tar.zst": good, "good.tar": plain, "bad.tar": bad, "cut.tar.zst": good[:len(good)-10],
		"disagree.tar": disagree, "nometa.tar": noMeta, "escape.tar": escape}
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
		{[]string{"good.tar.zst"}, 0, "good.tar.zst: good archive (format 3), created 2026-01-01T00:00:00Z\n" +
			"product mqtt-broker, release 5.0.1 (registry h1:x)\n" +
			"data version 5.0.1, last upgrade hook 99, 0 applied hooks\n" +
			"tables: 3, 4 records\n  _hookreg  3 records\n  empty  0 records\n  users  1 records\n" +
			"config files:\n  etc/broker.conf  -rw-r-----  10 bytes\n", ""},
		{[]string{"good.tar"}, 0, "good.tar: good archive", ""},
		{[]string{"bad.tar"}, 1, "", `migrator: verify: bad.tar: invalid archive: member "config/etc/broker.conf": checksum mismatch`},
		{[]string{"cut.tar.zst"}, 1, "", "migrator: verify: cut.tar.zst: invalid archive: "},
		{[]string{"disagree.tar"}, 1, "", `migrator: verify: disagree.tar: invalid archive: the manifest disagrees with the data: the manifest records data version 5.0.1, the table "_hookreg" data version 6.0.0`},
		{[]string{"nometa.tar"}, 1, "", `migrator: verify: nometa.tar: invalid archive: the manifest disagrees with the data: the manifest records data version "5.0.1" but the table "_hookreg" carries no upgrade metadata`},
		{[]string{"escape.tar"}, 0, "escape.tar: good archive (format 3), created 2026-01-01T00:00:00Z\n" +
			`product "mqtt\x1b[2J-broker\u202e", release 5.0.1`, ""},
		{[]string{"missing.tar"}, 2, "", "migrator: verify: open missing.tar: no such file or directory"},
		{[]string{}, 2, "", "migrator: verify: missing argument FILE"},
		{[]string{"good.tar", "bad.tar"}, 2, "", `migrator: verify: unexpected argument "bad.tar"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			p := &migrator.Program{Registry: generated.Registry, Name: "migrator"}
			code := p.Main(append([]string{"verify"}, tc.args...), nil, &stdout, &stderr)
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
