package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// UpgradeOptions configure [UpgradeFile].
type UpgradeOptions struct {
	// AllowDigestMismatch proceeds over applied hooks whose recorded code
	// digest differs from reg's (see [upgrade.Options]).
	AllowDigestMismatch bool
	// Keys decrypt the input and name the signers it must come from.
	Keys ReadKeys
	// Signer signs the output (see [Options]).
	Signer ssh.Signer
	// ConfigStoreBase is passed on to [upgrade.Options].
	ConfigStoreBase string
}

// Upgraded is the outcome of [UpgradeFile].
type Upgraded struct {
	// From is the data version of the input backup.
	From string
	// Result is what the upgrade applied.
	Result upgrade.Result
}

// UpgradeFile is the offline upgrade of a backup, in this process: it
// restores the backup at in into an isolated store in the directory work
// (which must exist and hold nothing else of value), runs every pending hook
// of reg with the configuration files writable, and writes the result as a
// new zstd backup to out. The input is only read. The migrator runs it in a
// child process, so that a crashing hook cannot take the parent down.
func UpgradeFile(ctx context.Context, reg *hook.Registry, in, out, work string, opts UpgradeOptions) (Upgraded, error) {
	// The store goes into a directory of its own: the caller may hold
	// work's flock (the migrator does, see Lock), which a restore of a new
	// store takes on the store's directory.
	data := filepath.Join(work, "store")
	if err := os.Mkdir(data, 0o700); err != nil {
		return Upgraded{}, envErrorf("creating the isolated store: %w", err)
	}
	storePath := filepath.Join(data, "store.db")
	m, err := Restore(ctx, reg, in, storePath, RestoreOptions{Keys: opts.Keys})
	if err != nil {
		return Upgraded{}, err
	}
	st, err := bolt.Open(storePath, bolt.Options{})
	if err != nil {
		return Upgraded{}, err
	}
	defer st.Close()
	res, err := upgrade.Run(ctx, st, reg, upgrade.Options{AllowDigestMismatch: opts.AllowDigestMismatch, ConfigStoreBase: opts.ConfigStoreBase})
	if err != nil {
		var refusal *upgrade.Refusal
		if errors.As(err, &refusal) {
			return Upgraded{}, fmt.Errorf("offline upgrade of %s: refused: %w", in, err)
		}
		return Upgraded{}, fmt.Errorf("offline upgrade of %s: %w", in, err)
	}
	if _, err := WriteFile(ctx, st, reg, out, Options{Compression: archive.Zstd, Signer: opts.Signer}); err != nil {
		return Upgraded{}, err
	}
	if err := st.Close(); err != nil {
		return Upgraded{}, err
	}
	return Upgraded{From: m.DataVersion, Result: res}, nil
}
