package files

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// tcpSocket is a TCP socket, IPv4 or IPv6 (File.TCP): one never bound, one
// bound, or one listening (on a wildcard or a given address), with the
// options a program can read back (sockOpts: SO_REUSEADDR, SO_REUSEPORT,
// TCP_NODELAY, keepalive and its TCP_KEEP* times, TCP_DEFER_ACCEPT,
// IPV6_V6ONLY, buffer sizes, SO_LINGER, SO_MARK...). What it is, and its
// options, are read from the process's very socket (pidfd_getfd), which
// works whatever network namespace it is in: TCP_INFO says its state and,
// for a listening one, its backlog and its connections not yet accepted.
//
// The loader makes it again as the process (Loader.AsProcess: a port
// below 1024 needs the process's own privilege), with its options, binds
// it to its address and port and listens; the process gets that very
// socket. The address must be this host's (or IP_FREEBIND set), and the
// port free: a listener dumped with -K still holds it, unless both have
// SO_REUSEPORT (then both listen, and the kernel shares the connections
// out between them).
//
// Connections, established or half closed, travel in repair mode
// (tcprepair.go, tcpclose.go). Listeners are held from the first freeze
// (HoldListeners), for the connections they queued to be accepted first;
// a listener with a socket filter of its program's is not (the hold is a
// filter), and travels with that filter.
//
// Refused by name, for now: connecting sockets (SYN-SENT, SYN-RECV), a
// listener whose program keeps connections waiting that it does not
// accept (they would be reset), a connection with a filter attached, a
// scoped IPv6 address.
type tcpSocket struct{}

func (tcpSocket) Name() string { return format.FileTCP }

func (tcpSocket) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Kind == procfs.Socket && tcpProtos[fd.Proto] != 0
}

// tcpProtos are the protocols, as the kernel names them, of the sockets
// this kind carries, and their families.
var tcpProtos = map[string]int{"TCP": unix.AF_INET, "TCPv6": unix.AF_INET6, "MPTCP": unix.AF_INET, "MPTCPv6": unix.AF_INET6}

// proto is the protocol a socket of t is made with.
func (t tcpSocket) proto(s *format.TCP) int {
	if s.MPTCP {
		return unix.IPPROTO_MPTCP
	}
	return 0
}

// Traits: one open file description, the loader's, for every fd and a
// queue that holds it in flight (a listener handed to a worker, as
// systemd and HAProxy do; a connection handed over).
func (tcpSocket) Traits() Traits { return Traits{OneOpen: true, Sent: true} }

// tcpInfo reads the part of TCP_INFO a dump needs.
func tcpInfo(s int) (linux.TCPInfo, error) {
	b := make([]byte, 256)
	n, err := linux.GetsockoptBytes(s, unix.IPPROTO_TCP, unix.TCP_INFO, b)
	if err != nil {
		return linux.TCPInfo{}, err
	}
	if n < linux.SizeofTCPInfo {
		return linux.TCPInfo{}, fmt.Errorf("TCP_INFO of %d bytes", n)
	}
	return linux.DecodeTCPInfo(b), nil
}

// tcpStates names the states a TCP socket may be in, for refusals.
var tcpStates = map[uint8]string{
	linux.TCP_ESTABLISHED: "established", linux.TCP_SYN_SENT: "connecting (SYN-SENT)",
	linux.TCP_SYN_RECV: "SYN-RECV", linux.TCP_FIN_WAIT1: "closing (FIN-WAIT-1)",
	linux.TCP_FIN_WAIT2: "half-closed (FIN-WAIT-2)", linux.TCP_TIME_WAIT: "TIME-WAIT",
	linux.TCP_CLOSE_WAIT: "half-closed by its peer (CLOSE-WAIT)", linux.TCP_LAST_ACK: "closing (LAST-ACK)",
	linux.TCP_CLOSING: "closing (CLOSING)",
}

func (tcpSocket) Dump(src Source, fd *procfs.FD, idx int) error {
	s, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	t := &format.TCP{Family: tcpProtos[fd.Proto], MPTCP: strings.HasPrefix(fd.Proto, "MPTCP")}
	info, err := tcpInfo(s)
	if err != nil {
		return fmt.Errorf("fd %d: TCP_INFO: %w", fd.Num, err)
	}
	sa, err := unix.Getsockname(s)
	if err != nil {
		return fmt.Errorf("fd %d: getsockname: %w", fd.Num, err)
	}
	local, ok := addrString(sa)
	if !ok {
		return refusef("fd %d is a TCP socket on a scoped IPv6 address, which procs cannot carry yet", fd.Num)
	}
	switch info.State {
	case linux.TCP_CLOSE:
		t.State = format.TCPNew
		switch {
		case info.SegsIn > 0 || info.SegsOut > 0:
			// A connection that ended: its port, which getsockname
			// still says, may be another socket's now (its listener's).
			t.State = format.TCPClosed
		case port(sa) != 0:
			t.State, t.Local = format.TCPBound, local
		}
	case linux.TCP_LISTEN:
		// Held since the tree was frozen (HoldListeners), for which its
		// program had accepted every connection; one in flight, from
		// now (no program can accept from it before a process receives
		// it).
		if src.Carried() && !heldListeners[fd.Ino] && checkFilter(s, fd.Num) == nil {
			if info, err = holdListener(src.Keeper(), s, fd.Num, fd.Ino, src.Hold); err != nil {
				return err
			}
		}
		if info.Unacked > 0 && src.Carried() {
			return refusef("a TCP listener on %s in flight has connections waiting (%d) that no process can accept before one receives it, which procs cannot carry: try again once it is received and they are accepted", local, info.Unacked)
		}
		if info.Unacked > 0 {
			return refusef("fd %d, listening on %s, keeps connections waiting that its program does not accept (%d, for %v), which procs cannot carry: try again once it has accepted them", fd.Num, local, info.Unacked, AcceptTime)
		}
		t.State, t.Local, t.Backlog = format.TCPListen, local, int(info.Sacked)
	case linux.TCP_ESTABLISHED, linux.TCP_CLOSE_WAIT, linux.TCP_FIN_WAIT1, linux.TCP_FIN_WAIT2, linux.TCP_LAST_ACK, linux.TCP_CLOSING:
		if t.MPTCP {
			return refusef("fd %d is a multipath TCP (MPTCP) connection, which procs cannot carry", fd.Num)
		}
		if err := checkFilter(s, fd.Num); err != nil {
			return err
		}
		return dumpConn(src, s, fd.Num, t, local, idx, info.State)
	default:
		remote := "?"
		if pa, err := unix.Getpeername(s); err == nil {
			remote, _ = addrString(pa)
		}
		return refusef("fd %d is a TCP connection from %s to %s, %s, which procs cannot carry yet", fd.Num, local, remote, tcpStates[info.State])
	}
	if t.Options, err = readSockOpts(s, t.Family, unix.SOCK_STREAM, tcpSocket{}.proto(t)); err != nil {
		return fmt.Errorf("fd %d: %w", fd.Num, err)
	}
	if heldListeners[fd.Ino] {
		// Its filter is the hold's (a listener with one of its own
		// is not held).
		t.Options.Filter, t.Options.FilterLocked = nil, false
	}
	src.File(idx).TCP = t
	return nil
}

// dumpConn records established connection s, fd num, from local: its
// peer and options, and unless --tcp=close its state, read while it is
// held (tcprepair.go) until the tree goes on or is killed.
func dumpConn(src Source, s, num int, t *format.TCP, local string, idx int, state uint8) error {
	pa, err := unix.Getpeername(s)
	if err != nil {
		return fmt.Errorf("fd %d: getpeername: %w", num, err)
	}
	remote, _ := addrString(pa)
	t.State, t.Local, t.Remote = tcpConnStates[state], local, remote
	// Read before repair mode, which changes SO_REUSEADDR; the buffer
	// sizes of a connection are the kernel's, tuned as it ran.
	if t.Options, err = readSockOpts(s, t.Family, unix.SOCK_STREAM, 0); err != nil {
		return fmt.Errorf("fd %d: %w", num, err)
	}
	t.Options.SndBuf, t.Options.RcvBuf = 0, 0
	src.File(idx).TCP = t
	if src.TCPClose() {
		return nil
	}
	h, err := unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	reuse, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_REUSEADDR)
	if err == nil {
		// First a copy to the holder, which puts it back if procs-dump
		// dies at any moment after while the process holding it (or,
		// in flight, the socket whose queue holds it) lives.
		err = toHolder(h, src.Keeper(), reuse, local, remote)
	}
	if err != nil {
		unix.Close(h)
		return fmt.Errorf("fd %d, a TCP connection from %s to %s: %w", num, local, remote, err)
	}
	src.Hold(func(resume bool) {
		if resume {
			var w *linux.TCPRepairWindow
			if c := t.Conn; c != nil {
				cw := connWindow(c)
				w = &cw
			}
			resumeConn(h, reuse, w)
		} else {
			silence(h) // the holder holds it once the tree is killed
		}
		unix.Close(h)
	})
	info, err := tcpInfo(h)
	if err != nil {
		return fmt.Errorf("fd %d: TCP_INFO: %w", num, err)
	}
	if t.State = tcpConnStates[info.State]; t.State == "" {
		return refusef("fd %d is a TCP connection from %s to %s, %s, which procs cannot carry yet", num, local, remote, tcpStates[info.State])
	}
	if t.Conn, err = holdConn(h, num, reuse, info); err != nil {
		return fmt.Errorf("fd %d, a TCP connection from %s to %s: %w", num, local, remote, err)
	}
	return nil
}

// AcceptTime is about how long a dump waits, thawing and freezing the
// tree again (pkg/dump freezeAccepted), for its programs to accept the
// connections completed on their listeners.
const AcceptTime = 300 * time.Millisecond

// HoldListeners holds every TCP listener of processes procs not held yet
// (holdListener), giving hold what lets each go, and says which, if any,
// has connections completed that its program has not accepted yet ("fd
// 3 of process 42"). A listener with a filter of the program's is left
// for Dump to refuse.
func HoldListeners(procs []ProcFDs, hold func(release func(resume bool))) (string, error) {
	waiting := ""
	for _, p := range procs {
		pid := p.PID
		for _, fd := range p.FDs {
			if fd.Kind != procfs.Socket || tcpProtos[fd.Proto] == 0 {
				continue
			}
			s, err := takeFD(pid, fd.Num)
			if err != nil {
				continue
			}
			info, err := tcpInfo(s)
			if err == nil && info.State == linux.TCP_LISTEN && !heldListeners[fd.Ino] && checkFilter(s, fd.Num) == nil {
				info, err = holdListener(pid, s, fd.Num, fd.Ino, hold)
			}
			unix.Close(s)
			if err != nil {
				return "", fmt.Errorf("process %d: %w", pid, err)
			}
			if info.State == linux.TCP_LISTEN && info.Unacked > 0 && waiting == "" {
				waiting = fmt.Sprintf("fd %d of process %d", fd.Num, pid)
			}
		}
	}
	return waiting, nil
}

// dropSYN drops the segments that have SYN set (a socket filter sees a
// TCP segment from its header, whose byte 13 holds the flags).
var dropSYN = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, Jt: 0, Jf: 1, K: 0x02},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// heldListeners are the inodes of the listeners holdListener holds, whose
// filter is procs-dump's.
var heldListeners = map[uint64]bool{}

// holdListener stops listener s, fd num of process pid, from taking new
// connections until the tree goes on or is killed: a filter drops every
// SYN, and the client sends it again a second later (to the restored
// listener, once the tree was killed); handshakes under way complete. A
// copy goes to the holder first, which takes the filter off if procs-dump
// dies while the process lives. A multipath TCP listener (Go's) takes no
// filter, and is not held. It returns the listener's TCP_INFO, read once
// it is held.
func holdListener(pid, s, num int, ino uint64, hold func(release func(resume bool))) (linux.TCPInfo, error) {
	h, err := unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return linux.TCPInfo{}, os.NewSyscallError("fcntl", err)
	}
	if err := toHolder(h, pid, 0, "-", heldListener); err != nil {
		unix.Close(h)
		return linux.TCPInfo{}, fmt.Errorf("fd %d, a TCP listener: %w", num, err)
	}
	heldListeners[ino] = true
	hold(func(resume bool) {
		if resume {
			unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		}
		unix.Close(h)
		delete(heldListeners, ino)
	})
	prog := unix.SockFprog{Len: uint16(len(dropSYN)), Filter: &dropSYN[0]}
	err = unix.SetsockoptSockFprog(h, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	if err != nil && err != unix.EOPNOTSUPP {
		return linux.TCPInfo{}, fmt.Errorf("fd %d, a TCP listener: holding it (SO_ATTACH_FILTER): %w", num, err)
	}
	info, err := tcpInfo(h)
	if err != nil {
		return info, fmt.Errorf("fd %d: TCP_INFO: %w", num, err)
	}
	return info, nil
}

// port is sa's port.
func port(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func (tcpSocket) Prepare(l Loader, i int, f *format.File, what string) error {
	t := f.TCP
	var s int
	var err error
	switch {
	case t.State != format.TCPClosed && !format.IsTCPConn(t.State):
		err = l.AsProcess(func() error {
			s, err = makeTCP(t)
			return err
		})
	case t.State == format.TCPClosed || t.Conn == nil || l.TCPClose():
		err = l.AsProcess(func() error {
			s, err = makeClosed(t)
			return err
		})
	default:
		s, err = makeEstablished(l, t)
	}
	if err != nil {
		return fmt.Errorf("%s: a TCP socket: %w", what, err)
	}
	l.Own(i, os.NewFile(uintptr(s), "tcp socket"))
	return nil
}

// makeClosed makes connection t again as one that was reset (--tcp=close,
// an image without its state, or one that had ended). It runs as the
// process. The original, if held on this host, is let go: its peer's next
// packet is answered with a reset.
func makeClosed(t *format.TCP) (int, error) {
	if t.Remote != "" {
		letGoHeld(t.Local, t.Remote)
	}
	s, err := unix.Socket(t.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := makeReset(s, t.Family); err != nil {
		unix.Close(s)
		return -1, err
	}
	return s, nil
}

// makeEstablished makes connection t again in repair mode, which it
// leaves once every process is built (AtRun): both ends of a connection
// within the tree exist by then. Repair mode needs CAP_NET_ADMIN, which
// the loader has and the opener may not: what the process itself could
// not do (bind a port below 1024, set SO_MARK) is tried first as the
// process, on a socket of its own.
func makeEstablished(l Loader, t *format.TCP) (int, error) {
	err := l.AsProcess(func() error {
		x, err := unix.Socket(t.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		defer unix.Close(x)
		if err := setSockOpts(x, t.Family, unix.SOCK_STREAM, &t.Options, true); err != nil {
			return err
		}
		if err := bindInet(x, t.Family, t.Local); err != nil && !strings.Contains(err.Error(), "in use") {
			return err
		}
		return setSockOpts(x, t.Family, unix.SOCK_STREAM, &t.Options, false)
	})
	if err != nil {
		return -1, err
	}
	letGoHeld(t.Local, t.Remote)
	s, err := unix.Socket(t.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	// SO_REUSEADDR would undo repair mode's leave to share the port;
	// it is set when the connection leaves it.
	before := t.Options
	before.ReuseAddr = false
	if err = setSockOpts(s, t.Family, unix.SOCK_STREAM, &before, true); err == nil {
		if err = makeConn(s, t); err == nil {
			err = setSockOpts(s, t.Family, unix.SOCK_STREAM, &t.Options, false)
		}
	}
	if err != nil {
		unix.Close(s)
		return -1, err
	}
	l.AtRun(func() error { return leaveRepair(s, t) })
	return s, nil
}

// makeTCP makes TCP socket t again: its options, its address, listening
// if it was. It runs as the process.
func makeTCP(t *format.TCP) (int, error) {
	s, err := unix.Socket(t.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, tcpSocket{}.proto(t))
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := setupTCP(s, t); err != nil {
		unix.Close(s)
		return -1, err
	}
	return s, nil
}

func setupTCP(s int, t *format.TCP) error {
	if err := setSockOpts(s, t.Family, unix.SOCK_STREAM, &t.Options, true); err != nil {
		return err
	}
	if t.State != format.TCPNew {
		if err := bindInet(s, t.Family, t.Local); err != nil {
			return err
		}
	}
	if t.State == format.TCPListen {
		if err := unix.Listen(s, t.Backlog); err != nil {
			return fmt.Errorf("listening on %s: %w", t.Local, err)
		}
	}
	return setSockOpts(s, t.Family, unix.SOCK_STREAM, &t.Options, false)
}

// bindInet binds s to local, saying in words why it cannot.
func bindInet(s, family int, local string) error {
	sa, ap, err := parseAddr(family, local)
	if err != nil {
		return fmt.Errorf("address %s: %w", local, err)
	}
	err = unix.Bind(s, sa)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("%s is in use on this host (by the process itself, if it was dumped with -K and still runs)", local)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("this host has no address %s", ap.Addr())
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("port %d of %s needs a privilege the process does not have", ap.Port(), ap.Addr())
	}
	return fmt.Errorf("binding to %s: %w", local, err)
}

// Validate checks a TCP socket's family, state, addresses, backlog and
// options.
func (tcpSocket) Validate(fs []format.File, i int, _ []format.Process) error {
	t := fs[i].TCP
	if t == nil {
		return fmt.Errorf("image file %d, a TCP socket, has no socket state", i)
	}
	if t.Family != unix.AF_INET && t.Family != unix.AF_INET6 {
		return fmt.Errorf("image TCP socket %d has family %d", i, t.Family)
	}
	switch t.State {
	case format.TCPNew, format.TCPClosed:
		if t.Local != "" {
			return fmt.Errorf("image TCP socket %d is %s and has an address", i, t.State)
		}
	case format.TCPBound, format.TCPListen, format.TCPEstablished, format.TCPCloseWait, format.TCPFinWait1,
		format.TCPFinWait2, format.TCPLastAck, format.TCPClosing:
		_, ap, err := parseAddr(t.Family, t.Local)
		if err != nil || ap.Port() == 0 {
			return fmt.Errorf("image TCP socket %d: address %s: not an address and port of its family", i, safetext.Quote(t.Local))
		}
	default:
		return fmt.Errorf("image TCP socket %d has state %s", i, safetext.Quote(t.State))
	}
	if format.IsTCPConn(t.State) {
		if _, ap, err := parseAddr(t.Family, t.Remote); err != nil || ap.Port() == 0 {
			return fmt.Errorf("image TCP socket %d: peer %s: not an address and port of its family", i, safetext.Quote(t.Remote))
		}
		if err := validConn(t.Conn); err != nil {
			return fmt.Errorf("image TCP socket %d: %w", i, err)
		}
		if err := validConnState(t.State, t.Conn); err != nil {
			return fmt.Errorf("image TCP socket %d, %s: %w", i, t.State, err)
		}
	}
	switch {
	case !format.IsTCPConn(t.State) && (t.Remote != "" || t.Conn != nil):
		return fmt.Errorf("image TCP socket %d has a peer and is not a connection", i)
	case format.IsTCPConn(t.State) && len(t.Options.Filter) > 0:
		return fmt.Errorf("image TCP socket %d is a connection with a socket filter", i)
	case t.Backlog < 0 || t.Backlog > 1<<16 || t.Backlog != 0 && t.State != format.TCPListen:
		return fmt.Errorf("image TCP socket %d: backlog %d: out of range", i, t.Backlog)
	}
	if err := validSockOpts(&t.Options); err != nil {
		return fmt.Errorf("image TCP socket %d: %w", i, err)
	}
	return nil
}

// validConn checks a connection's repair state, when it has one; the
// kernel checks the windows against the sequence numbers.
func validConn(c *format.TCPConn) error {
	switch {
	case c == nil:
		return nil
	case len(c.SendQueue) > maxTCPQueue || len(c.RecvQueue) > maxTCPQueue:
		return fmt.Errorf("queues of %d and %d bytes: more than %d", len(c.SendQueue), len(c.RecvQueue), maxTCPQueue)
	case c.Unsent < 0 || c.Unsent > len(c.SendQueue):
		return fmt.Errorf("%d bytes not sent of a send queue of %d", c.Unsent, len(c.SendQueue))
	case c.MSS < 64 || c.MSS > 65535:
		return fmt.Errorf("MSS %d: out of range", c.MSS)
	case c.SndWscale < 0 || c.SndWscale > 14 || c.RcvWscale < 0 || c.RcvWscale > 14:
		return fmt.Errorf("window scales %d and %d: out of range", c.SndWscale, c.RcvWscale)
	case !c.Wscale && (c.SndWscale != 0 || c.RcvWscale != 0), !c.Timestamps && c.TSVal != 0:
		return fmt.Errorf("window scales or a timestamp without the option")
	}
	return nil
}
