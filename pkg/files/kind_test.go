package files

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// Every kind the image format names has one kind in the table, and no
// two kinds share a name or an O_PATH file type.
func TestTable(t *testing.T) {
	names := map[string]bool{}
	opath := map[procfs.FDKind]string{}
	for _, k := range Kinds() {
		if names[k.Name()] {
			t.Errorf("kind %q twice in the table", k.Name())
		}
		names[k.Name()] = true
		if o := k.Traits().OPath; o != procfs.Other {
			if prev, ok := opath[o]; ok {
				t.Errorf("O_PATH fds of %v carried as both %s and %s", o, prev, k.Name())
			}
			opath[o] = k.Name()
		}
		_, prep := k.(Preparer)
		_, made := k.(Maker)
		// A System V segment is no fd's: the engine makes it (sysvshm.go).
		if prep == made && k.Name() != format.FileSysvShm {
			t.Errorf("kind %s: Preparer %v, Maker %v; want exactly one", k.Name(), prep, made)
		}
	}
	for _, n := range []string{format.FileRegular, format.FileDir, format.FileChar, format.FileTTY,
		format.FileMemfd, format.FileEventfd, format.FileEpoll, format.FilePipe, format.FileUnix, format.FilePidfd, format.FileTCP, format.FileUDP, format.FilePing, format.FileNetlink,
		format.FileSymlink, format.FileFIFO, format.FileSocket, format.FileBlock, format.FileSysvShm,
		format.FileTimerfd, format.FileSignalfd, format.FileInotify} {
		if Lookup(n) == nil {
			t.Errorf("no kind %q", n)
		}
	}
	if Lookup("sctp") != nil || TraitsOf("nope") != (Traits{}) {
		t.Error("an unknown kind is found")
	}
}

func TestClassify(t *testing.T) {
	tty := unix.Mkdev(136, 3)
	ts := Terminals{tty: true}
	for _, tc := range []struct {
		fd   procfs.FD
		kind string
		why  string
	}{
		{procfs.FD{Kind: procfs.FileRegular, Path: "/a"}, format.FileRegular, ""},
		{procfs.FD{Kind: procfs.Memfd, Path: "/memfd:x"}, format.FileMemfd, ""},
		{procfs.FD{Kind: procfs.FileDir, Path: "/"}, format.FileDir, ""},
		{procfs.FD{Kind: procfs.FileChar, Path: "/dev/null", Rdev: unix.Mkdev(1, 3)}, format.FileChar, ""},
		{procfs.FD{Kind: procfs.FileChar, Path: "/dev/pts/3", Rdev: tty}, format.FileTTY, ""},
		// Another pty's slave: the tree's pair, or refused once the
		// whole tree is read (CheckTree) when its master is not in it.
		{procfs.FD{Kind: procfs.FileChar, Target: "/dev/pts/4", Path: "/dev/pts/4", Rdev: unix.Mkdev(136, 4)}, format.FilePTYSlave, ""},
		{procfs.FD{Kind: procfs.FileChar, Target: "/dev/ptmx", Path: "/dev/ptmx", Rdev: unix.Mkdev(5, 2)}, format.FilePTYMaster, ""},
		{procfs.FD{Kind: procfs.FileChar, Target: "/dev/tty2", Path: "/dev/tty2", Rdev: unix.Mkdev(4, 2)}, "", "a terminal other than its own (/dev/tty2)"},
		{procfs.FD{Kind: procfs.FileChar, Target: "/dev/kvm", Path: "/dev/kvm", Rdev: unix.Mkdev(10, 232)}, "", "a character device (/dev/kvm)"},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[eventfd]"}, format.FileEventfd, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[eventpoll]"}, format.FileEpoll, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[timerfd]", Info: map[string]string{"clockid": "1"}}, format.FileTimerfd, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[timerfd]", Info: map[string]string{"clockid": "8"}}, "", "a timerfd on an alarm clock (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM), which procs does not carry"},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[signalfd]"}, format.FileSignalfd, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:inotify"}, format.FileInotify, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[fanotify]"}, "", "a fanotify group, which procs does not carry"},
		{procfs.FD{Kind: procfs.Pipe, Target: "pipe:[5]"}, format.FilePipe, ""},
		{procfs.FD{Kind: procfs.AnonInode, Target: "anon_inode:[pidfd]"}, format.FilePidfd, ""},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[5]"}, "", "a socket"},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[6]", Proto: "TCPv6"}, format.FileTCP, ""},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[8]", Proto: "UDP-Lite"}, format.FileUDP, ""},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[9]", Proto: "PINGv6"}, format.FilePing, ""},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[7]", Proto: "NETLINK"}, "", "a netlink socket, which procs does not carry"},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[7]", Proto: "NETLINK", Netlink: &procfs.NetlinkSocket{Proto: 9}}, "", "a netlink socket (NETLINK_AUDIT), which procs does not carry"},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[7]", Proto: "NETLINK", Netlink: &procfs.NetlinkSocket{}}, format.FileNetlink, ""},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[10]", Proto: "RAWv6"}, "", "a raw IPv6 socket, which procs does not carry"},
		{procfs.FD{Kind: procfs.Socket, Target: "socket:[11]", Proto: "PACKET"}, "", "a packet socket, which procs does not carry"},
		{procfs.FD{Kind: procfs.FileFIFO, Target: "/f", Path: "/f"}, format.FileFIFO, ""},
		{procfs.FD{Kind: procfs.FileFIFO, Target: "/f", Path: "/f", Flags: unix.O_PATH}, format.FileFIFO, ""},
		{procfs.FD{Kind: procfs.FileLink, Target: "/l", Path: "/l", Flags: unix.O_PATH}, format.FileSymlink, ""},
		{procfs.FD{Kind: procfs.FileRegular, Target: "/a (deleted)", Path: "/a", Deleted: true, Flags: unix.O_PATH}, format.FileRegular, ""},
		{procfs.FD{Kind: procfs.FileBlock, Target: "/b (deleted)", Path: "/b", Deleted: true, Flags: unix.O_PATH}, "", "an O_PATH fd of a deleted file (/b (deleted))"},
	} {
		kind, why := Classify(&tc.fd, ts)
		if kind != tc.kind || why != tc.why {
			t.Errorf("Classify(%+v) = %q, %q; want %q, %q", tc.fd, kind, why, tc.kind, tc.why)
		}
	}
}

type source struct {
	p     format.Process
	files []format.File
	fds   map[int]*procfs.FD
}

func (s *source) PID() int                { return s.p.PID }
func (s *source) Image() *format.Process  { return &s.p }
func (s *source) File(i int) *format.File { return &s.files[i] }
func (s *source) FD(n int) *procfs.FD     { return s.fds[n] }

func (s *source) UnixSockets() (map[uint64]linux.UnixDiag, error) { return linux.UnixSockets() }
func (s *source) TCPClose() bool                                  { return false }
func (s *source) Keeper() int                                     { return s.p.PID }
func (s *source) Carried() bool                                   { return false }
func (s *source) Hold(func(bool))                                 {}

func (s *source) InFlight(fd int) (format.FD, error) {
	return format.FD{}, errors.New("no files in flight here")
}

func TestEpollDump(t *testing.T) {
	src := &source{files: make([]format.File, 1), fds: map[int]*procfs.FD{4: {Num: 4, Ino: 0x40f}}}
	ep := &procfs.FD{Num: 5, Extra: []string{"tfd:        4 events:       19 data:                4  pos:0 ino:40f sdev:f"}}
	if err := (epoll{}).Dump(src, ep, 0); err != nil {
		t.Fatal(err)
	}
	want := format.EpollEntry{FD: 4, Events: 0x19, Data: 4}
	if ep := src.files[0].Epoll; ep == nil || len(ep.Targets) != 1 || ep.Targets[0] != want {
		t.Errorf("Epoll = %+v; want [%+v]", ep, want)
	}
	// A watched file no longer open at that number: refused.
	src.fds[4].Ino = 0x999
	if err := (epoll{}).Dump(src, ep, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("epoll of a file gone from its fd: %v; want a refusal", err)
	}
}

func TestEpollValidate(t *testing.T) {
	ep := format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 3}}}}
	for _, tc := range []struct {
		kind3 string // kind of the file on fd 3; "" no fd 3
		kind5 string // of the epoll's file
		ok    bool
	}{
		{format.FileEventfd, format.FileEpoll, true},
		{format.FileRegular, format.FileEpoll, false},
		{"", format.FileEpoll, false},
	} {
		fs := []format.File{ep, {Kind: tc.kind3, Eventfd: &format.Eventfd{}}}
		p := format.Process{FDs: []format.FD{{Num: 5, File: 0, Open: 1}}}
		if tc.kind3 != "" {
			p.FDs = append(p.FDs, format.FD{Num: 3, File: 1, Open: 2})
		}
		if err := Validate(fs, []format.Process{p}); (err == nil) != tc.ok {
			t.Errorf("Validate with fd 3 a %q: %v; want ok %v", tc.kind3, err, tc.ok)
		}
	}
	// An epoll with no interest list at all: refused.
	if err := Validate([]format.File{{Kind: format.FileEpoll}}, nil); err == nil {
		t.Error("Validate of an epoll without its state: ok")
	}
}

// TestUnixValidate: a unix socket's state, crafted, is refused by name.
func TestUnixValidate(t *testing.T) {
	pair := func() []format.File {
		return []format.File{
			{Kind: format.FileUnix, Unix: &format.Unix{Type: 1, Connected: true, Peer: 1, Data: []byte("x")}},
			{Kind: format.FileUnix, Unix: &format.Unix{Type: 1, Connected: true, Peer: 0}},
		}
	}
	if err := Validate(pair(), nil); err != nil {
		t.Fatalf("Validate of a socketpair = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(fs []format.File)
		want string
	}{
		{"no-state", func(fs []format.File) { fs[0].Unix = nil }, "no socket state"},
		{"type", func(fs []format.File) { fs[0].Unix.Type = 3 }, "type 3"},
		{"peer-range", func(fs []format.File) { fs[0].Unix.Peer = 9 }, "peer 9"},
		{"peer-self", func(fs []format.File) { fs[0].Unix.Peer = 0 }, "peer 0"},
		{"peer-not-mutual", func(fs []format.File) { fs[1].Unix.Peer = -1 }, "not its peer"},
		{"peer-type", func(fs []format.File) { fs[1].Unix.Type = 2 }, "not its peer"},
		{"peer-kind", func(fs []format.File) { fs[1].Kind = format.FilePipe }, "not its peer"},
		{"shutdown", func(fs []format.File) { fs[0].Unix.Shutdown = 4 }, "shutdown 4"},
		{"data-dgram", func(fs []format.File) { fs[0].Unix.Type, fs[1].Unix.Type = 2, 2 }, "not a connected stream"},
		{"data-huge", func(fs []format.File) { fs[0].Unix.Data = make([]byte, maxUnixQueue+1) }, "out of range"},
		{"buffers", func(fs []format.File) { fs[0].Unix.SndBuf = -1 }, "buffers"},
		{"unconnected-peer", func(fs []format.File) { fs[0].Unix.Connected, fs[0].Unix.Data = false, nil }, "not connected"},
	} {
		fs := pair()
		tc.edit(fs)
		if err := Validate(fs, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v; want a refusal naming %q", tc.name, err, tc.want)
		}
	}
}

func TestPidfd(t *testing.T) {
	src := &source{p: format.Process{PID: 42}, files: make([]format.File, 1)}
	for _, tc := range []struct {
		pid     string
		refused bool
	}{{"43", false}, {"0", true}} { // -1, reaped: asks the process, see tests/
		src.files[0] = format.File{}
		err := (pidfd{}).Dump(src, &procfs.FD{Num: 5, Info: map[string]string{"Pid": tc.pid}}, 0)
		if tc.refused != errors.Is(err, ErrUnsupported) || !tc.refused && (err != nil || src.files[0].Pidfd == nil || src.files[0].Pidfd.PID != 43) {
			t.Errorf("Dump of a pidfd on %s: %v, %+v; want refused %v", tc.pid, err, src.files[0].Pidfd, tc.refused)
		}
	}
	procs := []format.Process{{PID: 42, Threads: []format.Thread{{TID: 42}, {TID: 44}}}, {PID: 43, Zombie: &format.Exit{}}}
	for _, tc := range []struct {
		pid, flags int
		ok         bool
	}{
		{42, unix.O_RDWR, true},
		{43, unix.O_RDWR | unix.O_NONBLOCK, true}, // a zombie
		{42, unix.O_RDWR | unix.PIDFD_THREAD, true},
		{44, unix.O_RDWR | unix.PIDFD_THREAD, false}, // not a main thread
		{45, unix.O_RDWR, false},                     // not in the image
		{42, unix.O_RDWR | unix.O_APPEND, false},
		{42, unix.O_RDONLY, false},
		{0, unix.O_RDWR, true},   // reaped, exit 3 (below)
		{-1, unix.O_RDWR, false}, // reaped, of a process too
	} {
		fs := []format.File{{Kind: format.FilePidfd, Pidfd: &format.Pidfd{PID: tc.pid}}}
		if tc.pid <= 0 {
			fs[0].Pidfd = &format.Pidfd{PID: -tc.pid * 42, Reaped: &format.Exit{Status: 3 << 8}}
		}
		ps := slices.Clone(procs)
		ps[0].FDs = []format.FD{{Num: 5, File: 0, Flags: tc.flags, Open: 1}}
		if err := Validate(fs, ps); (err == nil) != tc.ok {
			t.Errorf("Validate of a pidfd on %d, flags %#x: %v; want ok %v", tc.pid, tc.flags, err, tc.ok)
		}
	}
	for _, pid := range []int{7, 44} {
		if err := (pidfd{}).CheckTree([]format.File{{Kind: format.FilePidfd, Pidfd: &format.Pidfd{PID: pid}}}, procs, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("CheckTree of a pidfd on %d: %v; want a refusal", pid, err)
		}
	}
}
