package migrator_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// crashSize is the example data of the crash tests: big enough that a
// backup or a restore takes a while, small enough for many kills.
var crashSize = example.Size{Users: 40000, Rules: 40000}

// writeBackup backs up a store built with the example data of release.
func writeBackup(t *testing.T, path, release string, size example.Size) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "b.db")
	buildStore(t, db, release, size)
	st, err := bolt.Open(db, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{}); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// oldState writes the old store (the example data of 5.1.0 without its
// configuration table) and the old configuration directory.
func oldState(t *testing.T, db, cfg, template string) {
	t.Helper()
	copyFile(t, template, db)
	os.RemoveAll(cfg)
	if err := os.MkdirAll(filepath.Join(cfg, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"broker.json": `{"old":true}`, "tls/key.pem": "old key"} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreCrash kills "migrator restore" with SIGKILL at many moments:
// afterwards the store is entirely the old one or entirely the new one
// (it opens, passes bbolt's check and holds exactly one of the two
// contents), and so is the configuration directory.
func TestRestoreCrash(t *testing.T) {
	dir := t.TempDir()
	backup := filepath.Join(dir, "b.tar.zst")
	writeBackup(t, backup, "4.4.0", crashSize)
	template := filepath.Join(dir, "template.db")
	buildStore(t, template, "5.1.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")

	oldState(t, db, cfg, template)
	oldStore, err := example.Digest(db)
	if err != nil {
		t.Fatal(err)
	}
	oldConfig, _ := dirDigest(cfg)
	cmd := migratorCmd(t, "example", "restore", backup, "--store", db, "--config", cfg)
	took := timeRun(t, cmd)
	newStore, err := example.Digest(db)
	if err != nil {
		t.Fatal(err)
	}
	newConfig, _ := dirDigest(cfg)
	if newStore == oldStore || newConfig == oldConfig {
		t.Fatal("the restore changed nothing")
	}

	const kills = 20
	rng := rand.New(rand.NewPCG(5, 6))
	counts := map[string]int{}
	for i := range kills {
		oldState(t, db, cfg, template)
		// Half the kills anywhere, half around the end, where the swaps are.
		delay := time.Duration(rng.Int64N(int64(took)))
		if i%2 == 1 {
			delay = took*3/4 + time.Duration(rng.Int64N(int64(took/2)))
		}
		finished := killAfter(t, migratorCmd(t, "example", "restore", backup, "--store", db, "--config", cfg), delay)
		s, err := example.Digest(db)
		if err != nil {
			t.Fatalf("kill %d after %s: the store does not open: %v", i, delay, err)
		}
		c, err := dirDigest(cfg)
		if err != nil {
			t.Fatalf("kill %d after %s: the configuration directory: %v", i, delay, err)
		}
		state := ""
		switch s {
		case oldStore:
			state = "old store"
		case newStore:
			state = "new store"
		default:
			t.Fatalf("kill %d after %s: the store is neither the old one nor the new one", i, delay)
		}
		switch c {
		case oldConfig:
			state += ", old config"
		case newConfig:
			state += ", new config"
		default:
			t.Fatalf("kill %d after %s: the configuration is neither the old one nor the new one", i, delay)
		}
		if finished && state != "new store, new config" {
			t.Fatalf("a finished restore left %s", state)
		}
		if state == "old store, new config" {
			t.Fatalf("kill %d after %s: the configuration was swapped before the store", i, delay)
		}
		counts[state]++
		for _, name := range names(t, dir) {
			if strings.HasPrefix(name, ".") {
				os.RemoveAll(filepath.Join(dir, name)) // a killed restore's unfinished work
			}
		}
	}
	t.Logf("restore takes %s; after %d kills: %v", took.Round(time.Millisecond), kills, counts)
}

// TestBackupCrash kills "migrator backup" with SIGKILL at many moments:
// the output file is always the previous complete backup or a new
// complete one, never partial.
func TestBackupCrash(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "broker.db")
	buildStore(t, db, "4.4.0", crashSize)
	out, prev := filepath.Join(dir, "b.tar"), filepath.Join(dir, "prev.tar")
	writeBackup(t, prev, "5.1.0", example.Small)
	prevSum := fileSum(t, prev)
	took := timeRun(t, migratorCmd(t, "example", "backup", "--store", db, "--out", out, "--compress", "none"))

	const kills = 15
	rng := rand.New(rand.NewPCG(7, 8))
	kept, replaced, litter := 0, 0, 0
	for i := range kills {
		copyFile(t, prev, out)
		delay := time.Duration(rng.Int64N(int64(took)))
		killAfter(t, migratorCmd(t, "example", "backup", "--store", db, "--out", out, "--compress", "none"), delay)
		if fileSum(t, out) == prevSum {
			kept++
		} else {
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			_, err = archive.Verify(f)
			f.Close()
			if err != nil {
				t.Fatalf("kill %d after %s: the output is a partial backup: %v", i, delay, err)
			}
			replaced++
		}
		for _, name := range names(t, dir) {
			if strings.HasPrefix(name, ".b.tar.tmp-") {
				litter++
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
	t.Logf("backup takes %s; after %d kills: %d kept the previous backup, %d complete new ones, %d temporary files left by killed runs", took.Round(time.Millisecond), kills, kept, replaced, litter)
}

// TestRestoreRefusals: a damaged archive, another product's data, data
// newer than the release and a store in use are refused, and leave the
// old store and configuration exactly as they were.
func TestRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.zst")
	writeBackup(t, good, "4.4.0", example.Small)
	template := filepath.Join(dir, "template.db")
	buildStore(t, template, "5.1.0", example.Small)
	db, cfg := filepath.Join(dir, "broker.db"), filepath.Join(dir, "etc")

	truncated := filepath.Join(dir, "truncated.tar.zst")
	data, _ := os.ReadFile(good)
	os.WriteFile(truncated, data[:len(data)-100], 0o600)

	edited := func(name string, edit func(*upgrade.Metadata)) string {
		db := filepath.Join(dir, name+".db")
		buildStore(t, db, "5.0.0", example.Small)
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		tx, _ := st.Begin(true)
		m, err := upgrade.ReadMetadata(tx)
		if err != nil {
			t.Fatal(err)
		}
		edit(&m)
		if err := upgrade.WriteMetadata(tx, m); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".tar.zst")
		if _, err := backup.WriteFile(context.Background(), st, generated.Registry, path, backup.Options{}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other := edited("other", func(m *upgrade.Metadata) { m.Product = "other-product" })
	newer := edited("newer", func(m *upgrade.Metadata) { m.DataVersion = "6.0.0" })

	for _, c := range []struct {
		name, archive string
		code          int
		want          string
	}{
		{"truncated", truncated, 1, "invalid archive"},
		{"other product", other, 1, `the data belongs to product "other-product"`},
		{"newer", newer, 1, "the data version 6.0.0 is newer than this migrator's release 5.1.0"},
		{"missing", filepath.Join(dir, "missing.tar.zst"), 2, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			oldState(t, db, cfg, template)
			before, _ := example.Digest(db)
			beforeCfg, _ := dirDigest(cfg)
			entries := names(t, dir)
			code, _, stderr := runMigrator(t, "example", "restore", c.archive, "--store", db, "--config", cfg)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
			if after, _ := example.Digest(db); after != before {
				t.Errorf("the store changed")
			}
			if after, _ := dirDigest(cfg); after != beforeCfg {
				t.Errorf("the configuration changed")
			}
			if got := names(t, dir); !slices.Equal(got, entries) {
				t.Errorf("directory holds %q, before %q", got, entries)
			}
		})
	}

	t.Run("in use", func(t *testing.T) {
		oldState(t, db, cfg, template)
		before, _ := example.Digest(db)
		// This process holds the store, as a running product would.
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		code, _, stderr := runMigrator(t, "example", "restore", good, "--store", db, "--config", cfg)
		if code != 1 || !strings.Contains(stderr, "store is in use by another process") {
			t.Errorf("exit %d, stderr %q; want a refusal: store in use", code, stderr)
		}
		st.Close()
		if after, _ := example.Digest(db); after != before {
			t.Errorf("the store changed")
		}
	})
}
