package archive

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// frameSize is the uncompressed size of every zstd frame of an archive but
// the last. The Writer compresses each frame on its own, so that both
// cores compress; a frame is an independent zstd frame, and the archive is
// their concatenation (FORMAT.md allows one or more frames). The bytes
// depend on the input and frameSize only: the same on every machine,
// whatever the number of cores.
const frameSize = 2 << 20

// frameWorkers is the number of frames compressed at once; framesAhead
// bounds the frames in flight (read, compressing or waiting to be written),
// and so the memory: buffers for about 2 × framesAhead + frameWorkers
// frames, each reused.
const (
	frameWorkers = 2
	framesAhead  = 2
)

// frameEncoder is an io.WriteCloser that cuts its input into frames of
// frameSize bytes, compresses them on frameWorkers goroutines and writes
// the compressed frames to w in order.
type frameEncoder struct {
	w       io.Writer
	buf     []byte
	todo    chan *frame // to the workers
	order   chan *frame // to the writer goroutine, in input order
	written chan error  // the writer goroutine's result
	free    chan []byte // input buffers to reuse
	freeOut chan []byte // output buffers to reuse
	workers sync.WaitGroup
	frames  int
	err     error
	failed  atomic.Pointer[error] // the writer goroutine's error, seen early
}

type frame struct {
	in, out []byte
	err     error
	done    chan struct{}
}

func newFrameEncoder(w io.Writer, workers int, opts ...zstd.EOption) (*frameEncoder, error) {
	e := &frameEncoder{
		w:       w,
		todo:    make(chan *frame, framesAhead),
		order:   make(chan *frame, framesAhead),
		written: make(chan error, 1),
		free:    make(chan []byte, 2*framesAhead+frameWorkers),
		freeOut: make(chan []byte, 2*framesAhead+frameWorkers),
	}
	opts = append(opts[:len(opts):len(opts)], zstd.WithEncoderConcurrency(1))
	var encs []*zstd.Encoder
	for range workers {
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			return nil, err
		}
		encs = append(encs, enc)
	}
	for _, enc := range encs {
		e.workers.Add(1)
		go func() {
			defer e.workers.Done()
			for f := range e.todo {
				select {
				case f.out = <-e.freeOut:
				default:
				}
				f.out = enc.EncodeAll(f.in, f.out[:0])
				close(f.done)
			}
		}()
	}
	go e.write()
	return e, nil
}

// write writes the compressed frames in order; after an error it drains
// the rest.
func (e *frameEncoder) write() {
	var err error
	for f := range e.order {
		<-f.done
		if err == nil {
			if _, err = e.w.Write(f.out); err != nil {
				e.failed.Store(&err)
			}
		}
		select {
		case e.free <- f.in[:0]:
		default:
		}
		select {
		case e.freeOut <- f.out[:0]:
		default:
		}
	}
	e.written <- err
}

func (e *frameEncoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.failed.Load(); err != nil {
		return 0, *err
	}
	n := len(p)
	for len(p) > 0 {
		if e.buf == nil {
			select {
			case e.buf = <-e.free:
			default:
				e.buf = make([]byte, 0, frameSize)
			}
		}
		k := min(len(p), frameSize-len(e.buf))
		e.buf = append(e.buf, p[:k]...)
		p = p[k:]
		if len(e.buf) == frameSize {
			e.flush()
		}
	}
	return n, nil
}

// flush hands the buffered input to the workers as one frame.
func (e *frameEncoder) flush() {
	f := &frame{in: e.buf, done: make(chan struct{})}
	e.buf = nil
	e.frames++
	e.order <- f
	e.todo <- f
}

// Close compresses what is left (an empty frame when nothing was written),
// waits for every frame to be written and returns the first write error.
func (e *frameEncoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if len(e.buf) > 0 || e.frames == 0 {
		if e.buf == nil {
			e.buf = []byte{}
		}
		e.flush()
	}
	e.stop()
	if err := <-e.written; err != nil {
		e.err = err
		return err
	}
	e.err = errors.New("zstd encoder closed")
	return nil
}

// Abort stops the goroutines without waiting for the output.
func (e *frameEncoder) Abort() {
	if e.err == nil {
		e.err = errors.New("zstd encoder aborted")
		e.stop()
		<-e.written
	}
}

func (e *frameEncoder) stop() {
	close(e.todo)
	close(e.order)
	e.workers.Wait()
}
