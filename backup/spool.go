package backup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
)

// spool holds the records a backup of a remote store read while counting
// them (see [store.RemoteReader]), so that it copies them into the
// archive from a local file instead of reading the store a second time.
// Each record is uvarint(len(key)), key, uvarint(len(value)), value; a
// table starts with a 0 byte, 1, uvarint(len(path)), each name as a
// field, uvarint(sequence), and ends with a 0 byte and 2: the order
// counted, as the archive's table stream. The file is unlinked as soon as it is
// created where the system allows it, so that a kill leaves nothing.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

// spoolBuffer is the size of the spool's write and read buffers.
const spoolBuffer = 1 << 20

// newSpool returns a spool for a backup of st in dir, or nil when st is
// read locally (or dir is empty): then the backup reads st twice.
func newSpool(st store.Store, tx store.Tx, dir string) (*spool, error) {
	r, ok := st.(store.RemoteReader)
	if !ok || !r.ReadsAreRemote() || dir == "" {
		return nil, nil
	}
	f, err := os.CreateTemp(dir, ".hookreg-spool-*")
	if err != nil {
		return nil, cliflag.Env(fmt.Errorf("creating the spool file: %w", err))
	}
	os.Remove(f.Name()) // fails on Windows while open: then close removes it
	return &spool{f: f, w: bufio.NewWriterSize(f, spoolBuffer)}, nil
}

// put appends a record.
func (s *spool) put(key, value []byte) error {
	s.buf = binary.AppendUvarint(s.buf[:0], uint64(len(key)))
	s.buf = append(s.buf, key...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(value)))
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	if _, err := s.w.Write(value); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	return nil
}

// table appends the start of a table.
func (s *spool) table(path []string, sequence uint64) error {
	s.buf = append(s.buf[:0], 0, 1)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(path)))
	for _, name := range path {
		s.buf = binary.AppendUvarint(s.buf, uint64(len(name)))
		s.buf = append(s.buf, name...)
	}
	s.buf = binary.AppendUvarint(s.buf, sequence)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	return nil
}

// end appends the end of the current table.
func (s *spool) end() error {
	if _, err := s.w.Write([]byte{0, 2}); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	return nil
}

// copyTo writes the spooled tables and records into aw, in order.
func (s *spool) copyTo(aw *archive.Writer, prog *Progress) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the spooled records: %w", err)
	}
	r := bufio.NewReaderSize(s.f, spoolBuffer)
	var key, value []byte
	var path []string
	for {
		b, err := r.Peek(1)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the spooled records: %w", err)
		}
		if b[0] == 0 {
			if path, err = s.entry(r, aw, path); err != nil {
				return err
			}
			continue
		}
		if key, err = readSpooled(r, key); err != nil {
			return err
		}
		if value, err = readSpooled(r, value); err != nil {
			return err
		}
		prog.Add(1)
		if err := aw.Record(key, value); err != nil {
			return err
		}
	}
}

// entry replays the start or end of a table; path is the current table's.
func (s *spool) entry(r *bufio.Reader, aw *archive.Writer, path []string) ([]string, error) {
	var kind [2]byte
	if _, err := io.ReadFull(r, kind[:]); err != nil {
		return nil, fmt.Errorf("reading the spooled records: %w", err)
	}
	switch kind[1] {
	case 1:
		n, err := binary.ReadUvarint(r)
		if err != nil || n == 0 || n > archive.MaxTablePathLen {
			return nil, fmt.Errorf("reading the spooled records: bad table path (%v)", err)
		}
		path = path[:0]
		var name []byte
		for range n {
			if name, err = readSpooled(r, name); err != nil {
				return nil, err
			}
			path = append(path, string(name))
		}
		seq, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("reading the spooled records: %w", err)
		}
		return path, aw.StartTable(path, seq)
	case 2:
		if len(path) > 0 {
			path = path[:len(path)-1]
		}
		return path, aw.EndTable()
	}
	return nil, fmt.Errorf("reading the spooled records: unknown entry %d", kind[1])
}

// readSpooled reads one length-prefixed field into buf. A length beyond
// any record the archive can hold means a damaged spool file (the backup
// refuses larger records before they reach it).
func readSpooled(r *bufio.Reader, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err == nil && n > archive.MaxChunkSize {
		err = fmt.Errorf("a field of %d bytes, over %d", n, archive.MaxChunkSize)
	}
	if err == nil {
		buf = slices.Grow(buf[:0], int(n))[:n]
		_, err = io.ReadFull(r, buf)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the spooled records: %w", err)
	}
	return buf, nil
}

// close removes the spool.
func (s *spool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}
