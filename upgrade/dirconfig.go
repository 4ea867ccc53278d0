package upgrade

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/layout"
	"github.com/hookreg/hookreg/store"
)

// DirConfig returns a read-only [hook.Config] over the files under dir, the
// configuration of an online run; dir "" gives an empty view. Writes return
// an error wrapping hook.ErrReadOnlyConfig.
func DirConfig(dir string) hook.Config {
	if dir == "" {
		return dirConfig{}
	}
	return dirConfig{fsys: os.DirFS(dir)}
}

// DirConfigWithStore is DirConfig of a configuration directory that
// holds the store file named storeBase directly (see backup.StoreInConfig):
// the store and its own files there (see the migrator's docs on the
// layout) are no configuration, and the hooks neither see nor read them.
func DirConfigWithStore(dir, storeBase string) hook.Config {
	if dir == "" {
		return dirConfig{}
	}
	return dirConfig{fsys: os.DirFS(dir), storeBase: storeBase}
}

type dirConfig struct {
	fsys      fs.FS
	storeBase string // the store's file name when it lies in the directory
}

// omitted reports whether path is one of the store's own files.
func (c dirConfig) omitted(path string) bool {
	return c.storeBase != "" && storeOwned(c.storeBase, path)
}

// storeOwned reports whether the configuration file path lies under one of
// the own names (its first path element) of the store named base.
func storeOwned(base, path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return layout.Owned(base, first)
}

func (c dirConfig) ReadFile(path string) ([]byte, error) {
	if err := store.ValidateConfigPath(path); err != nil {
		return nil, err
	}
	if c.fsys == nil || c.omitted(path) {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
	}
	return fs.ReadFile(c.fsys, path)
}

func (c dirConfig) WriteFile(path string, _ []byte, _ fs.FileMode) error {
	return fmt.Errorf("writing configuration file %s: %w", path, hook.ErrReadOnlyConfig)
}

func (c dirConfig) Remove(path string) error {
	return fmt.Errorf("removing configuration file %s: %w", path, hook.ErrReadOnlyConfig)
}

func (c dirConfig) List() ([]string, error) {
	if c.fsys == nil {
		return nil, nil
	}
	var paths []string
	err := fs.WalkDir(c.fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == "." && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if path != "." && c.omitted(path) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing configuration files: %w", err)
	}
	sort.Strings(paths)
	return paths, nil
}

// storeNamesConfig is the writable configuration of an offline run whose
// result goes into a configuration directory that holds the store named
// base: it refuses to write a file onto one of the store's own names,
// which the restore at the end of the run would refuse.
type storeNamesConfig struct {
	hook.Config
	base string
}

func (c storeNamesConfig) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := store.ValidateConfigPath(path); err != nil {
		return err
	}
	if storeOwned(c.base, path) {
		return fmt.Errorf("writing configuration file %s: the name belongs to the store %s, which lies in the configuration directory the upgraded data is restored into; write the file under another name", path, c.base)
	}
	return c.Config.WriteFile(path, data, perm)
}
