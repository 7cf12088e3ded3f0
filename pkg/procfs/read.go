package procfs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// bufPool holds read buffers; a buffer grows to the largest file read
// through it and is reused.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { *b = (*b)[:0]; bufPool.Put(b) }

// readInto reads the whole file at path into (*buf)[:0], growing it as
// needed, and returns the bytes read. /proc files are read with read(2)
// until it returns 0: seq_file files return a page or so per call.
func readInto(path string, buf *[]byte) ([]byte, error) {
	fd, err := openRetry(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b := (*buf)[:0]
	for {
		if cap(b)-len(b) < 4096 {
			nb := make([]byte, len(b), 2*cap(b)+4096)
			copy(nb, b)
			b = nb
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			*buf = b
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	*buf = b
	return b, nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// readString reads a small file and returns its contents as a string.
func readString(path string) (string, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func pidPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

func taskPath(pid, tid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/" + name
}

// nextLine returns the first line of b (without '\n') and the rest.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+1:]
}

// field returns the first field of b separated by spaces or tabs, and
// the rest after it.
func field(b []byte) (f, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n') {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n') {
		j--
	}
	return b[i:j]
}

var errSyntax = errors.New("syntax error")

// parseUint parses b in the given base without allocating.
func parseUint(b []byte, base int) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if int(d) >= base {
			return 0, false
		}
		n1 := n*uint64(base) + uint64(d)
		if n1/uint64(base) != n { // overflow
			return 0, false
		}
		n = n1
	}
	return n, true
}

func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	u, ok := parseUint(b, 10)
	if !ok || u > 1<<63 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	if u == 1<<63 {
		return 0, false
	}
	return int64(u), true
}

// parseError describes a line of a /proc file that could not be parsed.
func parseError(path string, line []byte) error {
	return &os.PathError{Op: "parse", Path: path, Err: errors.New("bad line " + strconv.Quote(string(line)))}
}
