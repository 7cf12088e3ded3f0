package restore

import (
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
)

// terminal is a terminal whose modes a restore changed, and what they
// were before.
type terminal struct {
	fd  int
	old unix.Termios
}

// takeTerminal gives the terminal on f the modes of t, the process's
// terminal at the dump: its input, output and local flags and control
// characters, not its cflag and line speeds, which belong to the
// terminal at hand. It does nothing, and returns nil, unless f is a
// terminal whose foreground process group is ours: setting another
// group's terminal would stop us (SIGTTOU), and a process restored in
// the background has no business with it.
func takeTerminal(f *os.File, t *format.Terminal) *terminal {
	fd := int(f.Fd())
	if !foreground(fd) {
		return nil
	}
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil
	}
	tio := *old
	tio.Iflag, tio.Oflag, tio.Lflag = t.Iflag, t.Oflag, t.Lflag
	copy(tio.Cc[:], t.Cc)
	if unix.IoctlSetTermios(fd, unix.TCSETS, &tio) != nil {
		return nil
	}
	return &terminal{fd: fd, old: *old}
}

// reset puts back the modes the terminal had before takeTerminal, if we
// are still in its foreground.
func (t *terminal) reset() {
	if t != nil && foreground(t.fd) {
		unix.IoctlSetTermios(t.fd, unix.TCSETS, &t.old)
	}
}

// foreground says whether fd is a terminal whose foreground process
// group is ours.
func foreground(fd int) bool {
	pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// terminal is the caller's terminal that stands for the process's: its
// standard stream of the number the image's terminal had, if that is a
// terminal, else the first of its standard streams that is one; nil if
// none is.
func (o *Options) terminal(img *format.Process) *os.File {
	streams := []*os.File{o.Stdin, o.Stdout, o.Stderr}
	if t := img.Terminal; t != nil && t.FD >= 0 && t.FD <= 2 {
		streams = append([]*os.File{streams[t.FD]}, streams...)
	}
	for _, f := range streams {
		if f == nil {
			continue
		}
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			return f
		}
	}
	return nil
}
