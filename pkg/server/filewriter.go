package server

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The buffers between an upload and its file: the upload goes on arriving
// and being checked while earlier pieces are written.
const (
	writeBufSize = 2 << 20
	writeBufs    = 4
	directAlign  = 4096 // offset, length and address alignment of O_DIRECT
)

// writeBufPool holds writeBufSize buffers aligned for O_DIRECT.
var writeBufPool = sync.Pool{New: func() any { return alignedBuf(writeBufSize, directAlign) }}

// fileWriter writes an upload to its temporary file in pieces of
// writeBufSize, from a goroutine of its own, so that the file's writes
// overlap the reading and checking of the upload. Its memory is writeBufs
// buffers whatever the size of the image.
//
// When the file was opened with O_DIRECT the pieces go straight to the
// disk: the image does not go through the page cache (a copy, and fresh
// pages to fill, for data that must reach the disk before the upload is
// acknowledged anyway). Close pads the last piece to a block and truncates
// the file to its length. A file system that refuses O_DIRECT writes gets
// ordinary ones.
//
// Write errors are remembered: a full disk must not be reported as a bad
// image.
type fileWriter struct {
	f      *os.File
	direct bool
	buf    []byte      // being filled
	full   chan []byte // to the writing goroutine
	free   chan []byte // back from it
	done   chan struct{}
	n      int64 // bytes accepted by Write

	mu  sync.Mutex
	err error
}

func newFileWriter(f *os.File, direct bool) *fileWriter {
	w := &fileWriter{
		f:      f,
		direct: direct,
		full:   make(chan []byte, writeBufs),
		free:   make(chan []byte, writeBufs),
		done:   make(chan struct{}),
	}
	for range writeBufs {
		w.free <- writeBufPool.Get().([]byte)[:0]
	}
	go w.loop()
	return w
}

func (w *fileWriter) loop() {
	defer close(w.done)
	for b := range w.full {
		if w.Err() == nil {
			if err := w.write(b); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		w.free <- b[:0]
	}
}

// write writes one piece; a short last piece is padded to a block when
// writing directly.
func (w *fileWriter) write(b []byte) error {
	if w.direct {
		p := b
		if r := len(p) % directAlign; r != 0 {
			p = p[:len(p)+directAlign-r]
			clear(p[len(b):])
		}
		_, err := w.f.Write(p)
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		// No O_DIRECT here after all (nothing was written).
		if err := w.buffered(); err != nil {
			return err
		}
	}
	_, err := w.f.Write(b)
	return err
}

// buffered turns O_DIRECT off.
func (w *fileWriter) buffered() error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		var fl int
		if fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr == nil {
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_DIRECT)
		}
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	w.direct = false
	return nil
}

// Err returns the first write error.
func (w *fileWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if err := w.Err(); err != nil {
			return n - len(p), err
		}
		if w.buf == nil {
			w.buf = <-w.free
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		w.n += int64(c)
		p = p[c:]
		if len(w.buf) == cap(w.buf) {
			w.full <- w.buf
			w.buf = nil
		}
	}
	return n, nil
}

// Close writes what is buffered, stops the writing goroutine, trims the
// padding of a direct last write and returns the first write error. It
// does not close the file. The buffers go back to the pool.
func (w *fileWriter) Close() error {
	if len(w.buf) > 0 {
		w.full <- w.buf
	} else if w.buf != nil {
		w.free <- w.buf
	}
	w.buf = nil
	close(w.full)
	<-w.done
	for range writeBufs {
		writeBufPool.Put(<-w.free)
	}
	err := w.Err()
	if err == nil && w.n%directAlign != 0 {
		if fi, serr := w.f.Stat(); serr != nil {
			err = serr
		} else if fi.Size() != w.n {
			err = w.f.Truncate(w.n)
		}
	}
	return err
}
