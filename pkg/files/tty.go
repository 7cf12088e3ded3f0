package files

import (
	"procs/format"
	"procs/pkg/procfs"
)

// tty is the process's own terminal (its controlling terminal, or one
// on fds 0-2): wherever the process is restored, it is the restorer's
// terminal. Its modes travel apart (Process.Terminal).
type tty struct{}

func (tty) Name() string { return format.FileTTY }

func (tty) Match(fd *procfs.FD, ts Terminals) bool { return fd.Kind == procfs.FileChar && ts[fd.Rdev] }

func (tty) Traits() Traits { return Traits{Shared: true} }

func (tty) Prepare(l Loader, i int, f *format.File, _ string) error { return l.Terminal(i, f) }
