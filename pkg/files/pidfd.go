package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// pidfd is a pidfd (pidfd_open(2), clone's CLONE_PIDFD) on a process of
// the tree, the holder itself included: the process it refers to
// (File.Pidfd, fdinfo "Pid:") travels, and the holder opens it again with
// pidfd_open of that process's PID once every process of the tree exists
// (a zombie of the tree too: the pidfd then reports it has exited). Its
// flags travel with its fds: PIDFD_NONBLOCK, and PIDFD_THREAD (O_EXCL),
// which a pidfd on a main thread may have.
//
// A pidfd on a process that has ended and was reaped already ("Pid: -1":
// a child its parent waited for) refers to no process any more; what it
// still tells is how that process ended (PIDFD_GET_INFO, PIDFD_INFO_EXIT),
// which travels. The holder makes it again on a child of its own that
// ends so and that it reaps at once (Target.Reaped); one in flight that
// no process holds, the first process holding a queue that holds it,
// for the loader to send (KeeperMaker).
//
// Refused by name: a pidfd on a process outside the tree, which the
// restore does not make, and one on a thread other than a main one, which
// does not exist yet when fds are made.
type pidfd struct{}

func (pidfd) Name() string { return format.FilePidfd }

func (pidfd) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:[pidfd]"
}

func (pidfd) Traits() Traits { return Traits{} }

// pidfdFlags are the open flags a pidfd may have: its access mode (pidfds
// are O_RDWR), PIDFD_NONBLOCK (O_NONBLOCK) and PIDFD_THREAD (O_EXCL).
const pidfdFlags = unix.O_ACCMODE | unix.O_NONBLOCK | unix.PIDFD_THREAD

// Dump records the process the pidfd refers to, as fdinfo names it in
// procs-dump's PID namespace: -1 once it is reaped, 0 when it is in none
// procs-dump sees.
func (pidfd) Dump(src Source, fd *procfs.FD, idx int) error {
	pid, err := strconv.Atoi(strings.TrimSpace(fd.Info["Pid"]))
	if err != nil {
		return fmt.Errorf("fd %d: pidfd without a Pid in its fdinfo: %v", fd.Num, err)
	}
	switch {
	case pid == -1:
		st, err := reapedStatus(src.PID(), fd.Num)
		if err != nil {
			return err
		}
		src.File(idx).Pidfd = &format.Pidfd{Reaped: &format.Exit{Status: st}}
		return nil
	case pid <= 0:
		return refusef("fd %d is a pidfd on a process of another PID namespace, which procs cannot carry", fd.Num)
	}
	src.File(idx).Pidfd = &format.Pidfd{PID: pid}
	return nil
}

// reapedStatus asks pidfd num of process pid, which refers to a process
// that ended and was reaped, how it ended (a copy of the fd, taken with
// pidfd_getfd, is asked: the process is not touched).
func reapedStatus(pid, num int) (int, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("fd %d: pidfd_open(%d): %w", num, pid, err)
	}
	defer unix.Close(pfd)
	fd, err := unix.PidfdGetfd(pfd, num, 0)
	if err != nil {
		return 0, fmt.Errorf("fd %d: taking it: %w", num, err)
	}
	defer unix.Close(fd)
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	if err := unix.IoctlPidfdInfo(fd, &info); err != nil || info.Mask&unix.PIDFD_INFO_EXIT == 0 {
		return 0, refusef("fd %d is a pidfd on a process that has ended and was reaped, and the kernel does not tell how it ended (PIDFD_GET_INFO: %v)", num, err)
	}
	return int(info.Exit_code), nil
}

// CheckTree refuses a pidfd on a process outside the tree, or on a thread
// other than a main one, naming it.
func (pidfd) CheckTree(fs []format.File, procs []format.Process, _ *Outside) error {
	for i, f := range fs {
		if f.Kind != format.FilePidfd || f.Pidfd == nil {
			continue
		}
		if f.Pidfd.Reaped != nil {
			continue
		}
		switch pidfdTarget(procs, f.Pidfd.PID) {
		case outside:
			return refusef("%s is a pidfd on process %d, outside the tree: procs cannot carry it", holderOf(procs, i), f.Pidfd.PID)
		case thread:
			return refusef("%s is a pidfd on thread %d, not a process's main thread: procs cannot carry it", holderOf(procs, i), f.Pidfd.PID)
		}
	}
	return nil
}

// What a pidfd's PID names in an image.
const (
	outside = iota // nothing of it
	process        // a process: its main thread
	thread         // another thread
)

// pidfdTarget says what pid names among procs.
func pidfdTarget(procs []format.Process, pid int) int {
	for _, p := range procs {
		if p.PID == pid {
			return process
		}
		for _, t := range p.Threads {
			if t.TID == pid {
				return thread
			}
		}
	}
	return outside
}

// Make opens the pidfd again, in the process, on the restored PID of the
// process it referred to, which exists by now, or on a child that ends
// as the reaped one did.
func (pidfd) Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error) {
	flags := uint64(fd.Flags & (unix.O_NONBLOCK | unix.PIDFD_THREAD))
	var n uint64
	var err error
	if r := f.Pidfd.Reaped; r != nil {
		n, err = t.Reaped(r.Status, flags)
	} else if pid, ok := t.PID(f.Pidfd.PID); !ok {
		return 0, fmt.Errorf("a pidfd on process %d, which the image lacks", f.Pidfd.PID)
	} else {
		n, err = t.Syscall(fmt.Sprintf("pidfd_open(%d)", pid), unix.SYS_PIDFD_OPEN, uint64(pid), flags)
	}
	if err != nil {
		return 0, err
	}
	if cloexec == 0 {
		// pidfd_open makes it close-on-exec, and the engine moves it
		// only when it is not at its place already.
		if _, err := t.Syscall("fcntl(F_SETFD)", unix.SYS_FCNTL, n, unix.F_SETFD, 0); err != nil {
			t.Syscall("close", unix.SYS_CLOSE, n)
			return 0, err
		}
	}
	return n, nil
}

// KeeperMakes: a pidfd on a reaped process (Target.Reaped).
func (pidfd) KeeperMakes(f *format.File) bool { return f.Pidfd.Reaped != nil }

// MakeLate makes a pidfd in flight that no process holds, in the loader,
// once every process exists: pidfd_open of the process it referred to,
// restored, with fd's flags.
func (pidfd) MakeLate(l Loader, fd format.FD, f *format.File) (*os.File, error) {
	pid, ok := l.PIDOf(f.Pidfd.PID)
	if f.Pidfd.Reaped != nil {
		return nil, errors.New("a pidfd on a reaped process, which no process made")
	}
	if !ok {
		return nil, fmt.Errorf("a pidfd on process %d, which the image lacks", f.Pidfd.PID)
	}
	n, err := unix.PidfdOpen(pid, fd.Flags&(unix.O_NONBLOCK|unix.PIDFD_THREAD))
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	return os.NewFile(uintptr(n), "pidfd"), nil
}

// Validate: the pidfd names a process of the image (thread pidfds of
// other threads are never written: the threads are made after the fds),
// or is on a reaped process that ended as a process can; every fd of it
// has only a pidfd's flags.
func (pidfd) Validate(fs []format.File, i int, procs []format.Process) error {
	pf := fs[i].Pidfd
	if pf == nil {
		return fmt.Errorf("image file %d, a pidfd, has no pidfd state", i)
	}
	switch {
	case pf.Reaped != nil && pf.PID != 0:
		return fmt.Errorf("image pidfd %d refers to process %d, and to a reaped one", i, pf.PID)
	case pf.Reaped != nil:
		if why := linux.BadExitStatus(pf.Reaped.Status); why != "" {
			return fmt.Errorf("image pidfd %d on a reaped process: exit status %#x %s", i, pf.Reaped.Status, why)
		}
	case pidfdTarget(procs, pf.PID) != process:
		return fmt.Errorf("image pidfd %d refers to %d, which is no process of the image", i, pf.PID)
	}
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.File == i && (fd.Flags&^pidfdFlags != 0 || fd.Flags&unix.O_ACCMODE != unix.O_RDWR) {
				return fmt.Errorf("image process %d fd %d: a pidfd with open flags %#x", p.PID, fd.Num, fd.Flags)
			}
		}
	}
	for _, fd := range InFlightFDs(fs) {
		if fd.File == i && (fd.Flags&^pidfdFlags != 0 || fd.Flags&unix.O_ACCMODE != unix.O_RDWR) {
			return fmt.Errorf("image pidfd %d in flight with open flags %#x", i, fd.Flags)
		}
	}
	return nil
}
