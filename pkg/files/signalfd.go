package files

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// signalfd is a signalfd: the signals it takes (fdinfo sigmask) travel,
// and the process makes it again with signalfd4. The signals pending
// for the process, which a read of it takes, travel with the process.
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

// Validate: the state is there (every mask is one signalfd4 takes: it
// drops SIGKILL and SIGSTOP itself).
func (signalfd) Validate(fs []format.File, i int, _ []format.Process) error {
	if fs[i].Signalfd == nil {
		return fmt.Errorf("image file %d, a signalfd, has no signalfd state", i)
	}
	return nil
}
