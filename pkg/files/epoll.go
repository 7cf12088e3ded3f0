package files

import (
	"fmt"
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
		t := src.FD(tfd)
		if t == nil || (ino != 0 && t.Ino != ino) {
			return refusef("epoll fd %d watches a file that is no longer open as fd %d", fd.Num, tfd)
		}
		ep.Targets = append(ep.Targets, format.EpollEntry{FD: tfd, Events: uint32(ev), Data: data})
	}
	src.File(idx).Epoll = ep
	return nil
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
		if len(ep.Targets) > 0 {
			return fmt.Errorf("image file %d, an epoll, watches fds but no process holds it", i)
		}
		return nil
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
		if k, ok := kinds[e.FD]; !ok || e.FD == efd.Num || TraitsOf(k).Unwatchable || k == format.FileEpoll && fd(p, e.FD).File == i {
			return fmt.Errorf("image epoll fd %d (process %d) watches fd %d, which the process lacks or cannot watch", efd.Num, p.PID, e.FD)
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
