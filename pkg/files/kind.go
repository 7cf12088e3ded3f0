package files

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// Kind is one kind of open file. Every kind implements it; the optional
// halves below (Dumper, Preparer, Maker, Linker, Validator) only the
// kinds that need them.
type Kind interface {
	// Name is the kind as the image writes it (File.Kind).
	Name() string
	// Match says whether fd, open without O_PATH, is of this kind, on
	// the dump side. Kinds are asked in table order; the first that
	// says yes has it.
	Match(fd *procfs.FD, ts Terminals) bool
	// Traits says how the engine treats files of this kind.
	Traits() Traits
}

// Traits are what the dump and restore engines need to know of a kind
// without asking it anything else.
type Traits struct {
	// Shared: fds of one inode are one File (one object per dev and
	// ino). Not so for anonymous inodes, which all share one inode:
	// each fd is an object of its own.
	Shared bool
	// ByPath: opened again at the image's path, by the loader through
	// its opener (as the process will be), and checked to be the file
	// of the dump. The path must be a plain one (no magic link).
	ByPath bool
	// Stdio: fds 0-2 of this kind may be opened again by path instead
	// of getting the restorer's own stream (--stdio), unless deleted.
	Stdio bool
	// Seek: an fd's offset is set again.
	Seek bool
	// Unwatchable: epoll cannot watch it (a regular file, a folder).
	Unwatchable bool
	// PathOnly: only an O_PATH fd ever has it open.
	PathOnly bool
	// OPath is the procfs kind of an O_PATH fd that is carried as this
	// kind (procfs.Other: none); DeletedOPath whether it may be deleted.
	OPath        procfs.FDKind
	DeletedOPath bool
	// Mode is the file type (S_IFMT bits) such a file has at its path.
	Mode uint32
	// Remade: a deleted one is made again at restore (a private copy,
	// a device node, a folder), so the dump records its owner and
	// times, and the folder it lay in is made again if gone.
	Remade bool
	// Contents says when the file's contents travel in the image.
	Contents Contents
	// Exe: may be the process's executable; Mappable: may back a
	// file mapping.
	Exe, Mappable bool
	// OneOpen: the file has one open file description, the loader's
	// own file (a socket cannot be opened again), which every fd of it
	// shares.
	OneOpen bool
	// Sent: a kind of one open file that travels in flight too, that
	// description sent (a unix socket, which the loader makes with the
	// others; an inotify instance, a TCP, UDP or ping socket, a
	// pseudo-terminal master, which it makes as the process).
	Sent bool
}

// Contents says when a file's contents travel (FILEDATA records).
type Contents int

const (
	// ContentsNever: the file is found again where it was.
	ContentsNever Contents = iota
	// ContentsSaved: when the file was deleted, or with procs-dump -f;
	// never for a file of a pseudo file system.
	ContentsSaved
	// ContentsAlways: nothing else holds them (a memfd).
	ContentsAlways
)

// Describer is a kind that records more of a file than every file has
// (path, identity, mode, size, times) once the dump engine has that: st
// is stat(2) of path, a /proc link to the file.
type Describer interface {
	Describe(f *format.File, path string, st *unix.Stat_t)
}

// MaxFD bounds fd numbers in an image (NR_OPEN).
const MaxFD = 1 << 20

// Terminals are the devices (rdev) that are a process's own terminal:
// its controlling terminal and any terminal on fds 0, 1 and 2.
type Terminals map[uint64]bool

// table holds every kind, in the order Match is asked.
var table = []Kind{memfd{}, reg{}, dir{}, chr{}, tty{}, ptyMaster{}, ptySlave{}, eventfd{}, epoll{}, pipe{}, namedPipe{},
	unixSocket{}, tcpSocket{}, udpSocket{}, pingSocket{}, netlinkRoute{}, pidfd{}, symlink, sock, blk, sysvShm{},
	timerfd{}, signalfd{}, inotify{}}

// Lookup is the kind named name, or nil when this procs knows none.
func Lookup(name string) Kind {
	for _, k := range table {
		if k.Name() == name {
			return k
		}
	}
	return nil
}

// Kinds are all the kinds, in table order.
func Kinds() []Kind { return table }

// TraitsOf are the traits of the kind named name; the zero Traits for an
// unknown kind.
func TraitsOf(name string) Traits {
	if k := Lookup(name); k != nil {
		return k.Traits()
	}
	return Traits{}
}

// Classify says which kind carries fd, or why none can.
func Classify(fd *procfs.FD, ts Terminals) (kind string, why string) {
	t := fd.Target
	if fd.Flags&unix.O_PATH != 0 && fd.Path != "" {
		return classifyOPath(fd)
	}
	for _, k := range table {
		if k.Match(fd, ts) {
			return k.Name(), ""
		}
	}
	switch {
	case fd.Kind == procfs.FileChar && IsTerminal(fd.Rdev):
		return "", "a terminal other than its own (" + t + ")"
	case fd.Kind == procfs.FileChar:
		return "", "a character device (" + t + ")"
	case strings.HasPrefix(t, "socket:") && fd.Proto != "":
		return "", socketName(fd)
	case strings.HasPrefix(t, "socket:"):
		return "", "a socket"
	case strings.HasPrefix(t, "pipe:"):
		return "", "a pipe"
	case fd.Kind == procfs.FileFIFO:
		return "", "a named pipe (" + t + ")"
	case t == "anon_inode:[fanotify]":
		return "", "a fanotify group, which procs does not carry"
	case t == "anon_inode:[timerfd]":
		return "", "a timerfd on an alarm clock (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM), which procs does not carry"
	case strings.HasPrefix(t, "anon_inode:"):
		return "", "an " + strings.TrimPrefix(t, "anon_inode:")
	}
	return "", t
}

// classifyOPath says how an O_PATH fd is carried: as the file at its
// path, whatever its kind (the fd reads and writes nothing), but a
// deleted file that is not a regular one (its contents travel), which
// nothing can open again.
func classifyOPath(fd *procfs.FD) (kind string, why string) {
	for _, k := range table {
		tr := k.Traits()
		if tr.OPath == procfs.Other || tr.OPath != fd.Kind {
			continue
		}
		if fd.Deleted && !tr.DeletedOPath {
			return "", "an O_PATH fd of a deleted file (" + fd.Target + ")"
		}
		return k.Name(), ""
	}
	return "", "an O_PATH fd of " + fd.Target
}

// IsTerminal says whether a character device is a terminal by its major
// number: virtual consoles and serial ports (4), pseudo-terminals
// (136-143), USB and other serial lines (188, 204).
func IsTerminal(rdev uint64) bool {
	switch m := unix.Major(rdev); {
	case m == 4, m >= 136 && m <= 143, m == 188, m == 204:
		return true
	}
	return false
}

// Source is what the dump engine offers a kind's Dump.
type Source interface {
	// PID is the process's.
	PID() int
	// Image is the process record being written.
	Image() *format.Process
	// File is the image's file of id i.
	File(i int) *format.File
	// FD is the process's fd num as /proc shows it, or nil.
	FD(num int) *procfs.FD
	// UnixSockets is what sock_diag tells of the unix sockets of
	// procs-dump's network namespace, asked once a dump.
	UnixSockets() (map[uint64]linux.UnixDiag, error)
	// InFlight is the image's open file description of fd, procs-dump's
	// own, a file in flight that a peek at a socket's queue gave it:
	// the file and open id of the tree's fds that share it, or a file
	// and open id of its own, described and dumped as an fd's (Num is
	// 0). The engine keeps fd open until the dump ends.
	InFlight(fd int) (format.FD, error)
	// TCPClose says connections travel as their addresses alone, to
	// come back reset (--tcp=close), not in repair mode.
	TCPClose() bool
	// Carried says the fd is a file in flight that a peek at a
	// socket's queue gave procs-dump (InFlight), procs-dump's own.
	Carried() bool
	// Keeper is the process of the tree whose fd it is, or whose
	// socket's queue held it in flight: relative paths (a socket's
	// address) are relative to its working directory.
	Keeper() int
	// Hold registers release, which lets go of what Dump holds while
	// the tree is frozen (a connection, its packets dropped): with resume
	// true, as it was, before the tree goes on (-K, or a failed dump);
	// with false, just before the tree is killed.
	Hold(release func(resume bool))
}

// Dumper is a kind with state of its own beyond what every file has
// (path, identity, mode): Dump records it for fd, whose File is
// File(idx), in the kind's member of it. It runs once per open file
// description, for the first fd of it in the image.
type Dumper interface {
	Dump(src Source, fd *procfs.FD, idx int) error
}

// Loader is what the restore engine offers a kind's Prepare: services
// of the loader, before the process exists.
type Loader interface {
	// OpenByPath opens file i at its path through the opener, as the
	// process will be, and checks it (the engine's files-reg half).
	OpenByPath(i int, f *format.File, what string) error
	// Terminal opens the restorer's terminal for file i.
	Terminal(i int, f *format.File) error
	// MakeMemfd makes memfd i, as the process.
	MakeMemfd(i int, f *format.File) error
	// Own makes lf, which the kind made (a file with no path: a pipe),
	// the loader's own open file i, from which the descriptions of its
	// fds are opened (/proc/self/fd/N) with the loader's rights.
	Own(i int, lf *os.File)
	// Local is the loader's open file i (after OpenByPath, an O_PATH
	// one), or nil.
	Local(i int) *os.File
	// File is the image's file i; Files all of them.
	File(i int) *format.File
	Files() []format.File
	// As runs f with the rights of the first process that holds file
	// i, on a thread of the loader's (the engine's opener): to bind or
	// connect a socket at a path, as that process could.
	As(i int, f func() error) error
	// Created says the loader made a file at path (a socket's), to
	// remove if the restore fails.
	Created(path string)
	// Later runs f once the files of every process are prepared and
	// their descriptions open (to send files in flight).
	Later(f func() error)
	// Description is the loader's open file description of open id
	// open, once opened (Later), or nil.
	Description(open int) *os.File
	// Keep has the loader hold f until the processes have their files
	// (the other end of a pipe, a named pipe open for reading and
	// writing), then close it.
	Keep(f *os.File)
	// Warn says what comes back less well than it was.
	Warn(format string, args ...any)
	// OpenPTMX opens a new pseudo-terminal master, as the process, in
	// the devpts instance the tree's pseudo-terminals are made in.
	OpenPTMX() (*os.File, error)
	// AsProcess runs f on the opener's thread (the thread OpenByPath
	// opens with): as the process will be, with its file system ids,
	// its groups and capabilities as the opener has them (none for
	// another user's process restored by root). For what reaches a path
	// other than by opening it (an inotify watch, a socket's bind: only
	// the ports and options the process could).
	AsProcess(f func() error) error
	// TCPClose says connections come back reset (--tcp=close).
	TCPClose() bool
	// AtRun has f run once every process of the tree is built, just
	// before they run (a connection leaves repair mode then, when
	// both its ends exist).
	AtRun(f func() error)
	// Taken is, at AtRun, the open file description open of an fd of a
	// process, taken from the first process that holds it (pidfd_getfd,
	// the file the process made), or nil when no process holds it.
	Taken(open int) (*os.File, error)
	// PIDOf is, at AtRun, the restored PID of the image's process pid
	// as procs-load sees it.
	PIDOf(pid int) (int, bool)
	// ClockShift is what the tree's processes read on clock (0
	// REALTIME, 1 MONOTONIC, 7 BOOTTIME) more than procs-load does, and
	// whether that clock goes on from the dump (Target.Now).
	ClockShift(clock int) (shift int64, goesOn bool)
}

// Preparer is a kind that the loader readies before the process exists
// (a file opened and checked, a memfd made, a FIFO made). The fds of
// such a kind are then opened by the loader and given to the process
// (pidfd_getfd), unless the kind is a Maker.
type Preparer interface {
	Prepare(l Loader, i int, f *format.File, what string) error
}

// Target is what the restore engine offers in the process being built.
type Target interface {
	// Syscall runs a system call in the process.
	Syscall(name string, nr uintptr, args ...uint64) (uint64, error)
	// Arg puts p in the process's scratch area and returns its address.
	Arg(p []byte) (uint64, error)
	// PID is the restored PID of the image's process pid as the process
	// being made sees it (in the tree's PID namespace, if it has one),
	// which exists: every process of the tree does by the time fds are
	// made.
	PID(pid int) (int, bool)
	// Reaped makes in the process a pidfd, with flags (PIDFD_NONBLOCK,
	// PIDFD_THREAD), on a child of its that ended with wait status
	// status and that it reaped, and returns its number.
	Reaped(status int, flags uint64) (uint64, error)
	// Now is clock (0 REALTIME, 1 MONOTONIC, 7 BOOTTIME) in ns as the
	// process reads it, and whether that clock goes on from where it
	// was at the dump: REALTIME always; MONOTONIC and BOOTTIME when the
	// process has a time namespace that carries the image's clocks.
	Now(clock int) (ns int64, goesOn bool)
}

// Carrier is a kind whose files hold open file descriptions of their own
// (files in flight in a socket's queue): the restore engine prepares and
// opens them as the process that holds the file does its fds' (Num is
// 0), for the kind to send them (Later, Description).
type Carrier interface {
	InFlight(f *format.File) []format.FD
}

// LoaderMaker is a Maker whose file the loader can make itself, needing
// no rights and linked to nothing (an eventfd): for a file in flight,
// which the engine makes when it prepares the process holding the queue
// and which the processes sharing it take (pidfd_getfd).
type LoaderMaker interface {
	MakeHere(fd format.FD, f *format.File) (*os.File, error)
}

// LateMaker is a Maker whose file the loader can make itself once every
// process is built (AtRun): a pidfd, on a process that exists by then; an
// epoll, whose targets are open by then. For a file in flight that no
// process holds (one that a process holds too is Loader.Taken).
type LateMaker interface {
	MakeLate(l Loader, fd format.FD, f *format.File) (*os.File, error)
}

// KeeperMaker is a Maker some of whose files in flight, that no process
// holds, only a process can make: the first process holding a queue that
// holds it makes it as it is built, for the loader to take and send (a
// pidfd on a process that ended and was reaped: on a child of that
// process's, ended as it did).
type KeeperMaker interface {
	Maker
	KeeperMakes(f *format.File) bool
}

// Maker is a kind whose fds the process makes itself (an eventfd, an
// epoll): Make returns the new fd's number, in the process; the engine
// moves it to fd.Num. cloexec is O_CLOEXEC or 0.
type Maker interface {
	Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error)
}

// Linker is a kind with links between objects (epoll targets, pipe
// peers): Link runs for fd, which the process made (Maker), once every fd
// of the process exists.
type Linker interface {
	Link(t Target, fd format.FD, f *format.File) error
}

// Validator checks, on an untrusted image, what a kind adds to its files
// (an epoll's interest list, an eventfd's counter): for file i, of the
// kind, given every process of the image. Every file id and fd number is
// in range when it runs, and every fd is of a kind this procs knows.
type Validator interface {
	Validate(files []format.File, i int, procs []format.Process) error
}

// TreeChecker is a kind that checks, on the dump side once every process
// of the tree is read, what only the whole tree shows (a pipe whose
// other end a process outside the tree holds, which out lists).
type TreeChecker interface {
	CheckTree(fs []format.File, procs []format.Process, out *Outside) error
}

// CheckTree checks the owners of open files, and runs every kind's
// TreeChecker; in says whether a PID is one of the tree's,
// closeExternal whether a socket connected outside the tree comes back
// closed rather than being refused, carried are procs-dump's fds of the
// files in flight by open id (Outside).
func CheckTree(fs []format.File, procs []format.Process, in func(pid int) bool, closeExternal bool, carried map[int]int) error {
	if err := checkOwners(procs); err != nil {
		return err
	}
	out := &Outside{in: in, CloseExternal: closeExternal, Carried: carried}
	for _, k := range table {
		if c, ok := k.(TreeChecker); ok {
			if err := c.CheckTree(fs, procs, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// ImageValidator is a kind that checks, once every file is valid, what
// only all the image's files of the kind show together (the work they
// would cost a restorer).
type ImageValidator interface {
	ValidateImage(fs []format.File) error
}

// Validate runs the Validator of every file's kind, then every kind's
// ImageValidator, and checks the owners of open files.
func Validate(fs []format.File, procs []format.Process) error {
	if err := validateOwners(procs); err != nil {
		return err
	}
	for i := range fs {
		if v, ok := Lookup(fs[i].Kind).(Validator); ok {
			if err := v.Validate(fs, i, procs); err != nil {
				return err
			}
		}
	}
	for _, k := range table {
		if v, ok := k.(ImageValidator); ok {
			if err := v.ValidateImage(fs); err != nil {
				return err
			}
		}
	}
	return nil
}

// Holder returns the first process of procs that holds file i on an fd,
// and that fd, or nil: the process that makes a file the process makes
// (Maker), whose fd numbers a Linker's links name.
func Holder(procs []format.Process, i int) (*format.Process, *format.FD) {
	for p := range procs {
		for k := range procs[p].FDs {
			if procs[p].FDs[k].File == i {
				return &procs[p], &procs[p].FDs[k]
			}
		}
	}
	return nil, nil
}

// Keeper is the first process of procs that holds file i on an fd, or
// else holds a file that carries i in flight (Carrier), however deep: the
// process whose rights a file in flight is made with. Nil when none does.
func Keeper(fs []format.File, procs []format.Process, i int) *format.Process {
	if p, _ := Holder(procs, i); p != nil {
		return p
	}
	carriers := map[int][]int{} // file -> the files carrying it
	for k := range fs {
		if c, ok := Lookup(fs[k].Kind).(Carrier); ok {
			for _, fd := range c.InFlight(&fs[k]) {
				carriers[fd.File] = append(carriers[fd.File], k)
			}
		}
	}
	want := map[int]bool{i: true}
	for next := []int{i}; len(next) > 0; {
		f := next[0]
		next = next[1:]
		for _, c := range carriers[f] {
			if !want[c] {
				want[c] = true
				next = append(next, c)
			}
		}
	}
	for p := range procs {
		for _, fd := range procs[p].FDs {
			if fd.File >= 0 && want[fd.File] {
				return &procs[p]
			}
		}
	}
	return nil
}

// InFlightFDs are the files in flight of every file of fs (Carrier).
func InFlightFDs(fs []format.File) []format.FD {
	var out []format.FD
	for k := range fs {
		if c, ok := Lookup(fs[k].Kind).(Carrier); ok {
			out = append(out, c.InFlight(&fs[k])...)
		}
	}
	return out
}

// fdOpens maps the open id of every fd of procs to its file.
func fdOpens(procs []format.Process) map[int]int {
	opens := map[int]int{}
	for _, p := range procs {
		for _, fd := range p.FDs {
			opens[fd.Open] = fd.File
		}
	}
	return opens
}

// carrierOf is the first file of fs that holds file i in flight, or -1.
func carrierOf(fs []format.File, i int) int {
	for k := range fs {
		if c, ok := Lookup(fs[k].Kind).(Carrier); ok {
			for _, fd := range c.InFlight(&fs[k]) {
				if fd.File == i {
					return k
				}
			}
		}
	}
	return -1
}

// ErrUnsupported is matched by every refusal of a kind to carry what a
// process holds (dump.ErrUnsupported is this error).
var ErrUnsupported = errors.New("unsupported")

// Refusal is a kind's refusal to carry an fd: the process was not
// touched. It matches ErrUnsupported.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string        { return r.Msg }
func (r *Refusal) Is(target error) bool { return target == ErrUnsupported }

func refusef(format string, args ...any) error { return &Refusal{fmt.Sprintf(format, args...)} }

// takeFD takes a copy of process pid's fd num (pidfd_getfd): the same
// open file description.
func takeFD(pid, num int) (int, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("fd %d: pidfd_open(%d): %w", num, pid, os.NewSyscallError("pidfd_open", err))
	}
	defer unix.Close(pfd)
	fd, err := unix.PidfdGetfd(pfd, num, 0)
	if err != nil {
		return -1, fmt.Errorf("fd %d: taking it: %w", num, os.NewSyscallError("pidfd_getfd", err))
	}
	return fd, nil
}
