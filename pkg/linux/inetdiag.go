package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// UDP-Lite's checksum coverage options (linux/udp.h), at level
// IPPROTO_UDPLITE.
const (
	UDPLITE_SEND_CSCOV = 10
	UDPLITE_RECV_CSCOV = 11
)

// sock_diag for UDP and UDP-Lite sockets (linux/inet_diag.h): their
// shutdown state, which nothing else tells.
const (
	inetDiagReqSize  = 56 // struct inet_diag_req_v2
	inetDiagMsgSize  = 72 // struct inet_diag_msg
	inetDiagShutdown = 8  // INET_DIAG_SHUTDOWN
)

// ErrNotListed: sock_diag does not list the socket (a UDP socket never
// bound is in no table).
var ErrNotListed = errors.New("sock_diag does not list the socket")

// InetShutdown is the shutdown state (RCV_SHUTDOWN 1, SEND_SHUTDOWN 2)
// of socket s, of family and protocol proto (IPPROTO_UDP or
// IPPROTO_UDPLITE) and inode ino, as sock_diag tells it in the socket's
// own network namespace (entering it needs CAP_SYS_ADMIN when it is not
// the caller's).
func InetShutdown(s, family, proto int, ino uint64) (int, error) {
	nl, err := diagSocketOf(s)
	if err != nil {
		return 0, err
	}
	defer unix.Close(nl)
	r := make([]byte, inetDiagReqSize)
	r[0], r[1] = byte(family), byte(proto)
	binary.LittleEndian.PutUint32(r[4:], 0xffffffff) // every state
	sh := -1
	err = diagDump(nl, r, func(data []byte) bool {
		if len(data) >= inetDiagMsgSize && uint64(binary.LittleEndian.Uint32(data[68:])) == ino {
			sh = inetDiagShutdownOf(data[inetDiagMsgSize:])
		}
		return sh < 0
	})
	switch {
	case err != nil:
		return 0, err
	case sh < 0:
		return 0, ErrNotListed
	}
	return sh, nil
}

// TCPOwner returns the owner's uid and the inode of the TCP socket of
// the caller's network namespace whose own address is local and whose
// peer's is remote, or ErrNotListed. sock_diag looks that one socket up
// by its addresses, as the kernel does for a packet, where /proc/net/tcp
// would list every socket of the namespace. A socket no process holds
// (closed, in TIME_WAIT, orphaned) has inode 0.
func TCPOwner(local, remote *net.TCPAddr) (uid int, ino uint64, err error) {
	r := make([]byte, inetDiagReqSize)
	r[0], r[1] = unix.AF_INET6, unix.IPPROTO_TCP
	src, dst := local.IP.To16(), remote.IP.To16()
	if l4, r4 := local.IP.To4(), remote.IP.To4(); l4 != nil && r4 != nil {
		r[0], src, dst = unix.AF_INET, l4, r4
	}
	if src == nil || dst == nil {
		return -1, 0, fmt.Errorf("sock_diag: not IP addresses: %v, %v", local, remote)
	}
	binary.LittleEndian.PutUint32(r[4:], 0xffffffff) // every state
	// struct inet_diag_sockid: ports and addresses in network order.
	binary.BigEndian.PutUint16(r[8:], uint16(local.Port))
	binary.BigEndian.PutUint16(r[10:], uint16(remote.Port))
	copy(r[12:28], src)
	copy(r[28:44], dst)
	binary.LittleEndian.PutUint64(r[48:], ^uint64(0)) // INET_DIAG_NOCOOKIE: any socket
	nl, err := newDiagSocket()
	if err != nil {
		return -1, 0, err
	}
	defer unix.Close(nl)
	uid, found := -1, false
	err = diagAsk(nl, r, 0, func(data []byte) bool {
		if len(data) >= inetDiagMsgSize {
			uid, ino, found = int(binary.LittleEndian.Uint32(data[64:])), uint64(binary.LittleEndian.Uint32(data[68:])), true
		}
		return false
	})
	switch {
	case errors.Is(err, unix.ENOENT) || err == nil && !found:
		return -1, 0, ErrNotListed
	case err != nil:
		return -1, 0, err
	}
	return uid, ino, nil
}

// inetDiagShutdownOf reads INET_DIAG_SHUTDOWN among attributes a.
func inetDiagShutdownOf(a []byte) int {
	le := binary.LittleEndian
	for len(a) >= unix.SizeofRtAttr {
		l := int(le.Uint16(a[0:]))
		if l < unix.SizeofRtAttr || l > len(a) {
			break
		}
		if le.Uint16(a[2:]) == inetDiagShutdown && l > unix.SizeofRtAttr {
			return int(a[unix.SizeofRtAttr])
		}
		a = a[min(len(a), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	}
	return 0
}

// diagSocketOf opens a NETLINK_SOCK_DIAG socket in the network
// namespace of socket s (SIOCGSKNS), on a thread of its own that enters
// it when it is not the caller's; in the caller's when it may not ask
// (SIOCGSKNS needs CAP_NET_ADMIN).
func diagSocketOf(s int) (int, error) {
	ns, err := unix.IoctlRetInt(s, unix.SIOCGSKNS)
	if errors.Is(err, unix.EPERM) {
		return newDiagSocket()
	}
	if err != nil {
		return -1, os.NewSyscallError("ioctl(SIOCGSKNS)", err)
	}
	defer unix.Close(ns)
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(ns, &theirs); err != nil {
		return -1, os.NewSyscallError("fstat", err)
	}
	runtime.LockOSThread()
	if err := unix.Stat("/proc/thread-self/ns/net", &ours); err != nil {
		runtime.UnlockOSThread()
		return -1, os.NewSyscallError("stat", err)
	}
	if ours.Ino == theirs.Ino && ours.Dev == theirs.Dev {
		runtime.UnlockOSThread()
		return newDiagSocket()
	}
	back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, os.NewSyscallError("open", err)
	}
	defer unix.Close(back)
	if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("entering the socket's network namespace: %w", os.NewSyscallError("setns", err))
	}
	nl, err := newDiagSocket()
	if unix.Setns(back, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread() // else the thread ends with the goroutine
	}
	return nl, err
}

func newDiagSocket() (int, error) {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
	}
	return nl, nil
}
