package dump

import (
	"golang.org/x/sys/unix"

	"procs/format"
)

// terminalOf returns the state of the terminal that is fd of process pid,
// or nil if that fd is no terminal. It looks through a
// duplicate of the process's own fd (pidfd_getfd), so it opens nothing:
// no terminal can become procs-dump's controlling one, and the process's
// file description is only read.
func terminalOf(pid, fd int) *format.Terminal {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(dup)
	tio, err := unix.IoctlGetTermios(dup, unix.TCGETS)
	if err != nil {
		return nil // not a terminal (ENOTTY)
	}
	t := &format.Terminal{FD: fd, Iflag: tio.Iflag, Oflag: tio.Oflag, Cflag: tio.Cflag,
		Lflag: tio.Lflag, Line: tio.Line, Cc: tio.Cc[:]}
	if ws, err := unix.IoctlGetWinsize(dup, unix.TIOCGWINSZ); err == nil {
		t.Rows, t.Cols = ws.Row, ws.Col
	}
	return t
}
