package files

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// What TCP and UDP sockets share: taking the process's socket to read it,
// their addresses, and their options.

// addrString is sa as the image writes it ("127.0.0.1:80", "[::1]:80");
// ok is false for an address procs cannot carry (a scoped IPv6 one).
func addrString(sa unix.Sockaddr) (s string, ok bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String(), true
	case *unix.SockaddrInet6:
		if a.ZoneId != 0 {
			return "", false
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String(), true
	}
	return "", false
}

// parseAddr reads an address of the image for a socket of family;
// validation has checked it.
func parseAddr(family int, s string) (unix.Sockaddr, netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return nil, ap, err
	case ap.Addr().Zone() != "":
		return nil, ap, fmt.Errorf("a scoped address")
	case family == unix.AF_INET && ap.Addr().Is4():
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, ap, nil
	case family == unix.AF_INET6 && ap.Addr().Is6():
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, ap, nil
	}
	return nil, ap, fmt.Errorf("not an address of family %d", family)
}

// sockOpt is an integer or boolean option of a socket that travels.
type sockOpt struct {
	name       string
	level, opt int
	level6     int // for an IPv6 socket, when it differs (IPV6_TCLASS)
	opt6       int
	typ        int // only for sockets of this type (SOCK_STREAM), 0 for all
	v6         bool
	b          func(*format.SockOpts) *bool
	i          func(*format.SockOpts) *int
	max        int // the largest value an image may hold
	twice      bool
	beforeBind bool
	// neg: the image's bool is true when the option is off (its
	// default is on); plus1: the image holds the value plus one, so
	// that 0 may be the default.
	neg, plus1 bool
}

var sockOpts = []sockOpt{
	{name: "SO_REUSEADDR", level: unix.SOL_SOCKET, opt: unix.SO_REUSEADDR, beforeBind: true, b: func(o *format.SockOpts) *bool { return &o.ReuseAddr }},
	{name: "SO_REUSEPORT", level: unix.SOL_SOCKET, opt: unix.SO_REUSEPORT, beforeBind: true, b: func(o *format.SockOpts) *bool { return &o.ReusePort }},
	{name: "IPV6_V6ONLY", level: unix.IPPROTO_IPV6, opt: unix.IPV6_V6ONLY, v6: true, beforeBind: true, b: func(o *format.SockOpts) *bool { return &o.V6Only }},
	{name: "IP_FREEBIND", level: unix.SOL_IP, opt: unix.IP_FREEBIND, beforeBind: true, b: func(o *format.SockOpts) *bool { return &o.FreeBind }},
	{name: "SO_KEEPALIVE", level: unix.SOL_SOCKET, opt: unix.SO_KEEPALIVE, b: func(o *format.SockOpts) *bool { return &o.KeepAlive }},
	{name: "SO_BROADCAST", level: unix.SOL_SOCKET, opt: unix.SO_BROADCAST, b: func(o *format.SockOpts) *bool { return &o.Broadcast }},
	{name: "SO_OOBINLINE", level: unix.SOL_SOCKET, opt: unix.SO_OOBINLINE, b: func(o *format.SockOpts) *bool { return &o.OOBInline }},
	{name: "SO_SNDBUF", level: unix.SOL_SOCKET, opt: unix.SO_SNDBUF, twice: true, max: maxSockBuf, i: func(o *format.SockOpts) *int { return &o.SndBuf }},
	{name: "SO_RCVBUF", level: unix.SOL_SOCKET, opt: unix.SO_RCVBUF, twice: true, max: maxSockBuf, i: func(o *format.SockOpts) *int { return &o.RcvBuf }},
	{name: "SO_PRIORITY", level: unix.SOL_SOCKET, opt: unix.SO_PRIORITY, max: 1<<31 - 1, i: func(o *format.SockOpts) *int { return &o.Priority }},
	{name: "IP_TTL", level: unix.SOL_IP, opt: unix.IP_TTL, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_UNICAST_HOPS, max: 255, i: func(o *format.SockOpts) *int { return &o.TTL }},
	{name: "SO_RCVLOWAT", level: unix.SOL_SOCKET, opt: unix.SO_RCVLOWAT, max: 1<<31 - 1, i: func(o *format.SockOpts) *int { return &o.RcvLowat }},
	{name: "IP_MTU_DISCOVER", level: unix.SOL_IP, opt: unix.IP_MTU_DISCOVER, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_MTU_DISCOVER, plus1: true, max: 6, i: func(o *format.SockOpts) *int { return &o.PMTUDisc }},
	{name: "IP_TOS", level: unix.SOL_IP, opt: unix.IP_TOS, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_TCLASS, max: 255, i: func(o *format.SockOpts) *int { return &o.TOS }},
	{name: "TCP_NODELAY", level: unix.IPPROTO_TCP, opt: unix.TCP_NODELAY, typ: unix.SOCK_STREAM, b: func(o *format.SockOpts) *bool { return &o.NoDelay }},
	{name: "TCP_KEEPIDLE", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPIDLE, typ: unix.SOCK_STREAM, max: 32767, i: func(o *format.SockOpts) *int { return &o.KeepIdle }},
	{name: "TCP_KEEPINTVL", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPINTVL, typ: unix.SOCK_STREAM, max: 32767, i: func(o *format.SockOpts) *int { return &o.KeepIntvl }},
	{name: "TCP_KEEPCNT", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPCNT, typ: unix.SOCK_STREAM, max: 127, i: func(o *format.SockOpts) *int { return &o.KeepCnt }},
	{name: "TCP_DEFER_ACCEPT", level: unix.IPPROTO_TCP, opt: unix.TCP_DEFER_ACCEPT, typ: unix.SOCK_STREAM, max: 1 << 20, i: func(o *format.SockOpts) *int { return &o.DeferAccept }},
	{name: "TCP_USER_TIMEOUT", level: unix.IPPROTO_TCP, opt: unix.TCP_USER_TIMEOUT, typ: unix.SOCK_STREAM, max: 1<<31 - 1, i: func(o *format.SockOpts) *int { return &o.UserTimeout }},
	{name: "TCP_FASTOPEN", level: unix.IPPROTO_TCP, opt: unix.TCP_FASTOPEN, typ: unix.SOCK_STREAM, max: 1 << 20, i: func(o *format.SockOpts) *int { return &o.Fastopen }},
	{name: "IP_MULTICAST_TTL", level: unix.SOL_IP, opt: unix.IP_MULTICAST_TTL, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_MULTICAST_HOPS, typ: unix.SOCK_DGRAM, plus1: true, max: 256, i: func(o *format.SockOpts) *int { return &o.McastTTL }},
	{name: "IP_MULTICAST_LOOP", level: unix.SOL_IP, opt: unix.IP_MULTICAST_LOOP, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_MULTICAST_LOOP, typ: unix.SOCK_DGRAM, neg: true, b: func(o *format.SockOpts) *bool { return &o.McastNoLoop }},
	{name: "IP_PKTINFO", level: unix.SOL_IP, opt: unix.IP_PKTINFO, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_RECVPKTINFO, typ: unix.SOCK_DGRAM, b: func(o *format.SockOpts) *bool { return &o.PktInfo }},
	{name: "UDP_SEGMENT", level: unix.SOL_UDP, opt: unix.UDP_SEGMENT, typ: unix.SOCK_DGRAM, max: 65535, i: func(o *format.SockOpts) *int { return &o.Segment }},
	{name: "UDP_GRO", level: unix.SOL_UDP, opt: unix.UDP_GRO, typ: unix.SOCK_DGRAM, b: func(o *format.SockOpts) *bool { return &o.GRO }},
	{name: "IP_RECVERR", level: unix.SOL_IP, opt: unix.IP_RECVERR, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_RECVERR, typ: unix.SOCK_DGRAM, b: func(o *format.SockOpts) *bool { return &o.RecvErr }},
}

// maxFilter bounds a socket filter's instructions (BPF_MAXINSNS).
const maxFilter = 4096

// maxSockBuf bounds buffer sizes in an image (as getsockopt tells them).
const maxSockBuf = 1 << 28

// levelOpt is o's level and option for a socket of family.
func (o sockOpt) levelOpt(family int) (int, int) {
	if family == unix.AF_INET6 && o.level6 != 0 {
		return o.level6, o.opt6
	}
	return o.level, o.opt
}

// applies says whether o is an option of a socket of family and typ.
func (o sockOpt) applies(family, typ int) bool {
	return (o.typ == 0 || o.typ == typ) && (!o.v6 || family == unix.AF_INET6)
}

// readSockOpts reads the options of socket s, of family, typ and proto,
// that differ from a new socket's (made here, in the same network
// namespace as procs-dump). An option the protocol does not have (MPTCP
// lacks some of TCP's) is left out.
func readSockOpts(s, family, typ, proto int) (format.SockOpts, error) {
	var out format.SockOpts
	fresh, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if errors.Is(err, unix.EACCES) {
		// A ping socket procs-dump's groups may not make here: a UDP
		// socket's options start the same.
		fresh, err = unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return out, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fresh)
	for _, o := range sockOpts {
		if !o.applies(family, typ) {
			continue
		}
		level, opt := o.levelOpt(family)
		v, err := unix.GetsockoptInt(s, level, opt)
		if err == unix.EOPNOTSUPP || err == unix.ENOPROTOOPT {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", o.name, err)
		}
		d, err := unix.GetsockoptInt(fresh, level, opt)
		if err != nil || v == d {
			continue
		}
		o.store(&out, v)
	}
	l, err := unix.GetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return out, fmt.Errorf("SO_LINGER: %w", err)
	}
	if l.Onoff != 0 {
		out.Linger = int(l.Linger) + 1
	}
	mark, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_MARK)
	if err != nil {
		return out, fmt.Errorf("SO_MARK: %w", err)
	}
	out.Mark = uint32(mark)
	if out.Device, err = unix.GetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil {
		return out, fmt.Errorf("SO_BINDTODEVICE: %w", err)
	}
	for _, o := range sockTimeouts {
		tv, err := unix.GetsockoptTimeval(s, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return out, fmt.Errorf("%s: %w", o.name, err)
		}
		*o.ns(&out) = tv.Nano()
	}
	return out, readFilter(s, &out)
}

// sockTimeouts are the socket timeouts that travel (struct timeval).
var sockTimeouts = []struct {
	name string
	opt  int
	ns   func(*format.SockOpts) *int64
}{
	{"SO_RCVTIMEO", unix.SO_RCVTIMEO, func(o *format.SockOpts) *int64 { return &o.RcvTimeo }},
	{"SO_SNDTIMEO", unix.SO_SNDTIMEO, func(o *format.SockOpts) *int64 { return &o.SndTimeo }},
}

// maxSockTimeout bounds a socket timeout in an image (ns): a year.
const maxSockTimeout = 365 * 24 * 3600 * 1e9

// store puts v, the option's value, in the image's options x.
func (o sockOpt) store(x *format.SockOpts, v int) {
	switch {
	case o.b != nil:
		*o.b(x) = (v != 0) != o.neg
	case o.plus1:
		*o.i(x) = v + 1
	default:
		*o.i(x) = v
	}
}

// value is what the option is set to for the image's options x, and
// whether it is set at all (false: the default).
func (o sockOpt) value(x *format.SockOpts) (int, bool) {
	switch {
	case o.b != nil && o.neg:
		return 0, *o.b(x)
	case o.b != nil:
		return 1, *o.b(x)
	case o.plus1:
		return *o.i(x) - 1, *o.i(x) != 0
	case o.twice:
		return *o.i(x) / 2, *o.i(x)/2 != 0
	}
	return *o.i(x), *o.i(x) != 0
}

// readFilter reads the classic BPF program attached to socket s
// (SO_ATTACH_FILTER), and whether it is locked; an eBPF program, which
// cannot be read back as it was attached, is refused.
func readFilter(s int, out *format.SockOpts) error {
	prog, err := linux.GetFilter(s)
	if errors.Is(err, unix.EACCES) {
		return refusef("a socket with an eBPF filter attached (SO_ATTACH_BPF), which procs cannot carry")
	}
	if err != nil {
		return fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	for _, f := range prog {
		out.Filter = append(out.Filter, format.SockFilter{Code: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K})
	}
	locked, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_LOCK_FILTER)
	out.FilterLocked = err == nil && locked != 0
	return nil
}

// checkFilter refuses a connection with a filter attached
// (SO_ATTACH_FILTER, SO_ATTACH_BPF): holding it replaces the filter.
func checkFilter(s, num int) error {
	// Asked with no room, the kernel says how many instructions the
	// filter has (with room, it would write them).
	n, err := linux.GetsockoptBytes(s, unix.SOL_SOCKET, unix.SO_GET_FILTER, nil)
	if err == nil && n > 0 || errors.Is(err, unix.EACCES) {
		return refusef("fd %d is a TCP connection with a socket filter attached, which procs cannot carry yet", num)
	}
	return nil
}

// attachFilter attaches the image's classic BPF program to socket s, and
// locks it if it was.
func attachFilter(s int, o *format.SockOpts) error {
	if len(o.Filter) == 0 {
		return nil
	}
	prog := make([]unix.SockFilter, len(o.Filter))
	for i, f := range o.Filter {
		prog[i] = unix.SockFilter{Code: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER of %d instructions: %w", len(prog), err)
	}
	if o.FilterLocked {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1); err != nil {
			return fmt.Errorf("SO_LOCK_FILTER: %w", err)
		}
	}
	return nil
}

// setSockOpts gives socket s of family and typ the options o: those that
// matter to bind (before) or the others (!before). It runs as the
// process (an option that needs a privilege it lacks fails).
func setSockOpts(s, family, typ int, o *format.SockOpts, before bool) error {
	for _, so := range sockOpts {
		if !so.applies(family, typ) || so.beforeBind != before {
			continue
		}
		v, set := so.value(o)
		if !set {
			continue
		}
		level, opt := so.levelOpt(family)
		if err := unix.SetsockoptInt(s, level, opt, v); err != nil {
			return fmt.Errorf("%s %d: %w", so.name, v, err)
		}
	}
	if before {
		if o.Device != "" {
			if err := unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.Device); err != nil {
				return fmt.Errorf("SO_BINDTODEVICE %s: %w", o.Device, err)
			}
		}
		if o.Mark != 0 {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_MARK, int(o.Mark)); err != nil {
				return fmt.Errorf("SO_MARK %d: %w", o.Mark, err)
			}
		}
		return nil
	}
	if o.Linger > 0 {
		if err := unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(o.Linger - 1)}); err != nil {
			return fmt.Errorf("SO_LINGER: %w", err)
		}
	}
	for _, t := range sockTimeouts {
		if ns := *t.ns(o); ns != 0 {
			tv := unix.NsecToTimeval(ns)
			if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, t.opt, &tv); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	return attachFilter(s, o)
}

// validSockOpts checks the options of an image's socket.
func validSockOpts(o *format.SockOpts) error {
	for _, so := range sockOpts {
		if so.i != nil && (*so.i(o) < 0 || *so.i(o) > so.max) {
			return fmt.Errorf("%s %d: out of range", so.name, *so.i(o))
		}
	}
	for _, t := range sockTimeouts {
		if ns := *t.ns(o); ns < 0 || ns > maxSockTimeout {
			return fmt.Errorf("%s %d ns: out of range", t.name, ns)
		}
	}
	switch {
	case o.Linger < 0 || o.Linger > 1<<16:
		return fmt.Errorf("SO_LINGER %d: out of range", o.Linger)
	case len(o.Device) >= unix.IFNAMSIZ || !validIfName(o.Device):
		return fmt.Errorf("SO_BINDTODEVICE: not an interface name")
	case len(o.Filter) > maxFilter:
		return fmt.Errorf("a socket filter of %d instructions: more than %d", len(o.Filter), maxFilter)
	case o.FilterLocked && len(o.Filter) == 0:
		return fmt.Errorf("SO_LOCK_FILTER without a filter")
	}
	return nil
}

// validIfName says whether s may be an interface's name (or is empty).
func validIfName(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return s != "." && s != ".."
}
