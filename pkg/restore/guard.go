package restore

// The guard of a lazy restore: procs-load itself, run again with argv[0]
// guardName in a session of its own, that keeps the process from running
// on zeros if procs-load dies (SIGKILL, the OOM killer) before every page
// is in.
//
// When the last fd of a userfaultfd closes, the kernel unregisters its
// ranges and wakes the threads that wait there: a page that had not come
// reads as zeros from then on. procs-load's own fds close early in its
// exit, before anything that would fire at its end (PR_SET_PDEATHSIG,
// PTRACE_O_EXITKILL) could kill the process; and a parent-death signal
// follows the parent thread, which the Go runtime may end at any time
// (the process would die of a normal restore), is the process's own
// setting (a dump would keep it) and is not inherited by a child it
// forks. So the guard holds a copy of every userfaultfd of the restore
// (the process's, and that of each child it forks meanwhile, sent as
// the pager meets the fork): while it lives a fault on a missing page
// waits, whoever reads the events. Its fd 3 is a unix socket from
// procs-load (SOCK_SEQPACKET), on which it gets:
//
//   - "root PID" with the root's pidfd;
//   - "uffd" with the userfaultfd of a process of the tree, or of a
//     child one forked;
//   - "pid PID" with the pidfd of a process the root forked, found
//     below it or adopted by procs-load (forks.go);
//   - "done" once the pager is closed (every page in, or the process
//     killed by procs-load): it closes its fds and exits at once.
//
// An end of file before "done" means procs-load is gone with pages
// missing: the guard kills the process, each process it was given, and
// what they forked (killLazy), waits until they have ended, and only
// then closes the userfaultfds and exits. It ignores SIGINT, SIGHUP and
// SIGTERM; a SIGKILL of both procs-load and the guard at once is what it
// cannot help, and so is a child forked the moment procs-load died
// (before procs-load found it).

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// guardName is argv[0] of the guard, and its name (comm).
const guardName = "procs-guard"

func init() {
	if len(os.Args) == 1 && os.Args[0] == guardName {
		os.Exit(runGuard())
	}
}

// guard is procs-load's side of the guard.
type guard struct {
	ctl *os.File
	cmd *exec.Cmd
}

// startGuard starts the guard of the tree whose root is process pid
// (pidfd), and gives it both; the userfaultfds come after (hold).
func startGuard(pid, pidfd int) (*guard, error) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	mine, theirs := os.NewFile(uintptr(p[0]), "guard"), os.NewFile(uintptr(p[1]), "guard")
	defer theirs.Close()
	g := &guard{ctl: mine, cmd: &exec.Cmd{Path: "/proc/self/exe", Args: []string{guardName}, Env: []string{}, Dir: "/"}}
	g.cmd.ExtraFiles = []*os.File{theirs}
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := g.cmd.Start(); err != nil {
		mine.Close()
		return nil, fmt.Errorf("--lazy: starting the guard of the process: %w", err)
	}
	if err := g.send("root "+strconv.Itoa(pid), pidfd); err != nil {
		g.release()
		return nil, fmt.Errorf("--lazy: the guard of the process: %w", err)
	}
	return g, nil
}

// send sends msg and fds to the guard.
func (g *guard) send(msg string, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(int(g.ctl.Fd()), []byte(msg), oob, nil, unix.MSG_NOSIGNAL)
}

// member gives the guard a process of the restore, pid (pidfd), that
// the root forked (forks.go), for it to kill too.
func (g *guard) member(pid, pidfd int) { g.send("pid "+strconv.Itoa(pid), pidfd) }

// hold gives the guard the userfaultfd of a process of the tree, or of a
// child one forked (uffd.Pager.Forked). A guard gone (killed by itself)
// cannot take it: the restore goes on, unguarded.
func (g *guard) hold(f *os.File) { g.send("uffd", int(f.Fd())) }

// release tells the guard that nothing is left to guard, and waits until
// it has exited (uffd.Pager.Release): its copies of the userfaultfds are
// closed then.
func (g *guard) release() {
	g.send("done")
	g.ctl.Close()
	g.cmd.Wait()
}

// runGuard is the guard's life.
func runGuard() int {
	os.WriteFile("/proc/self/comm", []byte(guardName), 0)
	signal.Ignore(unix.SIGINT, unix.SIGHUP, unix.SIGTERM, unix.SIGPIPE)
	const ctl = 3
	pid, pidfd := 0, -1
	members := map[int]int{} // pid -> pidfd, of what the root forked
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(2*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(ctl, buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break // procs-load is gone
		}
		fds := receivedFDs(oob[:oobn])
		msg := string(buf[:n])
		switch {
		case msg == "done":
			return 0
		case strings.HasPrefix(msg, "root ") && len(fds) == 1 && pidfd < 0:
			pid, _ = strconv.Atoi(strings.TrimPrefix(msg, "root "))
			pidfd = fds[0]
		case strings.HasPrefix(msg, "pid ") && len(fds) == 1:
			if n, err := strconv.Atoi(strings.TrimPrefix(msg, "pid ")); err == nil && n > 0 {
				members[n] = fds[0]
			}
		}
		// The userfaultfds, and anything unexpected, stay open until
		// the guard exits.
	}
	// Its PID is the process's as long as the pidfd can signal it (a
	// zombie's too): no other process's children are taken for its.
	if pid > 0 {
		members[pid] = pidfd
	}
	for pid, pidfd := range members {
		if unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil {
			killLazy(pid, pidfd)
		}
	}
	return 0
}

// receivedFDs are the fds of a message's control data.
func receivedFDs(oob []byte) []int {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range cms {
		if f, err := unix.ParseUnixRights(&cms[i]); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}
