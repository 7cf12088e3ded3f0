package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// namedPipe is a named pipe (a FIFO, mkfifo(3)), opened again at its path
// like a file, and checked to be the same one. Opened for reading or
// writing (not only O_PATH), it carries what a pipe does (File.Pipe):
// its size and the bytes no one had read, read without taking them
// (dumpUnread). The loader opens it for reading and writing (a named
// pipe so opened never waits for the other end) to fill it and to hold
// it until the processes have their ends, which it opens from it as the
// process. A named pipe that already holds bytes at the restore (another
// process has it open: the original of a -K copy) is refused rather than
// given them twice; one that a process outside the tree holds at the dump
// is refused by name (pipe's CheckTree).
type namedPipe struct{}

func (namedPipe) Name() string { return format.FileFIFO }

func (namedPipe) Match(fd *procfs.FD, _ Terminals) bool { return fd.Kind == procfs.FileFIFO }

func (namedPipe) Traits() Traits {
	return Traits{Shared: true, ByPath: true, Stdio: true, OPath: procfs.FileFIFO, Mode: unix.S_IFIFO}
}

// Dump records the unread bytes, for an fd open for reading or writing.
func (namedPipe) Dump(src Source, fd *procfs.FD, idx int) error {
	if fd.Flags&unix.O_PATH != 0 {
		return nil
	}
	return dumpUnread(src, fd, idx)
}

func (namedPipe) Prepare(l Loader, i int, f *format.File, what string) error {
	if err := l.OpenByPath(i, f, what); err != nil || f.Pipe == nil {
		return err // only O_PATH fds have it: nothing opens it
	}
	// With the loader's rights: the process never gets this one.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", l.Local(i).Fd()), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: named pipe %s: %w", what, safetext.Quote(f.Path), err)
	}
	keeper := os.NewFile(uintptr(fd), f.Path)
	l.Keep(keeper)
	// FIONREAD, which x/sys/unix names TIOCINQ.
	if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil || n > 0 {
		return fmt.Errorf("%s: named pipe %s holds %d bytes already: another process has it open (%v)", what, safetext.Quote(f.Path), n, err)
	}
	return fillPipe(l, keeper, f.Pipe, "named pipe "+safetext.Quote(f.Path))
}

// Validate checks the named pipe's size and bytes, when it has them.
func (namedPipe) Validate(fs []format.File, i int, _ []format.Process) error {
	if st := fs[i].Pipe; st != nil {
		return validPipe(st, i)
	}
	return nil
}
