package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/safetext"
)

// Prepare makes every unix socket of the image, the first time the
// loader asks for one: sockets are linked to each other (a pair, a
// listener and the connections queued on it or accepted from it, a
// datagram socket connected to a bound one), so they are made together.
func (unixSocket) Prepare(l Loader, i int, _ *format.File, _ string) error {
	if l.Local(i) != nil {
		return nil // made with the others
	}
	m := &unixMaker{l: l, fs: l.Files(), s: map[int]*os.File{}, queued: map[int]bool{}, late: map[int]*os.File{}}
	if err := m.makeAll(); err != nil {
		m.closeAll()
		return err
	}
	return nil
}

// unixMaker makes the image's unix sockets in the loader.
type unixMaker struct {
	l  Loader
	fs []format.File
	s  map[int]*os.File // the sockets made, by file id
	// closed are the other ends of sockets whose peer was gone or
	// outside the tree, kept until their queues are filled.
	closed map[int]*os.File
	// queued are the sockets queued on a listening one.
	queued map[int]bool
	// late are the files in flight the loader had no description of
	// before every process was built (a pidfd, an epoll), by open id,
	// kept until they are sent (nil while being made).
	late map[int]*os.File
}

// makeAll makes the sockets in passes: each made (socket, socketpair);
// bound; listening; connected through its listener or to its bound peer;
// its queue filled; shut down and given its options; then each is the
// loader's own.
func (m *unixMaker) makeAll() error {
	m.closed = map[int]*os.File{}
	for i := range m.fs {
		if u := m.fs[i].Unix; u != nil {
			for _, q := range u.Queue {
				m.queued[q] = true
			}
		}
	}
	if err := m.create(); err != nil {
		return err
	}
	for i := range m.fs {
		if u := m.fs[i].Unix; u != nil && m.s[i] != nil && (u.Path != "" || len(u.Abstract) > 0) {
			if err := m.bind(i); err != nil {
				return err
			}
		}
	}
	for i := range m.fs {
		if u := m.fs[i].Unix; u != nil && u.Listening {
			if err := m.listen(i); err != nil {
				return err
			}
		}
	}
	for i := range m.fs {
		if err := m.connectDgram(i); err != nil {
			return err
		}
	}
	for i := range m.fs {
		if u := m.fs[i].Unix; u != nil && u.Unlinked {
			if err := m.l.As(i, func() error { return unix.Unlink(u.Path) }); err != nil {
				return fmt.Errorf("unix socket %s: removing its path again: %w", safetext.Quote(u.Path), err)
			}
		}
	}
	for i, f := range m.s {
		m.l.Own(i, f)
	}
	carries, late := m.carries()
	if !carries {
		return m.fillAll()
	}
	// Files in flight are sent once the loader has opened them, as
	// the processes holding the sockets; those it makes or takes from
	// the processes (LateMaker), once every process is built.
	fill := func() error {
		err := m.fillAll()
		for _, f := range m.late {
			f.Close() // sent, or the restore failed
		}
		if err != nil {
			for _, f := range m.closed {
				f.Close()
			}
		}
		return err
	}
	if late {
		m.l.AtRun(fill)
	} else {
		m.l.Later(fill)
	}
	return nil
}

// carries says whether a socket has files in flight in its queue, and
// whether one of them is a kind the loader makes once every process is
// built (LateMaker).
func (m *unixMaker) carries() (carries, late bool) {
	for i := range m.fs {
		u := m.fs[i].Unix
		if u == nil {
			continue
		}
		for _, r := range u.Rights {
			carries = true
			for _, fd := range r.FDs {
				if _, ok := Lookup(m.fs[fd.File].Kind).(LateMaker); ok {
					late = true
				}
			}
		}
	}
	return carries, late
}

// fillAll fills every socket's queue, then shuts each down and gives it
// its options; the other ends of sockets whose peer is gone are closed.
func (m *unixMaker) fillAll() error {
	for i := range m.fs {
		if err := m.fill(i); err != nil {
			return err
		}
	}
	for i := range m.fs {
		if err := m.finish(i); err != nil {
			return err
		}
	}
	for _, f := range m.closed {
		f.Close() // its peer is gone: it reads what is left, then the end
	}
	return nil
}

// closeAll closes what makeAll made, on failure.
func (m *unixMaker) closeAll() {
	for _, f := range m.s {
		f.Close()
	}
	for _, f := range m.closed {
		f.Close()
	}
}

// newSocket makes a socket of type typ in the loader.
func newSocket(typ int) (*os.File, error) {
	s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	return os.NewFile(uintptr(s), "unix socket"), nil
}

// create makes each socket that is not made by accepting a connection:
// a pair once for two ends connected to each other, a pair whose other
// end is closed for one connected to a socket gone or outside the tree,
// a lone socket for the others (a listener, a client that connects
// later, a datagram socket).
func (m *unixMaker) create() error {
	for i := range m.fs {
		u := m.fs[i].Unix
		if u == nil || u.Listener != nil || m.s[i] != nil {
			continue
		}
		switch {
		case u.Connected && u.Peer >= 0 && m.fs[u.Peer].Unix.Peer == i && m.fs[u.Peer].Unix.Listener == nil:
			p, err := unix.Socketpair(unix.AF_UNIX, u.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return os.NewSyscallError("socketpair", err)
			}
			m.s[i], m.s[u.Peer] = os.NewFile(uintptr(p[0]), "unix socket"), os.NewFile(uintptr(p[1]), "unix socket")
		case u.Connected && u.Peer < 0 && !m.queued[i]:
			p, err := unix.Socketpair(unix.AF_UNIX, u.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return os.NewSyscallError("socketpair", err)
			}
			m.s[i], m.closed[i] = os.NewFile(uintptr(p[0]), "unix socket"), os.NewFile(uintptr(p[1]), "unix socket")
			if u.External {
				m.l.Warn("%s: a unix socket connected outside the tree comes back as if its peer had closed (--external=close)", m.what(i))
			}
		default:
			f, err := newSocket(u.Type)
			if err != nil {
				return err
			}
			m.s[i] = f
		}
		if u.PassCred {
			// Before connecting: a socket passing credentials is
			// given an address of its own then (autobind), as it was.
			if err := unix.SetsockoptInt(int(m.s[i].Fd()), unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
				return fmt.Errorf("%s: SO_PASSCRED: %w", m.what(i), err)
			}
		}
	}
	return nil
}

// what names socket i in messages: by its address, or its file id.
func (m *unixMaker) what(i int) string {
	switch u := m.fs[i].Unix; {
	case u.Path != "":
		return "unix socket " + safetext.Quote(u.Path)
	case len(u.Abstract) > 0:
		return "unix socket " + safetext.Quote("@"+string(u.Abstract))
	}
	return fmt.Sprintf("unix socket (image file %d)", i)
}

// addr is the address socket u is bound to.
func addr(u *format.Unix) *unix.SockaddrUnix {
	if len(u.Abstract) > 0 {
		return &unix.SockaddrUnix{Name: "@" + string(u.Abstract)}
	}
	return &unix.SockaddrUnix{Name: u.Path}
}

// inDir runs f in folder dir (for a relative path), on the opener's
// thread, which gets a working directory of its own for it (unshare
// CLONE_FS) and goes back to its own after.
func inDir(dir string, f func() error) error {
	if dir == "" {
		return f()
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare", err)
	}
	back, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("folder %s: %w", safetext.Quote(dir), err)
	}
	defer unix.Chdir(back)
	return f()
}

// bind binds socket i to its address, as the process that holds it: a
// path, whose socket file gets its mode and owner again (a stale socket
// file there, which no socket is bound to, is replaced), or an abstract
// name, refused by name when another socket has it.
func (m *unixMaker) bind(i int) error {
	u := m.fs[i].Unix
	s := int(m.s[i].Fd())
	if len(u.Abstract) > 0 {
		err := unix.Bind(s, addr(u))
		if err == unix.EADDRINUSE {
			return refusef("the abstract unix socket name %s is taken on this host: another socket is bound to it", safetext.Quote("@"+string(u.Abstract)))
		}
		if err != nil {
			return fmt.Errorf("binding a unix socket to %s: %w", safetext.Quote("@"+string(u.Abstract)), err)
		}
		return nil
	}
	return m.l.As(i, func() error {
		return inDir(u.Dir, func() error {
			err := unix.Bind(s, addr(u))
			if err == unix.EADDRINUSE {
				if err = staleSocket(u); err == nil {
					err = unix.Bind(s, addr(u))
				}
			}
			if err != nil {
				var r *Refusal
				if errors.As(err, &r) {
					return err
				}
				return fmt.Errorf("binding a unix socket to %s: %w", safetext.Quote(u.Path), err)
			}
			m.l.Created(filepath.Join(u.Dir, u.Path))
			if u.Unlinked {
				return nil
			}
			if u.Mode != 0 {
				if err := unix.Fchmodat(unix.AT_FDCWD, u.Path, u.Mode, 0); err != nil {
					return fmt.Errorf("unix socket %s: mode %#o: %w", safetext.Quote(u.Path), u.Mode, err)
				}
			}
			var st unix.Stat_t
			if unix.Lstat(u.Path, &st) == nil && (int(st.Uid) != u.UID || int(st.Gid) != u.GID) {
				if err := unix.Lchown(u.Path, u.UID, u.GID); err != nil {
					m.l.Warn("unix socket %s comes back owned by %d:%d, not %d:%d: %v", safetext.Quote(u.Path), st.Uid, st.Gid, u.UID, u.GID, err)
				}
			}
			return nil
		})
	})
}

// staleSocket removes the socket file at u's path when no socket is bound
// to it any more (the original's, killed after the dump), and refuses
// otherwise, naming the path. Precondition: on the opener's thread.
func staleSocket(u *format.Unix) error {
	var st unix.Stat_t
	if err := unix.Lstat(u.Path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return refusef("unix socket path %s is taken by a file that is not a socket", safetext.Quote(u.Path))
	}
	inUse := refusef("unix socket path %s is in use: a socket of this host is bound to it (is the original still running?)", safetext.Quote(u.Path))
	if all, err := linux.UnixSockets(); err == nil {
		for _, d := range all {
			if d.VFSIno == st.Ino && d.VFSDev == st.Dev {
				return inUse
			}
		}
	}
	// One of another network namespace is not listed: a connection
	// refused says none is there.
	p, err := newSocket(u.Type)
	if err != nil {
		return err
	}
	err = unix.Connect(int(p.Fd()), addr(u))
	p.Close()
	if err != unix.ECONNREFUSED {
		return inUse
	}
	return unix.Unlink(u.Path)
}

// listen makes listener i listen, connects again through it the
// connections it had accepted and those queued on it, in their order,
// then gives it its backlog.
func (m *unixMaker) listen(i int) error {
	u := m.fs[i].Unix
	l := int(m.s[i].Fd())
	var accepted []int
	for e := range m.fs {
		if x := m.fs[e].Unix; x != nil && x.Listener != nil && *x.Listener == i {
			accepted = append(accepted, e)
		}
	}
	if err := unix.Listen(l, max(u.Backlog, len(accepted)+len(u.Queue)+1)); err != nil {
		return fmt.Errorf("%s: listen: %w", m.what(i), err)
	}
	for _, e := range accepted {
		c := m.fs[e].Unix.Peer
		if err := m.connect(c, i); err != nil {
			return err
		}
		nfd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if err != nil {
			return fmt.Errorf("%s: accepting a connection again: %w", m.what(i), err)
		}
		m.s[e] = os.NewFile(uintptr(nfd), "unix socket")
		if err := ours(nfd); err != nil {
			return fmt.Errorf("%s: %w", m.what(i), err)
		}
	}
	for _, q := range u.Queue {
		if q < 0 {
			f, err := newSocket(u.Type)
			if err != nil {
				return err
			}
			m.s[-1] = f
			err = m.connect(-1, i)
			delete(m.s, -1)
			f.Close() // its client was outside the tree: it comes back closed
			if err != nil {
				return err
			}
			continue
		}
		if err := m.connect(q, i); err != nil {
			return err
		}
	}
	if err := unix.Listen(l, u.Backlog); err != nil {
		return fmt.Errorf("%s: listen: %w", m.what(i), err)
	}
	return nil
}

// connect connects socket c to listener i, as the process holding c (the
// one holding i for a client that was outside the tree), and checks that
// it reached it: the listener is procs-load's, and a connection to it
// has procs-load's credentials (SO_PEERCRED).
func (m *unixMaker) connect(c, i int) error {
	u := m.fs[i].Unix
	s := m.s[c]
	if s == nil {
		return fmt.Errorf("%s: its client, socket %d, was not made", m.what(i), c)
	}
	who := c
	if c < 0 {
		who = i
	}
	err := m.l.As(who, func() error {
		return inDir(u.Dir, func() error { return unix.Connect(int(s.Fd()), addr(u)) })
	})
	if err != nil {
		return fmt.Errorf("%s: connecting to it again: %w", m.what(i), err)
	}
	if err := ours(int(s.Fd())); err != nil {
		return fmt.Errorf("%s: %w", m.what(i), err)
	}
	return nil
}

// ours checks that the peer of connected socket s is procs-load.
func ours(s int) error {
	cred, err := unix.GetsockoptUcred(s, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return err
	}
	if int(cred.Pid) != os.Getpid() {
		return fmt.Errorf("a connection reached process %d instead (another socket took the path during the restore)", cred.Pid)
	}
	return nil
}

// connectDgram connects datagram socket i to the bound socket it was
// connected to (not connected to it in turn), as the process holding i.
func (m *unixMaker) connectDgram(i int) error {
	u := m.fs[i].Unix
	if u == nil || u.Type != unix.SOCK_DGRAM || u.Peer < 0 || m.fs[u.Peer].Unix.Peer == i {
		return nil
	}
	p := m.fs[u.Peer].Unix
	s := int(m.s[i].Fd())
	err := m.l.As(i, func() error {
		return inDir(p.Dir, func() error { return unix.Connect(s, addr(p)) })
	})
	if err != nil {
		return fmt.Errorf("%s: connecting it again to %s: %w", m.what(i), m.what(u.Peer), err)
	}
	return nil
}

// fill puts back what socket i's receive queue held, sent by the socket
// that sent it where it can be told (its peer), else by a socket of the
// loader's to its address: the bytes of a stream, each message of a
// datagram or seqpacket socket.
func (m *unixMaker) fill(i int) error {
	u := m.fs[i].Unix
	if u == nil || len(u.Data) == 0 && len(u.Messages) == 0 {
		return nil
	}
	if u.Creds {
		m.l.Warn("%s: what its queue held comes back with procs-load's credentials (SCM_CREDENTIALS), not its senders'", m.what(i))
	}
	var from *os.File
	var to unix.Sockaddr // none: to its peer
	switch {
	case m.closed[i] != nil:
		from = m.closed[i]
	case u.Peer >= 0 && m.fs[u.Peer].Unix.Peer == i:
		from = m.s[u.Peer]
	case u.Peer >= 0 && u.Path == "" && len(u.Abstract) == 0:
		return fmt.Errorf("%s: messages queued, and no address its peer could send them to", m.what(i))
	case u.Peer >= 0:
		from, to = m.s[u.Peer], addr(u) // only its peer may send to it
	default:
		f, err := newSocket(u.Type)
		if err != nil {
			return err
		}
		defer f.Close()
		from, to = f, addr(u)
	}
	if len(u.Data) > 0 {
		if err := m.sendStream(from, u); err != nil {
			return fmt.Errorf("%s: the %d bytes of its queue: %w", m.what(i), len(u.Data), err)
		}
		return nil
	}
	total := 0
	for _, msg := range u.Messages {
		total += len(msg)
	}
	roomFor(from, total, len(u.Messages))
	for _, j := range u.Senders {
		if j >= 0 {
			roomFor(m.s[j], total, len(u.Messages))
		}
	}
	err := m.l.As(i, func() error {
		return inDir(u.Dir, func() error {
			for k, msg := range u.Messages {
				oob, err := m.rights(u, k)
				if err != nil {
					return err
				}
				s, dest := int(from.Fd()), to
				if k < len(u.Senders) && u.Senders[k] >= 0 {
					// From the bound socket that sent it, which its
					// reader's recvfrom names.
					s, dest = int(m.s[u.Senders[k]].Fd()), addr(u)
				}
				if err := unix.Sendmsg(s, msg, oob, dest, 0); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%s: the %d messages of its queue: %w", m.what(i), len(u.Messages), err)
	}
	return nil
}

// sendStream writes the bytes of stream socket u's queue to its peer
// from, each file in flight with the last byte it came with: a read
// stops there, and gets them, as it would have.
func (m *unixMaker) sendStream(from *os.File, u *format.Unix) error {
	roomFor(from, len(u.Data), len(u.Rights)+1)
	prev := 0
	for k, r := range u.Rights {
		if err := writeAll(from, u.Data[prev:r.At-1]); err != nil {
			return err
		}
		oob, err := m.rights(u, k)
		if err != nil {
			return err
		}
		if n, err := unix.SendmsgN(int(from.Fd()), u.Data[r.At-1:r.At], oob, nil, 0); err != nil || n != 1 {
			return fmt.Errorf("a file in flight: %w", err)
		}
		prev = r.At
	}
	return writeAll(from, u.Data[prev:])
}

// rights is the control message sending the files in flight that came
// with message k of u (a datagram or seqpacket socket's), or with its
// Rights[k] (a stream's): the loader's open file descriptions of them.
func (m *unixMaker) rights(u *format.Unix, k int) ([]byte, error) {
	var fds []format.FD
	if u.Type == unix.SOCK_STREAM {
		fds = u.Rights[k].FDs
	} else {
		for _, r := range u.Rights {
			if r.At == k {
				fds = r.FDs
			}
		}
	}
	if len(fds) == 0 {
		return nil, nil
	}
	var nums []int
	for _, fd := range fds {
		lf, err := m.inFlight(fd)
		if err != nil {
			return nil, err
		}
		nums = append(nums, int(lf.Fd()))
	}
	return unix.UnixRights(nums...), nil
}

// inFlight is the loader's open file description of file in flight fd:
// opened with the process's fds, or taken from the process that holds it
// too, or made (LateMaker).
func (m *unixMaker) inFlight(fd format.FD) (*os.File, error) {
	if lf := m.l.Description(fd.Open); lf != nil {
		return lf, nil
	}
	if lf, ok := m.late[fd.Open]; ok {
		if lf == nil {
			// Being made: an epoll in flight that watches, however
			// deep, an epoll watching it (the kernel forbids it).
			return nil, fmt.Errorf("a file in flight (open %d) watches itself through epolls", fd.Open)
		}
		return lf, nil
	}
	lm, ok := Lookup(m.fs[fd.File].Kind).(LateMaker)
	if !ok {
		return nil, fmt.Errorf("a file in flight (open %d) was not opened", fd.Open)
	}
	m.late[fd.Open] = nil
	lf, err := m.l.Taken(fd.Open)
	if err == nil && lf == nil {
		lf, err = lm.MakeLate(fillLoader{m.l, m}, fd, &m.fs[fd.File])
	}
	if err != nil {
		delete(m.late, fd.Open)
		return nil, fmt.Errorf("a file in flight: %w", err)
	}
	m.late[fd.Open] = lf
	return lf, nil
}

// fillLoader is the Loader of a kind made late (LateMaker) as the queues
// are filled: Taken gives too, of a file no process holds, a copy of the
// loader's own in flight, made first if need be (an epoll in flight
// watching a file only a queue holds).
type fillLoader struct {
	Loader
	m *unixMaker
}

func (l fillLoader) Taken(open int) (*os.File, error) {
	if lf, err := l.Loader.Taken(open); lf != nil || err != nil {
		return lf, err
	}
	for _, fd := range InFlightFDs(l.m.fs) {
		if fd.Open != open {
			continue
		}
		lf, err := l.m.inFlight(fd)
		if err != nil {
			return nil, err
		}
		n, err := unix.FcntlInt(lf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
		}
		return os.NewFile(uintptr(n), lf.Name()), nil
	}
	return nil, nil
}

// InFlight are the files in flight in the socket's queue.
func (unixSocket) InFlight(f *format.File) []format.FD {
	if f.Unix == nil {
		return nil
	}
	var out []format.FD
	for _, r := range f.Unix.Rights {
		out = append(out, r.FDs...)
	}
	return out
}

// finish shuts socket i down as it was and gives it its options.
func (m *unixMaker) finish(i int) error {
	u := m.fs[i].Unix
	f := m.s[i]
	if u == nil || f == nil {
		return nil
	}
	s := int(f.Fd())
	if u.PassCred {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			return fmt.Errorf("%s: SO_PASSCRED: %w", m.what(i), err)
		}
	}
	for _, h := range []struct{ bit, how int }{{1, unix.SHUT_RD}, {2, unix.SHUT_WR}} {
		if u.Shutdown&h.bit != 0 {
			if err := unix.Shutdown(s, h.how); err != nil && err != unix.ENOTCONN {
				return fmt.Errorf("%s: shutting it down: %w", m.what(i), err)
			}
		}
	}
	setBuffers(m.l, f, u)
	for _, t := range []struct {
		opt int
		ns  int64
	}{{unix.SO_RCVTIMEO, u.RcvTimeo}, {unix.SO_SNDTIMEO, u.SndTimeo}} {
		if t.ns == 0 {
			continue
		}
		tv := unix.NsecToTimeval(t.ns)
		if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("%s: its timeouts: %w", m.what(i), err)
		}
	}
	if u.PeekOff != nil {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, *u.PeekOff); err != nil {
			return fmt.Errorf("%s: SO_PEEK_OFF: %w", m.what(i), err)
		}
	}
	return nil
}

// sendAll writes data to the non-blocking socket f, its send buffer made
// large enough first, in messages pieces.
func sendAll(f *os.File, data []byte, messages int) error {
	if len(data) == 0 {
		return nil
	}
	roomFor(f, len(data), messages)
	return writeAll(f, data)
}

// roomFor makes the send buffer of socket f hold n bytes in messages
// pieces, with the kernel's accounting of them; forced past
// net.core.wmem_max where procs-load may (CAP_NET_ADMIN). The sender's
// buffer holds what its peer has not read yet.
func roomFor(f *os.File, n, messages int) {
	fd := int(f.Fd())
	want := 2*n + 2048*messages + 64<<10
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, want)
	}
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
