package files

import (
	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// pathOnly is a file that only an O_PATH fd has open: the file itself,
// never its contents (a symbolic link opened O_PATH|O_NOFOLLOW, a
// socket's file, a block device), opened again O_PATH at its path. One
// kind a file type. (A named pipe is a kind of its own: fifo.go.)
type pathOnly struct {
	name string
	kind procfs.FDKind
	mode uint32
}

var (
	symlink = pathOnly{format.FileSymlink, procfs.FileLink, unix.S_IFLNK}
	sock    = pathOnly{format.FileSocket, procfs.FileSock, unix.S_IFSOCK}
	blk     = pathOnly{format.FileBlock, procfs.FileBlock, unix.S_IFBLK}
)

func (k pathOnly) Name() string { return k.name }

func (pathOnly) Match(*procfs.FD, Terminals) bool { return false }

func (k pathOnly) Traits() Traits {
	return Traits{Shared: true, ByPath: true, PathOnly: true, OPath: k.kind, Mode: k.mode}
}

func (pathOnly) Prepare(l Loader, i int, f *format.File, what string) error {
	return l.OpenByPath(i, f, what)
}
