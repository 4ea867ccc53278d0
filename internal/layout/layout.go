// Package layout names the files that belong to a bbolt store file when
// the store lies inside the product's configuration directory
// ("/data/app.db" beside "/data/certs/..."): the store itself, its
// pre-upgrade backups and the hidden files the migrator writes beside it
// (intents, temporary files, private directories). They are not
// configuration: a backup leaves them out of the archive's config/
// members, a restore keeps them while it replaces the configuration, and
// hooks do not see them.
package layout

import (
	"path/filepath"
	"strings"
)

// Owned reports whether the entry name, directly in the store's
// directory, belongs to the store file named base there: base itself,
// its pre-upgrade backups (base+".pre-upgrade-*") and every hidden name
// derived from it ("."+base+".*", and further dots in front, such as the
// offline upgrade's private directory "..BASE.upgraded.tar.zst.offline-*").
// Nothing else: "app.db.yaml" beside "app.db" is configuration.
func Owned(base, name string) bool {
	switch {
	case name == base:
		return true
	case strings.HasPrefix(name, base+".pre-upgrade-"):
		return true
	}
	for n := name; strings.HasPrefix(n, "."); {
		n = n[1:]
		if strings.HasPrefix(n, base+".") {
			return true
		}
	}
	return false
}

// Beside returns the hidden file of the store at storePath named with
// suffix, in the store's directory: Beside("/data/app.db",
// ".config-swap") is "/data/.app.db.config-swap", a name [Owned] counts
// as the store's.
func Beside(storePath, suffix string) string {
	dir, base := filepath.Split(storePath)
	return filepath.Join(dir, "."+base+suffix)
}
