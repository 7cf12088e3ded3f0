package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// unixSocket is a unix socket that is not bound to an address: one end of
// a socketpair (python asyncio's self-pipe, a parent talking to its
// worker), or a socket never connected. Its state (File.Unix) is its type,
// its peer (a file of the image: both ends travel), its shutdown state,
// and for a stream socket the bytes in its receive queue, read with
// MSG_PEEK so that they stay there. The loader makes the pair again
// (socketpair), puts each end's bytes in its queue, shuts down what was,
// and the process holding each end gets that very socket (a socket has
// one open file description: it cannot be opened again).
//
// Refused by name, for now: a socket bound to a path or an abstract name,
// a listening one, datagrams in a queue (their boundaries), one whose
// peer is held by a process outside the tree, SO_PEEK_OFF in use, one of
// another network namespace than procs-dump's.
type unixSocket struct{}

func (unixSocket) Name() string { return format.FileUnix }

func (unixSocket) Match(fd *procfs.FD, _ Terminals) bool { return fd.Unix != nil }

func (unixSocket) Traits() Traits { return Traits{OneOpen: true} }

// maxUnixQueue bounds the bytes of a receive queue in an image (the
// kernel's own bound is the socket's buffer size, net.core.rmem_max).
const maxUnixQueue = 64 << 20

func (unixSocket) Dump(src Source, fd *procfs.FD, idx int) error {
	u := fd.Unix
	switch {
	case u.Listening:
		return refusef("fd %d is a listening unix socket (%s), which procs cannot carry yet", fd.Num, u.Path)
	case u.Path != "":
		return refusef("fd %d is a unix socket bound to %s, which procs cannot carry yet", fd.Num, u.Path)
	case u.Type != unix.SOCK_STREAM && u.Type != unix.SOCK_DGRAM && u.Type != unix.SOCK_SEQPACKET:
		return refusef("fd %d is a unix socket of type %d", fd.Num, u.Type)
	}
	all, err := src.UnixSockets()
	if err != nil {
		return err
	}
	d, ok := all[fd.Ino]
	if !ok {
		return refusef("fd %d is a unix socket of another network namespace than procs-dump's", fd.Num)
	}
	st := &format.Unix{Type: u.Type, Peer: -1, PeerIno: d.Peer, Shutdown: d.Shutdown, Connected: d.Peer != 0 || u.State == 3}
	if d.RQueue > 0 && u.Type != unix.SOCK_STREAM {
		return refusef("fd %d is a unix %s socket with messages unread, whose boundaries procs cannot carry yet", fd.Num, typeName(u.Type))
	}
	if err := readSocket(src.PID(), fd.Num, int(d.RQueue), st); err != nil {
		return err
	}
	src.File(idx).Unix = st
	return nil
}

func typeName(t int) string {
	switch t {
	case unix.SOCK_DGRAM:
		return "datagram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	}
	return "stream"
}

// readSocket reads what st needs of socket num of process pid, taken with
// pidfd_getfd: its buffer sizes, and the n bytes in its receive queue,
// leaving them there (MSG_PEEK).
func readSocket(pid, num, n int, st *format.Unix) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	s, err := unix.PidfdGetfd(pidfd, num, 0)
	if err != nil {
		return fmt.Errorf("fd %d: taking its socket: %w", num, err)
	}
	defer unix.Close(s)
	if st.SndBuf, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return fmt.Errorf("fd %d: SO_SNDBUF: %w", num, err)
	}
	if st.RcvBuf, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return fmt.Errorf("fd %d: SO_RCVBUF: %w", num, err)
	}
	if n == 0 {
		return nil
	}
	// A peek starts at the socket's peek offset, and moves it, when the
	// program set one.
	if off, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err == nil && off >= 0 {
		return refusef("fd %d is a unix socket with a peek offset (SO_PEEK_OFF %d), which procs cannot carry yet", num, off)
	}
	buf := make([]byte, min(n, maxUnixQueue))
	got, _, err := unix.Recvfrom(s, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err == unix.EAGAIN {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fd %d: reading its socket's queue: %w", num, err)
	}
	st.Data = buf[:got]
	return nil
}

// CheckTree finds each socket's peer among the image's files (File.Unix
// Peer), and refuses one whose peer a process outside the tree holds,
// naming it. A peer no process holds any more is gone: the socket comes
// back connected to an end that is closed.
func (unixSocket) CheckTree(fs []format.File, procs []format.Process, out *Outside) error {
	byIno := map[uint64]int{}
	for i := range fs {
		if fs[i].Unix != nil {
			byIno[fs[i].Ino] = i
		}
	}
	outside := map[uint64]int{}
	for i := range fs {
		u := fs[i].Unix
		if u == nil || u.PeerIno == 0 {
			continue
		}
		if j, ok := byIno[u.PeerIno]; ok {
			u.Peer = j
		} else {
			outside[u.PeerIno] = i
		}
	}
	if len(outside) == 0 {
		return nil
	}
	return out.Each(func(pid int, num, target string) error {
		ino, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			return nil
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64)
		if i, ok := outside[n]; ok {
			return refusef("%s is a unix socket connected to one (inode %d) that process %d, outside the tree, holds as fd %s", holderOf(procs, i), n, pid, num)
		}
		return nil
	})
}

func (unixSocket) Prepare(l Loader, i int, f *format.File, what string) error {
	if l.Local(i) != nil {
		return nil // made with its peer
	}
	u := f.Unix
	if !u.Connected {
		s, err := unix.Socket(unix.AF_UNIX, u.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("%s: a unix socket: %w", what, err)
		}
		l.Own(i, os.NewFile(uintptr(s), "unix socket"))
		return nil
	}
	p, err := unix.Socketpair(unix.AF_UNIX, u.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("%s: a unix socket pair: %w", what, err)
	}
	mine, theirs := os.NewFile(uintptr(p[0]), "unix socket"), os.NewFile(uintptr(p[1]), "unix socket")
	l.Own(i, mine)
	var peer *format.Unix
	if u.Peer >= 0 {
		l.Own(u.Peer, theirs)
		peer = l.File(u.Peer).Unix
	} else {
		l.Keep(theirs)
	}
	// Each end's bytes go in through the other end, before either is
	// shut down; the sender's buffer is made to hold them (the queue it
	// was in was the original sender's, in smaller pieces), then each
	// end gets its own sizes back.
	if err := sendAll(theirs, u.Data); err != nil {
		return fmt.Errorf("%s: the %d bytes of a unix socket's queue: %w", what, len(u.Data), err)
	}
	if peer != nil {
		if err := sendAll(mine, peer.Data); err != nil {
			return fmt.Errorf("%s: the %d bytes of a unix socket's queue: %w", what, len(peer.Data), err)
		}
		setBuffers(l, theirs, peer)
	}
	setBuffers(l, mine, u)
	if u.Peer < 0 {
		theirs.Close() // its peer was gone: it reads what is left, then the end
		return nil
	}
	for _, e := range []struct {
		f        *os.File
		shutdown int
	}{{mine, u.Shutdown}, {theirs, peer.Shutdown}} {
		for _, s := range []struct{ bit, how int }{{1, unix.SHUT_RD}, {2, unix.SHUT_WR}} {
			if e.shutdown&s.bit != 0 {
				if err := unix.Shutdown(int(e.f.Fd()), s.how); err != nil {
					return fmt.Errorf("%s: shutting a unix socket down: %w", what, err)
				}
			}
		}
	}
	return nil
}

// sendAll writes data to the non-blocking socket f, its send buffer made
// large enough first.
func sendAll(f *os.File, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	fd := int(f.Fd())
	// Room for the bytes and the kernel's accounting of them; forced
	// past net.core.wmem_max where procs-load may (CAP_NET_ADMIN).
	want := 2*len(data) + 64<<10
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, want)
	}
	return writeAll(f, data)
}

// setBuffers gives socket f the buffer sizes of st (getsockopt tells
// twice what setsockopt takes).
func setBuffers(l Loader, f *os.File, st *format.Unix) {
	for _, b := range []struct {
		opt, force, size int
		name             string
	}{{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, st.SndBuf, "SO_SNDBUF"}, {unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, st.RcvBuf, "SO_RCVBUF"}} {
		if b.size == 0 {
			continue
		}
		fd := int(f.Fd())
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.force, b.size/2) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.opt, b.size/2); err != nil {
				l.Warn("a unix socket comes back without its %s of %d: %v", b.name, b.size, err)
			}
		}
	}
}

// Validate checks a socket's type, its peer (a unix socket of the image
// whose peer it is, of its type), its shutdown state and its bytes.
func (unixSocket) Validate(fs []format.File, i int, _ []format.Process) error {
	u := fs[i].Unix
	switch {
	case u == nil:
		return fmt.Errorf("image file %d, a unix socket, has no socket state", i)
	case u.Type != unix.SOCK_STREAM && u.Type != unix.SOCK_DGRAM && u.Type != unix.SOCK_SEQPACKET:
		return fmt.Errorf("image unix socket %d has type %d", i, u.Type)
	case u.Shutdown < 0 || u.Shutdown > 3 || len(u.Data) > maxUnixQueue:
		return fmt.Errorf("image unix socket %d: shutdown %d, %d bytes queued: out of range", i, u.Shutdown, len(u.Data))
	case u.SndBuf < 0 || u.SndBuf > 2*maxUnixQueue || u.RcvBuf < 0 || u.RcvBuf > 2*maxUnixQueue:
		return fmt.Errorf("image unix socket %d: buffers of %d and %d bytes: out of range", i, u.SndBuf, u.RcvBuf)
	case len(u.Data) > 0 && (u.Type != unix.SOCK_STREAM || !u.Connected):
		return fmt.Errorf("image unix socket %d: bytes queued in a socket that is not a connected stream", i)
	case u.Peer < -1 || u.Peer >= len(fs) || u.Peer == i:
		return fmt.Errorf("image unix socket %d has peer %d", i, u.Peer)
	case u.Peer >= 0 && !u.Connected:
		return fmt.Errorf("image unix socket %d has a peer and is not connected", i)
	}
	if u.Peer >= 0 {
		p := fs[u.Peer].Unix
		if fs[u.Peer].Kind != format.FileUnix || p == nil || p.Peer != i || p.Type != u.Type || !p.Connected {
			return fmt.Errorf("image unix socket %d has peer %d, which is not its peer", i, u.Peer)
		}
	}
	return nil
}

// Outside is the fds of the processes outside the tree (in says which
// are in it) but procs-dump, read from /proc once, when a TreeChecker
// first asks.
type Outside struct {
	in  func(pid int) bool
	fds []outsideFD
	err error
	got bool
}

// outsideFD is an fd of a process outside the tree: its PID, its number
// and its link's target.
type outsideFD struct {
	pid         int
	num, target string
}

// Each calls f with every fd outside the tree; it stops at f's first
// error.
func (o *Outside) Each(f func(pid int, num, target string) error) error {
	if !o.got {
		o.got = true
		o.fds, o.err = listOutside(o.in)
	}
	if o.err != nil {
		return o.err
	}
	for _, fd := range o.fds {
		if err := f(fd.pid, fd.num, fd.target); err != nil {
			return err
		}
	}
	return nil
}

// listOutside lists the fds of every process but those in says are in
// the tree and procs-dump itself.
func listOutside(in func(pid int) bool) ([]outsideFD, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []outsideFD
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || in(pid) || pid == self {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // gone, or not ours to see (a dump as root sees all)
		}
		for _, e := range fds {
			if t, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil {
				out = append(out, outsideFD{pid, e.Name(), t})
			}
		}
	}
	return out, nil
}
