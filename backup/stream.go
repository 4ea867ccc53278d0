package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// WriteTo writes the backup of st (see [Backup]) to w, a pipe or any
// other stream that cannot be renamed into place: a failure leaves w with
// a partial archive, which every reader refuses (it ends before its
// SHA256SUMS). When ctx is canceled WriteTo stops at its next write and
// returns an error wrapping [ErrInterrupted].
func WriteTo(ctx context.Context, st store.Store, reg *hook.Registry, w io.Writer, opts Options) (*archive.Manifest, error) {
	bw := bufio.NewWriterSize(ctxWriter{ctx, w}, writeBuffer)
	m, err := Backup(st, reg, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("backing up: %w", interrupted(cerr))
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Spool copies r (a pipe) to a new private file in dir (the system's
// temporary directory when empty) and returns it open at its start, for
// the commands that read an archive twice. The file is unlinked at once
// where the system allows, so that it disappears with the process however
// it ends; elsewhere closing it removes it. Memory: one copy buffer.
func Spool(ctx context.Context, r io.Reader, dir string) (*Spooled, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, ".hookreg-spool-*")
	if err != nil {
		return nil, envErrorf("spooling standard input: %w", err)
	}
	s := &Spooled{File: f, name: f.Name()}
	if os.Remove(f.Name()) == nil {
		s.name = ""
	}
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		s.Close()
		if errors.Is(err, ErrInterrupted) {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return nil, envErrorf("spooling standard input: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.Close()
		return nil, envErrorf("spooling standard input: %w", err)
	}
	return s, nil
}

// Spooled is the private file of [Spool].
type Spooled struct {
	*os.File
	name string // still to remove on Close
}

// Close closes the file and removes it where it was not unlinked yet.
func (s *Spooled) Close() error {
	err := s.File.Close()
	if s.name != "" {
		os.Remove(s.name)
	}
	return err
}
