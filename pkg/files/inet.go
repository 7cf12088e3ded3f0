package files

import (
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
	{name: "IP_TOS", level: unix.SOL_IP, opt: unix.IP_TOS, level6: unix.IPPROTO_IPV6, opt6: unix.IPV6_TCLASS, max: 255, i: func(o *format.SockOpts) *int { return &o.TOS }},
	{name: "TCP_NODELAY", level: unix.IPPROTO_TCP, opt: unix.TCP_NODELAY, typ: unix.SOCK_STREAM, b: func(o *format.SockOpts) *bool { return &o.NoDelay }},
	{name: "TCP_KEEPIDLE", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPIDLE, typ: unix.SOCK_STREAM, max: 32767, i: func(o *format.SockOpts) *int { return &o.KeepIdle }},
	{name: "TCP_KEEPINTVL", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPINTVL, typ: unix.SOCK_STREAM, max: 32767, i: func(o *format.SockOpts) *int { return &o.KeepIntvl }},
	{name: "TCP_KEEPCNT", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPCNT, typ: unix.SOCK_STREAM, max: 127, i: func(o *format.SockOpts) *int { return &o.KeepCnt }},
	{name: "TCP_DEFER_ACCEPT", level: unix.IPPROTO_TCP, opt: unix.TCP_DEFER_ACCEPT, typ: unix.SOCK_STREAM, max: 1 << 20, i: func(o *format.SockOpts) *int { return &o.DeferAccept }},
	{name: "TCP_USER_TIMEOUT", level: unix.IPPROTO_TCP, opt: unix.TCP_USER_TIMEOUT, typ: unix.SOCK_STREAM, max: 1<<31 - 1, i: func(o *format.SockOpts) *int { return &o.UserTimeout }},
	{name: "TCP_FASTOPEN", level: unix.IPPROTO_TCP, opt: unix.TCP_FASTOPEN, typ: unix.SOCK_STREAM, max: 1 << 20, i: func(o *format.SockOpts) *int { return &o.Fastopen }},
}

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
		if o.b != nil {
			*o.b(&out) = v != 0
		} else {
			*o.i(&out) = v
		}
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
	return out, nil
}

// checkFilter refuses a socket with a filter attached (SO_ATTACH_FILTER,
// SO_ATTACH_BPF), which procs does not carry yet.
func checkFilter(s, num int) error {
	// Asked with no room, the kernel says how many instructions the
	// filter has (with room, it would write them).
	n, err := linux.GetsockoptBytes(s, unix.SOL_SOCKET, unix.SO_GET_FILTER, nil)
	if err == nil && n > 0 {
		return refusef("fd %d is a socket with a filter attached, which procs cannot carry yet", num)
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
		v := 0
		switch {
		case so.b != nil && *so.b(o):
			v = 1
		case so.i != nil:
			v = *so.i(o)
		}
		if v == 0 {
			continue
		}
		if so.twice {
			v /= 2
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
	return nil
}

// validSockOpts checks the options of an image's socket.
func validSockOpts(o *format.SockOpts) error {
	for _, so := range sockOpts {
		if so.i != nil && (*so.i(o) < 0 || *so.i(o) > so.max) {
			return fmt.Errorf("%s %d: out of range", so.name, *so.i(o))
		}
	}
	switch {
	case o.Linger < 0 || o.Linger > 1<<16:
		return fmt.Errorf("SO_LINGER %d: out of range", o.Linger)
	case len(o.Device) >= unix.IFNAMSIZ || !validIfName(o.Device):
		return fmt.Errorf("SO_BINDTODEVICE: not an interface name")
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
