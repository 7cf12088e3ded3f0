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

// epoll is an epoll instance: made empty by the process (epoll_create1),
// its interest list (Process.Epolls) filled in the second pass, once
// every fd it watches exists.
type epoll struct{}

func (epoll) Name() string { return format.FileEpoll }

func (epoll) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:[eventpoll]"
}

func (epoll) Traits() Traits { return Traits{} }

// Dump reads the interest list from fdinfo lines
// "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x".
func (epoll) Dump(src Source, fd *procfs.FD, _ int) error {
	ep := format.Epoll{FD: fd.Num}
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
	img := src.Image()
	img.Epolls = append(img.Epolls, ep)
	return nil
}

func (epoll) Make(t Target, _ format.FD, _ *format.File, cloexec int) (uint64, error) {
	return t.Syscall("epoll_create1", unix.SYS_EPOLL_CREATE1, uint64(cloexec))
}

// Link adds every watched fd to its epoll.
func (epoll) Link(t Target, img *format.Process) error {
	for _, ep := range img.Epolls {
		for _, e := range ep.Targets {
			arg, err := t.Arg(linux.EpollEvent{Events: e.Events, Data: e.Data}.Encode())
			if err != nil {
				return err
			}
			if _, err := t.Syscall("epoll_ctl", unix.SYS_EPOLL_CTL, uint64(ep.FD), unix.EPOLL_CTL_ADD, uint64(e.FD), arg); err != nil {
				return fmt.Errorf("epoll fd %d watching fd %d: %w", ep.FD, e.FD, err)
			}
		}
	}
	return nil
}

// Validate checks the interest lists: each of an epoll fd, watching fds
// the process has and epoll can watch.
func (epoll) Validate(img *format.Process, kinds map[int]string) error {
	for _, ep := range img.Epolls {
		if kinds[ep.FD] != format.FileEpoll {
			return fmt.Errorf("image epoll fd %d is no epoll fd of the process", ep.FD)
		}
		if len(ep.Targets) > MaxFD {
			return fmt.Errorf("image epoll fd %d watches %d fds", ep.FD, len(ep.Targets))
		}
		for _, e := range ep.Targets {
			if k, ok := kinds[e.FD]; !ok || e.FD == ep.FD || TraitsOf(k).Unwatchable {
				return fmt.Errorf("image epoll fd %d watches fd %d, which the process lacks or cannot watch", ep.FD, e.FD)
			}
		}
	}
	return nil
}
