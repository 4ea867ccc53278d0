package example

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// Main is the "example" command of the test scripts, which prepares and
// inspects stores of the example product:
//
//	example build [--users N] [--rules M] RELEASE STORE   the data of RELEASE
//	example verify [--users N] [--rules M] RELEASE STORE  check it is exactly that
//	example meta STORE KEY=VALUE...                       edit the upgrade metadata
//	example meta STORE none                               remove it (data from before hookreg)
//	example dump STORE                                    every table and record, quoted
//	example damage STORE TABLE                            zero the root page of TABLE's bucket
//
// meta keys: product, data_version, last_upgrade_hook ("none" removes it)
// and digest.NUM (the recorded digest of applied hook NUM). reg is the
// registry build upgrades with.
func Main(reg *hook.Registry, args []string, stdout, stderr io.Writer) int {
	if err := run(reg, args, stdout); err != nil {
		fmt.Fprintf(stderr, "example: %v\n", err)
		return 1
	}
	return 0
}

func run(reg *hook.Registry, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("missing command: build, verify, meta, dump or damage")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	size := Small
	fs.IntVar(&size.Users, "users", Small.Users, "number of users")
	fs.IntVar(&size.Rules, "rules", Small.Rules, "number of ACL rules")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pos := fs.Args()
	switch args[0] {
	case "build":
		if len(pos) != 2 {
			return errors.New("usage: example build [--users N] [--rules M] RELEASE STORE")
		}
		st, err := bolt.Open(pos[1], bolt.Options{Create: true})
		if err != nil {
			return err
		}
		defer st.Close()
		if err := Build(context.Background(), st, reg, pos[0], size); err != nil {
			return err
		}
		return st.Close()
	case "verify":
		if len(pos) != 2 {
			return errors.New("usage: example verify [--users N] [--rules M] RELEASE STORE")
		}
		return withTx(pos[1], false, func(tx store.Tx) error { return Verify(tx, pos[0], size) })
	case "meta":
		if len(pos) < 2 {
			return errors.New("usage: example meta STORE KEY=VALUE...")
		}
		if len(pos) == 2 && pos[1] == "none" {
			return withTx(pos[0], true, func(tx store.Tx) error { return tx.DropTable(store.MetaTable) })
		}
		return withTx(pos[0], true, func(tx store.Tx) error { return editMeta(tx, pos[1:]) })
	case "dump":
		if len(pos) != 1 {
			return errors.New("usage: example dump STORE")
		}
		return withTx(pos[0], false, func(tx store.Tx) error { return Dump(tx, stdout) })
	case "damage":
		if len(pos) != 2 {
			return errors.New("usage: example damage STORE TABLE")
		}
		return damage(pos[0], pos[1])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// damage overwrites with zeros the page that holds the root of the bucket
// table in the bbolt file path: a page every read of the table reaches,
// unlike a page chosen by its number, which may be free.
func damage(path, table string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	var root uint64
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("%s: no table %q", path, table)
		}
		root = uint64(b.Root())
		return nil
	})
	pageSize := db.Info().PageSize
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if root == 0 {
		return fmt.Errorf("%s: table %q is inline in its parent's page: it has no page of its own", path, table)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, pageSize), int64(root)*int64(pageSize)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func withTx(path string, writable bool, fn func(store.Tx) error) error {
	st, err := bolt.Open(path, bolt.Options{ReadOnly: !writable})
	if err != nil {
		return err
	}
	defer st.Close()
	tx, err := st.Begin(writable)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return st.Close()
}

func editMeta(tx store.Tx, edits []string) error {
	m, err := upgrade.ReadMetadata(tx)
	if err != nil {
		return err
	}
	for _, e := range edits {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return fmt.Errorf("%q: want KEY=VALUE", e)
		}
		switch {
		case k == "product":
			m.Product = v
		case k == "data_version":
			m.DataVersion = v
		case k == "last_upgrade_hook" && v == "none":
			m.LastUpgradeHook = nil
		case k == "last_upgrade_hook":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q: %w", e, err)
			}
			m.LastUpgradeHook = &n
		case strings.HasPrefix(k, "digest."):
			num, err := strconv.Atoi(strings.TrimPrefix(k, "digest."))
			if err != nil {
				return fmt.Errorf("%q: %w", e, err)
			}
			found := false
			for i := range m.Applied {
				if m.Applied[i].Num == num {
					m.Applied[i].Digest, found = v, true
				}
			}
			if !found {
				return fmt.Errorf("%q: hook %d is not applied", e, num)
			}
		default:
			return fmt.Errorf("%q: unknown key", e)
		}
	}
	return upgrade.WriteMetadata(tx, m)
}

// Dump writes every table of tx but those named in skip, and every record,
// in order, one quoted key and value a line: a logical dump that two stores
// with the same content print alike.
func Dump(tx store.Tx, w io.Writer, skip ...string) error {
	names, err := tx.Tables()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, name := range names {
		if slices.Contains(skip, name) {
			continue
		}
		t, err := tx.Table(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "table %s\n", name)
		err = t.Scan(nil, func(k, v []byte) error {
			_, err := fmt.Fprintf(bw, "%q %q\n", k, v)
			return err
		})
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// TxDigest returns the hex sha256 of the Dump of tx, leaving out skip.
func TxDigest(tx store.Tx, skip ...string) (string, error) {
	h := sha256.New()
	if err := Dump(tx, h, skip...); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Digest returns the TxDigest of the store file at path, opened read-only
// and checked for consistency first.
func Digest(path string, skip ...string) (string, error) {
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		return "", err
	}
	tx, err := st.Begin(false)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	return TxDigest(tx, skip...)
}

// RegistryAt serves the "migrator-at" command of the test scripts, the
// migrator of another release of the example product:
//
//	migrator-at RELEASE[:MIN_DATA_VERSION] COMMAND [args]
//
// It returns reg as of RELEASE (see [Registry]) with the minimum data
// version, and the migrator's arguments.
func RegistryAt(reg *hook.Registry, args []string) (*hook.Registry, []string, error) {
	if len(args) == 0 {
		return nil, nil, errors.New("migrator-at: usage: migrator-at RELEASE[:MIN_DATA_VERSION] COMMAND [args]")
	}
	release, min, _ := strings.Cut(args[0], ":")
	r, err := Registry(reg, release)
	if err != nil {
		return nil, nil, fmt.Errorf("migrator-at: %w", err)
	}
	r.MinDataVersion = min
	r.Digest = r.ComputeDigest()
	return r, args[1:], nil
}
