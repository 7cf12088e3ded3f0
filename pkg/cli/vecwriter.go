package cli

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// bigWrite is the size from which a write goes out without being copied.
const bigWrite = 64 << 10

// vecWriter writes to a file, gathering small writes in a buffer and
// sending each large one together with what is buffered before it in one
// writev: an image's record headers ride with the pages that follow them,
// and no page is copied on its way out.
type vecWriter struct {
	f   *os.File
	rc  syscall.RawConn // f's, once asked for
	buf []byte
	iov [][]byte
}

func newVecWriter(f *os.File) *vecWriter {
	return &vecWriter{f: f, buf: make([]byte, 0, bigWrite)}
}

// Write buffers p or writes it, with the buffer, at once. On error it
// returns how much of p was written.
func (v *vecWriter) Write(p []byte) (int, error) {
	if len(p) < bigWrite {
		if len(v.buf)+len(p) > cap(v.buf) {
			if err := v.Flush(); err != nil {
				return 0, err
			}
		}
		v.buf = append(v.buf, p...)
		return len(p), nil
	}
	buffered := len(v.buf)
	n, err := v.writev(v.buf, p)
	v.buf = v.buf[:0]
	return max(0, n-buffered), err
}

// Flush writes what is buffered.
func (v *vecWriter) Flush() error {
	_, err := v.writev(v.buf)
	v.buf = v.buf[:0]
	return err
}

// writev writes every byte of bufs, in order, and returns how many it
// wrote.
func (v *vecWriter) writev(bufs ...[]byte) (int, error) {
	v.iov = v.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v.iov = append(v.iov, b)
		}
	}
	if v.rc == nil {
		var err error
		if v.rc, err = v.f.SyscallConn(); err != nil {
			return 0, err
		}
	}
	total := 0
	for len(v.iov) > 0 {
		var n int
		var werr error
		err := v.rc.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.Writev(int(fd), v.iov)
				if werr != unix.EINTR {
					return werr != unix.EAGAIN
				}
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return total, &os.PathError{Op: "write", Path: v.f.Name(), Err: err}
		}
		if n == 0 {
			return total, &os.PathError{Op: "write", Path: v.f.Name(), Err: unix.EIO}
		}
		total += n
		for n > 0 && len(v.iov) > 0 {
			if n < len(v.iov[0]) {
				v.iov[0] = v.iov[0][n:]
				break
			}
			n -= len(v.iov[0])
			v.iov = v.iov[1:]
		}
	}
	return total, nil
}
