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
// Each record is uvarint(len(key)), key, uvarint(len(value)), value, table
// after table in the order counted. The file is unlinked as soon as it is
// created where the system allows it, so that a kill leaves nothing.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

// spoolBuffer is the size of the spool's write and read buffers.
const spoolBuffer = 1 << 20

// newSpool returns a spool for a backup of st in dir, or nil when st is
// read locally (or dir is empty): then the backup reads st twice. A
// store.Walker gives each table's records right after the table, before
// the tables nested in it, so the records spool table after table in the
// order counted, at every depth.
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

// copyTo writes the spooled records of tables into aw, in order.
func (s *spool) copyTo(tables []archive.TableInfo, aw *archive.Writer, prog *progress) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spooling the records: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the spooled records: %w", err)
	}
	r := bufio.NewReaderSize(s.f, spoolBuffer)
	var key, value []byte
	var err error
	for _, t := range tables {
		if err := aw.Table(append(t.Parent[:len(t.Parent):len(t.Parent)], t.Name)...); err != nil {
			return err
		}
		for range t.Records {
			if key, err = readSpooled(r, key); err != nil {
				return err
			}
			if value, err = readSpooled(r, value); err != nil {
				return err
			}
			prog.add(1)
			if err := aw.Record(key, value); err != nil {
				return err
			}
		}
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return errors.New("reading the spooled records: more records than counted")
	}
	return nil
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
