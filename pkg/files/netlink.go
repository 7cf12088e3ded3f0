package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// netlinkRoute is a netlink socket of protocol NETLINK_ROUTE
// (File.Netlink), the one programs hold to ask the kernel for links,
// addresses and routes (glibc's getaddrinfo, `ip`) or to watch them
// change (`ip monitor`, network managers): made again, a new socket,
// rather than carried. It keeps its type, its port id when that is free
// here (else the kernel gives another: only a program that remembered
// it sees the change), its buffer sizes and netlink options, and the
// multicast groups it listened to: it hears again of every change after
// the restore; of those while it was away it hears nothing (as a
// listener whose queue overflowed, but without ENOBUFS).
//
// A socket with messages queued unread (the kernel's answers, or
// events), or with a dump in progress, is refused (try again): the
// kernel's messages cannot be queued again. So is one connected to
// another port than the kernel's. Every other netlink protocol (audit,
// sock_diag, netfilter, generic netlink and the rest), raw and packet
// sockets are refused by name (socketName).
type netlinkRoute struct{}

func (netlinkRoute) Name() string { return format.FileNetlink }

func (netlinkRoute) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Kind == procfs.Socket && fd.Netlink != nil && fd.Netlink.Proto == unix.NETLINK_ROUTE
}

func (netlinkRoute) Traits() Traits { return Traits{OneOpen: true} }

// netlinkFlags are the netlink options (level SOL_NETLINK) that travel,
// bits of Netlink.Flags.
var netlinkFlags = []int{unix.NETLINK_PKTINFO, unix.NETLINK_BROADCAST_ERROR, unix.NETLINK_NO_ENOBUFS,
	unix.NETLINK_LISTEN_ALL_NSID, unix.NETLINK_CAP_ACK, unix.NETLINK_EXT_ACK, unix.NETLINK_GET_STRICT_CHK}

// maxNetlinkGroup bounds a group in an image (rtnetlink has fewer).
const maxNetlinkGroup = 1024

func (netlinkRoute) Dump(src Source, fd *procfs.FD, idx int) error {
	s, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	what := fmt.Sprintf("fd %d is a netlink route socket", fd.Num)
	if fd.Netlink.Dump {
		return refusef("%s with a dump in progress, which procs cannot carry: try again", what)
	}
	if _, _, err := unix.Recvfrom(s, make([]byte, 1), unix.MSG_PEEK|unix.MSG_DONTWAIT); !errors.Is(err, unix.EAGAIN) {
		return refusef("%s with messages of the kernel's queued unread, which procs cannot carry: try again", what)
	}
	if pa, err := unix.Getpeername(s); err == nil {
		if a, ok := pa.(*unix.SockaddrNetlink); ok && (a.Pid != 0 || a.Groups != 0) {
			return refusef("%s connected to port %d, which procs cannot carry", what, a.Pid)
		}
	}
	n := &format.Netlink{PortID: fd.Netlink.PortID}
	if n.Type, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return fmt.Errorf("fd %d: SO_TYPE: %w", fd.Num, err)
	}
	if n.Groups, err = netlinkGroups(s); err != nil {
		return fmt.Errorf("fd %d: NETLINK_LIST_MEMBERSHIPS: %w", fd.Num, err)
	}
	for _, o := range netlinkFlags {
		if v, err := unix.GetsockoptInt(s, unix.SOL_NETLINK, o); err == nil && v != 0 {
			n.Flags |= 1 << o
		}
	}
	if n.SndBuf, n.RcvBuf, err = netlinkBuffers(s); err != nil {
		return fmt.Errorf("fd %d: %w", fd.Num, err)
	}
	src.File(idx).Netlink = n
	return nil
}

// netlinkGroups lists the multicast groups socket s listens to
// (NETLINK_LIST_MEMBERSHIPS, a bit mask).
func netlinkGroups(s int) ([]uint32, error) {
	b := make([]byte, maxNetlinkGroup/8)
	l, err := linux.GetsockoptBytes(s, unix.SOL_NETLINK, unix.NETLINK_LIST_MEMBERSHIPS, b)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for i := 0; i+4 <= min(l, len(b)); i += 4 {
		w := binary.LittleEndian.Uint32(b[i:])
		for bit := range 32 {
			if w&(1<<bit) != 0 {
				out = append(out, uint32(i*8+bit+1))
			}
		}
	}
	return out, nil
}

// netlinkBuffers are socket s's buffer sizes, 0 where a new socket's.
func netlinkBuffers(s int) (snd, rcv int, err error) {
	fresh, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fresh)
	out := []int{0, 0}
	for i, o := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
		v, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, o)
		if err != nil {
			return 0, 0, fmt.Errorf("buffer sizes: %w", err)
		}
		if d, _ := unix.GetsockoptInt(fresh, unix.SOL_SOCKET, o); v != d {
			out[i] = v
		}
	}
	return out[0], out[1], nil
}

func (netlinkRoute) Prepare(l Loader, i int, f *format.File, what string) error {
	n := f.Netlink
	s := -1
	err := l.AsProcess(func() error {
		var err error
		if s, err = unix.Socket(unix.AF_NETLINK, n.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE); err != nil {
			return os.NewSyscallError("socket", err)
		}
		return setupNetlink(l, s, n, what)
	})
	if err != nil {
		if s >= 0 {
			unix.Close(s)
		}
		return fmt.Errorf("%s: a netlink route socket: %w", what, err)
	}
	l.Own(i, os.NewFile(uintptr(s), "netlink socket"))
	return nil
}

// setupNetlink gives new netlink socket s n's options, port id (another
// when it is taken here) and groups. It runs as the process.
func setupNetlink(l Loader, s int, n *format.Netlink, what string) error {
	for _, b := range []struct{ opt, v int }{{unix.SO_SNDBUF, n.SndBuf}, {unix.SO_RCVBUF, n.RcvBuf}} {
		if b.v != 0 {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, b.opt, b.v/2); err != nil {
				return fmt.Errorf("buffer size %d: %w", b.v, err)
			}
		}
	}
	for _, o := range netlinkFlags {
		if n.Flags&(1<<o) != 0 {
			if err := unix.SetsockoptInt(s, unix.SOL_NETLINK, o, 1); err != nil {
				return fmt.Errorf("netlink option %d: %w", o, err)
			}
		}
	}
	if n.PortID != 0 || len(n.Groups) > 0 {
		err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: n.PortID})
		if errors.Is(err, unix.EADDRINUSE) {
			l.Warn("%s: a netlink route socket comes back with another port id than %d, in use here", what, n.PortID)
			err = unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		}
		if err != nil {
			return fmt.Errorf("binding to port id %d: %w", n.PortID, err)
		}
	}
	for _, g := range n.Groups {
		if err := unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(g)); err != nil {
			return fmt.Errorf("listening to group %d: %w", g, err)
		}
	}
	return nil
}

// Validate checks a netlink route socket's type, groups, buffers and
// options.
func (netlinkRoute) Validate(fs []format.File, i int, _ []format.Process) error {
	n := fs[i].Netlink
	if n == nil {
		return fmt.Errorf("image file %d, a netlink socket, has no socket state", i)
	}
	var flags uint32
	for _, o := range netlinkFlags {
		flags |= 1 << o
	}
	switch {
	case n.Type != unix.SOCK_RAW && n.Type != unix.SOCK_DGRAM:
		return fmt.Errorf("image netlink socket %d has type %d", i, n.Type)
	case len(n.Groups) > maxNetlinkGroup:
		return fmt.Errorf("image netlink socket %d listens to %d groups", i, len(n.Groups))
	case n.SndBuf < 0 || n.SndBuf > maxSockBuf || n.RcvBuf < 0 || n.RcvBuf > maxSockBuf:
		return fmt.Errorf("image netlink socket %d: buffer sizes %d, %d: out of range", i, n.SndBuf, n.RcvBuf)
	case n.Flags&^flags != 0:
		return fmt.Errorf("image netlink socket %d: options %#x: not netlink options", i, n.Flags)
	}
	for _, g := range n.Groups {
		if g < 1 || g > maxNetlinkGroup {
			return fmt.Errorf("image netlink socket %d: group %d: out of range", i, g)
		}
	}
	return nil
}

// netlinkProtos name the netlink protocols (linux/netlink.h).
var netlinkProtos = map[int]string{
	0: "NETLINK_ROUTE", 2: "NETLINK_USERSOCK", 3: "NETLINK_FIREWALL", 4: "NETLINK_SOCK_DIAG",
	5: "NETLINK_NFLOG", 6: "NETLINK_XFRM", 7: "NETLINK_SELINUX", 8: "NETLINK_ISCSI", 9: "NETLINK_AUDIT",
	10: "NETLINK_FIB_LOOKUP", 11: "NETLINK_CONNECTOR", 12: "NETLINK_NETFILTER", 13: "NETLINK_IP6_FW",
	14: "NETLINK_DNRTMSG", 15: "NETLINK_KOBJECT_UEVENT", 16: "NETLINK_GENERIC", 18: "NETLINK_SCSITRANSPORT",
	19: "NETLINK_ECRYPTFS", 20: "NETLINK_RDMA", 21: "NETLINK_CRYPTO", 22: "NETLINK_SMC",
}

// socketName says, for a refusal, what socket no kind carries: a raw or
// packet socket, a netlink one with its protocol, another by the name
// the kernel gives its protocol.
func socketName(fd *procfs.FD) string {
	switch p := fd.Proto; {
	case p == "RAW":
		return "a raw IPv4 socket, which procs does not carry"
	case p == "RAWv6":
		return "a raw IPv6 socket, which procs does not carry"
	case p == "PACKET":
		return "a packet socket, which procs does not carry"
	case p == "NETLINK" && fd.Netlink != nil:
		name, ok := netlinkProtos[fd.Netlink.Proto]
		if !ok {
			name = fmt.Sprintf("protocol %d", fd.Netlink.Proto)
		}
		return "a netlink socket (" + name + "), which procs does not carry"
	case p == "NETLINK":
		return "a netlink socket, which procs does not carry"
	}
	return "a " + strings.TrimSpace(fd.Proto) + " socket, which procs does not carry"
}
