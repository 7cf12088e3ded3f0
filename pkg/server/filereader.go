package server

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"procs/pkg/directio"
)

const (
	// readAhead is how many readBufSize pieces of an image are read
	// ahead of the connection that sends them.
	readAhead   = 4
	readBufSize = 2 << 20
)

// readBufPool holds readBufSize buffers aligned for O_DIRECT.
var readBufPool = sync.Pool{New: func() any { return alignedBuf(readBufSize, directio.Align) }}

// plainGet reports whether r is a GET that wants the whole image, with
// no range or condition: the case that streamDirect serves.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, h := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

// streamDirect sends the whole of f, opened with O_DIRECT, read in pieces
// of readBufSize by a goroutine that keeps readAhead of them ahead of
// the connection: the disk and the network work at once, and the image
// does not fill the page cache with fresh pages on its way (an image is
// usually fetched once). It returns the bytes sent.
func streamDirect(w http.ResponseWriter, f *os.File, size int64, mod time.Time) (int64, error) {
	type piece struct {
		b   []byte
		err error
	}
	full := make(chan piece, readAhead)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(full)
		var off int64
		for off < size {
			b := readBufPool.Get().([]byte)
			n, err := f.ReadAt(b[:cap(b)], off)
			if err == io.EOF && off+int64(n) >= size {
				err = nil
			}
			if n == 0 && err == nil {
				err = io.ErrUnexpectedEOF
			}
			off += int64(n)
			select {
			case full <- piece{b[:n], err}:
			case <-stop:
				readBufPool.Put(b)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	h := w.Header()
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	var sent int64
	var err error
	for p := range full {
		if err == nil {
			err = p.err
		}
		if err == nil {
			p.b = p.b[:min(int64(len(p.b)), size-sent)]
			var n int
			n, err = w.Write(p.b)
			sent += int64(n)
		}
		readBufPool.Put(p.b[:cap(p.b)])
		if err != nil {
			break
		}
	}
	// On an error the goroutine is stopped by close(stop); the pieces it
	// read ahead are left to the garbage collector.
	return sent, err
}
