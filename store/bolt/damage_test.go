package bolt_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
)

// template is a real store file of a few hundred KiB: tables of many
// records (leaf, branch and overflow pages), nested buckets, a freelist.
var template = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "hookreg-damage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{store.MetaTable, "users", "acl", "sessions"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for i := range 600 {
				v := make([]byte, 20+r.IntN(200))
				for j := range v {
					v[j] = byte('a' + r.IntN(26))
				}
				if err := b.Put(fmt.Appendf(nil, "%s-%06d", name, i), v); err != nil {
					return err
				}
			}
			nested, err := b.CreateBucket([]byte("nested"))
			if err != nil {
				return err
			}
			if err := nested.Put([]byte("big"), bytes.Repeat([]byte("x"), 20000)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		// Free some pages, so the freelist is not empty.
		err = db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("sessions")) })
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// damage returns a copy of data damaged as seed says: truncated at a
// random offset (mode 0), or with random bits flipped in a few random
// pages (mode 1), or a random page overwritten with random bytes (mode 2).
func damage(data []byte, seed uint64, mode uint8) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(mode)))
	out := bytes.Clone(data)
	const page = 4096
	pages := len(out) / page
	switch mode % 3 {
	case 0:
		return out[:r.IntN(len(out))]
	case 1:
		for range 1 + r.IntN(4) {
			p := r.IntN(pages)
			for range 1 + r.IntN(8) {
				i := p*page + r.IntN(page)
				out[i] ^= 1 << r.IntN(8)
			}
		}
	case 2:
		p := r.IntN(pages)
		for i := p * page; i < (p+1)*page; i++ {
			out[i] = byte(r.Uint32())
		}
	}
	return out
}

// exercise does what the migrator does with a store, whatever fails: open
// it read-only, check it, walk every table and record; open it writable,
// write and commit, twice (a transaction left holding the writer lock would
// hang the second). It returns the errors.
func exercise(path string) error {
	return errors.Join(read(path), write(path))
}

func read(path string) error {
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	checkErr := st.Check()
	tx, err := st.Begin(false)
	if err != nil {
		return errors.Join(checkErr, err)
	}
	defer tx.Rollback()
	names, err := tx.Tables()
	if err != nil {
		return errors.Join(checkErr, err)
	}
	for _, name := range names {
		tb, err := tx.Table(name)
		if err != nil {
			return errors.Join(checkErr, err)
		}
		if _, err := tb.Get([]byte(name + "-000001")); err != nil && !strings.Contains(err.Error(), "not found") {
			return errors.Join(checkErr, err)
		}
	}
	return errors.Join(checkErr, store.WalkTree(tx, func([]string, uint64) error { return nil }, func(k, v []byte) error { return nil }, func([]string) error { return nil }))
}

func write(path string) error {
	st, err := bolt.Open(path, bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	var errs []error
	for i := range 2 {
		tx, err := st.Begin(true)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		tb, err := tx.CreateTable("users")
		if err == nil {
			err = tb.Put(fmt.Appendf(nil, "users-%06d", i*7), []byte("changed"))
		}
		if err == nil {
			err = tb.Delete([]byte("users-000100"))
		}
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkDamaged runs exercise on a damaged store file: it must end (no
// deadlock), never panic or crash the process, and any error must name the
// file; an error about the damage must wrap store.ErrDamaged and say to
// restore from a backup.
func checkDamaged(t *testing.T, data []byte, seed uint64, mode uint8) {
	path := filepath.Join(t.TempDir(), "broker.db")
	if err := os.WriteFile(path, damage(data, seed, mode), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- exercise(path)
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("seed %d mode %d: the store operations hang (a transaction holds a lock)", seed, mode)
	}
	if err == nil {
		return // the damage hit unused bytes
	}
	if strings.HasPrefix(err.Error(), "panic: ") {
		t.Fatalf("seed %d mode %d: %v", seed, mode, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("seed %d mode %d: the error does not name the file: %v", seed, mode, err)
	}
	if errors.Is(err, store.ErrDamaged) && !strings.Contains(err.Error(), "restore it from a backup") {
		t.Errorf("seed %d mode %d: the error does not say what to do: %v", seed, mode, err)
	}
}

// FuzzDamagedStore damages a real store file (truncation, bit flips in
// random pages, a page of random bytes) and runs what the migrator does
// with it. The seed corpus runs with go test (scaled down for make test);
// make fuzz explores further.
func FuzzDamagedStore(f *testing.F) {
	seeds := 30
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		f.Add(uint64(seed), uint8(seed%3))
	}
	// Found by fuzzing: a commit that panics ("page already freed"); the
	// transaction must not keep the writer lock.
	for _, seed := range []uint64{523} {
		f.Add(seed, uint8(seed%3))
	}
	data, err := template()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, seed uint64, mode uint8) {
		checkDamaged(t, data, seed, mode)
	})
}

// TestDamagedErrors pins the error of the two commonest damages.
func TestDamagedErrors(t *testing.T) {
	data, err := template()
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"empty":     nil,
	} {
		path := filepath.Join(t.TempDir(), "broker.db")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := bolt.Open(path, bolt.Options{ReadOnly: true})
		if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path+": ") || !strings.HasSuffix(err.Error(), "; restore it from a backup") {
			t.Errorf("%s: Open = %v, want a damaged-store error naming %s", name, err, path)
		}
	}
}

// TestMetaFallbackWarning: a bit flipped in the newer of the two meta
// pages makes bbolt read the store through the older one, one transaction
// back, without a word; Open says so in Warning. An intact store has no
// warning.
func TestMetaFallbackWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := open(t, path)
	for i := range 2 {
		tx := begin(t, st, true)
		tb, err := tx.CreateTable("t")
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Put([]byte{byte(i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if st := open(t, path); st.Warning() != "" {
		t.Errorf("an intact store warns: %s", st.Warning())
	} else {
		st.Close()
	}
	// The newer meta page is the one of the larger transaction ID; flip a
	// bit of its root page ID (inside the checksummed bytes).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	newer := 0
	if binary.LittleEndian.Uint64(data[4096+16+48:]) > binary.LittleEndian.Uint64(data[16+48:]) {
		newer = 1
	}
	data[newer*4096+16+16] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st = open(t, path)
	defer st.Close()
	if w := st.Warning(); !strings.Contains(w, fmt.Sprintf("meta page %d of %s is damaged", newer, path)) || !strings.Contains(w, "one transaction older") {
		t.Errorf("Warning = %q, want the damaged meta page %d named", w, newer)
	}
}

// TestCheckPagesMappedAsRead: the page checker gives the same verdict, the
// same error, whether it reads the pages in place from a mapping of the
// file or with plain reads, on a sound store file and on damaged ones.
func TestCheckPagesMappedAsRead(t *testing.T) {
	data, err := template()
	if err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for seed := range uint64(90) {
		bad := data
		if seed > 0 {
			bad = damage(data, seed, uint8(seed%3))
		}
		path := filepath.Join(t.TempDir(), "s.db")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		var errs [2]error
		for i, mapped := range []bool{true, false} {
			restore := bolt.SetMapPages(mapped)
			errs[i] = bolt.CheckPages(path)
			restore()
		}
		if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
			t.Errorf("seed %d: mapped: %v; read: %v", seed, errs[0], errs[1])
		}
		if seed == 0 && errs[0] != nil {
			t.Fatalf("the sound store: %v", errs[0])
		}
		if errs[0] != nil {
			damaged++
		}
	}
	if damaged < 30 {
		t.Errorf("only %d of 89 damaged files found damaged: the test no longer damages what the checker reads", damaged)
	}
}

// TestCheckPagesTruncatedUnderMapping: a store file truncated while the
// page checker reads it through its mapping makes it fault; the check
// returns an error saying so instead of crashing the process.
func TestCheckPagesTruncatedUnderMapping(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the page checker maps the file on unix only")
	}
	data, err := template()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mapped := false
	defer bolt.SetMappedHook(func(p string) {
		mapped = true
		// Two meta pages and a little more: the tree's pages are gone.
		if err := os.Truncate(p, 3*4096); err != nil {
			t.Error(err)
		}
	})()
	err = bolt.CheckPages(path)
	if !mapped {
		t.Fatal("the page checker did not map the file")
	}
	if err == nil || !strings.Contains(err.Error(), "faulted") {
		t.Fatalf("CheckPages of a file truncated under its mapping = %v, want an error about the fault", err)
	}
}
