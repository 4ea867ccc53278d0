package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/layout"
	"github.com/hookreg/hookreg/store"
)

// configSource lists and reads the configuration files of a backup.
type configSource interface {
	list() ([]archive.ConfigFile, error)
	read(c archive.ConfigFile) ([]byte, error)
}

// storeConfig is the configuration held in the store's ConfigTable.
type storeConfig struct{ tx store.Tx }

func (s storeConfig) list() ([]archive.ConfigFile, error) {
	t, err := s.tx.Table(store.ConfigTable)
	if err != nil {
		return nil, err
	}
	var files []archive.ConfigFile
	err = t.Scan(nil, func(k, v []byte) error {
		if v == nil {
			return errNestedInConfig(k)
		}
		mode, data, err := store.DecodeConfigFile(v)
		if err != nil {
			return fmt.Errorf("configuration file %q in table %q: %w", k, store.ConfigTable, err)
		}
		files = append(files, archive.ConfigFile{Path: string(k), Mode: mode, Size: int64(len(data))})
		return nil
	})
	return files, err
}

func (s storeConfig) read(c archive.ConfigFile) ([]byte, error) {
	data, _, err := store.ReadConfigFile(s.tx, c.Path)
	return data, err
}

// dirConfig is a configuration directory, read through an os.Root so that
// nothing outside it is ever read.
type dirConfig struct {
	root *os.Root
	dir  string
	// storeBase is the name of the store file when it lies directly in
	// dir: its own files there (see layout.Owned) are no configuration.
	storeBase string
}

// list lists the regular files below the directory, sorted by path.
// Symbolic links and special files are refused: a backup carries regular
// files only, and a link could point outside the directory.
func (d dirConfig) list() ([]archive.ConfigFile, error) {
	var files []archive.ConfigFile
	err := fs.WalkDir(d.root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.storeBase != "" && path.Dir(p) == "." && layout.Owned(d.storeBase, p) {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch t := de.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("configuration file %s is a symbolic link: a backup carries regular files only; replace the link with a copy of its target", filepath.Join(d.dir, p))
		case !t.IsRegular():
			return fmt.Errorf("configuration file %s is %s: a backup carries regular files only", filepath.Join(d.dir, p), atomicfile.Kind(t))
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		if info.Size() > archive.MaxConfigSize {
			return fmt.Errorf("configuration file %s is %d bytes, more than the %d a backup carries", filepath.Join(d.dir, p), info.Size(), archive.MaxConfigSize)
		}
		files = append(files, archive.ConfigFile{Path: p, Mode: info.Mode().Perm(), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading configuration directory %s: %w", d.dir, err)
	}
	slices.SortFunc(files, func(a, b archive.ConfigFile) int { return bytes.Compare([]byte(a.Path), []byte(b.Path)) })
	return files, nil
}

// read reads a listed file and checks it has not changed since listing.
func (d dirConfig) read(c archive.ConfigFile) ([]byte, error) {
	// O_NONBLOCK: a FIFO swapped in since the listing must not block the
	// open; it is then refused as not a regular file.
	f, err := d.root.OpenFile(filepath.FromSlash(c.Path), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || info.Mode().Perm() != c.Mode {
		return nil, errors.New("the file changed during the backup: run it again")
	}
	data, err := io.ReadAll(io.LimitReader(f, c.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != c.Size {
		return nil, errors.New("the file changed size during the backup: run it again")
	}
	return data, nil
}

// ConfigMode is the permission policy of restored configuration files:
// the recorded permission bits, never world-writable, always readable by
// the owner (the product reads its configuration). Archives carry
// permission bits only, so no setuid, setgid or sticky bit is restored.
func ConfigMode(recorded fs.FileMode) fs.FileMode {
	return recorded.Perm()&^0o002 | 0o400
}

// errNestedInConfig is the refusal of a backup whose reserved configuration
// table holds the nested table name: it is no configuration file, and a
// backup would otherwise leave it out without a word.
func errNestedInConfig(name []byte) error {
	return fmt.Errorf("the table %q holds the nested table %q, which is no configuration file (the reserved table holds configuration files only, and a backup carries them as files): move it out of %q and back up again", store.ConfigTable, name, store.ConfigTable)
}
