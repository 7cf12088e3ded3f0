package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// validImage is the smallest image validate accepts, of the caller's
// own credentials: its one process, and its files.
func validImage() (*format.Process, []format.File) {
	regs := make([]uint64, linux.NumUserRegs)
	regs[linux.CS], regs[linux.SS] = 0x33, 0x2b
	r, e, s := unix.Getresuid()
	gr, ge, gs := unix.Getresgid()
	return &format.Process{
		PID: 100, Root: "/", Cwd: "/tmp",
		Threads: []format.Thread{{TID: 100, Comm: "x", Regs: regs}},
		Maps:    []format.Mapping{{Start: 0x400000, End: 0x401000, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: format.MapAnon, File: -1}},
		FDs:     []format.FD{{Num: 0, File: -1, Open: 1}, {Num: 3, File: 0, Open: 2}},
		Creds:   format.Creds{UID: [4]int{r, e, s, e}, GID: [4]int{gr, ge, gs, ge}},
	}, []format.File{{Kind: format.FileRegular, Path: "/bin/true"}, {Kind: format.FileEventfd, Eventfd: &format.Eventfd{}}}
}

// validateImage validates the image of one process img with files fs.
func validateImage(img *format.Process, fs []format.File) error {
	return validate(fs, []format.Process{*img})
}

// TestValidateRanges: every field out of range is refused by validate,
// naming it, with at most a bounded prefix of any string.
func TestValidateRanges(t *testing.T) {
	if err := validateImage(validImage()); err != nil {
		t.Fatalf("validate(validImage()) = %v", err)
	}
	long := strings.Repeat("y", 100000)
	for _, tc := range []struct {
		name string
		edit func(p *format.Process, fs []format.File)
		want string
	}{
		{"pid", func(p *format.Process, fs []format.File) { p.PID = -5 }, "PID -5"},
		{"pid-huge", func(p *format.Process, fs []format.File) { p.PID = 1 << 40 }, "PID"},
		{"cwd-relative", func(p *format.Process, fs []format.File) { p.Cwd = "tmp" }, "not absolute"},
		{"cwd-long", func(p *format.Process, fs []format.File) { p.Cwd = "/" + long }, "bytes long"},
		{"umask", func(p *format.Process, fs []format.File) { p.Umask = 0o1777 }, "umask"},
		{"uid", func(p *format.Process, fs []format.File) { p.Creds.UID[1] = -1 }, "credentials"},
		{"groups", func(p *format.Process, fs []format.File) { p.Creds.Groups = make([]int, maxGroups+1) }, "supplementary groups"},
		{"limits", func(p *format.Process, fs []format.File) { p.Limits = make([]format.Rlimit, 17) }, "resource limits"},
		{"limit-soft-above-hard", func(p *format.Process, fs []format.File) { p.Limits = []format.Rlimit{{Cur: 2, Max: 1}} }, "soft limit"},
		{"auxv", func(p *format.Process, fs []format.File) { p.MM.Auxv = make([]uint64, 1000) }, "auxiliary vector"},
		{"sigactions", func(p *format.Process, fs []format.File) { p.Sigactions = make([]format.Sigaction, 65) }, "signal actions"},
		{"pending-short", func(p *format.Process, fs []format.File) { p.Pending = [][]byte{{1}} }, "siginfo"},
		{"pending-signal", func(p *format.Process, fs []format.File) { p.Pending = [][]byte{make([]byte, 128)} }, "pending signal 0"},
		{"itimer", func(p *format.Process, fs []format.File) { p.Itimers[1].ValueUsec = -1 }, "interval timer 1"},
		{"no-thread", func(p *format.Process, fs []format.File) { p.Threads = nil }, "no thread"},
		{"thread-twice", func(p *format.Process, fs []format.File) { p.Threads = append(p.Threads, p.Threads[0]) }, "twice"},
		{"thread-comm", func(p *format.Process, fs []format.File) { p.Threads[0].Comm = long }, `"yyyy`},
		{"thread-regs", func(p *format.Process, fs []format.File) { p.Threads[0].Regs = p.Threads[0].Regs[:3] }, "register words"},
		{"thread-cs", func(p *format.Process, fs []format.File) { p.Threads[0].Regs[linux.CS] = 0x10 }, "code segment"},
		{"thread-fsbase", func(p *format.Process, fs []format.File) { p.Threads[0].Regs[linux.FS_BASE] = 1 << 63 }, "fs base"},
		{"thread-rseq", func(p *format.Process, fs []format.File) { p.Threads[0].Rseq = format.Rseq{Addr: 0x500000, Size: 32} }, "rseq"},
		{"thread-nice", func(p *format.Process, fs []format.File) { p.Threads[0].Nice = 40 }, "nice 40"},
		{"exe", func(p *format.Process, fs []format.File) { p.Exe = 7 }, "no executable"},
		{"file-path-nul", func(p *format.Process, fs []format.File) { fs[0].Path = "/bin/t\x00rue" }, "NUL"},
		{"file-path-long", func(p *format.Process, fs []format.File) { fs[0].Path = "/" + long }, "longer than"},
		{"file-size", func(p *format.Process, fs []format.File) { fs[0].Size = -1 }, "size -1"},
		{"map-order", func(p *format.Process, fs []format.File) { p.Maps = append(p.Maps, p.Maps[0]) }, "out of order"},
		{"map-unaligned", func(p *format.Process, fs []format.File) { p.Maps[0].End = 0x400001 }, "unaligned"},
		{"map-kernel", func(p *format.Process, fs []format.File) { p.Maps[0].End = 1 << 48 }, "out of range"},
		{"map-file", func(p *format.Process, fs []format.File) { p.Maps[0].File = 5 }, "names file 5"},
		{"map-kind", func(p *format.Process, fs []format.File) { p.Maps[0].Kind = "\x1b[2J" }, `"\x1b[2J"`},
		{"inherit-root", func(p *format.Process, fs []format.File) { p.Maps[0].Inherit = [][2]uint64{{0x400000, 0x401000}} }, "inherits pages its parent has no mapping for"},
		{"inherit-outside", func(p *format.Process, fs []format.File) { p.Maps[0].Inherit = [][2]uint64{{0x400000, 0x402000}} }, "out of it"},
		{"inherit-unaligned", func(p *format.Process, fs []format.File) { p.Maps[0].Inherit = [][2]uint64{{0x400000, 0x400800}} }, "not whole pages"},
		{"inherit-shared", func(p *format.Process, fs []format.File) {
			p.Maps[0].Shared, p.Maps[0].Inherit = true, [][2]uint64{{0x400000, 0x401000}}
		}, "inherits pages"},
		{"fd-negative", func(p *format.Process, fs []format.File) { p.FDs[1].Num = -4 }, "fd -4"},
		{"fd-huge", func(p *format.Process, fs []format.File) { p.FDs[1].Num = 1 << 30 }, "out of range"},
		{"fd-twice", func(p *format.Process, fs []format.File) { p.FDs = append(p.FDs, p.FDs[1]) }, "twice"},
		{"fd-file", func(p *format.Process, fs []format.File) { p.FDs[1].File = -3 }, "names file -3"},
		{"fd-open", func(p *format.Process, fs []format.File) { p.FDs[1].Open = 0 }, "open file description 0"},
		{"fd-open-differs", func(p *format.Process, fs []format.File) { p.FDs[1].Open = 1 }, "differs"},
		{"fd-stream", func(p *format.Process, fs []format.File) { p.FDs[1].File = -1 }, "restorer's stream"},
		{"fd-pos", func(p *format.Process, fs []format.File) { p.FDs[1].Pos = -1 }, "offset -1"},
		{"epoll", func(p *format.Process, fs []format.File) { fs[1].Kind = format.FileEpoll }, "no interest list"},
		{"eventfd", func(p *format.Process, fs []format.File) { fs[1].Eventfd = nil }, "no eventfd state"},
		{"eventfd-count", func(p *format.Process, fs []format.File) { fs[1].Eventfd.Count = 1<<64 - 1 }, "beyond what an eventfd holds"},
		{"timer-thread", func(p *format.Process, fs []format.File) {
			p.Timers = []format.PosixTimer{{ID: 1, Clock: 1, Notify: linux.SIGEV_THREAD_ID, Signo: 10, Target: 99}}
		}, "thread 99"},
		{"timer-clock", func(p *format.Process, fs []format.File) { p.Timers = []format.PosixTimer{{ID: 1, Clock: 42}} }, "clock 42"},
		{"timer-id", func(p *format.Process, fs []format.File) { p.Timers = []format.PosixTimer{{ID: -1}} }, "timer -1"},
		{"terminal", func(p *format.Process, fs []format.File) { p.Terminal = &format.Terminal{FD: -1} }, "terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, fs := validImage()
			tc.edit(img, fs)
			err := validateImage(img, fs)
			if err == nil {
				t.Fatalf("validate = nil; want a refusal naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate = %q; want it to name %q", err, tc.want)
			}
			if len(err.Error()) > 400 {
				t.Errorf("validate message of %d bytes; want a bounded one", len(err.Error()))
			}
		})
	}
}

// TestValidateTree: the links between processes, checked before anything
// is started.
func TestValidateTree(t *testing.T) {
	child := func() (format.Process, format.Process, []format.File) {
		root, fs := validImage()
		c, _ := validImage()
		c.PID, c.PPID, c.Threads[0].TID = 101, 100, 101
		c.FDs = []format.FD{{Num: 3, File: 0, Open: 3}}
		return *root, *c, fs
	}
	root, c, fs := child()
	if err := validate(fs, []format.Process{root, c}); err != nil {
		t.Fatalf("validate of a parent and child = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(root, c *format.Process)
		want string
	}{
		{"parent-absent", func(_, c *format.Process) { c.PPID = 7 }, "parent 7"},
		{"pid-twice", func(_, c *format.Process) { c.PID, c.Threads[0].TID = 100, 100 }, "twice"},
		{"tid-twice", func(root, c *format.Process) {
			c.Threads = append(c.Threads, root.Threads[0])
		}, "in two processes"},
		{"session", func(root, c *format.Process) { root.Sid, c.Sid = 1, 55 }, "session 55"},
		{"group", func(_, c *format.Process) { c.Pgid = 77 }, "process group 77"},
		{"stream", func(_, c *format.Process) { c.FDs[0].File = -1 }, "restorer's stream"},
		{"open-differs", func(_, c *format.Process) { c.FDs[0].Open, c.FDs[0].Flags = 2, 1 }, "differs"},
		{"inherit-unmatched", func(_, c *format.Process) {
			c.Maps[0].Start, c.Maps[0].End = 0x500000, 0x501000
			c.Maps[0].Inherit = [][2]uint64{{0x500000, 0x501000}}
		}, "inherits pages its parent has no mapping for"},
	} {
		root, c, fs := child()
		tc.edit(&root, &c)
		if err := validate(fs, []format.Process{root, c}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: validate = %v; want a refusal naming %q", tc.name, err, tc.want)
		}
	}
	// A child that inherits what its parent has: accepted.
	root, c, fs = child()
	c.Maps[0].Inherit = [][2]uint64{{0x400000, 0x401000}}
	if err := validate(fs, []format.Process{root, c}); err != nil {
		t.Errorf("validate of a child inheriting its parent's page = %v", err)
	}
}

// TestZombieRecord: a zombie's record holds its ids, name, credentials
// and a status a process can end with, and nothing else.
func TestZombieRecord(t *testing.T) {
	root, fs := validImage()
	zombie := func(edit func(z *format.Process)) error {
		z := format.Process{PID: 101, PPID: 100, Comm: "z", Creds: root.Creds, Zombie: &format.Exit{Status: 3 << 8}}
		edit(&z)
		return validate(fs, []format.Process{*root, z})
	}
	for _, tc := range []struct {
		name string
		edit func(z *format.Process)
		ok   bool
	}{
		{"plain", func(*format.Process) {}, true},
		{"empty arrays", func(z *format.Process) {
			z.Maps, z.Threads, z.Limits = []format.Mapping{}, []format.Thread{}, []format.Rlimit{}
		}, true},
		{"killed", func(z *format.Process) { z.Zombie.Status = int(unix.SIGKILL) }, true},
		{"core", func(z *format.Process) { z.Zombie.Status = int(unix.SIGSEGV) | 0x80 }, true},
		{"core of SIGTERM", func(z *format.Process) { z.Zombie.Status = int(unix.SIGTERM) | 0x80 }, false},
		{"stopped status", func(z *format.Process) { z.Zombie.Status = int(unix.SIGSTOP)<<8 | 0x7f }, false},
		{"SIGWINCH", func(z *format.Process) { z.Zombie.Status = int(unix.SIGWINCH) }, false},
		{"negative", func(z *format.Process) { z.Zombie.Status = -1 }, false},
		{"threads", func(z *format.Process) { z.Threads = root.Threads }, false},
		{"umask", func(z *format.Process) { z.Umask = 0o22 }, false},
		{"stopped", func(z *format.Process) { z.Stopped = &format.Stop{Signal: int(unix.SIGSTOP)} }, false},
		{"parent", func(z *format.Process) { z.PPID = 7 }, false},
	} {
		if err := zombie(tc.edit); (err == nil) != tc.ok {
			t.Errorf("%s: validate = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
	// Never the root.
	z := format.Process{PID: 100, Comm: "z", Creds: root.Creds, Zombie: &format.Exit{}}
	if err := validate(fs, []format.Process{z}); err == nil {
		t.Error("a zombie root: accepted")
	}
}

// TestValidateLocks: a lock is refused unless it is of a known kind, on
// a description of its file that is not O_PATH, held by a process that
// holds it (posix), of a type its access allows, in range; or an flock
// through a mapping of its file, once.
func TestValidateLocks(t *testing.T) {
	lock := func(l format.Lock) func(p *format.Process, fs []format.File) {
		return func(p *format.Process, fs []format.File) {
			p.FDs[1].Flags = unix.O_RDONLY
			fs[0].Locks = []format.Lock{l}
		}
	}
	// mapped: l on file 0, which the process maps at 0x500000.
	mapped := func(l format.Lock) func(p *format.Process, fs []format.File) {
		return func(p *format.Process, fs []format.File) {
			p.Maps = append(p.Maps, format.Mapping{Start: 0x500000, End: 0x501000, Prot: unix.PROT_READ | unix.PROT_WRITE,
				Shared: true, Kind: format.MapFile, Name: "/bin/true", File: 0, Access: format.AccessReadWrite})
			fs[0].Locks = []format.Lock{l}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(p *format.Process, fs []format.File)
		want string
	}{
		{"flock", lock(format.Lock{Kind: format.LockFlock, Write: true, Open: 2}), ""},
		{"posix-read", lock(format.Lock{Kind: format.LockPosix, Open: 2, PID: 100, Start: 5, Len: 10}), ""},
		{"ofd-to-end", lock(format.Lock{Kind: format.LockOFD, Open: 2, Start: 1 << 62}), ""},
		{"last-byte", lock(format.Lock{Kind: format.LockOFD, Open: 2, Start: 1<<63 - 1, Len: 1}), ""},
		{"kind", lock(format.Lock{Kind: "lease", Open: 2}), "no such kind"},
		{"no-description", lock(format.Lock{Kind: format.LockFlock, Open: 9}), "which no fd has"},
		{"other-file", lock(format.Lock{Kind: format.LockFlock, Open: 1}), "which no fd has"},
		{"o-path", func(p *format.Process, fs []format.File) {
			lock(format.Lock{Kind: format.LockFlock, Open: 2})(p, fs)
			p.FDs[1].Flags = unix.O_PATH
		}, "O_PATH"},
		{"flock-range", lock(format.Lock{Kind: format.LockFlock, Open: 2, Len: 1}), "range"},
		{"flock-twice", func(p *format.Process, fs []format.File) {
			lock(format.Lock{Kind: format.LockFlock, Open: 2})(p, fs)
			fs[0].Locks = append(fs[0].Locks, fs[0].Locks[0])
		}, "twice"},
		{"posix-other-process", lock(format.Lock{Kind: format.LockPosix, Open: 2, PID: 101}), "does not hold it"},
		{"ofd-process", lock(format.Lock{Kind: format.LockOFD, Open: 2, PID: 100}), "held by a process"},
		{"write-read-only", lock(format.Lock{Kind: format.LockPosix, Write: true, Open: 2, PID: 100}), "open read-only"},
		{"negative-start", lock(format.Lock{Kind: format.LockOFD, Open: 2, Start: -1}), "out of range"},
		{"negative-len", lock(format.Lock{Kind: format.LockOFD, Open: 2, Len: -1}), "out of range"},
		{"past-the-end", lock(format.Lock{Kind: format.LockOFD, Open: 2, Start: 1<<63 - 1, Len: 2}), "out of range"},
		{"mapped", mapped(format.Lock{Kind: format.LockFlock, Write: true, PID: 100, Map: 0x500000}), ""},
		{"mapped-nothing-there", mapped(format.Lock{Kind: format.LockFlock, PID: 100, Map: 0x600000}), "no mapping of that file there"},
		{"mapped-anonymous", mapped(format.Lock{Kind: format.LockFlock, PID: 100, Map: 0x400000}), "no mapping of that file there"},
		{"mapped-other-process", mapped(format.Lock{Kind: format.LockFlock, PID: 101, Map: 0x500000}), "no mapping of that file there"},
		{"mapped-no-process", mapped(format.Lock{Kind: format.LockFlock, Map: 0x500000}), "no mapping of that file there"},
		{"mapped-posix", mapped(format.Lock{Kind: format.LockPosix, PID: 100, Map: 0x500000}), "only an flock"},
		{"mapped-and-open", mapped(format.Lock{Kind: format.LockFlock, Open: 2, PID: 100, Map: 0x500000}), "only an flock"},
		{"mapped-range", mapped(format.Lock{Kind: format.LockFlock, PID: 100, Map: 0x500000, Len: 1}), "only an flock"},
		{"mapped-twice", func(p *format.Process, fs []format.File) {
			mapped(format.Lock{Kind: format.LockFlock, PID: 100, Map: 0x500000})(p, fs)
			fs[0].Locks = append(fs[0].Locks, fs[0].Locks[0])
		}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, fs := validImage()
			tc.edit(img, fs)
			err := validateImage(img, fs)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("validate = %v; want %q", err, tc.want)
			}
		})
	}
}
