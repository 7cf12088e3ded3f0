package files

// Owners and signals of open files, which every kind may have: the
// process or process group that gets SIGIO, or the signal F_SETSIG
// chose, when I/O is possible on an open file with O_ASYNC (and SIGURG
// for a socket's urgent data). They belong to the open file
// description, and travel on its first fd in the image (FD.Owner,
// FD.Sig): the dump reads them through a copy of the fd, and the
// restore engine sets them again, in the process once it has its own
// credentials (F_SETOWN_EX records them), with the restored PID, before
// O_ASYNC.

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// OwnerOf reads the owner and the signal of process pid's fd num through
// a copy of it (pidfd_getfd): nil and 0 when it has none.
func OwnerOf(pid, num int) (*format.Owner, int, error) {
	c, err := takeFD(pid, num)
	if err != nil {
		return nil, 0, err
	}
	defer unix.Close(c)
	o, err := linux.GetOwnerEx(c)
	if err != nil {
		return nil, 0, fmt.Errorf("fd %d: %w", num, err)
	}
	sig, err := unix.FcntlInt(uintptr(c), unix.F_GETSIG, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("fd %d: fcntl(F_GETSIG): %w", num, err)
	}
	if o.PID == 0 {
		return nil, sig, nil
	}
	return &format.Owner{Type: int(o.Type), PID: int(o.PID)}, sig, nil
}

// Owner types (F_OWNER_*).
const (
	ownerTID  = 0
	ownerPID  = 1
	ownerPGRP = 2
)

// ownerProblem says what is wrong with owner o among procs, or "": a
// process (its main thread, for F_OWNER_TID) or a process group of a
// member.
func ownerProblem(procs []format.Process, o *format.Owner) string {
	switch o.Type {
	case ownerTID, ownerPID:
		if pidfdTarget(procs, o.PID) == process {
			return ""
		}
		if o.Type == ownerTID && pidfdTarget(procs, o.PID) == thread {
			return fmt.Sprintf("sends its I/O signals to thread %d, not a process's main thread (procs cannot carry that)", o.PID)
		}
		return fmt.Sprintf("sends its I/O signals (F_SETOWN) to process %d, outside the tree", o.PID)
	case ownerPGRP:
		if slices.ContainsFunc(procs, func(p format.Process) bool { return p.PID == o.PID }) &&
			slices.ContainsFunc(procs, func(p format.Process) bool { return p.Pgid == o.PID }) {
			return ""
		}
		return fmt.Sprintf("sends its I/O signals (F_SETOWN) to process group %d, not one of the tree's", o.PID)
	}
	return fmt.Sprintf("has an owner of type %d", o.Type)
}

// checkOwners refuses, on the dump side, an open file whose I/O signals
// go to a process outside the tree, naming it.
func checkOwners(procs []format.Process) error {
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.Owner == nil {
				continue
			}
			if why := ownerProblem(procs, fd.Owner); why != "" {
				return refusef("fd %d of process %d %s", fd.Num, p.PID, why)
			}
		}
	}
	return nil
}

// validateOwners checks every owner and signal of an image: on the
// first fd of its open file description only, not a restorer's stream
// nor an O_PATH fd; a process or a group of the tree; a signal number.
func validateOwners(procs []format.Process) error {
	seen := map[int]bool{}
	for _, p := range procs {
		for _, fd := range p.FDs {
			first := !seen[fd.Open]
			seen[fd.Open] = true
			if fd.Owner == nil && fd.Sig == 0 {
				continue
			}
			switch {
			case !first || fd.File < 0 || fd.Flags&unix.O_PATH != 0:
				return fmt.Errorf("image process %d fd %d has an owner or signal, and is not the first fd of a file the process opens", p.PID, fd.Num)
			case fd.Sig < 0 || fd.Sig > 64:
				return fmt.Errorf("image process %d fd %d: signal %d is out of range (0 to 64)", p.PID, fd.Num, fd.Sig)
			case fd.Owner != nil:
				if why := ownerProblem(procs, fd.Owner); why != "" {
					return fmt.Errorf("image process %d fd %d %s", p.PID, fd.Num, why)
				}
			}
		}
	}
	return nil
}
