package files

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// epoll is an epoll instance: made empty by the process that holds it
// first (epoll_create1), its interest list (File.Epoll) filled in the
// second pass, once every fd it watches exists. The targets are fds of
// that process.
type epoll struct{}

func (epoll) Name() string { return format.FileEpoll }

func (epoll) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:[eventpoll]"
}

func (epoll) Traits() Traits { return Traits{} }

// Dump reads the interest list from fdinfo lines
// "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x".
func (epoll) Dump(src Source, fd *procfs.FD, idx int) error {
	ep := &format.Epoll{Targets: []format.EpollEntry{}}
	for _, line := range fd.Extra {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "tfd:" {
			continue
		}
		tfd, err1 := strconv.Atoi(f[1])
		ev, err2 := strconv.ParseUint(f[3], 16, 32)
		data, err3 := strconv.ParseUint(f[5], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("fd %d: cannot parse epoll entry %q", fd.Num, line)
		}
		var ino uint64
		for _, x := range f[6:] {
			if v, ok := strings.CutPrefix(x, "ino:"); ok {
				ino, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		if src.Carried() {
			// In flight: tfd is a number of the process that added
			// it; CheckTree finds which open file it is.
			ep.Targets = append(ep.Targets, format.EpollEntry{FD: tfd, Events: uint32(ev), Data: data, Ino: ino})
			continue
		}
		t := src.FD(tfd)
		if t == nil || (ino != 0 && t.Ino != ino) {
			return refusef("epoll fd %d watches a file that is no longer open as fd %d", fd.Num, tfd)
		}
		ep.Targets = append(ep.Targets, format.EpollEntry{FD: tfd, Events: uint32(ev), Data: data})
	}
	if src.Carried() {
		ep.Carried = fd.Num
	}
	src.File(idx).Epoll = ep
	return nil
}

// CheckTree finds the targets of each epoll that procs-dump met in
// flight first (in a unix socket's queue): fds of its holder, as any
// epoll's, when a process holds it; else the open file descriptions of
// the tree's fds that kcmp says they are (EpollEntry.Open), or of the
// files in flight (out.Carried: one only a queue holds). It refuses one
// that watches a file neither a process of the tree nor a queue holds,
// naming it.
func (epoll) CheckTree(fs []format.File, procs []format.Process, out *Outside) error {
	self := os.Getpid()
	for i := range fs {
		ep := fs[i].Epoll
		if ep == nil || ep.Carried == 0 {
			continue
		}
		holder, _ := Holder(procs, i)
		for k := range ep.Targets {
			t := &ep.Targets[k]
			open := epollTarget(fs, procs, holder, self, ep.Carried, t)
			if open == 0 && holder == nil {
				open = carriedTarget(out.Carried, self, ep.Carried, t.FD)
			}
			switch {
			case open == 0 && holder != nil:
				return refusef("%s is an epoll, in flight in a unix socket's queue too, that watches a file no longer open as fd %d", holderOf(procs, i), t.FD)
			case open == 0:
				return refusef("%s is a unix socket whose queue holds in flight an epoll that watches a file neither a process of the tree nor a queue holds (added as fd %d)", holderOf(procs, carrierOf(fs, i)), t.FD)
			case holder == nil:
				t.Open = open
			}
		}
	}
	return nil
}

// epollTarget is the open id of the tree's fd that target t of epoll efd
// (procs-dump's, self's) watches: of holder's fd t.FD when holder is
// given, else of any process's fd; 0 if none.
func epollTarget(fs []format.File, procs []format.Process, holder *format.Process, self, efd int, t *format.EpollEntry) int {
	for _, p := range procs {
		if holder != nil && p.PID != holder.PID {
			continue
		}
		for _, fd := range p.FDs {
			if fd.File < 0 || holder != nil && fd.Num != t.FD || t.Ino != 0 && fs[fd.File].Ino != t.Ino {
				continue
			}
			if linux.SameEpollTarget(p.PID, fd.Num, self, efd, t.FD) {
				return fd.Open
			}
		}
	}
	return 0
}

// carriedTarget is the open id of the file in flight (carried: procs-dump's
// fds by open id) that target tfd of epoll efd, procs-dump's, watches, or 0.
func carriedTarget(carried map[int]int, self, efd, tfd int) int {
	for open, num := range carried {
		if num != efd && linux.SameEpollTarget(self, num, self, efd, tfd) {
			return open
		}
	}
	return 0
}

// MakeLate makes an epoll in flight that no process holds, in the loader,
// once every process is built: each target is the open file description
// of the processes' fds, or of a file in flight that only a queue holds
// (Loader.Taken, as the queues are filled), added under the number it was
// added under (addTargets); with the O_NONBLOCK of fd's flags.
func (epoll) MakeLate(l Loader, fd format.FD, f *format.File) (*os.File, error) {
	e, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	lf := os.NewFile(uintptr(e), "epoll")
	if fd.Flags&unix.O_NONBLOCK != 0 {
		if err := unix.SetNonblock(e, true); err != nil {
			lf.Close()
			return nil, os.NewSyscallError("fcntl(F_SETFL)", err)
		}
	}
	var targets []*os.File
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	for _, t := range f.Epoll.Targets {
		tf, err := l.Taken(t.Open)
		if err == nil && tf == nil {
			err = fmt.Errorf("neither a process nor a queue holds open file %d", t.Open)
		}
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("an epoll's target fd %d: %w", t.FD, err)
		}
		targets = append(targets, tf)
	}
	if err := addTargets(e, f.Epoll.Targets, targets); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// addTargets adds to epoll e each target, file files[k], under its fd
// number (the key epoll_ctl MOD and DEL look it up by): on a thread with
// a copy of procs-load's fd table of its own (unshare CLONE_FILES), where
// each file is put at its number; the thread then ends, with its table.
func addTargets(e int, targets []format.EpollEntry, files []*os.File) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with its table
		done <- func() error {
			if err := unix.Unshare(unix.CLONE_FILES); err != nil {
				return os.NewSyscallError("unshare", err)
			}
			// The epoll and the files above every target's number
			// first, so that putting one at its number closes none.
			above := 0
			for _, t := range targets {
				above = max(above, t.FD+1)
			}
			var err error
			if e, err = unix.FcntlInt(uintptr(e), unix.F_DUPFD_CLOEXEC, above); err != nil {
				return os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
			}
			from := make([]int, len(files))
			for k, f := range files {
				if from[k], err = unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, above); err != nil {
					return os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
				}
			}
			for k, t := range targets {
				if err := unix.Dup3(from[k], t.FD, unix.O_CLOEXEC); err != nil {
					return fmt.Errorf("an epoll's target fd %d: %w", t.FD, os.NewSyscallError("dup3", err))
				}
				// x/sys splits the data word in two.
				ev := unix.EpollEvent{Events: t.Events, Fd: int32(uint32(t.Data)), Pad: int32(uint32(t.Data >> 32))}
				if err := unix.EpollCtl(e, unix.EPOLL_CTL_ADD, t.FD, &ev); err != nil {
					return fmt.Errorf("an epoll's target fd %d: %w", t.FD, os.NewSyscallError("epoll_ctl", err))
				}
			}
			return nil
		}()
	}()
	return <-done
}

func (epoll) Make(t Target, _ format.FD, _ *format.File, cloexec int) (uint64, error) {
	return t.Syscall("epoll_create1", unix.SYS_EPOLL_CREATE1, uint64(cloexec))
}

// Link adds every watched fd to the epoll fd made.
func (epoll) Link(t Target, fd format.FD, f *format.File) error {
	for _, e := range f.Epoll.Targets {
		arg, err := t.Arg(linux.EpollEvent{Events: e.Events, Data: e.Data}.Encode())
		if err != nil {
			return err
		}
		if _, err := t.Syscall("epoll_ctl", unix.SYS_EPOLL_CTL, uint64(fd.Num), unix.EPOLL_CTL_ADD, uint64(e.FD), arg); err != nil {
			return fmt.Errorf("epoll fd %d watching fd %d: %w", fd.Num, e.FD, err)
		}
	}
	return nil
}

// Validate checks the interest list of epoll file i: fds of the process
// that holds it first, which epoll can watch.
func (epoll) Validate(fs []format.File, i int, procs []format.Process) error {
	ep := fs[i].Epoll
	if ep == nil {
		return fmt.Errorf("image file %d, an epoll, has no interest list", i)
	}
	p, efd := Holder(procs, i)
	if p == nil {
		return validUnheldTargets(fs, i, procs)
	}
	if len(ep.Targets) > MaxFD {
		return fmt.Errorf("image epoll fd %d (process %d) watches %d fds", efd.Num, p.PID, len(ep.Targets))
	}
	kinds := map[int]string{}
	for _, fd := range p.FDs {
		if fd.File >= 0 {
			kinds[fd.Num] = fs[fd.File].Kind
		} else {
			kinds[fd.Num] = ""
		}
	}
	for _, e := range ep.Targets {
		if e.Open != 0 {
			return fmt.Errorf("image epoll fd %d (process %d) watches the open file %d of another process: only an epoll no process holds may", efd.Num, p.PID, e.Open)
		}
		if k, ok := kinds[e.FD]; !ok || e.FD == efd.Num || TraitsOf(k).Unwatchable || k == format.FileEpoll && fd(p, e.FD).File == i {
			return fmt.Errorf("image epoll fd %d (process %d) watches fd %d, which the process lacks or cannot watch", efd.Num, p.PID, e.FD)
		}
	}
	return nil
}

// validUnheldTargets checks the targets of epoll i, which no process
// holds (one in flight): each an open file description of a process's
// fds or of a file in flight (Open), of a kind epoll can watch and not
// this epoll, added under an fd number in range.
func validUnheldTargets(fs []format.File, i int, procs []format.Process) error {
	ep := fs[i].Epoll
	if len(ep.Targets) > MaxFD {
		return fmt.Errorf("image epoll %d watches %d fds", i, len(ep.Targets))
	}
	opens := fdOpens(procs)
	for _, fd := range InFlightFDs(fs) {
		if _, ok := opens[fd.Open]; !ok && fd.File >= 0 && fd.File < len(fs) {
			opens[fd.Open] = fd.File
		}
	}
	for _, e := range ep.Targets {
		f, ok := opens[e.Open]
		if e.Open < 1 || !ok || f < 0 || f == i || TraitsOf(fs[f].Kind).Unwatchable || e.FD < 0 || e.FD >= MaxFD {
			return fmt.Errorf("image epoll %d, which no process holds, watches open file %d as fd %d: no open file of a process's fds or in flight that it can watch, or an fd out of range", i, e.Open, e.FD)
		}
	}
	return nil
}

// fd is process p's fd num; p has it.
func fd(p *format.Process, num int) *format.FD {
	for k := range p.FDs {
		if p.FDs[k].Num == num {
			return &p.FDs[k]
		}
	}
	return nil
}
