package files

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// udpSocket is a UDP or UDP-Lite socket, IPv4 or IPv6 (File.UDP): never
// bound, bound (to a wildcard or a given address, its port kept),
// connected, shut down, with its options (sockOpts, shared with TCP:
// SO_BROADCAST, buffer sizes, multicast TTL and loop, IP_PKTINFO, a
// classic BPF filter...), UDP-Lite's checksum coverage, and the
// datagrams it had received and the program had not read, each whole
// with its sender.
//
// The queue is read with MSG_PEEK from the process's very socket
// (pidfd_getfd), at each datagram's offset (SO_PEEK_OFF, put back as
// the program had it): it stays there, for a -K source or a failed
// dump. Datagrams that arrive while the dump runs are lost to a killed
// source, as on a lossy network; a pending error (an ICMP port
// unreachable on a connected socket), which a peek reports and clears,
// is lost likewise.
//
// The loader makes the socket again as the process (Loader.AsProcess: a
// port below 1024, SO_MARK, need its own privilege), binds it, and, to
// put its queue back, sends each datagram to it again from its sender's
// address and port: as root, a raw IP packet (the sender's address
// need not be this host's, nor its port free); without CAP_NET_RAW,
// from an ordinary socket of its own, which the program then sees as
// the sender (a warning says so). So that those packets reach this
// socket and no other, it is first bound without SO_REUSEADDR and
// SO_REUSEPORT (set once the queue is full): a port another socket
// shares (a -K original's) with a queue to put back is refused. Then it
// gets its other options, its filter (after the queue, which it had
// passed), its peer and its shutdown state. A wildcard socket's
// datagrams come back addressed to loopback (IP_PKTINFO says so).
type udpSocket struct{}

func (udpSocket) Name() string { return format.FileUDP }

// ipProto is a socket's family and protocol.
type ipProto struct{ family, proto int }

// udpProtos are the protocols, as the kernel names them, of the sockets
// udpSocket carries.
var udpProtos = map[string]ipProto{
	"UDP": {unix.AF_INET, unix.IPPROTO_UDP}, "UDPv6": {unix.AF_INET6, unix.IPPROTO_UDP},
	"UDP-Lite": {unix.AF_INET, unix.IPPROTO_UDPLITE}, "UDPLITEv6": {unix.AF_INET6, unix.IPPROTO_UDPLITE},
}

func (udpSocket) Match(fd *procfs.FD, _ Terminals) bool {
	_, ok := udpProtos[fd.Proto]
	return fd.Kind == procfs.Socket && ok
}

func (udpSocket) Traits() Traits { return Traits{OneOpen: true, Sent: true} }

// Bounds of a queue in an image: bytes (as TCP's), datagrams.
const (
	maxDgramQueue = 8 << 20
	maxDgrams     = 1 << 16
	maxDgramSize  = 65535
)

func (udpSocket) Dump(src Source, fd *procfs.FD, idx int) error {
	p := udpProtos[fd.Proto]
	s, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	d := &format.Dgram{Family: p.family, Lite: p.proto == unix.IPPROTO_UDPLITE}
	what := "UDP"
	if d.Lite {
		what = "UDP-Lite"
	}
	if err := readDgram(s, fd.Num, what, p.proto, d); err != nil {
		return err
	}
	if d.Shutdown, err = dgramShutdown(s, p, fd.Ino); err != nil {
		return fmt.Errorf("fd %d, a %s socket: its shutdown state: %w", fd.Num, what, err)
	}
	if d.Lite {
		for _, o := range []struct {
			opt int
			to  *int
		}{{linux.UDPLITE_SEND_CSCOV, &d.CsCovSend}, {linux.UDPLITE_RECV_CSCOV, &d.CsCovRecv}} {
			if *o.to, err = unix.GetsockoptInt(s, unix.IPPROTO_UDPLITE, o.opt); err != nil {
				return fmt.Errorf("fd %d: UDP-Lite checksum coverage: %w", fd.Num, err)
			}
		}
	}
	if d.Queue, err = peekDatagrams(s); err != nil {
		return fmt.Errorf("fd %d, a %s socket: %w", fd.Num, what, err)
	}
	src.File(idx).UDP = d
	return nil
}

// dgramShutdown is the shutdown state of socket s, of inode ino, as
// sock_diag tells it; of one sock_diag does not list (never bound, or,
// for an ordinary user, of another network namespace), as poll tells
// it: shut down for reading, or both ways (shut down for writing alone,
// it is lost).
func dgramShutdown(s int, p ipProto, ino uint64) (int, error) {
	sh, err := linux.InetShutdown(s, p.family, p.proto, ino)
	if !errors.Is(err, linux.ErrNotListed) {
		return sh, err
	}
	fds := []unix.PollFd{{Fd: int32(s), Events: unix.POLLRDHUP}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return 0, os.NewSyscallError("poll", err)
	}
	switch {
	case fds[0].Revents&unix.POLLHUP != 0:
		return 3, nil
	case fds[0].Revents&unix.POLLRDHUP != 0:
		return 1, nil
	}
	return 0, nil
}

// readDgram reads what datagram sockets of every protocol (UDP, ping)
// have: addresses, peek offset, options.
func readDgram(s, num int, what string, proto int, d *format.Dgram) error {
	sa, err := unix.Getsockname(s)
	if err != nil {
		return fmt.Errorf("fd %d: getsockname: %w", num, err)
	}
	local, ok := addrString(sa)
	if !ok {
		return refusef("fd %d is a %s socket on a scoped IPv6 address, which procs cannot carry yet", num, what)
	}
	if port(sa) != 0 {
		d.Local = local
	}
	if pa, err := unix.Getpeername(s); err == nil {
		if d.Remote, ok = addrString(pa); !ok {
			return refusef("fd %d is a %s socket connected to a scoped IPv6 address, which procs cannot carry yet", num, what)
		}
	}
	off, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err == nil && off >= 0 {
		d.PeekOff = &off
	}
	if d.Options, err = readSockOpts(s, d.Family, unix.SOCK_DGRAM, proto); err != nil {
		return fmt.Errorf("fd %d: %w", num, err)
	}
	return nil
}

// peekDatagrams reads the receive queue of datagram socket s, leaving it
// there: each peek starts at the socket's peek offset (SO_PEEK_OFF), set
// for it to the bytes read so far (the kernel skips the datagrams they
// make up, and an empty one it has already shown), then put back.
func peekDatagrams(s int) ([]format.Datagram, error) {
	orig, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
	var q []format.Datagram
	buf := make([]byte, maxDgramSize+1)
	total, errs := 0, 0
	for {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, total); err != nil {
			return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
		}
		n, _, _, from, err := unix.Recvmsg(s, buf, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		switch {
		case err == unix.EAGAIN:
			return q, nil
		case err != nil && errs < 8:
			errs++ // a pending error, which the peek took
			continue
		case err != nil:
			return nil, fmt.Errorf("reading its queue: %w", err)
		case n > maxDgramSize:
			return nil, refusef("a datagram of %d bytes queued, more than procs carries", n)
		}
		total += n
		if total > maxDgramQueue || len(q) >= maxDgrams {
			return nil, refusef("more queued than procs carries (%d bytes, %d datagrams)", total, len(q))
		}
		name, _ := addrString(from)
		q = append(q, format.Datagram{From: name, Data: slices.Clone(buf[:n])})
	}
}

func (udpSocket) Prepare(l Loader, i int, f *format.File, what string) error {
	d := f.UDP
	proto := unix.IPPROTO_UDP
	name := "a UDP socket"
	if d.Lite {
		proto, name = unix.IPPROTO_UDPLITE, "a UDP-Lite socket"
	}
	s, err := makeDgram(l, d, proto)
	if err == nil {
		err = requeue(l, s, d, proto, what)
		if err == nil {
			err = l.AsProcess(func() error { return finishDgram(s, d, proto) })
		}
		if err != nil {
			unix.Close(s)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", what, name, err)
	}
	l.Own(i, os.NewFile(uintptr(s), "udp socket"))
	return nil
}

// makeDgram makes datagram socket d of proto again, as the process: its
// options that matter to bind, and its address. With a queue to put
// back it is bound alone first (no SO_REUSEADDR, SO_REUSEPORT: those
// come in finishDgram), so that only it gets what requeue sends.
func makeDgram(l Loader, d *format.Dgram, proto int) (int, error) {
	s := -1
	err := l.AsProcess(func() error {
		var err error
		s, err = unix.Socket(d.Family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
		if err != nil {
			if errors.Is(err, unix.EACCES) && (proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6) {
				return fmt.Errorf("this host lets no ping socket be made by the process's groups (sysctl net.ipv4.ping_group_range)")
			}
			return os.NewSyscallError("socket", err)
		}
		o := d.Options
		if len(d.Queue) > 0 {
			o.ReuseAddr, o.ReusePort = false, false
		}
		if err := setSockOpts(s, d.Family, unix.SOCK_DGRAM, &o, true); err != nil {
			return err
		}
		if d.Local == "" {
			return nil
		}
		err = bindInet(s, d.Family, d.Local)
		if err != nil && len(d.Queue) > 0 && (d.Options.ReuseAddr || d.Options.ReusePort) && strings.Contains(err.Error(), "in use") {
			return fmt.Errorf("its queue of %d datagrams cannot be put back while another socket shares its port %s (the original, if it was dumped with -K and still runs)", len(d.Queue), d.Local)
		}
		return err
	})
	if err != nil && s >= 0 {
		unix.Close(s)
	}
	return s, err
}

// finishDgram gives made socket s what comes after its queue, as the
// process: SO_REUSEADDR and SO_REUSEPORT, the other options and its
// filter, UDP-Lite's coverage, its peek offset, its peer, its shutdown.
func finishDgram(s int, d *format.Dgram, proto int) error {
	for _, o := range []struct {
		on  bool
		opt int
	}{{d.Options.ReuseAddr, unix.SO_REUSEADDR}, {d.Options.ReusePort, unix.SO_REUSEPORT}} {
		if o.on {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, o.opt, 1); err != nil {
				return fmt.Errorf("SO_REUSEADDR or SO_REUSEPORT: %w", err)
			}
		}
	}
	if err := setSockOpts(s, d.Family, unix.SOCK_DGRAM, &d.Options, false); err != nil {
		return err
	}
	for _, o := range []struct{ opt, v int }{{linux.UDPLITE_SEND_CSCOV, d.CsCovSend}, {linux.UDPLITE_RECV_CSCOV, d.CsCovRecv}} {
		if o.v != 0 {
			if err := unix.SetsockoptInt(s, proto, o.opt, o.v); err != nil {
				return fmt.Errorf("UDP-Lite checksum coverage %d: %w", o.v, err)
			}
		}
	}
	if d.PeekOff != nil {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, *d.PeekOff); err != nil {
			return fmt.Errorf("SO_PEEK_OFF: %w", err)
		}
	}
	if d.Remote != "" {
		sa, _, err := parseAddr(d.Family, d.Remote)
		if err != nil {
			return fmt.Errorf("peer %s: %w", d.Remote, err)
		}
		if err := unix.Connect(s, sa); err != nil {
			return fmt.Errorf("connecting to %s: %w", d.Remote, err)
		}
	}
	if d.Shutdown != 0 {
		// Of a socket not connected, shutdown(2) says ENOTCONN, and
		// shuts it down all the same.
		if err := unix.Shutdown(s, d.Shutdown-1); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	return nil
}

// requeue puts d's queue back in socket s, bound alone to d.Local: each
// datagram sent again from its sender (raw, as root) or, without
// CAP_NET_RAW, from a socket of the loader's; then it checks that every
// one arrived, leaving them unread.
func requeue(l Loader, s int, d *format.Dgram, proto int, what string) error {
	if len(d.Queue) == 0 {
		return nil
	}
	_, local, err := parseAddr(d.Family, d.Local)
	if err != nil {
		return fmt.Errorf("address %s: %w", d.Local, err)
	}
	forced, err := rcvRoomFor(s, d.Queue)
	if err != nil {
		return err
	}
	if forced > 0 {
		defer unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, forced/2)
	}
	spoofed := true
	for _, g := range d.Queue {
		from, _ := netip.ParseAddrPort(g.From)
		to := destination(local, from.Addr().Is4() || from.Addr().Is4In6())
		if !isLocal(to.Addr()) {
			// Bound with IP_FREEBIND to an address this host lacks:
			// the datagrams would leave the host.
			return fmt.Errorf("its queue of %d datagrams cannot be put back on %s, an address this host lacks", len(d.Queue), d.Local)
		}
		err := sendRaw(from, to, proto, g.Data)
		if errors.Is(err, unix.EPERM) {
			spoofed = false
			err = sendPlain(to, proto, g.Data)
		}
		if err != nil {
			return fmt.Errorf("putting its queue back: %w", err)
		}
	}
	if !spoofed {
		l.Warn("%s: the %d datagrams queued on %s come back from a socket of procs-load's, not from their senders (that needs CAP_NET_RAW)", what, len(d.Queue), d.Local)
	}
	// Loopback hands packets on in a softirq: they arrive at once, or
	// a moment later on a busy host.
	var got []format.Datagram
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got, err = peekDatagrams(s); err != nil || len(got) >= len(d.Queue) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("reading its queue back: %w", err)
	}
	if len(got) < len(d.Queue) {
		l.Warn("%s: %d of the %d datagrams queued on %s came back", what, len(got), len(d.Queue), d.Local)
	}
	return nil
}

// rcvRoomFor makes socket s's receive buffer large enough for queue q,
// forced if the loader may (SO_RCVBUFFORCE), and returns the size it
// had (0: unchanged), to put back once q is in (finishDgram sets the
// program's own after).
func rcvRoomFor(s int, q []format.Datagram) (int, error) {
	want := 0
	for _, g := range q {
		want += len(g.Data) + 1024 // the kernel's own part of each
	}
	cur, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil || cur >= want {
		return 0, err
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want); err != nil {
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, want/2)
	}
	return cur, nil
}

// destination is where a queued datagram is sent again: the socket's
// address, loopback for a wildcard one; v4 for a sender of IPv4.
func destination(local netip.AddrPort, v4 bool) netip.AddrPort {
	a := local.Addr().Unmap()
	switch {
	case v4 && (a.IsUnspecified() || !a.Is4()):
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case !v4 && a.IsUnspecified():
		a = netip.IPv6Loopback()
	}
	return netip.AddrPortFrom(a, local.Port())
}

// isLocal says whether a is an address of this host (of procs-load's
// network namespace), which a packet sent to it does not leave: the
// kernel's route to it gives it as its own source.
func isLocal(a netip.Addr) bool {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: a.As16(), Port: 9}
	if a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: a.As4(), Port: 9}
	}
	u, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(u)
	if unix.Connect(u, sa) != nil {
		return false
	}
	src, err := unix.Getsockname(u)
	if err != nil {
		return false
	}
	s, _ := addrString(src)
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr() == a
}

// sendRaw sends data as a UDP (or UDP-Lite) datagram from from to to, in
// a raw IP packet (IPPROTO_RAW, the header ours): CAP_NET_RAW.
func sendRaw(from, to netip.AddrPort, proto int, data []byte) error {
	v4 := to.Addr().Is4()
	family := unix.AF_INET6
	if v4 {
		family = unix.AF_INET
	}
	r, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return os.NewSyscallError("socket(SOCK_RAW)", err)
	}
	defer unix.Close(r)
	pkt := linux.UDPPacket(from.Addr().Unmap().AsSlice(), to.Addr().AsSlice(), from.Port(), to.Port(), proto, data)
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: to.Addr().As16()}
	if v4 {
		sa = &unix.SockaddrInet4{Addr: to.Addr().As4()}
	}
	if err := unix.Sendto(r, pkt, 0, sa); err != nil {
		return fmt.Errorf("a datagram from %s: %w", from, err)
	}
	return nil
}

// sendPlain sends data to to from a socket of the loader's own.
func sendPlain(to netip.AddrPort, proto int, data []byte) error {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}
	if to.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}
	}
	u, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(u)
	return unix.Sendto(u, data, 0, sa)
}

// canReceive says whether socket d, bound (validated), may receive from
// an IPv4 sender (an IPv4-mapped address) or an IPv6 one: as an IPv4
// socket, or as an IPv6 one bound to an IPv4-mapped address, or to the
// wildcard and not v6-only; so that requeue sends every datagram to d's
// own address, whose port d holds alone, and no other socket's.
func canReceive(d *format.Dgram, from netip.Addr) bool {
	_, local, err := parseAddr(d.Family, d.Local)
	if err != nil {
		return false
	}
	a := local.Addr()
	if from.Is4() || from.Is4In6() {
		return a.Is4() || a.Is4In6() || a.IsUnspecified() && !d.Options.V6Only
	}
	return !a.Is4() && !a.Is4In6()
}

// Validate checks a UDP socket's family, addresses, state, options and
// queue.
func (udpSocket) Validate(fs []format.File, i int, _ []format.Process) error {
	d := fs[i].UDP
	if d == nil {
		return fmt.Errorf("image file %d, a UDP socket, has no socket state", i)
	}
	if err := validDgram(d, true); err != nil {
		return fmt.Errorf("image UDP socket %d: %w", i, err)
	}
	return nil
}

// validDgram checks what datagram sockets share; ports says whether
// addresses have ports (UDP) or ids (ping).
func validDgram(d *format.Dgram, udp bool) error {
	if d.Family != unix.AF_INET && d.Family != unix.AF_INET6 {
		return fmt.Errorf("family %d", d.Family)
	}
	if d.Local != "" {
		if _, ap, err := parseAddr(d.Family, d.Local); err != nil || udp && ap.Port() == 0 {
			return fmt.Errorf("address %s: not an address and port of its family", safetext.Quote(d.Local))
		}
	}
	if d.Remote != "" {
		if _, ap, err := parseAddr(d.Family, d.Remote); err != nil || udp && ap.Port() == 0 || d.Local == "" {
			return fmt.Errorf("peer %s: not an address and port of its family, or not bound", safetext.Quote(d.Remote))
		}
	}
	switch {
	case d.Shutdown < 0 || d.Shutdown > 3:
		return fmt.Errorf("shutdown %d: out of range", d.Shutdown)
	case d.PeekOff != nil && (*d.PeekOff < 0 || *d.PeekOff > maxDgramQueue):
		return fmt.Errorf("peek offset %d: out of range", *d.PeekOff)
	case !d.Lite && (d.CsCovSend != 0 || d.CsCovRecv != 0):
		return fmt.Errorf("checksum coverage of a socket that is not UDP-Lite")
	case d.CsCovSend < 0 || d.CsCovSend > 0xffff || d.CsCovRecv < 0 || d.CsCovRecv > 0xffff:
		return fmt.Errorf("checksum coverage %d, %d: out of range", d.CsCovSend, d.CsCovRecv)
	case len(d.Queue) > 0 && d.Local == "":
		return fmt.Errorf("datagrams queued on a socket never bound")
	case len(d.Queue) > maxDgrams:
		return fmt.Errorf("%d datagrams queued: more than %d", len(d.Queue), maxDgrams)
	}
	total := 0
	for k, g := range d.Queue {
		total += len(g.Data)
		ap, err := netip.ParseAddrPort(g.From)
		if err == nil && !canReceive(d, ap.Addr()) {
			return fmt.Errorf("queued datagram %d: sender %s: not one its socket may receive from", k, safetext.Quote(g.From))
		}
		switch {
		case len(g.Data) > maxDgramSize-8:
			return fmt.Errorf("queued datagram %d of %d bytes: too long", k, len(g.Data))
		case total > maxDgramQueue:
			return fmt.Errorf("queued datagrams of more than %d bytes", maxDgramQueue)
		case err != nil || ap.Addr().Zone() != "" || d.Family == unix.AF_INET && !ap.Addr().Is4() || d.Family == unix.AF_INET6 && !ap.Addr().Is6():
			return fmt.Errorf("queued datagram %d: sender %s: not an address and port of its family", k, safetext.Quote(g.From))
		}
	}
	return validSockOpts(&d.Options)
}
