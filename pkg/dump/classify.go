package dump

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// Problems found while classifying a process: each names one thing procs
// cannot carry.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err(pid int) error {
	if len(p) == 0 {
		return nil
	}
	return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: %s", pid, strings.Join(p, "; "))}
}

// refusal is an error that means the process was not touched because
// procs cannot carry it; it matches ErrUnsupported.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrUnsupported }

// terminals are the devices that are a process's own terminal: its
// controlling terminal and any terminal on fds 0, 1 and 2. Wherever the
// process is restored, they are the restorer's terminal.
type terminals = files.Terminals

// terminalsOf finds the terminals of a process whose controlling
// terminal is ctty (tty_nr of /proc/PID/stat, 0 for none) and whose fds
// are fds; but the pseudo-terminals of the tree (paired: the slaves
// whose master the tree holds), which travel as they are.
func terminalsOf(ctty int, fds []procfs.FD, paired map[uint64]bool) terminals {
	ts := terminals{}
	if ctty != 0 && !paired[uint64(ctty)] {
		ts[uint64(ctty)] = true
	}
	for i := range fds {
		if fd := &fds[i]; fd.Num <= 2 && fd.Kind == procfs.FileChar && files.IsTerminal(fd.Rdev) && !paired[fd.Rdev] {
			ts[fd.Rdev] = true
		}
	}
	return ts
}

// checkFDs returns the problems of a process's fds.
func checkFDs(fds []procfs.FD, ts terminals) problems {
	var p problems
	for i := range fds {
		fd := &fds[i]
		if why := lockProblem(fd); why != "" {
			p.add("%s", why)
		}
		if fd.Num <= 2 {
			continue // replaced by the loader's own standard streams
		}
		if _, why := files.Classify(fd, ts); why != "" {
			p.add("fd %d is %s", fd.Num, why)
		}
	}
	return p
}

// timerClocks are the clocks of POSIX timers procs carries: REALTIME,
// MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM, TAI. A CPU-time
// clock names a process or thread by its id in the clock id.
var timerClocks = map[int]bool{0: true, 1: true, 7: true, 8: true, 9: true, 11: true}

// checkTimers returns the problems of a process's POSIX timers.
func checkTimers(ts []procfs.PosixTimer) problems {
	var p problems
	for _, t := range ts {
		if !timerClocks[t.Clock] {
			p.add("POSIX timer %d on clock %d (a CPU-time clock)", t.ID, t.Clock)
		}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 && t.Target == 0 {
			p.add("POSIX timer %d signalling a thread that has exited", t.ID)
		}
	}
	return p
}

// mapKind says how a mapping is carried, or why it cannot be.
func mapKind(m *procfs.Mapping) (kind string, why string) {
	switch m.Path {
	case "[vdso]", "[vvar]", "[vvar_vclock]":
		return format.MapVdso, ""
	case "[vsyscall]":
		return format.MapVsyscall, ""
	case "", "[heap]", "[stack]":
		if m.Shared {
			return format.MapShmem, ""
		}
		return format.MapAnon, ""
	}
	if strings.HasPrefix(m.Path, "[anon:") || strings.HasPrefix(m.Path, "[anon_shmem:") {
		if m.Shared {
			return format.MapShmem, ""
		}
		return format.MapAnon, ""
	}
	if strings.HasPrefix(m.Path, "[") {
		return "", "a special mapping " + m.Path
	}
	if strings.HasPrefix(m.Path, "/memfd:") && !m.Shared {
		// A private mapping of a memfd: its own pages copied on write
		// travel as a private file mapping's do.
		return format.MapFile, ""
	}
	if strings.HasPrefix(m.Path, "/memfd:") || (m.Shared && m.Path == "/dev/zero" && m.Deleted) {
		return format.MapShmem, ""
	}
	if strings.HasPrefix(m.Path, "/SYSV") && m.Shared {
		return format.MapSysV, ""
	}
	if strings.HasPrefix(m.Path, "/SYSV") {
		return "", "a private mapping of System V shared memory"
	}
	if m.Shared && m.Deleted {
		return format.MapShmem, ""
	}
	return format.MapFile, ""
}

func checkMaps(maps []procfs.Mapping) problems {
	var p problems
	for i := range maps {
		if _, why := mapKind(&maps[i]); why != "" {
			p.add("%x-%x is %s", maps[i].Start, maps[i].End, why)
		}
	}
	return p
}

// precheck looks at a process without touching it and refuses what procs
// cannot carry. It returns the process's status.
func precheck(pid int) (procfs.Status, error) {
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return st, notFound(pid, err)
	}
	if strings.HasPrefix(st.State, "Z") || strings.HasPrefix(st.State, "X") {
		return st, &refusal{fmt.Sprintf("process %d is a zombie: it has exited, and holds nothing to dump", pid)}
	}
	maps, err := procfs.Maps(pid)
	if err != nil {
		return st, notFound(pid, err)
	}
	if len(maps) == 0 {
		return st, &refusal{fmt.Sprintf("process %d is a kernel thread: it has no memory of its own to dump", pid)}
	}
	var p problems
	if strings.HasPrefix(st.State, "t") {
		p.add("it is traced by another process, a debugger (state %s)", st.State)
	}
	p = append(p, checkSeccomp(pid)...)
	if root, err := procfs.Root(pid); err == nil && strings.HasSuffix(root, " (deleted)") {
		p.add("a chroot into a directory that was deleted (%s)", root)
	}
	if ts, err := procfs.PosixTimers(pid); err != nil {
		p.add("POSIX timers procs cannot read (%v)", err)
	} else {
		p = append(p, checkTimers(ts)...)
	}
	p = append(p, checkMaps(maps)...)
	fds, err := procfs.FDs(pid)
	if err != nil {
		return st, notFound(pid, err)
	}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return st, notFound(pid, err)
	}
	p = append(p, checkFDs(fds, terminalsOf(stat.TTY, fds, nil))...)
	return st, p.err(pid)
}

// notFound says plainly why /proc could not tell about process pid: it
// does not exist, or it is not ours to read.
func notFound(pid int, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return &refusal{fmt.Sprintf("no process %d", pid)}
	}
	if errors.Is(err, fs.ErrPermission) {
		return &refusal{fmt.Sprintf("not allowed to read process %d (%v): run procs-dump as its owner, or as root with at least its capabilities", pid, err)}
	}
	return err
}
