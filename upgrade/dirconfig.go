package upgrade

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/hookreg/hookreg/hook"
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

type dirConfig struct{ fsys fs.FS }

func (c dirConfig) ReadFile(path string) ([]byte, error) {
	if err := store.ValidateConfigPath(path); err != nil {
		return nil, err
	}
	if c.fsys == nil {
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
