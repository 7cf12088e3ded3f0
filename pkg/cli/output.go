package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"procs/pkg/directio"
)

// ErrTerminal is the refusal to write an image to a terminal.
var ErrTerminal = errors.New("refusing to write an image to a terminal")

// Output is where an image goes: stdout, or a file that appears under its
// name only once the whole image is in it (Commit). It is an io.Writer
// that is unusable after its first error.
type Output struct {
	Name string // "-" for stdout, else the path given

	f      *os.File
	out    sink
	path   string // final path of a temp file; "" when writing to f in place
	tmp    string // named temp file, removed by Abort; "" for an unnamed one (see tempfile.go)
	start  int64  // stdout's offset at open when it is a regular file; -1 otherwise
	err    error  // first error
	closed bool
}

// OpenOutput opens name for an image: "" or "-" means stdout, which must
// not be a terminal. A regular file (or a new name) is written as a temp
// file in the same directory, unnamed where the file system allows it,
// that Commit puts in name's place (see tempfile.go); anything else (a
// device, a FIFO) is written in place.
func OpenOutput(name string, stdout *os.File) (*Output, error) {
	if name == "" || name == "-" {
		if IsTerminal(stdout) {
			return nil, WithHint(ErrTerminal, "use -o FILE or redirect stdout")
		}
		if closedAtStart(stdout) {
			return nil, WithHint(ErrClosedStdout, "use -o FILE or redirect stdout")
		}
		o := &Output{Name: "-", f: stdout, start: -1}
		GrowPipe(stdout)
		if st, err := stdout.Stat(); err == nil && st.Mode().IsRegular() {
			fl, err := unix.FcntlInt(stdout.Fd(), unix.F_GETFL, 0)
			if err == nil && fl&unix.O_APPEND == 0 {
				if off, err := stdout.Seek(0, 1); err == nil {
					o.start = off
				}
			}
		}
		o.out = openSink(o.f, o.start, true)
		return o, nil
	}
	o := &Output{Name: name, start: -1}
	target := name
	mode := fs.FileMode(0o600) // an image holds process memory: private by default
	if st, err := os.Stat(name); err == nil {
		if !st.Mode().IsRegular() {
			if st.IsDir() {
				return nil, fmt.Errorf("%s: is a directory", name)
			}
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			o.f = f
			o.out = newVecWriter(f)
			return o, nil
		}
		mode = st.Mode().Perm()
		if t, err := filepath.EvalSymlinks(name); err == nil {
			target = t
		}
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	removeStale(dir)
	f, tmp, err := createTemp(dir, base, mode)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	if err := f.Chmod(mode); err != nil { // as asked, whatever the umask
		f.Close()
		if tmp != "" {
			os.Remove(tmp)
		}
		return nil, err
	}
	o.f, o.path, o.tmp = f, target, tmp
	o.out = openSink(f, 0, false)
	return o, nil
}

// sink is what an Output writes through.
type sink interface {
	io.Writer
	// Flush writes what is held back. A direct sink also ends direct
	// mode, and is not used after.
	Flush() error
}

// openSink returns the sink for f. A regular file being written from
// offset start (-1: not a regular file, or appended to) at a block
// boundary is written straight to the disk (see directio), as it will be
// fsynced anyway: faster, and the machine's page cache is left to others.
// Anything else, or a file system without O_DIRECT, gets a vecWriter.
//
// shared says f's open file description may be someone else's too (a
// shell's redirection): its flags are then left alone, and the file is
// opened again, through /proc/self/fd, for a description of our own.
func openSink(f *os.File, start int64, shared bool) sink {
	if start < 0 || start%directio.Align != 0 {
		return newVecWriter(f)
	}
	d := &directSink{f: f}
	if shared {
		// Only a description open for writing may be opened again for
		// writing: never turn a read-only stdout into a writable one.
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_ACCMODE == unix.O_RDONLY {
			return newVecWriter(f)
		}
		df, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err != nil {
			return newVecWriter(f)
		}
		if _, err := df.Seek(start, io.SeekStart); err != nil {
			df.Close()
			return newVecWriter(f)
		}
		d.own = df
	} else if directio.SetDirect(f, true) != nil {
		return newVecWriter(f)
	}
	target := d.f
	if d.own != nil {
		target = d.own
	}
	d.w = directio.NewWriter(target, true, start)
	return d
}

// directSink writes a file in O_DIRECT mode through a directio.Writer.
type directSink struct {
	w       *directio.Writer
	f       *os.File // the output
	own     *os.File // f opened again, when f's description is shared
	flushed bool
	err     error // what Flush returned
}

func (d *directSink) Write(p []byte) (int, error) { return d.w.Write(p) }

// Flush writes the rest and ends direct mode: f is left at the end of
// what was written, as if written through it. Later calls return what
// the first returned.
func (d *directSink) Flush() error {
	if d.flushed {
		return d.err
	}
	d.flushed = true
	d.err = d.w.Close()
	var err error
	if d.own == nil {
		err = directio.SetDirect(d.f, false)
	} else {
		var end int64
		if end, err = d.own.Seek(0, io.SeekCurrent); err == nil {
			_, err = d.f.Seek(end, io.SeekStart)
		}
		d.own.Close()
	}
	if d.err == nil {
		d.err = err
	}
	return d.err
}

// unwrapPath drops the *PathError layer whose path is a temp file name the
// user never gave.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Write writes p to the output.
func (o *Output) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.closed {
		return 0, errors.New("write to a committed output")
	}
	n, err := o.out.Write(p)
	if err != nil {
		o.err = o.wrap(err)
	}
	return n, o.err
}

func (o *Output) wrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if o.Name == "-" {
		return fmt.Errorf("write to stdout: %w", err)
	}
	return fmt.Errorf("write %s: %w", o.Name, err)
}

// Commit makes the image durable and visible: it flushes the buffer,
// fsyncs a file (also stdout when it is a regular file), gives the temp
// file the name (putInPlace) and fsyncs the directory. After Commit the output
// is closed (stdout is flushed but left open).
func (o *Output) Commit() error {
	if o.err != nil {
		return o.err
	}
	if o.closed {
		return nil
	}
	if err := o.out.Flush(); err != nil {
		o.err = o.wrap(err)
		return o.err
	}
	if st, err := o.f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := o.f.Sync(); err != nil {
			o.err = o.wrap(err)
			return o.err
		}
	}
	if o.Name == "-" {
		o.closed = true
		return nil
	}
	err := o.putInPlace()
	if cerr := o.f.Close(); err == nil && cerr != nil {
		err = o.wrap(cerr)
	}
	o.err, o.closed = err, true
	return err
}

// putInPlace gives the written file its name (a device or FIFO written in
// place has it already) and fsyncs the directory. f stays open, and
// locked, meanwhile.
func (o *Output) putInPlace() error {
	if o.path == "" {
		return nil
	}
	var err error
	if o.tmp != "" {
		if err = os.Rename(o.tmp, o.path); err != nil {
			os.Remove(o.tmp)
		}
		o.tmp = ""
	} else {
		err = linkTemp(o.f, o.path)
	}
	if err != nil {
		return fmt.Errorf("rename to %s: %w", o.Name, unwrapPath(err))
	}
	return syncDir(filepath.Dir(o.path))
}

// Committed reports whether Commit succeeded.
func (o *Output) Committed() bool { return o.closed && o.err == nil }

// Abort gives up the output: a temp file is removed, and stdout, when it
// is a regular file opened by the shell, is cut back to where it was at
// open. It does nothing after a successful Commit.
func (o *Output) Abort() {
	if o.closed {
		return
	}
	o.closed = true
	if o.err == nil {
		o.err = errors.New("output aborted")
	}
	o.out.Flush() // ends direct mode; what it writes is cut below
	if o.Name == "-" {
		if o.start >= 0 {
			o.f.Truncate(o.start)
			o.f.Seek(o.start, 0)
		}
		return
	}
	if o.tmp != "" {
		os.Remove(o.tmp)
		o.tmp = ""
	}
	o.f.Close() // an unnamed file goes with it
}

// Close aborts the output unless it was committed.
func (o *Output) Close() error {
	o.Abort()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// GrowPipe makes f's pipe buffer 1 MiB (the most an unprivileged process
// may ask) when f is a pipe: large images then move with fewer context
// switches. Errors are ignored: the pipe just stays as it was.
func GrowPipe(f *os.File) {
	if st, err := f.Stat(); err == nil && st.Mode()&fs.ModeNamedPipe != 0 {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
}

// ErrClosedStdout is returned by OpenOutput for a standard output that
// was closed when the command started.
var ErrClosedStdout = errors.New("standard output is closed")

// closedAtStart says whether f (standard output) was closed when the
// program started. The Go runtime then opens /dev/null in its place,
// read-write, and an image written there would be lost, with the process
// killed after it. A shell's ">/dev/null" opens it write-only, so a
// read-write /dev/null is taken for a closed output (and "1<>/dev/null"
// refused with it).
func closedAtStart(f *os.File) bool {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		return false
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE == unix.O_RDWR
}
