// Package atomicfile replaces a file so that a reader or a crash never sees
// it partial: the data goes to a temporary file in the same directory,
// which is synced and renamed into place, and the directory is synced.
//
//	if err := atomicfile.Write("registry.yaml", data, 0o644); err != nil {
//		return err
//	}
//
// For data written as a stream, [Create] returns the temporary file and
// [File.Commit] puts it in place:
//
//	f, err := atomicfile.Create("backup.tar.zst")
//	if err != nil {
//		return err
//	}
//	defer f.Abort()
//	if _, err := io.Copy(f, src); err != nil {
//		return err
//	}
//	return f.Commit()
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces the file at path with data and permissions perm. On error
// the file at path is unchanged and no temporary file is left.
func Write(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// File is a file written beside its destination under a temporary name
// (".NAME.tmp-*" in the same directory) and renamed into place by
// [File.Commit], so that the destination is either its old self (or
// absent) or complete, never partial.
type File struct {
	*os.File
	dst       string
	committed bool
}

// Create creates the temporary file for dst, mode 0600, in dst's directory.
func Create(dst string) (*File, error) {
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file beside %s: %w", dst, err)
	}
	return &File{File: f, dst: dst}, nil
}

// Commit syncs the file, renames it to its destination and syncs the
// directory.
func (f *File) Commit() error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), f.dst); err != nil {
		return fmt.Errorf("renaming %s into place: %w", f.dst, err)
	}
	f.committed = true
	return SyncDir(filepath.Dir(f.dst))
}

// Abort removes the temporary file unless it was committed; it can be
// deferred.
func (f *File) Abort() {
	if !f.committed {
		f.Close()
		os.Remove(f.Name())
	}
}

// SyncDir fsyncs a directory, so that a rename or a creation in it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// Kind names the type of a file that is not a regular file, for errors:
// "a directory", "a named pipe (FIFO)", "a device", "a socket", "a
// symbolic link"; "not a regular file" for anything else.
func Kind(mode fs.FileMode) string {
	switch t := mode.Type(); {
	case t.IsDir():
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}
