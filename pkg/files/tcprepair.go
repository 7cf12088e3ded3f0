package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// Established TCP connections, in repair mode (TCP_REPAIR, as CRIU's
// sk-tcp.c and libsoccr do): the half of tcp.go that reads a connection
// and makes it again.
//
// While the tree is dumped, each connection is held: a socket filter that
// drops every packet (the peer's data, its acknowledgements) is attached
// first, so that what the socket holds can no longer change, and the
// peer sees a silent host (it retransmits later, as over a lossy link)
// and gets no reset; its send window is closed, so that it sends nothing
// it had not sent at the read. The socket is in repair mode only while it is read
// (its queues, sequence numbers, options and windows), so that a
// process that runs on, should procs-dump die, finds its socket usable.
// When the tree goes on (-K, or a failed dump) the filter is taken off:
// the connection is exactly as it was. Before the tree is killed, each
// connection enters repair mode again, in which it sends nothing and
// closes silently, and the holder (tcphold.go) keeps it until the
// restore. What the kernel sent meanwhile (retransmissions) the restored
// connection sends again, and the peer takes as duplicates.

// maxTCPQueue bounds each queue of a connection in an image: more than
// the kernel lets a buffer grow by default (tcp_rmem, tcp_wmem: 6 and 4
// MiB), and the whole FILES record, which holds them, is bounded too.
const maxTCPQueue = 8 << 20

// maxUserMSS is the largest MSS TCP_MAXSEG takes (MAX_TCP_WINDOW).
const maxUserMSS = 32767

// dropAll is a classic BPF program that drops every packet.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// holdConn stops connection s: no packet in (the filter), no byte
// sent that was not sent yet (its send window closed: a paced or
// throttled send queue would go on draining, and the peer would then
// acknowledge bytes the restored connection has as unsent, which it
// takes for acknowledgements of the future and drops, with the peer's
// data, for ever), then reads it in repair mode, which it leaves at once
// (sending no window probe) with its SO_REUSEADDR, reuse, back.
func holdConn(s, num, reuse int, info linux.TCPInfo) (*format.TCPConn, error) {
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return nil, fmt.Errorf("holding it (SO_ATTACH_FILTER): %w", err)
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, refusef("carrying a TCP connection needs CAP_NET_ADMIN (TCP_REPAIR): dump as root, or with --tcp=close")
		}
		return nil, fmt.Errorf("TCP_REPAIR: %w", err)
	}
	c, err := readClosed(s, num, info)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, 0)
	if oerr := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP); oerr != nil && err == nil {
		err = fmt.Errorf("leaving repair mode: %w", oerr)
	}
	unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, reuse)
	return c, err
}

// readClosed closes the send window of socket s, in repair mode, and
// reads it (readConn) with the window it had, which it puts back if the
// read fails (the hold's end then need not).
func readClosed(s, num int, info linux.TCPInfo) (*format.TCPConn, error) {
	w, err := repairWindow(s)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", num, err)
	}
	closed := w
	closed.SndWnd = 0
	if err := setRepairWindow(s, closed); err != nil {
		return nil, fmt.Errorf("fd %d: closing its send window: %w", num, err)
	}
	c, err := readConn(s, num, info, w)
	if err != nil {
		setRepairWindow(s, w)
	}
	return c, err
}

// repairWindow reads the windows of socket s, in repair mode.
func repairWindow(s int) (linux.TCPRepairWindow, error) {
	var w linux.TCPRepairWindow
	b := make([]byte, linux.SizeofTCPRepairWindow)
	if n, err := linux.GetsockoptBytes(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, b); err != nil || n < len(b) {
		return w, fmt.Errorf("TCP_REPAIR_WINDOW: %d bytes, %v", n, err)
	}
	w.Decode(b)
	return w, nil
}

// connWindow is the windows connection c was read with.
func connWindow(c *format.TCPConn) linux.TCPRepairWindow {
	return linux.TCPRepairWindow{SndWl1: c.SndWl1, SndWnd: c.SndWnd, MaxWindow: c.MaxWindow, RcvWnd: c.RcvWnd, RcvWup: c.RcvWup}
}

// setRepairWindow sets the windows of socket s, in repair mode.
func setRepairWindow(s int, w linux.TCPRepairWindow) error {
	if err := linux.SetsockoptBytes(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w.Encode()); err != nil {
		return fmt.Errorf("TCP_REPAIR_WINDOW: %w", err)
	}
	return nil
}

// silence puts held connection s in repair mode before its process is
// killed: it sends nothing more, and closes without a word.
func silence(s int) {
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
}

// resumeConn lets connection s go on as it was before holdConn: its send
// window w back (nil: unknown, as to the holder, and the peer's answer to
// the window probe says it again), the filter off, then out of repair
// mode, which sends a window probe that the peer answers (and sends
// again what it sent meanwhile), its SO_REUSEADDR, reuse, back.
func resumeConn(s, reuse int, w *linux.TCPRepairWindow) {
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, 0)
	if w != nil {
		setRepairWindow(s, *w)
	}
	unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF)
	unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, reuse)
}

// readConn reads held connection s (fd num of the process): its queues,
// their sequence numbers, its options; its windows are w.
func readConn(s, num int, info linux.TCPInfo, w linux.TCPRepairWindow) (*format.TCPConn, error) {
	if off, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err == nil && off >= 0 {
		return nil, refusef("fd %d is a TCP connection with a peek offset (SO_PEEK_OFF %d), which procs cannot carry yet", num, off)
	}
	c := &format.TCPConn{}
	var err error
	// A FIN is the last sequence number of its queue; SIOCINQ leaves the
	// peer's out, SIOCOUTQ and SIOCOUTQNSD count ours until it is
	// acknowledged and sent.
	st := tcpConnStates[info.State]
	peerFIN, ownFIN := format.TCPPeerFIN(st), format.TCPOwnFIN(st)
	if c.RecvSeq, c.RecvQueue, err = readQueue(s, linux.TCP_RECV_QUEUE, unix.SIOCINQ, peerFIN, false); err != nil {
		return nil, fmt.Errorf("fd %d: its receive queue: %w", num, err)
	}
	if c.SendSeq, c.SendQueue, err = readQueue(s, linux.TCP_SEND_QUEUE, unix.SIOCOUTQ, ownFIN, ownFIN); err != nil {
		return nil, fmt.Errorf("fd %d: its send queue: %w", num, err)
	}
	if c.Unsent, err = unix.IoctlGetInt(s, unix.SIOCOUTQNSD); err != nil {
		return nil, fmt.Errorf("fd %d: SIOCOUTQNSD: %w", num, err)
	}
	if ownFIN && c.Unsent > 0 {
		c.FinUnsent, c.Unsent = true, c.Unsent-1
	}
	c.Unsent = min(max(c.Unsent, 0), len(c.SendQueue))
	if c.MSS, err = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_MAXSEG); err != nil {
		return nil, fmt.Errorf("fd %d: TCP_MAXSEG: %w", num, err)
	}
	c.SACK = info.Options&linux.TCPI_OPT_SACK != 0
	c.Timestamps = info.Options&linux.TCPI_OPT_TIMESTAMPS != 0
	if info.Options&linux.TCPI_OPT_WSCALE != 0 {
		c.Wscale, c.SndWscale, c.RcvWscale = true, int(info.SndWscale), int(info.RcvWscale)
	}
	if c.Timestamps {
		ts, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return nil, fmt.Errorf("fd %d: TCP_TIMESTAMP: %w", num, err)
		}
		c.TSVal = uint32(ts)
	}
	c.SndWl1, c.SndWnd, c.MaxWindow, c.RcvWnd, c.RcvWup = w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup
	return c, nil
}

// readQueue reads one queue of held socket s, leaving it there: the
// sequence number of its first byte, and its bytes (ioctl says how many).
// With fin the queue ends with a FIN, which ioctl counts if counted.
func readQueue(s, queue int, ioctl uint, fin, counted bool) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return 0, nil, fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	defer unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, 0)
	end, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	}
	n, err := unix.IoctlGetInt(s, ioctl)
	if err != nil {
		return 0, nil, os.NewSyscallError("ioctl", err)
	}
	if fin {
		end--
		if counted && n > 0 {
			n--
		}
	}
	if n < 0 || n > maxTCPQueue {
		return 0, nil, refusef("a TCP queue of %d bytes, more than procs carries (%d)", n, maxTCPQueue)
	}
	var data []byte
	if n > 0 {
		data = make([]byte, n)
		got, _, err := unix.Recvfrom(s, data, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil {
			return 0, nil, fmt.Errorf("reading it: %w", err)
		}
		if got != n {
			return 0, nil, fmt.Errorf("read %d bytes of %d", got, n)
		}
	}
	return uint32(end) - uint32(n), data, nil
}

// makeConn makes connection t again in repair mode, as the loader
// (TCP_REPAIR needs CAP_NET_ADMIN), on socket s: sequence numbers,
// address, peer, options, queues, windows. It stays in repair mode, sending
// nothing, until leaveRepair.
func makeConn(s int, t *format.TCP) error {
	c := t.Conn
	// Nothing of the peer's is taken in before the process runs, but the
	// segments that put back its FIN (tcpclose.go).
	prog := unix.SockFprog{Len: uint16(len(makeFilter)), Filter: &makeFilter[0]}
	if err := unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("the connection from %s to %s needs CAP_NET_ADMIN (TCP_REPAIR): restore as root, or with --tcp=close to have it reset", t.Local, t.Remote)
		}
		return fmt.Errorf("TCP_REPAIR: %w", err)
	}
	for _, q := range []struct {
		queue int
		seq   uint32
	}{{linux.TCP_RECV_QUEUE, c.RecvSeq}, {linux.TCP_SEND_QUEUE, c.SendSeq}} {
		if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
			return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
		}
		if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(int32(q.seq))); err != nil {
			return fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
		}
	}
	if err := bindInet(s, t.Family, t.Local); err != nil {
		return err
	}
	// connect sizes the segments by the MSS it knows then, the default
	// 536 before TCP_REPAIR_OPTIONS can say the peer's (once connected),
	// and for good: the connection's own MSS first, as if the program
	// had set it (TCP_MAXSEG takes no more than 32767), unset after.
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_MAXSEG, min(c.MSS, maxUserMSS))
	sa, _, err := parseAddr(t.Family, t.Remote)
	if err != nil {
		return fmt.Errorf("peer %s: %w", t.Remote, err)
	}
	if err := unix.Connect(s, sa); err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("the connection from %s to %s exists on this host (the original, if it was dumped with -K and still runs)", t.Local, t.Remote)
		}
		return fmt.Errorf("connecting to %s: %w", t.Remote, err)
	}
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_MAXSEG, 0)
	opts := []linux.TCPRepairOpt{{Code: linux.TCPOPT_MSS, Val: uint32(c.MSS)}}
	if c.Wscale {
		opts = append(opts, linux.TCPRepairOpt{Code: linux.TCPOPT_WINDOW, Val: uint32(c.SndWscale) | uint32(c.RcvWscale)<<16})
	}
	if c.SACK {
		opts = append(opts, linux.TCPRepairOpt{Code: linux.TCPOPT_SACK_PERM})
	}
	if c.Timestamps {
		opts = append(opts, linux.TCPRepairOpt{Code: linux.TCPOPT_TIMESTAMP})
	}
	if err := linux.SetsockoptBytes(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, linux.EncodeTCPRepairOpts(opts)); err != nil {
		return fmt.Errorf("TCP_REPAIR_OPTIONS: %w", err)
	}
	if c.Timestamps {
		if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(int32(c.TSVal))); err != nil {
			return fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
	}
	if err := fillQueue(s, linux.TCP_RECV_QUEUE, unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, c.RecvQueue); err != nil {
		return fmt.Errorf("its receive queue of %d bytes: %w", len(c.RecvQueue), err)
	}
	// The bytes sent and not acknowledged go back as such (the kernel
	// sends them again when its retransmission timer fires); those not
	// sent yet are sent as the connection leaves repair mode
	// (leaveRepair), the buffer made large enough for them now.
	sent := c.SendQueue[:len(c.SendQueue)-c.Unsent]
	if err := fillQueue(s, linux.TCP_SEND_QUEUE, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, sent); err != nil {
		return fmt.Errorf("its send queue of %d bytes: %w", len(sent), err)
	}
	if want := 2*len(c.SendQueue) + 64<<10; c.Unsent > 0 {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want); err != nil {
			return fmt.Errorf("a send buffer of %d bytes: %w", want, err)
		}
	}
	w := connWindow(c)
	if format.TCPPeerFIN(t.State) {
		// The window was read past the peer's FIN, not taken in yet:
		// the same right edge, from one sequence number before.
		w.RcvWup--
		w.RcvWnd++
	}
	if err := setRepairWindow(s, w); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, 0); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	return putFINs(s, t)
}

// fillQueue puts data in a queue of socket s in repair mode, its buffer
// (option buf, forced with force) made large enough first.
func fillQueue(s, queue, buf, force int, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	cur, _ := unix.GetsockoptInt(s, unix.SOL_SOCKET, buf)
	if want := 2*len(data) + 64<<10; cur < want {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, force, want); err != nil {
			return fmt.Errorf("buffer of %d bytes: %w", want, err)
		}
	}
	for len(data) > 0 {
		n, err := unix.SendmsgN(s, data, nil, nil, unix.MSG_DONTWAIT)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// leaveRepair lets made connection s run: packets in again, out of
// repair mode (the kernel sends a window probe, and the peer answers),
// with the SO_REUSEADDR the program had set (repair mode cleared it).
func leaveRepair(s int, t *format.TCP) error {
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
		return fmt.Errorf("the connection from %s to %s: SO_DETACH_FILTER: %w", t.Local, t.Remote, err)
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return fmt.Errorf("the connection from %s to %s: leaving repair mode: %w", t.Local, t.Remote, err)
	}
	c := t.Conn
	for unsent := c.SendQueue[len(c.SendQueue)-c.Unsent:]; len(unsent) > 0; {
		n, err := unix.SendmsgN(s, unsent, nil, nil, unix.MSG_DONTWAIT)
		if err != nil {
			return fmt.Errorf("the connection from %s to %s: sending its %d bytes not sent yet: %w", t.Local, t.Remote, len(unsent), err)
		}
		unsent = unsent[n:]
	}
	if c.FinUnsent {
		if err := unix.Shutdown(s, unix.SHUT_WR); err != nil {
			return fmt.Errorf("the connection from %s to %s: its FIN (shutdown): %w", t.Local, t.Remote, err)
		}
	}
	if t.Options.ReuseAddr {
		return unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	return nil
}

// makeReset makes socket s, of family, a connection that was reset: a
// read gives ECONNRESET, then the end (--tcp=close). It connects to a
// listener of its own on loopback, which aborts it.
func makeReset(s, family int) error {
	lfam, addr := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	if family == unix.AF_INET6 {
		lfam, addr = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	l, err := unix.Socket(lfam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, addr); err != nil {
		return fmt.Errorf("a loopback listener: %w", err)
	}
	if err := unix.Listen(l, 1); err != nil {
		return fmt.Errorf("a loopback listener: %w", err)
	}
	la, err := unix.Getsockname(l)
	if err != nil {
		return err
	}
	if err := unix.Connect(s, la); err != nil && err != unix.EINPROGRESS {
		return fmt.Errorf("connecting to a loopback listener: %w", err)
	}
	a, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("accepting on a loopback listener: %w", err)
	}
	unix.SetsockoptLinger(a, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
	return unix.Close(a) // sends the reset
}
