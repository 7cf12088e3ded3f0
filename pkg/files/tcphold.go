package files

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The holder: a process of procs-dump's own (its executable run again,
// with holderEnv set) that gets a copy of each connection before the dump
// holds it (tcprepair.go), and so outlives procs-dump whatever becomes
// of it:
//
//   - if procs-dump ends (done, failed, or killed) while the process that
//     had a connection lives, the connection is put back as it was, if
//     procs-dump did not already: a dump killed at any moment leaves no
//     connection in repair mode. A connection in flight (SCM_RIGHTS) has
//     no process: it is watched through the process of the tree whose
//     socket's queue holds it (Source.Keeper), which the dump kills too;
//   - if that process was killed (the dump went through), the connection
//     stays held, every packet dropped, so that its peer, which goes on
//     sending, gets no reset from this host before the restore makes it
//     again: procs-load asks the holder to let it go (on this host,
//     through an abstract unix socket named after the connection in the
//     connection's network namespace), or after holdTime, when the peer
//     would have given up anyway, the holder closes it (silently: it is
//     in repair mode).

// holderEnv marks the holder process, whose fd 3 is its end of the
// control socket.
const holderEnv = "PROCS_TCP_HOLDER"

// holdTime is how long the holder keeps a connection no restore asked
// for.
const holdTime = 5 * time.Minute

// holderCtl is procs-dump's end of the control socket, once the holder
// runs.
var holderCtl *os.File

// heldListener stands for the peer of a listener given to the holder,
// which puts it back as it was, or closes it once its process is dead.
const heldListener = "listener"

// holdName is the abstract unix socket name of connection local-remote.
func holdName(local, remote string) string {
	return "@procs-tcp-hold " + local + " " + remote
}

// toHolder gives the holder (started at the first call) a copy of
// connection s of process pid (of one in flight, the process holding a
// queue that holds it), from local to remote, whose SO_REUSEADDR is
// reuse, before the dump holds it, with a pidfd of the process, opened
// here while it is frozen: the holder, which may read the message only
// after the process was killed and reaped (it is a process of its own,
// and may get no CPU for a while), must not take a pid that is gone, or
// was used again, for a process alive.
func toHolder(s, pid, reuse int, local, remote string) error {
	if holderCtl == nil {
		if err := startHolder(); err != nil {
			return err
		}
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("giving a connection to its holder: pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	msg := fmt.Sprintf("%d %s %s", reuse, local, remote)
	if err := unix.Sendmsg(int(holderCtl.Fd()), []byte(msg), unix.UnixRights(s, pidfd), nil, 0); err != nil {
		return fmt.Errorf("giving a connection to its holder: %w", err)
	}
	return nil
}

// startHolder starts the holder process.
func startHolder() error {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	mine, theirs := os.NewFile(uintptr(p[0]), "holder"), os.NewFile(uintptr(p[1]), "holder")
	defer theirs.Close()
	exe, err := os.Executable()
	if err != nil {
		mine.Close()
		return err
	}
	cmd := exec.Command(exe)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Env = []string{holderEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		mine.Close()
		return fmt.Errorf("starting the holder of the TCP connections: %w", err)
	}
	cmd.Process.Release()
	holderCtl = mine
	return nil
}

// CloseHolder ends the dump's talk with the holder, which then decides,
// for each connection and listener, by whether its process lives, and
// waits a moment until it has: the ports of a killed tree's listeners
// are free when the dump ends.
func CloseHolder() {
	if holderCtl == nil {
		return
	}
	fd := int(holderCtl.Fd())
	if unix.Shutdown(fd, unix.SHUT_WR) == nil {
		// The holder never writes: its end closed is the first event.
		deadline := time.Now().Add(5 * time.Second)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for time.Now().Before(deadline) {
			if _, err := unix.Poll(pfd, int(time.Until(deadline)/time.Millisecond)+1); err != unix.EINTR {
				break
			}
		}
	}
	holderCtl.Close()
	holderCtl = nil
}

// IsHolder says whether this process is the holder; then RunHolder is all
// it must do.
func IsHolder() bool { return os.Getenv(holderEnv) != "" }

// hconn is a connection the holder has.
type hconn struct {
	s, pidfd, reuse int
	local, remote   string
	listener        int // its abstract unix socket, once its process died
}

// RunHolder gets connections until procs-dump ends, then puts back those
// whose process lives and holds the others until each is asked for or
// holdTime passes.
func RunHolder() int {
	const ctl = 3
	var hs []*hconn
	buf, oob := make([]byte, 512), make([]byte, unix.CmsgSpace(2*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(ctl, buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break // procs-dump is done, or gone
		}
		if h := parseHeld(buf[:n], oob[:oobn]); h != nil {
			hs = append(hs, h)
		}
	}
	var dead []*hconn
	for _, h := range hs {
		if h.remote == heldListener {
			// As it was, whether its process lives or not (a process
			// outside the tree may share it); the port of a dead one's
			// is then free for the restore unless that one does.
			unix.SetsockoptInt(h.s, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
			unix.Close(h.s)
			continue
		}
		if !exited(h.pidfd) {
			// It lives: as it was, if procs-dump did not see to it.
			resumeConn(h.s, h.reuse, nil)
			unix.Close(h.s)
			continue
		}
		if l, err := listenIn(h); err == nil {
			h.listener = l
			dead = append(dead, h)
			continue
		}
		unix.Close(h.s) // in repair mode: silently
	}
	unix.Close(ctl) // CloseHolder waits for this
	holdDead(dead)
	return 0
}

// exited says whether the process of pidfd has exited. procs-dump kills
// a tree and waits for its end before it lets the holder decide.
func exited(pidfd int) bool {
	pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err != unix.EINTR {
			return n == 1
		}
	}
}

// listenIn listens on the abstract unix socket named after connection h
// in the network namespace of the connection (where procs-load restoring
// it on this host looks), which may not be procs-dump's.
func listenIn(h *hconn) (int, error) {
	runtime.LockOSThread() // the thread ends with the holder
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(self)
	ns, err := unix.IoctlRetInt(h.s, unix.SIOCGSKNS)
	if err != nil {
		return -1, err
	}
	defer unix.Close(ns)
	if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
		return -1, err
	}
	defer unix.Setns(self, unix.CLONE_NEWNET)
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: holdName(h.local, h.remote)}); err != nil {
		unix.Close(l)
		return -1, err
	}
	if err := unix.Listen(l, 1); err != nil {
		unix.Close(l)
		return -1, err
	}
	return l, nil
}

// parseHeld reads one message of procs-dump: "reuse local remote", the
// connection and a pidfd of its process.
func parseHeld(msg, oob []byte) *hconn {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(cms) != 1 {
		return nil
	}
	fds, err := unix.ParseUnixRights(&cms[0])
	if err != nil {
		return nil
	}
	f := strings.Fields(string(msg))
	if len(fds) != 2 || len(f) != 3 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil
	}
	reuse, _ := strconv.Atoi(f[0])
	return &hconn{s: fds[0], pidfd: fds[1], reuse: reuse, local: f[1], remote: f[2]}
}

// holdDead holds the connections of processes that died until procs-load
// asks for each (letGoHeld) or holdTime passes.
func holdDead(hs []*hconn) {
	deadline := time.Now().Add(holdTime)
	for len(hs) > 0 && time.Now().Before(deadline) {
		pfds := make([]unix.PollFd, len(hs))
		for i, h := range hs {
			pfds[i] = unix.PollFd{Fd: int32(h.listener), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(pfds, int(time.Until(deadline)/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return
		}
		for i := len(hs) - 1; i >= 0; i-- {
			if pfds[i].Revents == 0 {
				continue
			}
			c, _, err := unix.Accept4(hs[i].listener, unix.SOCK_CLOEXEC)
			if err != nil {
				continue
			}
			unix.Close(hs[i].s) // in repair mode: silently
			unix.Close(hs[i].listener)
			unix.Write(c, []byte{1})
			unix.Close(c)
			hs = append(hs[:i], hs[i+1:]...)
		}
	}
}

// letGoHeld asks the holder of connection local-remote on this host, if
// any, to let it go, and waits until it has: its 4-tuple is free then.
func letGoHeld(local, remote string) {
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(c)
	if unix.Connect(c, &unix.SockaddrUnix{Name: holdName(local, remote)}) != nil {
		return // no holder: another host, or it gave up
	}
	unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	var b [1]byte
	unix.Read(c, b[:])
}
