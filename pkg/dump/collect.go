package dump

import (
	"encoding/binary"
	"errors"
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
	"procs/pkg/ptrace"
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
	carry  []carried
	opens  []openFD // every fd given an open id so far
	nextOp int      // the last open id given
}

// openFD is an fd of a process of the image, by its open file description.
type openFD struct {
	pid, num int
	file     int    // file id, or -1 (the restorer's stream)
	target   string // its /proc link, to compare anonymous inodes
	open     int
	stream   bool // fd 0-2 of the root, that may become the restorer's
}

func newFileTable() *fileTable { return &fileTable{byIno: map[[2]uint64]int{}} }

type collector struct {
	pid      int
	root     bool // the root of the tree: its fds 0-2 may be the restorer's streams
	f        *frozen
	fileSave bool
	p        format.Process
	t        *fileTable
	maps     []procfs.Mapping
	ttys     terminals // the process's own terminals
	fds      []procfs.FD
	// skip are the ranges of memory the process shares with its parent,
	// which its pages leave out (see cow.go), sorted.
	skip      [][2]uint64
	held      []*os.File // files opened to reach mapped files (see mappedFile)
	vdso      []byte     // the [vdso], its padding wiped (see vdsopad.go)
	vdsoStart uint64
	vdsoPad   uint64 // where its padding starts
	// stoppedKids are the children of the process that are stopped;
	// waited says for each whether the process has collected its stop
	// (treeCalls).
	stoppedKids []int
	waited      map[int]bool
}

func (c *collector) collect() error {
	if c.f.zombie {
		return c.collectZombie()
	}
	pid := c.pid
	c.p.PID = pid
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return err
	}
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return err
	}
	c.p.Comm = st.Comm
	c.p.PPID, c.p.Pgid, c.p.Sid = st.PPID, st.PGRP, st.Session
	if c.f.stopped != 0 {
		c.p.Stopped = &format.Stop{Signal: int(c.f.stopped)}
	}
	c.p.Umask = status.Umask
	c.p.Creds = format.Creds{UID: status.Uid, GID: status.Gid, Groups: status.Groups, NoNewPrivs: status.NoNewPrivs}
	if c.p.Personality, err = procfs.Personality(pid); err != nil {
		return err
	}
	if c.p.Cwd, err = procfs.Cwd(pid); err != nil {
		return err
	}
	if cwd, ok := strings.CutSuffix(c.p.Cwd, " (deleted)"); ok {
		// Made again for the restore: its mode and owner.
		c.p.Cwd, c.p.CwdDeleted = cwd, true
		if _, err := c.fileAt(fmt.Sprintf("/proc/%d/cwd", pid), format.FileDir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if c.p.Root, err = procfs.Root(pid); err != nil {
		return err
	}
	lims, err := procfs.Limits(pid)
	if err != nil {
		return err
	}
	for _, l := range lims {
		c.p.Limits = append(c.p.Limits, format.Rlimit{Cur: l.Cur, Max: l.Max})
	}
	auxv, err := procfs.Auxv(pid)
	if err != nil {
		return err
	}
	c.p.MM = format.MM{StartCode: st.StartCode, EndCode: st.EndCode, StartData: st.StartData,
		EndData: st.EndData, StartBrk: st.StartBrk, StartStack: st.StartStack,
		ArgStart: st.ArgStart, ArgEnd: st.ArgEnd, EnvStart: st.EnvStart, EnvEnd: st.EnvEnd, Auxv: auxv}

	if c.maps, err = procfs.Smaps(pid); err != nil {
		return err
	}
	if p := checkMaps(c.maps); len(p) > 0 {
		return p.err(pid)
	}
	fds, err := procfs.FDs(pid)
	if err != nil {
		return err
	}
	c.fds = fds
	c.ttys = terminalsOf(st.TTY, fds)
	if p := checkFDs(fds, c.ttys); len(p) > 0 {
		return p.err(pid)
	}
	exe, err := c.fileAt(fmt.Sprintf("/proc/%d/exe", pid), format.FileRegular)
	if err != nil {
		return fmt.Errorf("exe: %w", err)
	}
	c.p.Exe = exe
	if err := c.collectMaps(); err != nil {
		return err
	}
	if err := c.collectFDs(fds); err != nil {
		return err
	}
	lo := c.vdsoStart
	if c.f.stopped != 0 {
		// A stopped process does not run on: a thread of it in the
		// vDSO is saved there (the image restores on this kernel
		// build), but for one on its way back from a trampoline.
		lo = c.vdsoPad
	}
	if err := c.f.leaveVdso(lo, c.vdsoPad, c.vdsoStart+uint64(len(c.vdso))); err != nil {
		return err
	}
	if err := c.collectThreads(); err != nil {
		return err
	}
	if err := c.collectExact(); err != nil {
		return err
	}
	if err := c.collectSeccomp(); err != nil {
		return err
	}
	if c.p.Pending, err = ptrace.PeekSiginfo(pid, true); err != nil {
		return err
	}
	if err := c.collectTimers(); err != nil {
		return err
	}
	return c.inject(status)
}

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
			if f.Self, err = c.procSelf(f.Path); err != nil {
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

// procSelf says where path, a file of proc, lies in the process's own
// /proc folder ("status", "task/PID/stat"), or "" when it is not in it.
// A file of one of its other threads is refused: it names a thread that
// the restore makes anew.
func (c *collector) procSelf(path string) (string, error) {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return "", nil
	}
	n, rest, _ := strings.Cut(rest, "/")
	id, err := strconv.Atoi(n)
	if err != nil || !slices.Contains(c.f.tids, id) {
		return "", nil // /proc/meminfo, another process's
	}
	tid := id
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		n, _, _ := strings.Cut(t, "/")
		tid, _ = strconv.Atoi(n)
	}
	if id != c.pid || tid != c.pid {
		return "", &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a /proc file of its thread %d (%s)", c.pid, tid, path)}
	}
	if rest == "" {
		return ".", nil
	}
	return rest, nil
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

func (c *collector) collectMaps() error {
	for i := range c.maps {
		m := &c.maps[i]
		kind, _ := mapKind(m)
		fm := format.Mapping{Start: m.Start, End: m.End, Shared: m.Shared, Kind: kind,
			Name: m.Path, File: -1, Offset: m.Offset}
		if m.Read {
			fm.Prot |= unix.PROT_READ
		}
		if m.Write {
			fm.Prot |= unix.PROT_WRITE
		}
		if m.Exec {
			fm.Prot |= unix.PROT_EXEC
		}
		for _, a := range []string{"gd", "ac", "dc", "dd", "hg", "nh", "wf", "mg", "lo", "lf", "dp"} {
			if m.Flags[a] {
				fm.Advice = append(fm.Advice, a)
			}
		}
		switch kind {
		case format.MapFile, format.MapShmem:
			fkind := format.FileRegular
			if kind == format.MapShmem || strings.HasPrefix(m.Path, "/memfd:") {
				fkind = format.FileMemfd
			}
			path := fmt.Sprintf("/proc/%d/map_files/%x-%x", c.pid, m.Start, m.End)
			idx, err := c.fileAt(path, fkind)
			if errors.Is(err, unix.EPERM) {
				// Following map_files needs CAP_CHECKPOINT_RESTORE.
				if path, err = c.mappedFile(m); err == nil {
					idx, err = c.fileAt(path, fkind)
				}
			}
			if err != nil {
				var r *refusal
				if errors.As(err, &r) {
					return err
				}
				return fmt.Errorf("mapping %x-%x (%s): %w", m.Start, m.End, m.Path, err)
			}
			fm.File = idx
			if m.Shared {
				// The mode of a map_files link is the f_mode of the
				// file behind the mapping: S_IWUSR when open for writing.
				var st unix.Stat_t
				if err := unix.Lstat(path, &st); err != nil {
					return fmt.Errorf("mapping %x-%x (%s): %w", m.Start, m.End, m.Path, err)
				}
				fm.Access = format.AccessRead
				if st.Mode&unix.S_IWUSR != 0 {
					fm.Access = format.AccessReadWrite
				}
			}
			if kind == format.MapFile && c.t.files[idx].Deleted && !c.t.files[idx].Carried {
				if err := c.carryFile(idx, path); err != nil {
					return err
				}
			}
		case format.MapVdso:
			if m.Path == "[vdso]" {
				c.vdso = make([]byte, m.End-m.Start)
				if err := ptrace.ReadMem(c.pid, m.Start, c.vdso); err != nil {
					return fmt.Errorf("reading [vdso]: %w", err)
				}
				end := vdsoContentEnd(c.vdso)
				clear(c.vdso[end:])
				c.p.Vdso = c.vdso
				c.vdsoStart = m.Start
				c.vdsoPad = m.Start + uint64(end)
			}
		}
		c.p.Maps = append(c.p.Maps, fm)
	}
	if c.vdso == nil {
		return errors.New("process has no [vdso]")
	}
	return nil
}

// mappedFile returns a path that reaches the file mapping m maps, for a
// tracer that may not follow /proc/PID/map_files (which takes
// CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN; ptrace rights are enough to
// read the process's fd links and its maps): an fd of the process on the
// same file, else the file at m's path, opened and checked against the
// device and inode that maps shows. A deleted file or shared memory that
// no fd holds is out of reach: the error says which capability it takes.
func (c *collector) mappedFile(m *procfs.Mapping) (string, error) {
	want := [2]uint64{m.Dev, m.Inode}
	for _, fd := range c.fds {
		if fd.Path == m.Path && [2]uint64{fd.Dev, fd.Ino} == want {
			return fmt.Sprintf("/proc/%d/fd/%d", c.pid, fd.Num), nil
		}
	}
	const needCap = "reading it takes CAP_CHECKPOINT_RESTORE (or root)"
	switch {
	case !strings.HasPrefix(m.Path, "/") || strings.HasPrefix(m.Path, "/memfd:") || (m.Deleted && m.Path == "/dev/zero"):
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): shared memory that no fd of process %d holds: %s",
			m.Start, m.End, m.Path, c.pid, needCap)}
	case m.Deleted:
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): a deleted file that no fd of process %d holds: %s",
			m.Start, m.End, m.Path, c.pid, needCap)}
	}
	f, err := os.OpenFile(m.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("mapping %x-%x: %w", m.Start, m.End, err)
	}
	var s unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &s); err != nil || [2]uint64{s.Dev, s.Ino} != want {
		f.Close()
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): the file at that path is not the one mapped: %s",
			m.Start, m.End, m.Path, needCap)}
	}
	c.held = append(c.held, f)
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}

// close closes the files the collector opened.
func (c *collector) close() {
	for _, f := range c.held {
		f.Close()
	}
	c.held = nil
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
			continue
		}
		if !stream || reopen {
			kind, _ := files.Classify(fd, c.ttys)
			path := fmt.Sprintf("/proc/%d/fd/%d", c.pid, fd.Num)
			idx, err := c.fileAt(path, kind)
			if err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
			out.File = idx
			if d, ok := files.Lookup(kind).(files.Dumper); ok {
				if err := d.Dump(fdSource{c, byNum}, fd, idx); err != nil {
					return err
				}
			}
		}
		c.t.nextOp++
		out.Open = c.t.nextOp
		c.t.opens = append(c.t.opens, openFD{pid: c.pid, num: fd.Num, file: out.File, target: fd.Target, open: out.Open, stream: stream})
		c.p.FDs = append(c.p.FDs, out)
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

// fdSource is what a kind's Dump sees of the collector.
type fdSource struct {
	c     *collector
	byNum map[int]*procfs.FD
}

func (s fdSource) PID() int                { return s.c.pid }
func (s fdSource) Image() *format.Process  { return &s.c.p }
func (s fdSource) File(i int) *format.File { return &s.c.t.files[i] }
func (s fdSource) FD(num int) *procfs.FD   { return s.byNum[num] }

func (c *collector) collectThreads() error {
	for _, tid := range c.f.tids {
		regs, err := ptrace.GetRegs(tid)
		if err != nil {
			return err
		}
		t := format.Thread{TID: tid, Regs: ptrace.RegsToWords(&regs)}
		if t.XState, err = ptrace.GetXState(tid); err != nil {
			return err
		}
		t.XCR0 = ptrace.XFeatures(t.XState)
		if t.Sigmask, err = ptrace.GetSigmask(tid); err != nil {
			return err
		}
		if t.Pending, err = ptrace.PeekSiginfo(tid, false); err != nil {
			return err
		}
		r, err := ptrace.GetRseq(tid)
		if err != nil {
			return err
		}
		t.Rseq = format.Rseq{Addr: r.Addr, Size: r.Size, Sig: r.Sig}
		if t.Robust[0], t.Robust[1], err = ptrace.GetRobustList(tid); err != nil {
			return err
		}
		if t.Comm, err = procfs.Comm(c.pid, tid); err != nil {
			return err
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return fmt.Errorf("sched_getattr(%d): %w", tid, err)
		}
		if err := checkSched(tid, attr); err != nil {
			return err
		}
		t.Policy, t.Priority, t.Nice = int(attr.Policy), int(attr.Priority), int(int32(attr.Nice))
		t.SchedFlags = attr.Flags & schedFlagResetOnFork
		// sched_getattr gives no nice for a real-time thread, which has
		// one all the same (for when it leaves its policy); stat has it.
		st, err := procfs.ReadTaskStat(c.pid, tid)
		if err != nil {
			return err
		}
		t.Nice = st.Nice
		c.p.Threads = append(c.p.Threads, t)
	}
	return nil
}

// inject reads the state only the process itself can tell: signal
// handlers, interval timers, brk, and per thread the alternate signal
// stack and clear_child_tid. It borrows one thread at a time through the
// trampoline (see ptrace.Trampoline), puts back its registers and mask,
// and puts back the bytes its results were written over.
func (c *collector) inject(status procfs.Status) (err error) {
	scratch, err := c.resultArea()
	if err != nil {
		return err
	}
	orig := make([]byte, scratchSize)
	if err := ptrace.ReadMem(c.pid, scratch, orig); err != nil {
		return err
	}
	tr, err := ptrace.InstallTrampoline(c.pid, c.vdsoStart, c.vdso)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := tr.Uninstall(); err == nil {
			err = uerr
		}
		if werr := ptrace.WriteMem(c.pid, scratch, orig); err == nil {
			err = werr
		}
	}()
	// One thread at a time is parked on the trampoline, which has one
	// frame: whenever the tracer dies, at most that thread needs it.
	for i, tid := range c.f.tids {
		r, err := ptrace.NewSafeRemote(tid, tr)
		if err != nil {
			return err
		}
		var calls []call
		if i == 0 {
			calls = c.processCalls(status)
		}
		calls = append(calls, c.threadCalls(&c.p.Threads[i])...)
		err = c.run(r, scratch, calls)
		if rerr := r.Restore(); err == nil {
			err = rerr
		}
		c.f.held[tid] = append(c.f.held[tid], r.Signals...)
		if err != nil {
			return err
		}
	}
	return nil
}

// The result area: slotSize bytes of results per call, then the table of
// a batch (ptrace.Batch).
const (
	scratchSize = 4096
	slotSize    = 32
	batchCalls  = 24 // calls per batch: 24 slots, and a table that fits after them
	tableOff    = 2048
)

// call is one injected call: its arguments given where its result goes
// (slot), how many bytes of result to read there, and what to do with
// them.
type call struct {
	name string
	nr   uintptr
	args func(slot uint64) [6]uint64
	size int
	done func(ret uint64, out []byte)
}

// run makes calls in the thread of r, in batches (ptrace.Remote.Batch).
func (c *collector) run(r *ptrace.Remote, scratch uint64, calls []call) error {
	for len(calls) > 0 {
		chunk := calls[:min(len(calls), batchCalls)]
		calls = calls[len(chunk):]
		list := make([]ptrace.Call, len(chunk))
		for i, cl := range chunk {
			list[i] = ptrace.Call{Nr: cl.nr, Args: cl.args(scratch + uint64(i*slotSize))}
		}
		rets, err := r.Batch(scratch+tableOff, list)
		if err != nil {
			return err
		}
		out := make([]byte, len(chunk)*slotSize)
		if err := ptrace.ReadMem(c.pid, scratch, out); err != nil {
			return err
		}
		for i, cl := range chunk {
			if e := int64(rets[i]); e < 0 && e >= -4095 {
				return &ptrace.SyscallError{Name: cl.name, Errno: unix.Errno(-e)}
			}
			cl.done(rets[i], out[i*slotSize:i*slotSize+cl.size])
		}
	}
	return nil
}

// resultArea picks where injected calls write their results: the first
// bytes of the main thread's stack mapping, below every thread's stack
// pointer (and Go's runtime uses only the top 64 KiB of it). They are dead
// memory to the program; their old contents are put back after.
func (c *collector) resultArea() (uint64, error) {
	for _, m := range c.maps {
		if m.Path != "[stack]" {
			continue
		}
		for _, t := range c.p.Threads {
			if sp := t.Regs[linux.RSP]; sp >= m.Start && sp < m.Start+scratchSize {
				return 0, fmt.Errorf("thread %d runs deep in the main stack (sp %#x): no room to work", t.TID, sp)
			}
		}
		return m.Start, nil
	}
	return 0, errors.New("process has no [stack] mapping")
}

// collectTimers reads the process's POSIX timers as /proc shows them;
// processCalls asks the process when each expires next.
func (c *collector) collectTimers() error {
	ts, err := procfs.PosixTimers(c.pid)
	if err != nil {
		return err
	}
	if p := checkTimers(ts); len(p) > 0 {
		return p.err(c.pid)
	}
	for _, t := range ts {
		pt := format.PosixTimer{ID: t.ID, Clock: t.Clock, Notify: t.Notify, Signo: t.Signo, Value: t.Value}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 {
			if !slices.Contains(c.f.tids, t.Target) {
				return fmt.Errorf("POSIX timer %d signals thread %d, not one of the process's", t.ID, t.Target)
			}
			pt.Target = t.Target
		}
		c.p.Timers = append(c.p.Timers, pt)
	}
	return nil
}

// processCalls read signal handlers, interval timers, POSIX timers and
// brk.
func (c *collector) processCalls(status procfs.Status) []call {
	c.p.Sigactions = make([]format.Sigaction, 64)
	var calls []call
	for sig := 1; sig <= 64; sig++ {
		bit := uint64(1) << (sig - 1)
		switch {
		case status.SigCgt&bit != 0:
			sa := &c.p.Sigactions[sig-1]
			calls = append(calls, call{name: "rt_sigaction", nr: unix.SYS_RT_SIGACTION, size: linux.SizeofSigAction,
				args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(sig), 0, slot, linux.SizeofSigset} },
				done: func(_ uint64, b []byte) {
					var ks linux.SigAction
					ks.Decode(b)
					*sa = format.Sigaction(ks)
				}})
		case status.SigIgn&bit != 0:
			c.p.Sigactions[sig-1] = format.Sigaction{Handler: 1} // SIG_IGN
		}
	}
	for which := 0; which < 3; which++ {
		calls = append(calls, call{name: "getitimer", nr: unix.SYS_GETITIMER, size: linux.SizeofItimer,
			args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(which), slot} },
			done: func(_ uint64, b []byte) {
				it := &c.p.Itimers[which]
				it.IntervalUsec, it.ValueUsec = timerValue(b, 1e6)
			}})
	}
	for i := range c.p.Timers {
		t := &c.p.Timers[i]
		calls = append(calls, call{name: fmt.Sprintf("timer_gettime(%d)", t.ID), nr: unix.SYS_TIMER_GETTIME, size: linux.SizeofItimer,
			args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(t.ID), slot} },
			done: func(_ uint64, b []byte) { t.IntervalNsec, t.ValueNsec = timerValue(b, 1e9) }})
	}
	calls = append(calls, c.exactCalls()...)
	calls = append(calls, c.treeCalls()...)
	calls = append(calls, call{name: "brk", nr: unix.SYS_BRK,
		args: func(uint64) [6]uint64 { return [6]uint64{} },
		done: func(ret uint64, _ []byte) { c.p.MM.Brk = ret }})
	return calls
}

// timerValue decodes struct itimerval (perSec 1e6: timevals) or struct
// itimerspec (1e9: timespecs) into its interval and value in 1/perSec
// seconds.
func timerValue(b []byte, perSec int64) (interval, value int64) {
	var it linux.Itimer
	it.Decode(b)
	return it.Join(perSec)
}

// threadCalls read a thread's alternate signal stack and clear_child_tid.
func (c *collector) threadCalls(t *format.Thread) []call {
	le := binary.LittleEndian
	return []call{
		{name: "sigaltstack", nr: unix.SYS_SIGALTSTACK, size: linux.SizeofStackT,
			args: func(slot uint64) [6]uint64 { return [6]uint64{0, slot} },
			done: func(_ uint64, b []byte) {
				var ss linux.StackT
				ss.Decode(b)
				t.Altstack = format.Altstack{SP: ss.SP, Flags: ss.Flags, Size: ss.Size}
			}},
		{name: "prctl(PR_GET_TID_ADDRESS)", nr: unix.SYS_PRCTL, size: 8,
			args: func(slot uint64) [6]uint64 { return [6]uint64{unix.PR_GET_TID_ADDRESS, slot} },
			done: func(_ uint64, b []byte) { t.ClearTID = le.Uint64(b) }},
		{name: "prctl(PR_GET_PDEATHSIG)", nr: unix.SYS_PRCTL, size: 4,
			args: func(slot uint64) [6]uint64 { return [6]uint64{unix.PR_GET_PDEATHSIG, slot} },
			done: func(_ uint64, b []byte) { t.Pdeathsig = int(int32(le.Uint32(b))) }},
	}
}

// sameFile tells whether fd a of process pa and fd b of process pb share
// one open file description (kcmp KCMP_FILE).
func sameFile(pa, a, pb, b int) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pa), uintptr(pb), linux.KCMP_FILE, uintptr(a), uintptr(b), 0)
	return e == 0 && r == 0
}
