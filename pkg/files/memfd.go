package files

import (
	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// memfd is a memfd or shared anonymous memory: its contents always
// travel, and the loader makes it again as the process (memfd_create),
// with its seals, mode and owner.
type memfd struct{}

func (memfd) Name() string { return format.FileMemfd }

func (memfd) Match(fd *procfs.FD, _ Terminals) bool { return fd.Kind == procfs.Memfd }

func (memfd) Traits() Traits {
	return Traits{Shared: true, Seek: true, OPath: procfs.Memfd, DeletedOPath: true, Mode: unix.S_IFREG}
}

func (memfd) Prepare(l Loader, i int, f *format.File, _ string) error { return l.MakeMemfd(i, f) }
