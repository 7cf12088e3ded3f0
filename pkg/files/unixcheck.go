package files

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// ErrExternal is matched by the refusal of a unix socket whose peer is
// outside the tree, which procs-dump --external=close would carry.
var ErrExternal = errors.New("a peer outside the tree")

// externalRefusal refuses a socket connected outside the tree.
type externalRefusal struct{ Refusal }

func (r *externalRefusal) Is(target error) bool {
	return target == ErrExternal || r.Refusal.Is(target)
}

// outsidePeer is a socket of the tree linked to socket ino, outside it.
type outsidePeer struct {
	file int
	ino  uint64
	how  string // "connected to", "queued on", "with a connection queued from"
	name string // ino's address, if known
}

// CheckTree finds each socket's peer among the image's files (Peer), a
// listener's queued connections (Queue) and the listener an accepted
// connection came from (Listener), and refuses a socket linked to one
// outside the tree, naming it, or with --external=close marks it to come
// back as if that one had closed. A peer no process holds any more is
// gone: the socket comes back connected to an end that is closed.
func (unixSocket) CheckTree(fs []format.File, procs []format.Process, out *Outside) error {
	byIno := map[uint64]int{}
	for i := range fs {
		if fs[i].Unix != nil {
			byIno[fs[i].Ino] = i
		}
	}
	var ext []outsidePeer
	queuedOn := map[int]int{}
	for i := range fs {
		u := fs[i].Unix
		if u == nil || !u.Listening {
			continue
		}
		for _, c := range u.QueueIno {
			j, ok := byIno[c]
			if !ok {
				j = -1
				ext = append(ext, outsidePeer{i, c, "listening, with a connection queued from", ""})
			} else {
				queuedOn[j] = i
			}
			u.Queue = append(u.Queue, j)
		}
	}
	for i := range fs {
		u := fs[i].Unix
		if u == nil || u.Listening {
			continue
		}
		l, in := byIno[u.ListenerIno]
		switch {
		case u.PeerIno == 0 && u.ListenerIno != 0 && !in:
			ext = append(ext, outsidePeer{i, u.ListenerIno, "queued, not yet accepted, on", ""})
			continue
		case u.PeerIno == 0 && in:
			if u.Sent > 0 {
				return refusef("%s is a unix socket whose connection, not yet accepted by %s, holds bytes it sent, which procs cannot read without taking the connection from the server, and the server did not accept it while procs-dump let the tree run for %v", holderOf(procs, i), holderOf(procs, l), AcceptTime)
			}
			continue
		case u.PeerIno != 0 && in:
			if _, ok := byIno[u.PeerIno]; ok {
				u.Listener = &l // else its client is outside
			}
		}
		if u.PeerIno == 0 {
			continue
		}
		if j, ok := byIno[u.PeerIno]; ok {
			u.Peer = j
		} else {
			ext = append(ext, outsidePeer{i, u.PeerIno, "connected to", u.PeerName})
		}
	}
	senders(fs)
	if len(ext) > 0 && !out.CloseExternal {
		return refuseExternal(ext[0], procs, out)
	}
	for _, e := range ext {
		fs[e.file].Unix.External = true
	}
	return nil
}

// senders finds, for each message of a datagram socket, the bound
// datagram socket of the image that sent it, by the address recvfrom
// told (Senders), when there is one.
func senders(fs []format.File) {
	byName := map[string]int{}
	for i := range fs {
		u := fs[i].Unix
		switch {
		case u == nil || u.Type != unix.SOCK_DGRAM:
		case u.Path != "":
			byName[u.Path] = i
		case len(u.Abstract) > 0:
			byName["@"+string(u.Abstract)] = i
		}
	}
	for i := range fs {
		u := fs[i].Unix
		if u == nil || u.Type != unix.SOCK_DGRAM || u.Path == "" && len(u.Abstract) == 0 {
			continue // no address: its messages come from its peer
		}
		found := false
		ids := make([]int, len(u.From))
		for k, name := range u.From {
			j, ok := byName[name]
			if !ok || name == "" || j == i {
				j = -1
			}
			ids[k], found = j, found || j >= 0
		}
		if found {
			u.Senders = ids
		}
	}
}

// refuseExternal names socket e.file of the tree, the socket outside it
// and, when a process outside holds that one, the process and its fd.
func refuseExternal(e outsidePeer, procs []format.Process, out *Outside) error {
	other := "a socket"
	if e.name != "" {
		other = safetext.Quote(strings.ReplaceAll(e.name, "\x00", "@"))
	}
	msg := fmt.Sprintf("%s is a unix socket %s %s (inode %d) outside the tree", holderOf(procs, e.file), e.how, other, e.ino)
	want := "socket:[" + strconv.FormatUint(e.ino, 10) + "]"
	err := out.Each(func(pid int, num, target string) error {
		if target == want {
			return fmt.Errorf("%s, which process %d holds as fd %s", msg, pid, num)
		}
		return nil
	})
	if err != nil && !strings.HasPrefix(err.Error(), msg) {
		return err
	}
	if err != nil {
		msg = err.Error()
	}
	return &externalRefusal{Refusal{msg}}
}

// Validate checks a socket's type, its peer (a unix socket of the image
// of its type: whose peer it is, but for a datagram socket connected to
// a bound one), its address, its listener or queue, its shutdown state,
// its queue and its options.
func (unixSocket) Validate(fs []format.File, i int, procs []format.Process) error {
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
	case u.External && (!u.Connected && !u.Listening || u.Peer >= 0):
		return fmt.Errorf("image unix socket %d: an outside peer closed, and a peer in the image or no connection", i)
	}
	if err := validMessages(u, i); err != nil {
		return err
	}
	if err := validAddress(u, i); err != nil {
		return err
	}
	if err := validListening(fs, u, i); err != nil {
		return err
	}
	if err := validRights(fs, u, i, procs); err != nil {
		return err
	}
	if err := validSenders(fs, u, i); err != nil {
		return err
	}
	if u.Peer >= 0 {
		p := fs[u.Peer].Unix
		if fs[u.Peer].Kind != format.FileUnix || p == nil || p.Type != u.Type || p.Listening ||
			p.Peer != i && (u.Type != unix.SOCK_DGRAM || p.Path == "" && len(p.Abstract) == 0) {
			return fmt.Errorf("image unix socket %d has peer %d, which is not its peer", i, u.Peer)
		}
		if p.Peer == i && !p.Connected {
			return fmt.Errorf("image unix socket %d has peer %d, which is not connected", i, u.Peer)
		}
	}
	return nil
}

// validMessages checks a socket's messages, options and peek offset.
func validMessages(u *format.Unix, i int) error {
	total := 0
	for _, m := range u.Messages {
		total += len(m)
	}
	switch {
	case len(u.Messages) > 0 && u.Type == unix.SOCK_STREAM:
		return fmt.Errorf("image unix socket %d: messages in a stream socket", i)
	case len(u.Messages) > maxUnixMessages || total > maxUnixQueue:
		return fmt.Errorf("image unix socket %d: %d messages of %d bytes: out of range", i, len(u.Messages), total)
	case len(u.Messages) > 0 && u.Type == unix.SOCK_SEQPACKET && !u.Connected:
		return fmt.Errorf("image unix socket %d: messages in a seqpacket socket that is not connected", i)
	case len(u.Messages) > 0 && u.Type == unix.SOCK_DGRAM && u.Peer < 0 && u.Path == "" && len(u.Abstract) == 0:
		return fmt.Errorf("image unix socket %d: messages in a datagram socket that no one can send to (no peer, no address)", i)
	case u.RcvTimeo < 0 || u.RcvTimeo > maxTimeout || u.SndTimeo < 0 || u.SndTimeo > maxTimeout:
		return fmt.Errorf("image unix socket %d: timeouts of %d and %d ns: out of range", i, u.RcvTimeo, u.SndTimeo)
	case u.PeekOff != nil && (*u.PeekOff < 0 || *u.PeekOff > maxUnixQueue):
		return fmt.Errorf("image unix socket %d: peek offset %d: out of range", i, *u.PeekOff)
	case len(u.Senders) > 0 && (len(u.Senders) != len(u.Messages) || u.Type != unix.SOCK_DGRAM):
		return fmt.Errorf("image unix socket %d: %d senders of %d messages", i, len(u.Senders), len(u.Messages))
	}
	return nil
}

// validSenders checks that each sender of a datagram socket's messages
// is another bound datagram socket of the image, which may send to it.
func validSenders(fs []format.File, u *format.Unix, i int) error {
	for _, j := range u.Senders {
		if j == -1 {
			continue
		}
		if j < 0 || j >= len(fs) || j == i || fs[j].Unix == nil {
			return fmt.Errorf("image unix socket %d: a message sent by %d, no other unix socket", i, j)
		}
		if s := fs[j].Unix; s.Type != unix.SOCK_DGRAM || s.Path == "" && len(s.Abstract) == 0 ||
			u.Peer >= 0 && u.Peer != j || u.Path == "" && len(u.Abstract) == 0 {
			return fmt.Errorf("image unix socket %d: a message sent by %d, which is no bound datagram socket that could send to it", i, j)
		}
	}
	return nil
}

// maxTimeout bounds a socket timeout in an image: a year, in ns (the
// kernel takes up to its own MAX_SCHEDULE_TIMEOUT, years of jiffies).
const maxTimeout = 365 * 24 * 3600 * 1e9

// validAddress checks a socket's path or abstract name and its file.
func validAddress(u *format.Unix, i int) error {
	named := u.Path != "" || len(u.Abstract) > 0
	switch {
	case u.Path != "" && len(u.Abstract) > 0:
		return fmt.Errorf("image unix socket %d is bound to a path and an abstract name", i)
	case len(u.Abstract) > 107 || len(u.Path) > 107 || strings.IndexByte(u.Path, 0) >= 0:
		// sun_path is 108 bytes: a path and its NUL, or NUL and a name.
		return fmt.Errorf("image unix socket %d: address %s: too long or with a NUL byte", i, safetext.Quote(u.Path))
	case named && u.Connected && u.Type != unix.SOCK_DGRAM:
		return fmt.Errorf("image unix socket %d: a connected %s socket bound to an address of its own", i, typeName(u.Type))
	case u.Path == "" && (u.Dir != "" || u.Mode != 0 || u.UID != 0 || u.GID != 0 || u.Unlinked):
		return fmt.Errorf("image unix socket %d: a socket file's folder, mode or owner, and no path", i)
	case u.Dir != "" && (!strings.HasPrefix(u.Dir, "/") || strings.HasPrefix(u.Path, "/") || len(u.Dir) > 4095 || strings.IndexByte(u.Dir, 0) >= 0):
		return fmt.Errorf("image unix socket %d: relative path %s in folder %s: not a relative path in an absolute folder", i, safetext.Quote(u.Path), safetext.Quote(u.Dir))
	case u.Path != "" && u.Dir == "" && !strings.HasPrefix(u.Path, "/"):
		return fmt.Errorf("image unix socket %d: relative path %s and no folder", i, safetext.Quote(u.Path))
	case u.Mode&^0o7777 != 0 || u.UID < 0 || u.UID > 1<<32-2 || u.GID < 0 || u.GID > 1<<32-2:
		return fmt.Errorf("image unix socket %d: socket file mode %#o, owner %d:%d: out of range", i, u.Mode, u.UID, u.GID)
	case u.Unlinked && u.Dir != "":
		return fmt.Errorf("image unix socket %d: an unlinked relative path", i)
	}
	return nil
}

// validListening checks a listening socket's backlog and queue, and an
// accepted connection's listener.
func validListening(fs []format.File, u *format.Unix, i int) error {
	switch {
	case !u.Listening && (u.Backlog != 0 || len(u.Queue) > 0):
		return fmt.Errorf("image unix socket %d: a backlog or queued connections, and not listening", i)
	case u.Listening && (u.Type == unix.SOCK_DGRAM || u.Connected || u.Peer >= 0 || u.Path == "" && len(u.Abstract) == 0):
		return fmt.Errorf("image unix socket %d: listening, and a datagram socket, connected, or without an address", i)
	case u.Backlog < 0 || u.Backlog > 1<<20 || len(u.Queue) > 1<<16:
		return fmt.Errorf("image unix socket %d: backlog %d with %d connections queued: out of range", i, u.Backlog, len(u.Queue))
	case u.Listener != nil && (*u.Listener < 0 || *u.Listener >= len(fs) || fs[*u.Listener].Unix == nil ||
		!fs[*u.Listener].Unix.Listening || fs[*u.Listener].Unix.Type != u.Type || !u.Connected || u.Peer < 0):
		return fmt.Errorf("image unix socket %d: accepted from %d, which is no listening socket of its type, or not connected to a peer", i, *u.Listener)
	}
	seen := map[int]bool{}
	for _, c := range u.Queue {
		if c == -1 {
			continue
		}
		if seen[c] {
			return fmt.Errorf("image unix socket %d: connection %d queued twice", i, c)
		}
		seen[c] = true
		if c < 0 || c >= len(fs) || c == i || fs[c].Unix == nil {
			return fmt.Errorf("image unix socket %d: queued connection %d is no unix socket", i, c)
		}
		q := fs[c].Unix
		if q.Type != u.Type || !q.Connected || q.Peer >= 0 || q.Listening || q.Listener != nil || len(q.Data) > 0 || len(q.Messages) > 0 || q.External {
			return fmt.Errorf("image unix socket %d: queued connection %d is not a connected socket of its type with nothing queued", i, c)
		}
	}
	return nil
}

// validRights checks the files in flight in socket i's queue: in order,
// each with bytes or a message of the queue, of a kind the loader opens
// (never a file the process makes, or one of its /proc) or a unix socket
// as validSocketInFlight says, and sharing an open id only with fds of
// the same file.
func validRights(fs []format.File, u *format.Unix, i int, procs []format.Process) error {
	if len(u.Rights) == 0 {
		return nil
	}
	if len(u.Rights) > maxUnixMessages {
		return fmt.Errorf("image unix socket %d: %d sets of files in flight: out of range", i, len(u.Rights))
	}
	opens := fdOpens(procs)
	prev := -1
	for _, r := range u.Rights {
		switch {
		case r.At <= prev:
			return fmt.Errorf("image unix socket %d: files in flight out of order", i)
		case u.Type == unix.SOCK_STREAM && (r.At < 1 || r.At > len(u.Data)),
			u.Type != unix.SOCK_STREAM && (r.At < 0 || r.At >= len(u.Messages)):
			return fmt.Errorf("image unix socket %d: files in flight with %d, past its queue", i, r.At)
		case len(r.FDs) == 0 || len(r.FDs) > 253:
			return fmt.Errorf("image unix socket %d: %d files in flight in one message: out of range", i, len(r.FDs))
		}
		prev = r.At
		for _, fd := range r.FDs {
			if fd.File < 0 || fd.File >= len(fs) {
				return fmt.Errorf("image unix socket %d: a file in flight names file %d of %d", i, fd.File, len(fs))
			}
			k := Lookup(fs[fd.File].Kind)
			_, prep := k.(Preparer)
			_, here := k.(LoaderMaker)
			_, late := k.(LateMaker)
			_, carrier := k.(Carrier)
			if k != nil && k.Traits().Sent {
				if err := validSentInFlight(fs, i, fd, procs); err != nil {
					return err
				}
			} else if k == nil || !prep && !here && !late || carrier || k.Traits().OneOpen || fs[fd.File].Self != "" {
				return fmt.Errorf("image unix socket %d: a file in flight of kind %q, which procs does not carry in flight", i, fs[fd.File].Kind)
			}
			if fd.Num != 0 || fd.Open < 1 || fd.Flags < 0 || fd.Flags >= 1<<22 || fd.Flags&unix.O_PATH != 0 || fd.Pos < 0 {
				return fmt.Errorf("image unix socket %d: a file in flight with open %d, flags %#x, offset %d: out of range", i, fd.Open, fd.Flags, fd.Pos)
			}
			if f, ok := opens[fd.Open]; ok && f != fd.File {
				return fmt.Errorf("image unix socket %d: a file in flight of file %d shares open %d with an fd of file %d", i, fd.File, fd.Open, f)
			}
		}
	}
	return nil
}

// validSentInFlight checks file fd.File, of one open file description
// (Traits.Sent), in flight in socket i's queue: an inotify instance, a
// TCP, UDP or ping socket, a pseudo-terminal master, or
// any socket the loader makes (listening, with files in flight of its
// own, in flight in its own queue or its peer's, its peer in flight too
// or held by no process), as long as it has one open file description:
// the same open id wherever an fd or a queue names it.
func validSentInFlight(fs []format.File, i int, fd format.FD, procs []format.Process) error {
	j := fd.File
	if fs[j].Kind == format.FileUnix && fs[j].Unix == nil {
		return fmt.Errorf("image unix socket %d: unix socket %d in flight has no socket state", i, j)
	}
	what := fs[j].Kind
	if what == format.FileUnix {
		what = "unix socket"
	}
	for _, p := range procs {
		for _, pfd := range p.FDs {
			if pfd.File == j && pfd.Open != fd.Open {
				return fmt.Errorf("image unix socket %d: %s %d in flight has two open file descriptions", i, what, j)
			}
		}
	}
	for k := range fs {
		if fs[k].Unix == nil {
			continue
		}
		for _, r := range fs[k].Unix.Rights {
			for _, o := range r.FDs {
				if o.File == j && o.Open != fd.Open {
					return fmt.Errorf("image unix socket %d: %s %d in flight has two open file descriptions", i, what, j)
				}
			}
		}
	}
	return nil
}

// UnixSentWaiting says which unix listener of processes procs, if any,
// has a connection queued that its client sent bytes on ("fd 3 of
// process 42"): those bytes cannot be read without accepting the
// connection (CheckTree refuses it), but the server, let run a moment,
// accepts it. Connections queued with nothing sent travel.
func UnixSentWaiting(procs []ProcFDs) (string, error) {
	var all map[uint64]linux.UnixDiag
	for _, p := range procs {
		pid := p.PID
		for _, fd := range p.FDs {
			if fd.Unix == nil {
				continue
			}
			if all == nil {
				var err error
				if all, err = linux.UnixSockets(); err != nil {
					return "", err
				}
			}
			d := all[fd.Ino]
			if d.State != tcpListen {
				continue
			}
			for _, c := range d.Icons {
				if all[c].WQueue > 0 {
					return fmt.Sprintf("fd %d of process %d", fd.Num, pid), nil
				}
			}
		}
	}
	return "", nil
}

// ProcFDs are the fds of process PID, as procfs.FDs lists them.
type ProcFDs struct {
	PID int
	FDs []procfs.FD
}

// ListFDs lists the fds of each of pids, leaving out a process whose fds
// cannot be read (the dump says why).
func ListFDs(pids []int) []ProcFDs {
	var out []ProcFDs
	for _, pid := range pids {
		if fds, err := procfs.FDs(pid); err == nil {
			out = append(out, ProcFDs{pid, fds})
		}
	}
	return out
}
