package backup_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/store/bolt"
)

// BenchmarkSealed backs up and restores a store of 200k × 200 B records
// plain, then encrypted (X25519) and signed (ed25519), in the same run,
// and reports each sealed time beside the plain one with their ratio:
// "backup sealed 1.02x plain".
func BenchmarkSealed(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "big.db")
	buildBig(b, src, 200_000)
	id, _ := age.GenerateX25519Identity()
	signer := newSigner(b)
	sealed := backup.Options{Recipients: []age.Recipient{id.Recipient()}, Signer: signer}
	keys := backup.ReadKeys{Identities: []age.Identity{id}, Trusted: []ssh.PublicKey{signer.PublicKey()}}
	var plainBackup, sealedBackup, plainRestore, sealedRestore time.Duration
	for i := 0; b.Loop(); i++ {
		for _, c := range []struct {
			opts            backup.Options
			keys            backup.ReadKeys
			backupT, restoT *time.Duration
		}{{backup.Options{}, backup.ReadKeys{}, &plainBackup, &plainRestore}, {sealed, keys, &sealedBackup, &sealedRestore}} {
			out := filepath.Join(dir, fmt.Sprintf("b%d-%d", i, len(c.opts.Recipients)))
			st, err := bolt.Open(src, bolt.Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			_, err = backup.WriteFile(b.Context(), st, generated.Registry, out, c.opts)
			*c.backupT += time.Since(start)
			st.Close()
			if err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			_, err = backup.Restore(b.Context(), generated.Registry, out, out+".db", backup.RestoreOptions{Keys: c.keys})
			*c.restoT += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(sealedBackup)/float64(plainBackup), "backup-ratio")
	b.ReportMetric(float64(sealedRestore)/float64(plainRestore), "restore-ratio")
	b.Logf("backup sealed %s, plain %s, ratio %.3f; restore sealed %s, plain %s, ratio %.3f",
		sealedBackup/time.Duration(b.N), plainBackup/time.Duration(b.N), float64(sealedBackup)/float64(plainBackup),
		sealedRestore/time.Duration(b.N), plainRestore/time.Duration(b.N), float64(sealedRestore)/float64(plainRestore))
}
