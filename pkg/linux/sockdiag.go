package linux

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sock_diag for unix sockets (linux/sock_diag.h, linux/unix_diag.h):
// what the kernel tells of every unix socket of a network namespace,
// its peer among it, which /proc does not show.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

	udiagShowName  = 0x01
	udiagShowVFS   = 0x02
	udiagShowPeer  = 0x04
	udiagShowIcons = 0x08
	udiagShowRQLen = 0x10 // UNIX_DIAG_SHUTDOWN always comes

	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRQLen    = 4
	unixDiagShutdown = 6

	unixDiagReqSize = 24
	unixDiagMsgSize = 16
)

// UnixDiag is what sock_diag tells of one unix socket.
type UnixDiag struct {
	Ino  uint64
	Type int // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	// State is TCP_ESTABLISHED (1) for a connected socket, TCP_LISTEN
	// (10) for a listening one, TCP_CLOSE (7) otherwise.
	State int
	// Peer is the inode of the socket it is connected to, 0 if none.
	Peer uint64
	// RQueue is the bytes in its receive queue (of a datagram socket:
	// of its first message; of a listening socket: the connections
	// waiting); WQueue the bytes it sent that its peer has not read (of
	// a listening socket: its backlog).
	RQueue, WQueue uint32
	// Shutdown holds RCV_SHUTDOWN (1) and SEND_SHUTDOWN (2).
	Shutdown int
	// Name is the address it is bound to ("" if none; an abstract name
	// starts with a NUL byte). An accepted socket has its listener's.
	Name string
	// VFSDev and VFSIno are the socket file its path names, as bind
	// made it (0 for none): the path may since name another file.
	VFSDev, VFSIno uint64
	// Icons are, of a listening socket, the inodes of the connections
	// queued on it and not yet accepted, the next to accept first.
	Icons []uint64
}

// UnixSockets asks the kernel for every unix socket of the caller's
// network namespace, by inode.
func UnixSockets() (map[uint64]UnixDiag, error) {
	fd, err := newDiagSocket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	r := make([]byte, unixDiagReqSize)
	r[0] = unix.AF_UNIX
	binary.LittleEndian.PutUint32(r[4:], 0xffffffff) // every state
	binary.LittleEndian.PutUint32(r[12:], udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRQLen)
	out := map[uint64]UnixDiag{}
	err = diagDump(fd, r, func(data []byte) bool {
		if d, ok := parseUnixDiag(data); ok {
			out[d.Ino] = d
		}
		return true
	})
	return out, err
}

// diagDump sends sock_diag request r (the struct after the netlink
// header) as a dump on NETLINK_SOCK_DIAG socket fd, and gives each
// socket's message to each until it says false or the dump ends.
func diagDump(fd int, r []byte, each func(data []byte) bool) error {
	return diagAsk(fd, r, unix.NLM_F_DUMP, each)
}

// diagAsk is diagDump with the request's flags: 0 asks for the one
// socket r names, whose message comes alone (each must say false).
func diagAsk(fd int, r []byte, flags uint16, each func(data []byte) bool) error {
	le := binary.LittleEndian
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(r))
	le.PutUint32(req[0:], uint32(unix.NLMSG_HDRLEN+len(r)))
	le.PutUint16(req[4:], sockDiagByFamily)
	le.PutUint16(req[6:], unix.NLM_F_REQUEST|flags)
	le.PutUint32(req[8:], 1) // seq
	if err := unix.Sendto(fd, append(req, r...), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto(NETLINK_SOCK_DIAG)", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return os.NewSyscallError("recvfrom(NETLINK_SOCK_DIAG)", err)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(le.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("sock_diag: a message of %d bytes in %d", l, len(b))
			}
			data := b[unix.NLMSG_HDRLEN:l]
			switch le.Uint16(b[4:]) {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(data) >= 4 {
					if e := int32(le.Uint32(data)); e != 0 {
						return os.NewSyscallError("sock_diag", unix.Errno(-e))
					}
				}
				return nil
			}
			if !each(data) {
				return nil
			}
			b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		}
	}
}

// parseUnixDiag reads a struct unix_diag_msg and its attributes.
func parseUnixDiag(b []byte) (UnixDiag, bool) {
	if len(b) < unixDiagMsgSize {
		return UnixDiag{}, false
	}
	le := binary.LittleEndian
	d := UnixDiag{Type: int(b[1]), State: int(b[2]), Ino: uint64(le.Uint32(b[4:]))}
	for a := b[unixDiagMsgSize:]; len(a) >= unix.SizeofRtAttr; {
		l := int(le.Uint16(a[0:]))
		if l < unix.SizeofRtAttr || l > len(a) {
			break
		}
		v := a[unix.SizeofRtAttr:l]
		switch le.Uint16(a[2:]) {
		case unixDiagName:
			d.Name = string(v)
		case unixDiagVFS:
			if len(v) >= 8 {
				// The kernel's dev_t: 12 bits of major, 20 of minor.
				kdev := le.Uint32(v[4:])
				d.VFSIno, d.VFSDev = uint64(le.Uint32(v)), unix.Mkdev(kdev>>20, kdev&0xfffff)
			}
		case unixDiagIcons:
			for ; len(v) >= 4; v = v[4:] {
				d.Icons = append(d.Icons, uint64(le.Uint32(v)))
			}
		case unixDiagPeer:
			if len(v) >= 4 {
				d.Peer = uint64(le.Uint32(v))
			}
		case unixDiagRQLen:
			if len(v) >= 8 {
				d.RQueue, d.WQueue = le.Uint32(v), le.Uint32(v[4:])
			}
		case unixDiagShutdown:
			if len(v) >= 1 {
				d.Shutdown = int(v[0])
			}
		}
		a = a[min(len(a), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	}
	return d, true
}
