package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"github.com/hookreg/hookreg/hook"
)

// configFormat is the first byte of every value of [ConfigTable].
const configFormat byte = 1

// configHeader is the length of the header EncodeConfigFile writes.
const configHeader = 5

// EncodeConfigFile returns the [ConfigTable] value of a file: a format byte
// (1), the permission bits of mode as a 4-byte big-endian integer, then
// data.
func EncodeConfigFile(mode fs.FileMode, data []byte) []byte {
	v := make([]byte, configHeader+len(data))
	v[0] = configFormat
	binary.BigEndian.PutUint32(v[1:configHeader], uint32(mode.Perm()))
	copy(v[configHeader:], data)
	return v
}

// DecodeConfigFile reverses EncodeConfigFile. The returned data aliases v.
func DecodeConfigFile(v []byte) (fs.FileMode, []byte, error) {
	if len(v) < configHeader || v[0] != configFormat {
		return 0, nil, errors.New("decoding configuration file record: bad header")
	}
	return fs.FileMode(binary.BigEndian.Uint32(v[1:configHeader])).Perm(), v[configHeader:], nil
}

// ValidateConfigPath checks that path is a relative slash-separated file
// path without "." or ".." elements, as configuration files are addressed.
func ValidateConfigPath(path string) error {
	if path == "." || !fs.ValidPath(path) {
		return fmt.Errorf("invalid configuration file path %q: want a relative slash-separated path without . or .. elements", path)
	}
	return nil
}

// TableSource opens tables; every [Tx] is one.
type TableSource interface {
	Table(name string) (Table, error)
	CreateTable(name string) (Table, error)
}

// ConfigView returns the configuration files held in [ConfigTable] of src
// as a writable [hook.Config]: what a hook writes commits or rolls back with
// the transaction. The upgrade engine gives it to hooks of an offline run;
// the backup commands use it (and [ReadConfigFile]) to carry config/
// members in and out of the store.
func ConfigView(src TableSource) hook.Config {
	return configView{src}
}

// ReadConfigFile returns the content and permission bits of the file at
// path in [ConfigTable] of src, or an error wrapping fs.ErrNotExist.
func ReadConfigFile(src TableSource, path string) ([]byte, fs.FileMode, error) {
	if err := ValidateConfigPath(path); err != nil {
		return nil, 0, err
	}
	t, err := src.Table(ConfigTable)
	if errors.Is(err, hook.ErrNoTable) {
		return nil, 0, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, 0, err
	}
	v, err := t.Get([]byte(path))
	if errors.Is(err, hook.ErrNotFound) {
		return nil, 0, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, 0, err
	}
	mode, data, err := DecodeConfigFile(v)
	if err != nil {
		return nil, 0, fmt.Errorf("reading configuration file %s: %w", path, err)
	}
	return data, mode, nil
}

type configView struct{ src TableSource }

func (c configView) ReadFile(path string) ([]byte, error) {
	data, _, err := ReadConfigFile(c.src, path)
	return data, err
}

func (c configView) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := ValidateConfigPath(path); err != nil {
		return err
	}
	t, err := c.src.CreateTable(ConfigTable)
	if err != nil {
		return fmt.Errorf("writing configuration file %s: %w", path, err)
	}
	if err := t.Put([]byte(path), EncodeConfigFile(perm, data)); err != nil {
		return fmt.Errorf("writing configuration file %s: %w", path, err)
	}
	return nil
}

func (c configView) Remove(path string) error {
	if _, _, err := ReadConfigFile(c.src, path); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "remove"
		}
		return err
	}
	t, err := c.src.Table(ConfigTable)
	if err != nil {
		return fmt.Errorf("removing configuration file %s: %w", path, err)
	}
	if err := t.Delete([]byte(path)); err != nil {
		return fmt.Errorf("removing configuration file %s: %w", path, err)
	}
	return nil
}

func (c configView) List() ([]string, error) {
	t, err := c.src.Table(ConfigTable)
	if errors.Is(err, hook.ErrNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	err = t.Scan(nil, func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("the table %q holds the nested table %q, which is no configuration file: the reserved table holds configuration files only", ConfigTable, k)
		}
		paths = append(paths, string(k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing configuration files: %w", err)
	}
	return paths, nil
}
