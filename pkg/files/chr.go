package files

import (
	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// chr is a character device that is the same everywhere
// (procfs.KnownDevices: /dev/null, /dev/urandom...), opened again by its
// path; as an O_PATH fd, any character device.
type chr struct{}

func (chr) Name() string { return format.FileChar }

func (chr) Match(fd *procfs.FD, _ Terminals) bool {
	_, known := procfs.KnownDevices[fd.Rdev]
	return fd.Kind == procfs.FileChar && known
}

func (chr) Traits() Traits {
	return Traits{Shared: true, ByPath: true, Stdio: true, OPath: procfs.FileChar, Mode: unix.S_IFCHR,
		Remade: true, Mappable: true}
}

func (chr) Prepare(l Loader, i int, f *format.File, what string) error {
	return l.OpenByPath(i, f, what)
}

// Describe names a device that is the same everywhere by its own path
// (/dev/null, whatever link led to it).
func (chr) Describe(f *format.File, _ string, st *unix.Stat_t) {
	if p, ok := procfs.KnownDevices[st.Rdev]; ok && !f.Deleted {
		f.Path = p
	}
}
