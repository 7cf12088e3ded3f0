package restore

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"procs/format"
)

// terminal is a terminal whose modes a restore changed, and what they
// were before; and the process group of the restored process, if it was
// given the terminal's foreground.
type terminal struct {
	fd   int
	old  unix.Termios
	pgrp int
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

// reset takes back the foreground given to the process's group and puts
// back the modes the terminal had before takeTerminal, if we are still
// in its foreground.
func (t *terminal) reset() {
	if t == nil {
		return
	}
	t.takeBack()
	if foreground(t.fd) {
		unix.IoctlSetTermios(t.fd, unix.TCSETS, &t.old)
	}
}

// giveForeground makes process group pgrp the terminal's foreground, as a
// shell does for a job, and remembers it for takeBack and giveBack.
// Precondition: we are in the foreground.
func (t *terminal) giveForeground(pgrp int) error {
	// Setting a terminal's foreground from the background, as takeBack
	// does, would stop us with SIGTTOU, as it stops a shell's job; a
	// shell ignores it, and so do we from here on.
	signal.Ignore(unix.SIGTTOU)
	if err := unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgrp); err != nil {
		return os.NewSyscallError("tcsetpgrp", err)
	}
	t.pgrp = pgrp
	return nil
}

// takeBack makes our process group the terminal's foreground again if
// the process's group has it.
func (t *terminal) takeBack() {
	if !t.given() {
		return
	}
	if pg, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP); err == nil && pg == t.pgrp {
		unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, unix.Getpgrp())
	}
}

// given says whether the process's group was given the terminal's
// foreground (it then leads a group of its own).
func (t *terminal) given() bool { return t != nil && t.pgrp != 0 }

// giveBack gives the process's group the foreground again, after takeBack,
// if we have it (a shell's fg, not bg, went on with us). It says whether
// it did.
func (t *terminal) giveBack() bool {
	return t.given() && foreground(t.fd) && unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, t.pgrp) == nil
}

// foreground says whether fd is a terminal whose foreground process
// group is ours.
func foreground(fd int) bool {
	pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// modesTerminal is the caller's terminal that gets the image's terminal
// modes: its standard stream of the number the image's terminal had, if
// that is a terminal (the process has it as that fd); when the image's
// terminal was on an fd above 2, the caller's terminal (o.terminal).
func (o *Options) modesTerminal(img *format.Process) *os.File {
	t := img.Terminal
	if t == nil || t.FD > 2 {
		return o.terminal(img)
	}
	if t.FD < 0 || !isTerminal(o.streams()[t.FD]) {
		return nil
	}
	return o.streams()[t.FD]
}

// terminal is the caller's terminal that stands for the process's: its
// standard stream of the number the image's terminal had, if that is a
// terminal, else the first of its standard streams that is one; nil if
// none is.
func (o *Options) terminal(img *format.Process) *os.File {
	streams := o.streams()
	if t := img.Terminal; t != nil && t.FD >= 0 && t.FD <= 2 {
		streams = append([]*os.File{streams[t.FD]}, streams...)
	}
	for _, f := range streams {
		if isTerminal(f) {
			return f
		}
	}
	return nil
}

// streams are the caller's standard streams, the process's fds 0, 1, 2.
func (o *Options) streams() []*os.File { return []*os.File{o.Stdin, o.Stdout, o.Stderr} }

// isTerminal says whether f is open and a terminal.
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
