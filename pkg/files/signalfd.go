package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// signalfd is a signalfd: the signals it takes (fdinfo sigmask) travel,
// and the process makes it again with signalfd4; one in flight in a unix
// socket's queue, the loader (MakeHere: a signalfd reads the signals of
// the process that reads it, whoever made it). The signals pending for
// the process, which a read of it takes, travel with the process.
type signalfd struct{}

func (signalfd) Name() string { return format.FileSignalfd }

func (signalfd) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:[signalfd]"
}

func (signalfd) Traits() Traits { return Traits{} }

func (signalfd) Dump(src Source, fd *procfs.FD, idx int) error {
	m, err := strconv.ParseUint(fd.Info["sigmask"], 16, 64)
	if err != nil {
		return fmt.Errorf("fd %d: signalfd mask: %v", fd.Num, err)
	}
	src.File(idx).Signalfd = &format.Signalfd{Mask: m}
	return nil
}

func (signalfd) Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error) {
	arg, err := t.Arg(binary.LittleEndian.AppendUint64(nil, f.Signalfd.Mask))
	if err != nil {
		return 0, err
	}
	// ^0 is -1 as the int signalfd4 takes: a new signalfd.
	return t.Syscall("signalfd4", unix.SYS_SIGNALFD4, ^uint64(0), arg, 8, uint64(fd.Flags&unix.O_NONBLOCK|cloexec))
}

// MakeHere makes the signalfd in the loader, with its mask and fd's
// O_NONBLOCK: one in flight, which no process makes.
func (signalfd) MakeHere(fd format.FD, f *format.File) (*os.File, error) {
	mask := unix.Sigset_t{Val: [16]uint64{f.Signalfd.Mask}}
	n, err := unix.Signalfd(-1, &mask, fd.Flags&unix.O_NONBLOCK|unix.SFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("signalfd4", err)
	}
	return os.NewFile(uintptr(n), "signalfd"), nil
}

// Validate: the state is there (every mask is one signalfd4 takes: it
// drops SIGKILL and SIGSTOP itself).
func (signalfd) Validate(fs []format.File, i int, _ []format.Process) error {
	if fs[i].Signalfd == nil {
		return fmt.Errorf("image file %d, a signalfd, has no signalfd state", i)
	}
	return nil
}
