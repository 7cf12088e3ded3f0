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
	return Traits{Shared: true, Seek: true, OPath: procfs.Memfd, DeletedOPath: true, Mode: unix.S_IFREG,
		Contents: ContentsAlways, Exe: true, Mappable: true}
}

func (memfd) Prepare(l Loader, i int, f *format.File, _ string) error { return l.MakeMemfd(i, f) }

// Describe records the memfd's seals and owner; it is never "deleted"
// (it never had a path).
func (memfd) Describe(f *format.File, path string, st *unix.Stat_t) {
	f.Deleted = false
	f.Seals, f.UID, f.GID = seals(path), int(st.Uid), int(st.Gid)
}

// seals reads the seals of the memfd at path (F_GET_SEALS), or nil when
// it has none to read (shared anonymous memory).
func seals(path string) *uint32 {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	s, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil
	}
	v := uint32(s)
	return &v
}
