package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// eventfd is an eventfd: its counter and semaphore mode travel (fdinfo
// eventfd-count, eventfd-semaphore), and the process makes it again
// with eventfd2; one in flight in a unix socket's queue, the loader
// (MakeHere).
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
	src.File(idx).Eventfd = &format.Eventfd{Count: n,
		Semaphore: strings.TrimSpace(fd.Info["eventfd-semaphore"]) == "1"}
	return nil
}

func (eventfd) Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error) {
	flags := uint64(fd.Flags&unix.O_NONBLOCK | cloexec)
	if f.Eventfd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	n := f.Eventfd.Count
	if n <= 0xffffffff { // eventfd2's initval is an unsigned int
		return t.Syscall("eventfd2", unix.SYS_EVENTFD2, n, flags)
	}
	fd2, err := t.Syscall("eventfd2", unix.SYS_EVENTFD2, 0, flags)
	if err != nil {
		return 0, err
	}
	arg, err := t.Arg(binary.LittleEndian.AppendUint64(nil, n))
	if err == nil {
		_, err = t.Syscall("write", unix.SYS_WRITE, fd2, arg, 8)
	}
	if err != nil {
		t.Syscall("close", unix.SYS_CLOSE, fd2)
		return 0, err
	}
	return fd2, nil
}

// MakeHere makes the eventfd in the loader, with its counter, its
// semaphore mode and fd's O_NONBLOCK: one in flight, which no process
// makes.
func (eventfd) MakeHere(fd format.FD, f *format.File) (*os.File, error) {
	flags := fd.Flags&unix.O_NONBLOCK | unix.EFD_CLOEXEC
	if f.Eventfd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	e, err := unix.Eventfd(0, flags)
	if err != nil {
		return nil, os.NewSyscallError("eventfd2", err)
	}
	lf := os.NewFile(uintptr(e), "eventfd")
	if n := f.Eventfd.Count; n > 0 {
		if _, err := unix.Write(e, binary.LittleEndian.AppendUint64(nil, n)); err != nil {
			lf.Close()
			return nil, fmt.Errorf("eventfd: its counter: %w", err)
		}
	}
	return lf, nil
}

// Validate: the counter is one an eventfd can hold (below 2^64-1).
func (eventfd) Validate(fs []format.File, i int, _ []format.Process) error {
	e := fs[i].Eventfd
	if e == nil {
		return fmt.Errorf("image file %d, an eventfd, has no eventfd state", i)
	}
	if e.Count == ^uint64(0) {
		return fmt.Errorf("image file %d: eventfd counter %d is beyond what an eventfd holds", i, e.Count)
	}
	return nil
}
