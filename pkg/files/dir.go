package files

import (
	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// dir is a folder, opened again at its path (made again when it was
// deleted).
type dir struct{}

func (dir) Name() string { return format.FileDir }

func (dir) Match(fd *procfs.FD, _ Terminals) bool { return fd.Kind == procfs.FileDir }

func (dir) Traits() Traits {
	return Traits{Shared: true, ByPath: true, Stdio: true, Unwatchable: true,
		OPath: procfs.FileDir, DeletedOPath: true, Mode: unix.S_IFDIR, Remade: true}
}

func (dir) Prepare(l Loader, i int, f *format.File, what string) error {
	return l.OpenByPath(i, f, what)
}
