// Open files: the image-wide file table (one object per open file or
// file, shared by every fd of the tree that holds it), each process's
// fds, and the files whose contents travel in the image.

package dump

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// carried is a file whose contents travel in the image.
type carried struct {
	index   int    // file id
	path    string // where to read it: /proc/PID/fd/N or /proc/PID/map_files/A-B
	size    int64
	extents [][2]int64 // its data; the rest are holes
}

// fileTable is the image's files, which the collectors of every process
// of a tree add to: one File per file, one open id per open file
// description, whoever holds them.
type fileTable struct {
	files  []format.File
	byIno  map[[2]uint64]int // (dev, ino) -> file id, for kinds shared per inode
	byShm  map[int]int       // System V segment id -> file id
	carry  []carried
	opens  []openFD // every fd given an open id so far
	nextOp int      // the last open id given
	// unix is what sock_diag told of the unix sockets, once asked.
	unix    map[uint64]linux.UnixDiag
	unixErr error
	// locks are the file locks recorded so far; listed, the locks the
	// fds' fdinfo listed (locks.go).
	locks  map[format.Lock]bool
	listed map[listedLock]bool
	// holds: what the kinds hold until the tree goes on or is killed;
	// tcpClose: --tcp=close.
	holds    *held
	tcpClose bool
}

// held are the release functions of what kinds hold while the tree is
// frozen (files.Source.Hold).
type held []func(resume bool)

// letGo releases everything held, once: resume says the tree goes on.
func (h *held) letGo(resume bool) {
	for _, f := range *h {
		f(resume)
	}
	*h = nil
}

// openFD is an fd of a process of the image, by its open file description.
type openFD struct {
	pid, num int
	file     int    // file id, or -1 (the restorer's stream)
	target   string // its /proc link, to compare anonymous inodes
	open     int
	stream   bool // fd 0-2 of the root, that may become the restorer's
}

func newFileTable() *fileTable { return &fileTable{byIno: map[[2]uint64]int{}, byShm: map[int]int{}} }

// fileAt describes the file at path (a /proc link that stat follows) and
// returns its id, adding it to the image once per (dev, ino).
func (c *collector) fileAt(path, kind string) (int, error) {
	k := files.Lookup(kind)
	if k == nil {
		return -1, fmt.Errorf("%s: no kind of file %q", path, kind)
	}
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return -1, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	// Files are shared by (dev, ino), but for anonymous inodes, which all
	// share one inode, each fd is an object of its own.
	key := [2]uint64{s.Dev, s.Ino}
	shareable := k.Traits().Shared
	if i, ok := c.t.byIno[key]; ok && shareable {
		return i, nil
	}
	target, err := os.Readlink(path)
	if err != nil {
		return -1, err
	}
	f := format.File{Kind: kind, Dev: s.Dev, Ino: s.Ino, Rdev: s.Rdev, Mode: s.Mode,
		Size: s.Size, Mtime: s.Mtim.Nano()}
	f.Path, f.Deleted = strings.CutSuffix(target, " (deleted)")
	if !utf8.ValidString(f.Path) {
		// JSON would carry another name (U+FFFD for each bad byte).
		return -1, &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a file whose name is not UTF-8 (%s)", c.pid, safetext.Quote(f.Path))}
	}
	if d, ok := k.(files.Describer); ok {
		d.Describe(&f, path, &s)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err == nil && pseudoFS[int64(sfs.Type)] {
		f.Pseudo = true
		if sfs.Type == unix.PROC_SUPER_MAGIC {
			if f.Self, f.ProcPID, err = c.procSelf(f.Path); err != nil {
				return -1, err
			}
		}
	}
	tr := k.Traits()
	if f.Deleted && tr.Remade {
		// Made again as it was (a private device node, or an unlinked
		// copy of the contents).
		f.UID, f.GID, f.Atime = int(s.Uid), int(s.Gid), s.Atim.Nano()
	}
	i := len(c.t.files)
	c.t.files = append(c.t.files, f)
	if shareable {
		c.t.byIno[key] = i
	}
	if tr.Contents == files.ContentsAlways || (tr.Contents == files.ContentsSaved && (f.Deleted || c.fileSave) && !f.Pseudo) {
		if err := c.carryFile(i, path); err != nil {
			return -1, err
		}
	}
	return i, nil
}

// procSelf says where path, a file of proc, lies in the /proc folder of
// a process of the tree ("status", "task/PID/stat") and which process
// that is, or "" when it is in none (/proc/meminfo). A file of another
// thread than a main one is refused: it names a thread that the restore
// makes anew; so is one of a process outside the tree, which the
// restored tree may not find where it was.
func (c *collector) procSelf(path string) (string, int, error) {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return "", 0, nil
	}
	n, rest, _ := strings.Cut(rest, "/")
	id, err := strconv.Atoi(n)
	if err != nil {
		return "", 0, nil // /proc/meminfo
	}
	var owner *frozen
	for _, f := range c.tree.procs {
		if f.pid == id || slices.Contains(f.tids, id) {
			owner = f
		}
	}
	if owner == nil || owner.zombie {
		return "", 0, &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a /proc file of process %d, outside the tree or ended (%s)", c.pid, id, path)}
	}
	tid := id
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		n, _, _ := strings.Cut(t, "/")
		tid, _ = strconv.Atoi(n)
	}
	if id != owner.pid || tid != owner.pid {
		return "", 0, &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a /proc file of thread %d of process %d (%s)", c.pid, tid, owner.pid, path)}
	}
	if rest == "" {
		return ".", owner.pid, nil
	}
	return rest, owner.pid, nil
}

// carryFile has the contents of file i, at path, travel in the image:
// its data extents (SEEK_DATA, SEEK_HOLE), so that holes stay holes and
// cost nothing.
func (c *collector) carryFile(i int, path string) error {
	f := &c.t.files[i]
	fd, err := openNoAtime(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ext, err := dataExtents(fd, f.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.Carried, f.Extents = true, &ext
	c.t.carry = append(c.t.carry, carried{index: i, path: path, size: f.Size, extents: ext})
	return nil
}

// openNoAtime opens path for reading without changing its access time
// where it may (the owner or CAP_FOWNER).
func openNoAtime(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// dataExtents lists the ranges of data of the open file fd of size
// bytes, [start, end) each, in order; the rest are holes. A file system
// that cannot tell has one extent, the whole file.
func dataExtents(fd int, size int64) ([][2]int64, error) {
	ext := [][2]int64{}
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // holes to the end
		}
		if err == unix.EINVAL && off == 0 {
			return [][2]int64{{0, size}}, nil
		}
		if err != nil {
			return nil, err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		h = min(h, size)
		if d >= h {
			break
		}
		ext = append(ext, [2]int64{d, h})
		off = h
	}
	return ext, nil
}

var pseudoFS = map[int64]bool{
	unix.PROC_SUPER_MAGIC: true, unix.SYSFS_MAGIC: true, unix.CGROUP_SUPER_MAGIC: true,
	unix.CGROUP2_SUPER_MAGIC: true, unix.DEBUGFS_MAGIC: true, unix.TRACEFS_MAGIC: true,
	unix.SECURITYFS_MAGIC: true, unix.BPF_FS_MAGIC: true,
}

func (c *collector) collectFDs(fds []procfs.FD) error {
	byNum := map[int]*procfs.FD{}
	for i := range fds {
		byNum[fds[i].Num] = &fds[i]
	}
	for i := range fds {
		fd := &fds[i]
		out := format.FD{Num: fd.Num, File: -1, Pos: fd.Pos,
			Flags: fd.Flags &^ (unix.O_CLOEXEC | unix.O_LARGEFILE), Cloexec: fd.Flags&unix.O_CLOEXEC != 0}
		// A terminal travels as its modes: the first of the process's
		// own, on fds 0-2 or beyond.
		if c.p.Terminal == nil && fd.Kind == procfs.FileChar && c.ttys[fd.Rdev] {
			c.p.Terminal = terminalOf(c.pid, fd.Num)
		}
		stream := c.root && fd.Num <= 2
		reopen := stream && reopenable(fd, c.ttys)
		if prev := c.t.sharedWith(c.pid, fd, stream, reopen); prev != nil {
			// One open file description, already in the image: this
			// fd is another of its fds (after dup or fork).
			out.File, out.Open = prev.file, prev.open
			c.t.opens = append(c.t.opens, openFD{pid: c.pid, num: fd.Num, file: prev.file, target: fd.Target, open: prev.open, stream: stream})
			c.p.FDs = append(c.p.FDs, out)
			if err := c.recordLocks(fd, out); err != nil {
				return err
			}
			continue
		}
		kind := ""
		if !stream || reopen {
			kind, _ = files.Classify(fd, c.ttys)
			idx, err := c.fileAt(fmt.Sprintf("/proc/%d/fd/%d", c.pid, fd.Num), kind)
			if err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
			out.File = idx
		}
		// Known before its Dump: a socket's queue may hold this very
		// open file description in flight, which InFlight then finds.
		c.t.nextOp++
		out.Open = c.t.nextOp
		c.t.opens = append(c.t.opens, openFD{pid: c.pid, num: fd.Num, file: out.File, target: fd.Target, open: out.Open, stream: stream})
		if kind != "" {
			if d, ok := files.Lookup(kind).(files.Dumper); ok {
				if err := d.Dump(fdSource{c: c, byNum: byNum}, fd, out.File); err != nil {
					return err
				}
			}
			if fd.Flags&unix.O_PATH == 0 {
				var err error
				if out.Owner, out.Sig, err = files.OwnerOf(c.pid, fd.Num); err != nil {
					return err
				}
			}
		}
		c.p.FDs = append(c.p.FDs, out)
		if err := c.recordLocks(fd, out); err != nil {
			return err
		}
	}
	return nil
}

// sharedWith returns the fd already in the image whose open file
// description fd of process pid shares, or nil. The root's fds 0-2
// (stream) may each become the restorer's own stream of its number
// (--stdio): they share only among themselves, and only when they are a
// file opened again by path (2>&1 to a log); other fds of the tree that
// share one of them get what it gets, the same number first.
func (t *fileTable) sharedWith(pid int, fd *procfs.FD, stream, reopen bool) *openFD {
	if stream && !reopen {
		return nil
	}
	same := func(o *openFD) bool {
		// Not even the same file, and kcmp would say no.
		return o.target == fd.Target && sameFile(o.pid, o.num, pid, fd.Num)
	}
	if !stream {
		for i := range t.opens {
			if o := &t.opens[i]; o.stream && o.num == fd.Num && same(o) {
				return o
			}
		}
	}
	for i := range t.opens {
		o := &t.opens[i]
		if o.pid == pid && o.stream != stream || stream && o.file < 0 {
			continue
		}
		if same(o) {
			return o
		}
	}
	return nil
}

// reopenable says whether fd, one of fds 0, 1 and 2, is a file that a
// restorer may open again by path (a log file, /dev/null, a directory):
// the image then records it as it does other fds, and the restorer
// chooses (--stdio) between it and its own stream. A terminal, a pipe,
// a socket or a deleted file is recorded as the stream alone: only the
// restorer's own can stand in for it.
func reopenable(fd *procfs.FD, ts terminals) bool {
	kind, why := files.Classify(fd, ts)
	if why != "" || strings.HasSuffix(fd.Target, " (deleted)") {
		return false
	}
	return files.TraitsOf(kind).Stdio
}

// fdSource is what a kind's Dump sees of the collector; pid, when set,
// is procs-dump's own (a file in flight, which procs-dump holds).
type fdSource struct {
	c     *collector
	byNum map[int]*procfs.FD
	pid   int
}

func (s fdSource) PID() int {
	if s.pid != 0 {
		return s.pid
	}
	return s.c.pid
}
func (s fdSource) Image() *format.Process  { return &s.c.p }
func (s fdSource) File(i int) *format.File { return &s.c.t.files[i] }
func (s fdSource) FD(num int) *procfs.FD   { return s.byNum[num] }

func (s fdSource) UnixSockets() (map[uint64]linux.UnixDiag, error) {
	t := s.c.t
	if t.unix == nil && t.unixErr == nil {
		t.unix, t.unixErr = linux.UnixSockets()
	}
	return t.unix, t.unixErr
}

func (s fdSource) TCPClose() bool { return s.c.t.tcpClose }

func (s fdSource) Carried() bool { return s.pid != 0 }

func (s fdSource) Keeper() int { return s.c.pid }

func (s fdSource) Hold(release func(resume bool)) {
	*s.c.t.holds = append(*s.c.t.holds, release)
}

// sameFile tells whether fd a of process pa and fd b of process pb share
// one open file description (kcmp KCMP_FILE).
func sameFile(pa, a, pb, b int) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pa), uintptr(pb), linux.KCMP_FILE, uintptr(a), uintptr(b), 0)
	return e == 0 && r == 0
}

// carried maps the open id of each file in flight that procs-dump gave
// its own open id (InFlight) to procs-dump's fd of it.
func (t *fileTable) carried() map[int]int {
	self := os.Getpid()
	out := map[int]int{}
	for _, o := range t.opens {
		if o.pid == self {
			out[o.open] = o.num
		}
	}
	return out
}

// InFlight gives a file in flight in a socket's queue, which a peek gave
// procs-dump as its fd num, its file and open id in the image: those of
// the tree's fd that shares its open file description, else its own, as
// the file of an fd of procs-dump's. The collector holds num until the
// dump ends (a later fd of the tree sharing it is matched by kcmp).
func (s fdSource) InFlight(num int) (format.FD, error) {
	c := s.c
	c.held = append(c.held, os.NewFile(uintptr(num), "in flight"))
	self := os.Getpid()
	all, err := procfs.FDs(self)
	if err != nil {
		return format.FD{}, err
	}
	i := slices.IndexFunc(all, func(fd procfs.FD) bool { return fd.Num == num })
	if i < 0 {
		return format.FD{}, fmt.Errorf("file in flight %d: gone", num)
	}
	fd := &all[i]
	out := format.FD{File: -1, Flags: fd.Flags &^ (unix.O_CLOEXEC | unix.O_LARGEFILE), Pos: fd.Pos}
	kind, why := files.Classify(fd, c.ttys)
	if why != "" {
		return out, &refusal{fmt.Sprintf("a file in flight in a unix socket's queue is %s", why)}
	}
	k := files.Lookup(kind)
	// A unix socket travels in flight (the loader makes it with the
	// others, its queue filled), and the other kinds of one open file
	// that say so (Traits.Sent: an inotify instance, a TCP, UDP or ping
	// socket, a pseudo-terminal master), no other does;
	// of the kinds the process makes, one the loader can (an eventfd),
	// or can once every process is built (a pidfd: LateMaker).
	_, made := k.(files.Maker)
	_, here := k.(files.LoaderMaker)
	_, late := k.(files.LateMaker)
	if made && !here && !late || k.Traits().OneOpen && !k.Traits().Sent || fd.Flags&unix.O_PATH != 0 {
		return out, &refusal{fmt.Sprintf("a file in flight in a unix socket's queue is of kind %s (%s), which procs cannot carry in flight", kind, fd.Target)}
	}
	if prev := c.t.sharedWith(self, fd, false, false); prev != nil {
		if prev.file < 0 {
			return out, &refusal{fmt.Sprintf("a file in flight in a unix socket's queue is the tree's standard stream (%s)", fd.Target)}
		}
		out.File, out.Open = prev.file, prev.open
		return out, nil
	}
	if out.File, err = c.fileAt(fmt.Sprintf("/proc/%d/fd/%d", self, num), kind); err != nil {
		return out, err
	}
	// Known before its Dump: a socket in flight may hold itself, or a
	// socket holding it, in its own queue (a cycle, which the kernel
	// allows), found then as this one.
	c.t.nextOp++
	out.Open = c.t.nextOp
	c.t.opens = append(c.t.opens, openFD{pid: self, num: num, file: out.File, target: fd.Target, open: out.Open})
	if d, ok := k.(files.Dumper); ok {
		if err := d.Dump(fdSource{c: c, byNum: map[int]*procfs.FD{num: fd}, pid: self}, fd, out.File); err != nil {
			return out, err
		}
	}
	return out, nil
}
