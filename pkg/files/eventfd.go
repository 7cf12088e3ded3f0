package files

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// eventfd is an eventfd: its counter and semaphore mode travel (fdinfo
// eventfd-count, eventfd-semaphore), and the process makes it again
// with eventfd2.
type eventfd struct{}

func (eventfd) Name() string { return format.FileEventfd }

func (eventfd) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:[eventfd]"
}

func (eventfd) Traits() Traits { return Traits{} }

func (eventfd) Dump(src Source, fd *procfs.FD, idx int) error {
	n, err := strconv.ParseUint(strings.TrimSpace(fd.Info["eventfd-count"]), 16, 64)
	if err != nil {
		return fmt.Errorf("fd %d: eventfd count: %v", fd.Num, err)
	}
	f := &src.Image().Files[idx]
	f.Count = n
	f.Semaphore = strings.TrimSpace(fd.Info["eventfd-semaphore"]) == "1"
	return nil
}

func (eventfd) Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error) {
	flags := uint64(fd.Flags&unix.O_NONBLOCK | cloexec)
	if f.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	return t.Syscall("eventfd2", unix.SYS_EVENTFD2, f.Count, flags)
}
