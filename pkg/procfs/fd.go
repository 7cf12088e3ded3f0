package procfs

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FDKind says what an open file descriptor refers to.
type FDKind int

const (
	Other       FDKind = iota
	FileRegular        // a regular file (not a memfd)
	FileDir
	FileChar
	FileBlock
	FileFIFO  // a named pipe opened by path
	Pipe      // an anonymous pipe, "pipe:[N]"
	Socket    // "socket:[N]"
	AnonInode // "anon_inode:[eventfd]", "anon_inode:inotify"...
	Memfd     // "/memfd:name (deleted)"
	FileLink  // a symbolic link itself (open O_PATH|O_NOFOLLOW)
	FileSock  // a socket's file by path (open O_PATH)
)

var fdKindNames = [...]string{"other", "file", "dir", "char", "block", "fifo", "pipe", "socket", "anon_inode", "memfd", "link", "sockfile"}

func (k FDKind) String() string {
	if k >= 0 && int(k) < len(fdKindNames) {
		return fdKindNames[k]
	}
	return "FDKind(" + strconv.Itoa(int(k)) + ")"
}

// KnownDevices are the character devices that are the same everywhere,
// by their numbers, and the path of each.
var KnownDevices = map[uint64]string{
	unix.Mkdev(1, 3): "/dev/null",
	unix.Mkdev(1, 5): "/dev/zero",
	unix.Mkdev(1, 7): "/dev/full",
	unix.Mkdev(1, 8): "/dev/random",
	unix.Mkdev(1, 9): "/dev/urandom",
	unix.Mkdev(5, 0): "/dev/tty",
}

// FD describes one open file descriptor of a process.
type FD struct {
	Num int
	// Target is the link /proc/PID/fd/N: "/path", "/path (deleted)",
	// "socket:[123]", "pipe:[123]", "anon_inode:[eventfd]",
	// "anon_inode:inotify", "/dev/pts/3", "/memfd:name (deleted)"...
	Target string
	Kind   FDKind
	// Path is Target without " (deleted)" for files, directories,
	// devices, FIFOs and memfds ("/memfd:name"); "" for the others.
	Path    string
	Deleted bool

	// From /proc/PID/fdinfo/N.
	Pos   int64
	Flags int // open flags, octal in fdinfo
	MntID int
	// Info holds every other "key: value" line of fdinfo, the value
	// trimmed ("ino", "eventfd-count", "clockid", "it_value", "sigmask"...);
	// nil when there is none.
	Info map[string]string
	// Extra holds the other lines as they are: "tfd: ..." (epoll),
	// "inotify wd:...", "fanotify ...", "lock: ...", and repeated keys.
	Extra []string

	// From stat(2) of /proc/PID/fd/N, which follows the link.
	Mode           uint32
	Dev, Ino, Rdev uint64
	Size           int64

	// Unix is what /proc/PID/net/unix says of a unix socket; nil for
	// any other fd.
	Unix *UnixSocket
	// Netlink is what /proc/PID/net/netlink says of a netlink socket;
	// nil for any other fd.
	Netlink *NetlinkSocket
	// Proto is the protocol of a socket as the kernel names it (its
	// system.sockprotoname: "TCP", "TCPv6", "UDP", "NETLINK"...); "" for
	// any other fd.
	Proto string
}

// UnixSocket is a line of /proc/PID/net/unix: a unix socket of the
// process's network namespace.
type UnixSocket struct {
	Type      int  // SOCK_STREAM (1), SOCK_DGRAM (2), SOCK_SEQPACKET (5)
	State     int  // SS_UNCONNECTED (1), SS_CONNECTING, SS_CONNECTED (3), SS_DISCONNECTING
	Listening bool // __SO_ACCEPTCON in its flags
	// Path is the address it is bound to: a path, "@name" for an
	// abstract one, "" for none.
	Path string
}

// NetlinkSocket is a line of /proc/PID/net/netlink: a netlink socket of
// the process's network namespace.
type NetlinkSocket struct {
	Proto  int    // NETLINK_ROUTE (0), NETLINK_AUDIT (9)...
	PortID uint32 // the port id it is bound to, 0 if none
	Groups uint32 // the first 32 multicast groups it listens to
	Rmem   int    // bytes queued to read
	Dump   bool   // a dump is in progress
}

// FDs returns the open file descriptors of pid sorted by number. A
// descriptor closed while the list is read is left out.
func FDs(pid int) ([]FD, error) {
	dir := pidPath(pid, "fd")
	nums, err := listNumeric(dir)
	if err != nil {
		return nil, err
	}
	base := pidPath(pid, "")
	buf := getBuf()
	defer putBuf(buf)
	out := make([]FD, 0, len(nums))
	for _, n := range nums {
		var fd FD
		ok, err := readFD(&fd, base, n, buf)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, fd)
		}
	}
	if err := findNetlink(pid, out); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Kind == Socket {
			socks, err := unixSockets(pid)
			if err != nil {
				return nil, err
			}
			for j := range out {
				if s, ok := socks[out[j].Ino]; ok && out[j].Kind == Socket {
					out[j].Unix = &s
				}
			}
			break
		}
	}
	return out, nil
}

// unixSockets reads /proc/PID/net/unix: by inode, the unix sockets of the
// process's network namespace. A line is "Num RefCount Protocol Flags Type
// St Inode [Path]", numbers in hex but the inode.
func unixSockets(pid int) (map[uint64]UnixSocket, error) {
	path := pidPath(pid, "net/unix")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[uint64]UnixSocket{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 7 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		typ, err2 := strconv.ParseUint(f[4], 16, 16)
		st, err3 := strconv.ParseUint(f[5], 16, 8)
		ino, err4 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, parseError(path, []byte(line))
		}
		s := UnixSocket{Type: int(typ), State: int(st), Listening: flags&0x10000 != 0}
		if len(f) > 7 {
			s.Path = strings.Join(f[7:], " ")
		}
		out[ino] = s
	}
	return out, nil
}

// findNetlink fills Netlink of the netlink sockets among fds, from
// /proc/PID/net/netlink. A line is "sk Eth Pid Groups Rmem Wmem Dump
// Locks Drops Inode", groups in hex.
func findNetlink(pid int, fds []FD) error {
	if !slices.ContainsFunc(fds, func(fd FD) bool { return fd.Proto == "NETLINK" }) {
		return nil
	}
	path := pidPath(pid, "net/netlink")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	socks := map[uint64]NetlinkSocket{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 10 {
			continue
		}
		proto, err1 := strconv.Atoi(f[1])
		port, err2 := strconv.ParseUint(f[2], 10, 32)
		groups, err3 := strconv.ParseUint(f[3], 16, 32)
		rmem, err4 := strconv.Atoi(f[4])
		ino, err5 := strconv.ParseUint(f[9], 10, 64)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return parseError(path, []byte(line))
		}
		socks[ino] = NetlinkSocket{Proto: proto, PortID: uint32(port), Groups: uint32(groups), Rmem: rmem, Dump: f[6] != "0"}
	}
	for i := range fds {
		if fds[i].Proto != "NETLINK" {
			continue
		}
		if s, ok := socks[fds[i].Ino]; ok {
			fds[i].Netlink = &s
		} else if proto, ok := sockProtocol(pid, fds[i].Num); ok {
			fds[i].Netlink = &NetlinkSocket{Proto: proto} // never bound: unlisted
		}
	}
	return nil
}

// sockProtocol is the protocol number (SO_PROTOCOL) of socket num of
// process pid, read on a copy of it (pidfd_getfd), if procs may take
// one.
func sockProtocol(pid, num int) (int, bool) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(pfd)
	s, err := unix.PidfdGetfd(pfd, num, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(s)
	proto, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return proto, err == nil
}

// sockProto is the protocol of the socket at link, as the kernel names
// it, or "" when it cannot say.
func sockProto(link string) string {
	var b [32]byte
	n, err := unix.Getxattr(link, "system.sockprotoname", b[:])
	for err == unix.EINTR {
		n, err = unix.Getxattr(link, "system.sockprotoname", b[:])
	}
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b[:n]), "\x00")
}

// readFD fills fd for descriptor n; base is "/proc/PID/". It returns
// false if the descriptor is gone.
func readFD(fd *FD, base string, n int, buf *[]byte) (bool, error) {
	ns := strconv.Itoa(n)
	link := base + "fd/" + ns
	fd.Num = n
	target, err := os.Readlink(link)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	fd.Target = target
	var st unix.Stat_t
	err = unix.Stat(link, &st)
	for err == unix.EINTR {
		err = unix.Stat(link, &st)
	}
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "stat", Path: link, Err: err}
	}
	fd.Mode = st.Mode
	fd.Dev = st.Dev
	fd.Ino = st.Ino
	fd.Rdev = st.Rdev
	fd.Size = st.Size
	classify(fd)
	if fd.Kind == Socket {
		fd.Proto = sockProto(link)
	}

	info := base + "fdinfo/" + ns
	b, err := readInto(info, buf)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	if !parseFDInfo(fd, b) {
		return false, parseError(info, b)
	}
	return true, nil
}

// classify sets Kind, Path and Deleted from Target and Mode.
func classify(fd *FD) {
	t := fd.Target
	switch {
	case strings.HasPrefix(t, "socket:["):
		fd.Kind = Socket
		return
	case strings.HasPrefix(t, "pipe:["):
		fd.Kind = Pipe
		return
	case strings.HasPrefix(t, "anon_inode:"):
		fd.Kind = AnonInode
		return
	case !strings.HasPrefix(t, "/"):
		fd.Kind = Other // "net:[...]", "mnt:[...]", "pidfd"...
		return
	}
	fd.Path = t
	if strings.HasSuffix(t, deletedSuffix) {
		fd.Deleted = true
		fd.Path = t[:len(t)-len(deletedSuffix)]
	}
	switch fd.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		fd.Kind = FileRegular
		if fd.Deleted && strings.HasPrefix(fd.Path, "/memfd:") {
			fd.Kind = Memfd
		}
	case unix.S_IFDIR:
		fd.Kind = FileDir
	case unix.S_IFCHR:
		fd.Kind = FileChar
	case unix.S_IFBLK:
		fd.Kind = FileBlock
	case unix.S_IFIFO:
		fd.Kind = FileFIFO
	case unix.S_IFLNK:
		fd.Kind = FileLink
	case unix.S_IFSOCK:
		fd.Kind = FileSock
	default:
		fd.Kind = Other
	}
}

// parseFDInfo parses the lines of /proc/PID/fdinfo/N.
func parseFDInfo(fd *FD, b []byte) bool {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			fd.Extra = append(fd.Extra, string(line))
			continue
		}
		key, val := line[:i], line[i+1:]
		if len(val) > 0 && val[0] != ' ' && val[0] != '\t' || string(key) == "tfd" || string(key) == "lock" {
			fd.Extra = append(fd.Extra, string(line)) // "inotify wd:1 ...", "tfd: ...", "lock: ..."
			continue
		}
		val = trimSpace(val)
		switch string(key) {
		case "pos":
			v, ok := parseInt(val)
			if !ok {
				return false
			}
			fd.Pos = v
		case "flags":
			v, ok := parseUint(val, 8)
			if !ok {
				return false
			}
			fd.Flags = int(v)
		case "mnt_id":
			v, ok := parseInt(val)
			if !ok {
				return false
			}
			fd.MntID = int(v)
		default:
			if _, dup := fd.Info[string(key)]; dup {
				fd.Extra = append(fd.Extra, string(line))
				continue
			}
			if fd.Info == nil {
				fd.Info = make(map[string]string, 4)
			}
			fd.Info[string(key)] = string(val)
		}
	}
	return true
}

// FDInfo reads /proc/PID/fdinfo/N again: the returned FD has only what
// fdinfo says (Pos, Flags, MntID, Info, Extra).
func FDInfo(pid, n int) (*FD, error) {
	path := pidPath(pid, "fdinfo/"+strconv.Itoa(n))
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fd := &FD{Num: n}
	if !parseFDInfo(fd, b) {
		return nil, parseError(path, b)
	}
	return fd, nil
}
