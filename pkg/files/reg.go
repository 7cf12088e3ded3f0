package files

import (
	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// reg is a regular file, opened again at its path (or made again from
// the contents the image carries: a deleted file, or with -f).
type reg struct{}

func (reg) Name() string { return format.FileRegular }

func (reg) Match(fd *procfs.FD, _ Terminals) bool { return fd.Kind == procfs.FileRegular }

func (reg) Traits() Traits {
	return Traits{Shared: true, ByPath: true, Stdio: true, Seek: true, Unwatchable: true,
		OPath: procfs.FileRegular, DeletedOPath: true, Mode: unix.S_IFREG,
		Remade: true, Contents: ContentsSaved, Exe: true, Mappable: true}
}

func (reg) Prepare(l Loader, i int, f *format.File, what string) error {
	return l.OpenByPath(i, f, what)
}
