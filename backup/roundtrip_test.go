package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// rawDump is a logical dump of a bbolt file read with bbolt itself, not
// through the store API under test: every bucket at every depth with its
// sequence number, and every record, in order. Two files dump alike
// exactly when a product reading them with bbolt sees the same data.
// Top-level buckets for which skip (when not nil) is true are left out.
func rawDump(t *testing.T, path string, skip func(name string) bool) []byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out bytes.Buffer
	var walk func(b *bbolt.Bucket, path string)
	walk = func(b *bbolt.Bucket, path string) {
		fmt.Fprintf(&out, "bucket %s sequence %d\n", path, b.Sequence())
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				walk(b.Bucket(k), fmt.Sprintf("%s/%x", path, k))
			} else {
				fmt.Fprintf(&out, "  %x %d %x\n", k, len(v), sha256.Sum256(v))
			}
			return nil
		})
	}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if skip != nil && skip(string(name)) {
				return nil
			}
			walk(b, fmt.Sprintf("%x", name))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// oddData adds to the bbolt file at path what real products keep in
// bbolt: nested buckets at many depths (mixed with records), names of any
// bytes (spaces, slashes, percent signs, dots, non-UTF-8, NUL, names of the
// longest encodable length, names that look like chunk members), empty
// buckets, empty values, 1 MiB values, keys of bbolt's largest size and
// sequence numbers.
func oddData(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	maxKey := bytes.Repeat([]byte{0xff}, bbolt.MaxKeySize)
	err = db.Update(func(tx *bbolt.Tx) error {
		sessions, err := tx.CreateBucket([]byte("user sessions"))
		if err != nil {
			return err
		}
		sessions.SetSequence(1<<62 + 7)
		for _, kv := range [][2]string{{"a", "1"}, {"c", ""}, {"e", "3"}} {
			if err := sessions.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		// A nested bucket between records, and a deep chain of them.
		b, err := sessions.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i, name := range []string{"by tenant/eu", "..", ".", "000001.rec", "%41", "\xff\xfe\x00", "ä/ö"} {
			if b, err = b.CreateBucket([]byte(name)); err != nil {
				return err
			}
			if _, err := b.NextSequence(); err != nil {
				return err
			}
			if err := b.Put([]byte{byte(i)}, []byte(name)); err != nil {
				return err
			}
			if _, err := b.CreateBucket([]byte("empty")); err != nil {
				return err
			}
		}
		// Sibling nested buckets, one holding only a bucket.
		only, err := sessions.CreateBucket([]byte("d"))
		if err != nil {
			return err
		}
		if _, err := only.CreateBucket([]byte("x.rec")); err != nil {
			return err
		}
		for _, name := range []string{
			"\x00", "\xff", ".", "..", "a/b", "tables", "SHA256SUMS", "MANIFEST.json",
			strings.Repeat("\xfe", 85), strings.Repeat("n", 255), "empty bucket",
		} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return fmt.Errorf("bucket %q: %w", name, err)
			}
		}
		blobs, err := tx.CreateBucket([]byte("blobs.v2"))
		if err != nil {
			return err
		}
		for i := range 3 {
			if err := blobs.Put([]byte{'b', byte(i)}, big[i:]); err != nil {
				return err
			}
		}
		if err := blobs.Put([]byte{0}, nil); err != nil {
			return err
		}
		if err := blobs.Put(maxKey, []byte("longest key")); err != nil {
			return err
		}
		return blobs.Put(maxKey[:bbolt.MaxKeySize-1], big)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// oddStore builds the example product's store of release 5.0.1 (one hook
// pending for this release) with oddData added, and returns its path.
func oddStore(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "odd.db")
	st, err := bolt.Open(path, bolt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := example.Build(context.Background(), st, generated.Registry, "5.0.1", example.Small); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	oddData(t, path)
	return path
}

// exampleTable reports the tables the example product's hooks rewrite.
func exampleTable(name string) bool {
	return name == store.MetaTable || name == store.ConfigTable || name == "users" || strings.HasPrefix(name, "acl")
}

// TestRoundTripExact backs up a store holding everything bbolt can hold,
// verifies and restores it, through every path, and wants a byte-identical
// logical dump back.
func TestRoundTripExact(t *testing.T) {
	dir := t.TempDir()
	src := oddStore(t, dir)
	want := rawDump(t, src, nil)
	wantOdd := rawDump(t, src, exampleTable)
	if !bytes.Contains(want, fmt.Appendf(nil, "bucket %x/%x/%x/%x sequence 1\n", "user sessions", "b", "by tenant/eu", "..")) {
		t.Fatalf("the test store lacks its nested buckets:\n%s", want)
	}

	for _, comp := range []archive.Compression{archive.None, archive.Zstd} {
		t.Run(string(comp), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "b.tar")
			st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			m, err := backup.WriteFile(t.Context(), st, generated.Registry, out, backup.Options{Compression: comp})
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			_, err = backup.Verify(f, out)
			if err != nil {
				t.Fatal(err)
			}
			nested, tables := 0, int64(0)
			f.Seek(0, io.SeekStart)
			_, err = archive.Read(f, archive.Handler{Table: func(tb archive.TableInfo) error {
				tables++
				if len(tb.Parent) > 0 {
					nested++
				}
				return nil
			}})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if nested != 17 || tables != m.TableCount {
				t.Errorf("the archive holds %d tables, %d nested; want %d, 17 nested", tables, nested, m.TableCount)
			}
			restored := filepath.Join(t.TempDir(), "r.db")
			if _, err := backup.Restore(t.Context(), generated.Registry, out, restored, backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := rawDump(t, restored, nil); !bytes.Equal(got, want) {
				t.Errorf("restored store differs:\n%s", diff(want, got))
			}
		})
	}

	t.Run("offline", func(t *testing.T) {
		tmp := t.TempDir()
		in, out := filepath.Join(tmp, "in.tar.zst"), filepath.Join(tmp, "out.tar.zst")
		st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = backup.WriteFile(t.Context(), st, generated.Registry, in, backup.Options{})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(tmp, "work")
		if err := os.Mkdir(work, 0o700); err != nil {
			t.Fatal(err)
		}
		up, err := backup.UpgradeFile(context.Background(), generated.Registry, in, out, work, backup.UpgradeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(up.Result.Applied) == 0 {
			t.Fatalf("the offline upgrade applied no hook: %+v", up)
		}
		restored := filepath.Join(tmp, "r.db")
		if _, err := backup.Restore(t.Context(), generated.Registry, out, restored, backup.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := rawDump(t, restored, exampleTable); !bytes.Equal(got, wantOdd) {
			t.Errorf("store after the offline upgrade differs outside the example's tables:\n%s", diff(wantOdd, got))
		}
	})

	t.Run("migrator", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the migrator")
		}
		tmp := t.TempDir()
		bin := filepath.Join(tmp, "migrator")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/hookreg/hookreg/cmd/migrator").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		run := func(args ...string) {
			t.Helper()
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("migrator %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		plain, zst, upgraded := filepath.Join(tmp, "b.tar"), filepath.Join(tmp, "b.tar.zst"), filepath.Join(tmp, "u.tar.zst")
		run("backup", "--store", src, "--compress", "none", "--out", plain)
		run("backup", "--store", src, "--out", zst)
		for _, a := range []string{plain, zst} {
			run("verify", a)
			restored := filepath.Join(tmp, filepath.Base(a)+".db")
			run("restore", a, "--store", restored)
			if got := rawDump(t, restored, nil); !bytes.Equal(got, want) {
				t.Errorf("store restored from %s differs:\n%s", filepath.Base(a), diff(want, got))
			}
		}
		run("upgrade", "--offline", "--in", zst, "--out", upgraded)
		run("verify", upgraded)
		restored := filepath.Join(tmp, "u.db")
		run("restore", upgraded, "--store", restored)
		if got := rawDump(t, restored, exampleTable); !bytes.Equal(got, wantOdd) {
			t.Errorf("store after the offline upgrade differs outside the example's tables:\n%s", diff(wantOdd, got))
		}
	})
}

// diff returns the first lines where two dumps differ.
func diff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, wl, gl)
		}
	}
	return "(no difference)"
}

// TestRefuseWhatCannotBeCarried: a name or a value the archive format
// cannot carry exactly is refused before anything is written, naming it.
func TestRefuseWhatCannotBeCarried(t *testing.T) {
	for _, c := range []struct {
		name string
		fill func(tx *bbolt.Tx) error
		want string
	}{
		{"long-name", func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("outer"))
			if err == nil {
				_, err = b.CreateBucket(bytes.Repeat([]byte{0xfe}, 86))
			}
			return err
		}, `table "outer/` + strings.Repeat("%FE", 86) + `" cannot be backed up: table name "` + strings.Repeat(`\xfe`, 64)},
		{"huge-value", func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("blobs"))
			if err == nil {
				err = b.Put([]byte("huge"), make([]byte, archive.MaxValueSize+1))
			}
			return err
		}, `table "blobs": key "huge" cannot be backed up: its value of 16777217 bytes exceeds the archive format's 16777216`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.db")
			st, err := bolt.Open(path, bolt.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := example.Build(context.Background(), st, generated.Registry, "5.1.0", example.Small); err != nil {
				t.Fatal(err)
			}
			st.Close()
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(c.fill)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			st, err = bolt.Open(path, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			out := filepath.Join(dir, "out", "b.tar.zst")
			os.Mkdir(filepath.Dir(out), 0o755)
			_, err = backup.WriteFile(t.Context(), st, generated.Registry, out, backup.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("backup = %v, want an error containing %s", err, c.want)
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Errorf("a refused backup left %v", entries)
			}
			if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused backup wrote %s", out)
			}
		})
	}
}
