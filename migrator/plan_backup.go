package migrator

import (
	"fmt"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/backup"

	"github.com/hookreg/hookreg/upgrade"
)

// planBackup reads the upgrade metadata of the backup at path for "plan
// --backup": it verifies the whole archive first (every checksum, the
// structure, the manifest against the content), so a plan is never made
// from a damaged backup, then returns what its manifest records.
func planBackup(e *env, path string, files openFiles) (upgrade.Metadata, error) {
	keys, err := files.keys()
	if err != nil {
		return upgrade.Metadata{}, err
	}
	f, err := backup.OpenArchive(path)
	if err != nil {
		return upgrade.Metadata{}, err
	}
	defer f.Close()
	m, err := backup.VerifySealed(backup.ContextReader(e.ctx, f), path, keys, archive.Handler{})
	if err != nil {
		return upgrade.Metadata{}, err
	}
	if backup.Unadopted(m) {
		return upgrade.Metadata{}, fmt.Errorf("%s: %w (a backup of data from before hookreg): restore it, then run \"%s init --store S --data-version V\" with the release V that wrote the data", path, upgrade.ErrNotInitialized, e.prog)
	}
	return backup.ManifestMetadata(m), nil
}
