package files

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// unixSocket is a unix socket of any type (stream, datagram, seqpacket):
// an end of a socketpair (python asyncio's self-pipe, a parent talking to
// its worker), a socket bound to a path or an abstract name, a listening
// one with the connections queued on it, the two ends of a connection it
// accepted, a datagram socket with its messages. Its state (File.Unix) is
// its type, its peer (a file of the image: both ends travel), its
// address, its shutdown state, what its receive queue holds (read with
// MSG_PEEK, so that it stays there: bytes of a stream, each message of a
// datagram or seqpacket socket) and the options a program sees.
//
// The loader makes every unix socket of the image at once (unixload.go),
// as the processes that hold them could: bound, listening, connected
// again through their listeners, their queues filled; the process
// holding each gets that very socket (a socket has one open file
// description: it cannot be opened again).
//
// Files in flight in a queue (SCM_RIGHTS) are the image's open files
// (Source.InFlight), sent again with their message (Carrier); a unix
// socket in flight, whose only holder may be the queue, is one of the
// sockets the loader makes, sent as itself, whatever it is (listening,
// with files in flight of its own, in its own queue: each open file is
// given its id before it is dumped, so that a cycle ends there). A
// socket whose peer is outside the tree is refused by name, unless
// procs-dump was told --external=close: it then comes back as if the
// peer had closed (unixcheck.go). TCP, UDP and ping sockets and
// pseudo-terminal masters in flight are made by their own kinds
// (Traits.Sent). Refused by name: a socket of another kind in flight,
// bytes a client sent on a connection not yet accepted (they wait in a
// socket with no file until accept, which would take it from the
// server: see format/SPEC.md, "Unix"), a socket of another network
// namespace than procs-dump's.
type unixSocket struct{}

func (unixSocket) Name() string { return format.FileUnix }

func (unixSocket) Match(fd *procfs.FD, _ Terminals) bool { return fd.Unix != nil }

func (unixSocket) Traits() Traits { return Traits{OneOpen: true, Sent: true} }

// maxUnixQueue bounds the bytes of a receive queue in an image (the
// kernel's own bound is the socket's buffer size, net.core.rmem_max).
const maxUnixQueue = 64 << 20

// maxUnixMessages bounds the messages of a queue in an image (the
// kernel's, but from a socket's peer, is net.unix.max_dgram_qlen).
const maxUnixMessages = 1 << 16

const tcpListen = 10 // sock_diag's state of a listening socket

func (unixSocket) Dump(src Source, fd *procfs.FD, idx int) error {
	u := fd.Unix
	if u.Type != unix.SOCK_STREAM && u.Type != unix.SOCK_DGRAM && u.Type != unix.SOCK_SEQPACKET {
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
	st := &format.Unix{Type: u.Type, Peer: -1, PeerIno: d.Peer, Shutdown: d.Shutdown, Sent: d.WQueue,
		Connected: d.Peer != 0 || u.State == 3, Listening: d.State == tcpListen}
	if u.Type == unix.SOCK_DGRAM {
		// A datagram socket that another connected to shows as
		// connected too: only one with a peer is. (One whose peer has
		// since closed comes back not connected.)
		st.Connected = d.Peer != 0
	}
	if d.Peer != 0 {
		st.PeerName = all[d.Peer].Name
	}
	switch {
	case st.Listening:
		st.Backlog, st.QueueIno = int(d.WQueue), d.Icons
	case st.Connected && u.Type != unix.SOCK_DGRAM:
		// The address of an accepted connection is its listener's;
		// one queued on a listener has none yet.
		st.ListenerIno = listenerOf(all, d)
	}
	if d.Name != "" && (st.Listening || u.Type == unix.SOCK_DGRAM || !st.Connected) {
		if err := boundName(src.Keeper(), fd.Num, d, st); err != nil {
			return err
		}
	}
	if err := readSocket(src, fd.Num, int(d.RQueue), st); err != nil {
		return err
	}
	src.File(idx).Unix = st
	return nil
}

// listenerOf is the inode of the listening socket that a connected
// stream or seqpacket socket d was accepted from (it has its name and
// socket file), or is queued on (its inode is in its Icons); 0 if none.
func listenerOf(all map[uint64]linux.UnixDiag, d linux.UnixDiag) uint64 {
	for ino, l := range all {
		if l.State != tcpListen || l.Type != d.Type {
			continue
		}
		if d.Name != "" && l.Name == d.Name && l.VFSIno == d.VFSIno && l.VFSDev == d.VFSDev {
			return ino
		}
		if d.Name == "" && d.Peer == 0 && slices.Contains(l.Icons, d.Ino) {
			return ino
		}
	}
	return 0
}

// boundName records the address socket fd num is bound to: an abstract
// name, or a path (relative to the working directory of process keeper,
// the one holding it or a queue with it in flight, when it is relative
// and the file there is the socket's), with the socket file's mode and
// owner.
func boundName(keeper, num int, d linux.UnixDiag, st *format.Unix) error {
	if name, ok := strings.CutPrefix(d.Name, "\x00"); ok {
		st.Abstract = []byte(name)
		return nil
	}
	// A path ends at its first NUL (bind may count one or not).
	path, _, _ := strings.Cut(d.Name, "\x00")
	if !utf8.ValidString(path) {
		return refusef("fd %d is a unix socket bound to a path that is not UTF-8 (%s)", num, safetext.Quote(path))
	}
	st.Path = path
	at := fmt.Sprintf("/proc/%d/root%s", keeper, path)
	if !filepath.IsAbs(path) {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", keeper))
		if err != nil {
			return err
		}
		st.Dir, at = cwd, fmt.Sprintf("/proc/%d/cwd/%s", keeper, path)
	}
	var fs unix.Stat_t
	if unix.Lstat(at, &fs) != nil || fs.Ino != d.VFSIno || fs.Dev != d.VFSDev {
		if st.Dir != "" {
			return refusef("fd %d is a unix socket bound to the relative path %s, which procs cannot find from the process's working directory", num, safetext.Quote(path))
		}
		st.Unlinked = true
		return nil
	}
	st.Mode, st.UID, st.GID = fs.Mode&0o7777, int(fs.Uid), int(fs.Gid)
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
// pidfd_getfd: its options, and what its receive queue holds (of a
// stream, queued bytes, as sock_diag says), leaving it there (MSG_PEEK).
func readSocket(src Source, num, queued int, st *format.Unix) error {
	s, err := takeFD(src.PID(), num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if err := readOptions(s, st); err != nil {
		return fmt.Errorf("fd %d: %w", num, err)
	}
	switch {
	case st.Listening || st.Type == unix.SOCK_STREAM && queued == 0:
		return nil
	case st.Type == unix.SOCK_STREAM && st.PeekOff == nil:
		// One peek reads it all, unless files or credentials cut it.
		buf := make([]byte, min(queued, maxUnixQueue+1))
		oob := make([]byte, unix.CmsgSpace(253*4)+unix.CmsgSpace(unix.SizeofUcred))
		// Close-on-exec: a helper procs-dump starts (the holder of
		// TCP connections) must not hold them too.
		n, oobn, _, _, err := unix.Recvmsg(s, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if err == nil && n == queued && n <= maxUnixQueue {
			st.Data = buf[:n]
			return inFlight(src, oob[:oobn], num, n, st)
		}
		if err == nil {
			closeRights(oob[:oobn]) // read again below
		}
	}
	return peekQueue(src, s, num, st)
}

// readOptions reads the options of socket s that a program may have set
// and may see.
func readOptions(s int, st *format.Unix) error {
	var err error
	if st.SndBuf, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return fmt.Errorf("SO_SNDBUF: %w", err)
	}
	if st.RcvBuf, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return fmt.Errorf("SO_RCVBUF: %w", err)
	}
	pass, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PASSCRED)
	if err != nil {
		return fmt.Errorf("SO_PASSCRED: %w", err)
	}
	st.PassCred = pass != 0
	for _, o := range []struct {
		opt int
		to  *int64
	}{{unix.SO_RCVTIMEO, &st.RcvTimeo}, {unix.SO_SNDTIMEO, &st.SndTimeo}} {
		tv, err := unix.GetsockoptTimeval(s, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fmt.Errorf("socket timeouts: %w", err)
		}
		*o.to = tv.Nano()
	}
	off, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if off >= 0 {
		st.PeekOff = &off
	}
	return nil
}

// peekQueue reads the receive queue of socket s into st, leaving it
// there: each peek starts at the socket's peek offset (SO_PEEK_OFF), set
// for it to the end of what was read so far, and put back as the
// program had it after (a procs-dump killed right then leaves it set:
// only a program that peeks would see it). A peek stops at a message's
// end (datagram, seqpacket), or in a stream before bytes of another
// sender's credentials or with files.
func peekQueue(src Source, s, num int, st *format.Unix) error {
	orig := -1
	if st.PeekOff != nil {
		orig = *st.PeekOff
	}
	defer unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
	stream := st.Type == unix.SOCK_STREAM
	flags := unix.MSG_PEEK | unix.MSG_DONTWAIT | unix.MSG_CMSG_CLOEXEC
	if !stream {
		flags |= unix.MSG_TRUNC // the message's length, whatever the buffer
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(253*4)+unix.CmsgSpace(unix.SizeofUcred))
	total := 0
	for {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, total); err != nil {
			return fmt.Errorf("fd %d: SO_PEEK_OFF: %w", num, err)
		}
		n, oobn, _, from, err := unix.Recvmsg(s, buf, oob, flags)
		if err == unix.EAGAIN || err == unix.ENOTCONN {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fd %d: reading its socket's queue: %w", num, err)
		}
		if n > len(buf) {
			if n > maxUnixQueue {
				return refusef("fd %d is a unix %s socket with a message of %d bytes queued, more than procs carries", num, typeName(st.Type), n)
			}
			buf = make([]byte, n) // again, whole
			continue
		}
		if stream && n == 0 && oobn == 0 || !stream && n == 0 && oobn == 0 && st.Shutdown&1 != 0 {
			return nil // the end (a shut down socket reads as empty messages)
		}
		total += n
		if total > maxUnixQueue || len(st.Messages) >= maxUnixMessages {
			closeRights(oob[:oobn])
			return refusef("fd %d is a unix %s socket with more queued than procs carries (%d bytes, %d messages)", num, typeName(st.Type), total, len(st.Messages))
		}
		at := len(st.Messages)
		if stream {
			st.Data, at = append(st.Data, buf[:n]...), total
		} else {
			st.Messages = append(st.Messages, slices.Clone(buf[:n]))
			name := ""
			if sa, ok := from.(*unix.SockaddrUnix); ok {
				name = sa.Name // "@name" for an abstract one
			}
			st.From = append(st.From, name)
		}
		if err := inFlight(src, oob[:oobn], num, at, st); err != nil {
			return err
		}
	}
}

// inFlight looks at the control messages of a peek: the files in flight
// (SCM_RIGHTS) that came with the message at (an index in Messages, or
// the end of those bytes in Data), which the peek gave procs-dump, are
// the image's (Source.InFlight); credentials (SCM_CREDENTIALS) are noted.
func inFlight(src Source, oob []byte, num, at int, st *format.Unix) error {
	if len(oob) == 0 {
		return nil
	}
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		closeRights(oob)
		return fmt.Errorf("fd %d: a control message in its queue: %w", num, err)
	}
	var fds []int
	for i := range cms {
		switch cms[i].Header.Type {
		case unix.SCM_RIGHTS:
			got, _ := unix.ParseUnixRights(&cms[i])
			fds = append(fds, got...)
		case unix.SCM_CREDENTIALS:
			st.Creds = true
		}
	}
	if len(fds) == 0 {
		return nil
	}
	r := format.UnixRights{At: at}
	for k, f := range fds {
		fd, err := src.InFlight(f)
		if err != nil {
			for _, rest := range fds[k+1:] {
				unix.Close(rest)
			}
			return fmt.Errorf("fd %d: a file in flight in its queue: %w", num, err)
		}
		r.FDs = append(r.FDs, fd)
	}
	st.Rights = append(st.Rights, r)
	return nil
}

// closeRights closes the files in flight a peek gave procs-dump.
func closeRights(oob []byte) {
	cms, _ := unix.ParseSocketControlMessage(oob)
	for i := range cms {
		if fds, err := unix.ParseUnixRights(&cms[i]); err == nil {
			for _, f := range fds {
				unix.Close(f)
			}
		}
	}
}

// Outside is the fds of the processes outside the tree (in says which
// are in it) but procs-dump, read from /proc once, when a TreeChecker
// first asks.
type Outside struct {
	// CloseExternal: a socket whose peer is outside the tree is not
	// refused but comes back as if that peer had closed
	// (procs-dump --external=close).
	CloseExternal bool
	// Carried maps the open id of each file in flight to procs-dump's
	// fd of it (Source.InFlight): of one no process holds, the only
	// way to ask the kernel about it (an epoll's target).
	Carried map[int]int
	in      func(pid int) bool
	fds     []outsideFD
	err     error
	got     bool
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
