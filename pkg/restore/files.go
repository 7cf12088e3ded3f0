package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// prepareFiles opens, on the loader's side and through the opener (as
// the restored process will be: see opener), every file the process had
// open or mapped, checks that it is the file the image was made with and
// of the kind the image says, and makes the files whose contents travel
// in the image. Then it opens every open file description the process
// will hold (one for each fd, each mapping's file, its executable, its
// working directory), also as the process will be, never blocking (a
// FIFO where the image says a file is refused by name). The process
// built later receives them (giveFD): it never opens a path
// itself, and gets exactly what was opened and checked here.
func (b *builder) prepareFiles(prepared map[int]bool) error {
	b.fdFiles = map[int]*os.File{}
	// What first uses each file, to name it in errors.
	use := map[int]string{}
	for k := range b.img.FDs {
		if fd := b.img.FDs[k]; fd.File >= 0 && !b.ownStream(fd) && use[fd.File] == "" {
			use[fd.File] = fmt.Sprintf("fd %d", fd.Num)
		}
	}
	for _, m := range b.img.Maps {
		if m.File >= 0 && use[m.File] == "" {
			use[m.File] = fmt.Sprintf("mapping %x-%x", m.Start, m.End)
		}
	}
	if use[b.img.Exe] == "" {
		use[b.img.Exe] = "executable"
	}
	for _, fd := range b.inFlight() {
		if use[fd.File] == "" {
			use[fd.File] = "a file in flight"
		}
	}
	if err := b.op.do(func() error { return b.makeDeletedDirs(use) }); err != nil {
		return err
	}
	for i, f := range b.files {
		if use[i] == "" || f.Self != "" || prepared[i] {
			continue // a file of the process's own /proc: see procSelfFDs
		}
		prepared[i] = true
		if p, ok := files.Lookup(f.Kind).(files.Preparer); ok {
			if err := p.Prepare(loader{b}, i, &f, use[i]); err != nil {
				return err
			}
		}
	}
	if err := b.openDescriptions(); err != nil {
		return err
	}
	return b.op.do(b.deletedDirModes)
}

// loader is what the kinds' Prepare see of the builder (files.Loader).
type loader struct{ b *builder }

func (l loader) OpenByPath(i int, f *format.File, what string) error {
	return l.b.op.do(func() error { return l.b.prepareFile(i, f, what) })
}

func (l loader) Own(i int, lf *os.File) { l.b.local[i], l.b.own[i] = lf, true }

func (l loader) Local(i int) *os.File { return l.b.local[i] }

func (l loader) File(i int) *format.File { return &l.b.files[i] }

func (l loader) Files() []format.File { return l.b.files }

// As runs f with the rights of the first process of the image that holds
// file i, or else a socket carrying it in flight (files.Keeper): this
// process's opener, or one made for the other's credentials, or for this
// process's once its own has ended (Later). A permission f was denied
// names the user.
func (l loader) As(i int, f func() error) error {
	creds := l.b.img.Creds
	if p := files.Keeper(l.b.files, l.b.imgs, i); p != nil {
		creds = p.Creds
	}
	op := l.b.op
	if op.closed || !sameCreds(creds, l.b.img.Creds) {
		var err error
		if op, err = newOpener(creds); err != nil {
			return err
		}
		defer func() {
			op.close()
			if op.asUser {
				// Changing a thread's fs ids made procs-load not dumpable.
				unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
			}
		}()
	}
	err := op.do(f)
	if op.asUser && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		return fmt.Errorf("%w for uid %d", err, op.uid)
	}
	return err
}

// sameCreds says whether a and b are the same credentials.
func sameCreds(a, b format.Creds) bool {
	return a.UID == b.UID && a.GID == b.GID && slices.Equal(a.Groups, b.Groups)
}

func (l loader) Later(f func() error) { l.b.later = append(l.b.later, f) }

func (l loader) Description(open int) *os.File { return l.b.descs[open] }

func (l loader) Created(path string) { l.b.created = append(l.b.created, path) }

func (l loader) Keep(f *os.File) { l.b.kept = append(l.b.kept, f) }

func (l loader) Warn(format string, args ...any) { l.b.warnf(format, args...) }

func (l loader) AsProcess(f func() error) error { return l.b.op.do(f) }

func (l loader) TCPClose() bool { return l.b.opts.TCPClose }

func (l loader) AtRun(f func() error) { l.b.atRun = append(l.b.atRun, f) }

func (l loader) Taken(open int) (*os.File, error) {
	for _, p := range l.b.procs {
		for _, fd := range p.img.FDs {
			if fd.Open == open && fd.File >= 0 {
				return p.fdOf(fd.Num)
			}
		}
	}
	return nil, nil
}

func (l loader) PIDOf(pid int) (int, bool) {
	if b := l.b.byPID(pid); b != nil && b.pid > 0 {
		return b.pid, true
	}
	return 0, false
}

// ClockShift is the root's: the tree's time namespace is the one it
// was made in.
func (l loader) ClockShift(clock int) (int64, bool) { return l.b.procs[0].clockShiftOf(clock) }

func (l loader) MakeMemfd(i int, f *format.File) error {
	// Made as the process: its owner, and the mode it may give.
	return l.b.op.do(func() error { return l.b.makeMemfd(i, f) })
}

func (l loader) Terminal(i int, f *format.File) error {
	t := l.b.opts.terminal(l.b.img)
	if t == nil {
		return fmt.Errorf("the process had its terminal (%s) open beyond its standard streams, and procs-load has no terminal to give it", safetext.Quote(f.Path))
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", t.Fd()), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reopening this terminal: %w", err)
	}
	// The caller's own terminal, which the process gets on fds 0-2
	// anyway: reopened with the caller's rights.
	l.b.local[i], l.b.own[i] = os.NewFile(uintptr(fd), f.Path), true
	return nil
}

// makeDeletedDirs makes again, as the process, the folders that were
// deleted before the dump and that the process works in, holds open, or
// held a deleted file in, each missing folder of their paths: the
// process finds itself where it was. They are made 0700 and get their
// modes once everything in them is open (deletedDirModes), and are
// removed once the process holds what it needs (removeMadeDirs). A
// deleted folder whose path is taken again is refused: it would not be
// the same. Precondition: on the opener's thread.
func (b *builder) makeDeletedDirs(use map[int]string) error {
	var want []string
	if b.img.CwdDeleted {
		want = append(want, b.img.Cwd)
	}
	for i, f := range b.files {
		switch tr := files.TraitsOf(f.Kind); {
		case use[i] == "" || !f.Deleted || !tr.Remade:
		case tr.Mode == unix.S_IFDIR:
			want = append(want, f.Path)
		default:
			want = append(want, filepath.Dir(f.Path))
		}
	}
	for _, d := range want {
		d = filepath.Clean(d)
		if slices.Contains(b.madeDirs, d) {
			continue
		}
		if _, err := os.Lstat(d); err == nil {
			if d == filepath.Clean(b.img.Cwd) && b.img.CwdDeleted || b.deletedDir(d) != nil {
				return fmt.Errorf("folder %s was deleted before the dump, and its path is taken again: the process would not be where it was", safetext.Quote(d))
			}
			continue // the folder of a deleted file, still there
		}
		if err := b.mkdirs(d); err != nil {
			return err
		}
	}
	return nil
}

// mkdirs makes the missing folders of path d, as the process, and
// records them in madeDirs. Precondition: on the opener's thread.
func (b *builder) mkdirs(d string) error {
	parent := filepath.Dir(d)
	if parent != d {
		if _, err := os.Lstat(parent); err != nil {
			if err := b.mkdirs(parent); err != nil {
				return err
			}
		}
	}
	if err := unix.Mkdir(d, 0o700); err != nil {
		return b.op.fail("deleted folder", d, err)
	}
	b.madeDirs = append(b.madeDirs, d)
	return nil
}

// deletedDir is the image's deleted folder of path d, or nil.
func (b *builder) deletedDir(d string) *format.File {
	for i, f := range b.files {
		if f.Deleted && files.TraitsOf(f.Kind).Mode == unix.S_IFDIR && filepath.Clean(f.Path) == d {
			return &b.files[i]
		}
	}
	return nil
}

// deletedDirModes gives each folder made again the mode and owner it
// had (as the process could). Precondition: on the opener's thread.
func (b *builder) deletedDirModes() error {
	for _, d := range b.madeDirs {
		f := b.deletedDir(d)
		if f == nil || f.Atime == 0 {
			continue
		}
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			err = b.setOwner(-1, fd, f)
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("deleted folder %s: %w", safetext.Quote(d), err)
		}
	}
	return nil
}

// removeMadeDirs removes the folders makeDeletedDirs made, deepest
// first, once the processes hold them (or the restore failed).
func (b *tree) removeMadeDirs() {
	for i := len(b.madeDirs) - 1; i >= 0; i-- {
		if err := unix.Rmdir(b.madeDirs[i]); err != nil {
			b.warnf("cannot remove the folder made for the restore, %s: %v", safetext.Quote(b.madeDirs[i]), err)
		}
	}
	b.madeDirs = nil
}

// openDescriptions opens the file description of every fd and mapping of
// the process, its executable and its working directory.
func (b *builder) openDescriptions() error {
	for k, fd := range b.img.FDs {
		if fd.File < 0 || b.ownStream(fd) {
			continue
		}
		if _, made := files.Lookup(b.files[fd.File].Kind).(files.Maker); made {
			continue // made in the process, or the loader has it (shareMade)
		}
		if b.files[fd.File].Self != "" {
			continue // opened by the process (procSelfFDs)
		}
		if lf := b.descs[fd.Open]; lf != nil {
			b.fdFiles[k] = lf // an earlier process's, or an earlier fd's
			continue
		}
		var lf *os.File
		var err error
		if files.TraitsOf(b.files[fd.File].Kind).OneOpen {
			lf, err = b.oneOpen(fd)
		} else if b.isMemfd(fd.File) && fd.Flags&unix.O_ACCMODE == unix.O_RDWR && !b.memfdGiven[fd.File] {
			// The first read-write fd of a memfd is memfd_create's own
			// description, as it most likely was.
			b.memfdGiven[fd.File] = true
			lf, err = b.memfdDescription(fd.File, fd.Flags)
		} else {
			lf, err = b.reopen(fd.File, fd.Flags, fmt.Sprintf("fd %d", fd.Num))
		}
		if err != nil {
			return err
		}
		b.fdFiles[k], b.descs[fd.Open] = lf, lf
		if fd.Pos != 0 && files.TraitsOf(b.files[fd.File].Kind).Seek {
			if _, err := unix.Seek(int(lf.Fd()), fd.Pos, 0); err != nil {
				return fmt.Errorf("fd %d: offset %d: %w", fd.Num, fd.Pos, err)
			}
		}
	}
	for _, fd := range b.inFlight() {
		if b.descs[fd.Open] != nil {
			continue // an fd's, or sent twice
		}
		var lf *os.File
		var err error
		k := files.Lookup(b.files[fd.File].Kind)
		if _, ok := k.(files.LateMaker); ok {
			continue // made, or taken from a process, once all are built
		}
		if lm, ok := k.(files.LoaderMaker); ok {
			lf, err = lm.MakeHere(fd, &b.files[fd.File]) // the processes sharing it take it
		} else if k.Traits().OneOpen {
			lf, err = b.oneOpen(fd) // a unix socket in flight: the loader's own
		} else {
			lf, err = b.reopen(fd.File, fd.Flags, "a file in flight")
		}
		if err != nil {
			return err
		}
		b.descs[fd.Open] = lf
		if fd.Pos != 0 && files.TraitsOf(b.files[fd.File].Kind).Seek {
			if _, err := unix.Seek(int(lf.Fd()), fd.Pos, 0); err != nil {
				return fmt.Errorf("a file in flight: offset %d: %w", fd.Pos, err)
			}
		}
	}
	for _, m := range b.img.Maps {
		if m.File < 0 || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall || m.Kind == format.MapSysV {
			continue // attached by id (sysv.go)
		}
		mode := mapMode(m)
		if _, ok := b.mapFiles[mapKey{m.File, mode}]; ok {
			continue
		}
		var lf *os.File
		var err error
		if b.isMemfd(m.File) && mode == unix.O_RDWR {
			lf, err = b.memfdDescription(m.File, mode)
		} else {
			lf, err = b.reopen(m.File, mode, fmt.Sprintf("mapping %x-%x", m.Start, m.End))
		}
		if err != nil {
			return err
		}
		b.mapFiles[mapKey{m.File, mode}] = lf
	}
	if hasCheckpointRestore() {
		lf, err := b.reopen(b.img.Exe, unix.O_RDONLY, "executable")
		if err != nil {
			return err
		}
		b.exeFile = lf
	}
	return b.openCwd()
}

// inFlight are the open file descriptions that the files the process
// holds on its fds hold in turn (files in flight in a socket's queue:
// files.Carrier), and those these hold, however deep (a socket in flight
// with files in flight of its own, itself maybe), which the process
// prepares and opens as its fds'.
func (b *builder) inFlight() []format.FD {
	var out []format.FD
	seen := map[int]bool{}
	next := []int{}
	for _, fd := range b.img.FDs {
		next = append(next, fd.File)
	}
	for len(next) > 0 {
		f := next[0]
		next = next[1:]
		if f < 0 || seen[f] {
			continue
		}
		seen[f] = true
		if c, ok := files.Lookup(b.files[f].Kind).(files.Carrier); ok {
			for _, fd := range c.InFlight(&b.files[f]) {
				out = append(out, fd)
				next = append(next, fd.File)
			}
		}
	}
	return out
}

// oneOpen is the open file description of fd's file, which has only one
// (a socket: the loader's own), with fd's status flags.
func (b *builder) oneOpen(fd format.FD) (*os.File, error) {
	lf := b.local[fd.File]
	if lf == nil {
		return nil, fmt.Errorf("fd %d: no open file for it", fd.Num)
	}
	delete(b.local, fd.File) // the description's now
	fl, err := unix.FcntlInt(lf.Fd(), unix.F_GETFL, 0)
	if err == nil {
		fl = fl&^unix.O_NONBLOCK | fd.Flags&unix.O_NONBLOCK
		_, err = unix.FcntlInt(lf.Fd(), unix.F_SETFL, fl)
	}
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", fd.Num, err)
	}
	return lf, nil
}

// openCwd opens the working directory for the process to enter, after
// checking that it may (search permission, as the process).
func (b *builder) openCwd() error {
	cwd := b.img.Cwd
	var fd int
	err := b.op.do(func() error {
		var err error
		how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS}
		if fd, err = unix.Openat2(unix.AT_FDCWD, cwd, &how); err != nil {
			return err
		}
		if err := unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EACCESS|unix.AT_EMPTY_PATH); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return b.op.fail("working directory", cwd, err)
	}
	defer unix.Close(fd)
	// fchdir needs a file opened for reading (not O_PATH): opened
	// through the one just checked, it gives the process nothing but
	// that folder as its working directory.
	d, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return b.op.fail("working directory", cwd, err)
	}
	b.cwdFile = os.NewFile(uintptr(d), cwd)
	return nil
}

// mapKey is a file opened for mappings, and how.
type mapKey struct{ file, mode int }

// mapMode is how mapping m's file is opened.
func mapMode(m format.Mapping) int {
	if m.Shared && (m.Prot&unix.PROT_WRITE != 0 || m.Access == format.AccessReadWrite) {
		return unix.O_RDWR
	}
	return unix.O_RDONLY
}

// openFlags are the open flags of an fd that a reopen keeps.
const openFlags = unix.O_ACCMODE | unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME |
	unix.O_DIRECTORY | unix.O_LARGEFILE | unix.O_SYNC | unix.O_DSYNC

// reopen opens a new description of file i (prepared by prepareFiles)
// with flags, as the process (through the opener) unless the loader made
// the file itself. It never blocks: O_NONBLOCK is taken off afterwards
// if flags lack it. what names the user in errors ("fd 5").
func (b *builder) reopen(i, flags int, what string) (*os.File, error) {
	f := b.files[i]
	path := fmt.Sprintf("/proc/self/fd/%d", b.local[i].Fd())
	blocking := flags&unix.O_NONBLOCK == 0
	if flags&unix.O_PATH != 0 {
		if flags&unix.O_NOFOLLOW != 0 && !b.own[i] {
			return b.reopenNoFollow(i, flags, what)
		}
		// A new O_PATH description of the very file (following the
		// magic link ends on it, a symbolic link included): it opens
		// nothing, and keeps no other flag but O_DIRECTORY.
		flags, blocking = flags&(unix.O_PATH|unix.O_DIRECTORY)|unix.O_CLOEXEC, false
	} else {
		flags = flags&openFlags | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	}
	var fd int
	open := func() error {
		var err error
		fd, err = unix.Open(path, flags, 0)
		return err
	}
	var err error
	if b.own[i] {
		err = open()
	} else {
		err = b.op.do(open)
	}
	if err != nil {
		return nil, b.op.fail(what, f.Path, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if blocking {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("%s: %s: %w", what, safetext.Quote(f.Path), err)
		}
	}
	return lf, nil
}

// reopenNoFollow opens a new O_PATH|O_NOFOLLOW description of file i:
// by its path again (through a magic link, O_NOFOLLOW would give the
// link of /proc), as the process, and checks that it is the file
// prepareFile checked.
func (b *builder) reopenNoFollow(i, flags int, what string) (*os.File, error) {
	f := b.files[i]
	var fd int
	err := b.op.do(func() error {
		var err error
		how := unix.OpenHow{Flags: uint64(flags&(unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY) | unix.O_CLOEXEC), Resolve: unix.RESOLVE_NO_MAGICLINKS}
		fd, err = unix.Openat2(unix.AT_FDCWD, f.Path, &how)
		return err
	})
	if err != nil {
		return nil, b.op.fail(what, f.Path, err)
	}
	var a, c unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Fstat(int(b.local[i].Fd()), &c) != nil || a.Dev != c.Dev || a.Ino != c.Ino {
		unix.Close(fd)
		return nil, &FileChangedError{Path: f.Path, Why: "it was replaced during the restore"}
	}
	return os.NewFile(uintptr(fd), f.Path), nil
}

// prepareFile opens file i of kind reg, dir or chr at its path, without
// following anything but what the path names and without opening it for
// reading or writing (O_PATH), and checks it. Precondition: on the
// opener's thread.
func (b *builder) prepareFile(i int, f *format.File, what string) error {
	if f.Carried && f.Deleted {
		return b.privateCopy(i, f)
	}
	mode := files.TraitsOf(f.Kind).Mode
	flags := unix.O_PATH | unix.O_CLOEXEC
	switch mode {
	case unix.S_IFDIR:
		// A folder made again (makeDeletedDirs), or there as it was.
		f.Deleted = false
		flags |= unix.O_DIRECTORY
	case unix.S_IFLNK:
		flags |= unix.O_NOFOLLOW // the link itself
	}
	// No magic link (/dev/fd/N, /proc/self/fd/N): they lead to
	// procs-load's own files, past the folders' permissions.
	fd, err := unix.Openat2(unix.AT_FDCWD, f.Path, &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_MAGICLINKS})
	if err == unix.ENOENT && f.Carried {
		return b.createAtPath(i, f, what)
	}
	if err == unix.ENOENT && f.Deleted && mode == unix.S_IFCHR {
		return b.deviceNode(i, f, what)
	}
	if err != nil {
		if f.Deleted {
			return fmt.Errorf("file %s was deleted before the dump and its contents are not in the image", safetext.Quote(f.Path))
		}
		if err == unix.ENOENT {
			return &FileChangedError{Path: f.Path, Why: "it no longer exists"}
		}
		if err == unix.ELOOP {
			return fmt.Errorf("%s: %s leads through a link to an open file (/proc/PID/fd/N) or too many symbolic links", what, safetext.Quote(f.Path))
		}
		return b.op.fail(what, f.Path, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		lf.Close()
		return err
	}
	if kind, want := fileKind(st.Mode), kindOf(f.Kind); kind != want {
		lf.Close()
		return fmt.Errorf("%s: %s is %s, not %s as in the image", what, safetext.Quote(f.Path), kind, want)
	}
	if ownProcFile(fd) {
		// A thread may open its own process's /proc files whatever its
		// credentials: /proc/self/mem would give the process procs-load's
		// memory.
		lf.Close()
		return fmt.Errorf("%s: %s is procs-load's own, not the process's", what, safetext.Quote(f.Path))
	}
	changed := ""
	switch {
	case mode == unix.S_IFCHR || mode == unix.S_IFBLK:
		if (f.Rdev != 0 || mode == unix.S_IFBLK) && st.Rdev != f.Rdev {
			changed = fmt.Sprintf("it is device %d:%d, was %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(f.Rdev), unix.Minor(f.Rdev))
		}
	case f.Pseudo || mode == unix.S_IFDIR || mode == unix.S_IFIFO || mode == unix.S_IFSOCK:
	case st.Size >= f.Size && appendOnly(b.imgs, i):
		// A log: what was there is there, and more was appended (by
		// the original a -K copy runs beside, say); the process only
		// ever writes at the end.
	case st.Size != f.Size:
		changed = fmt.Sprintf("its size is %d, was %d", st.Size, f.Size)
	case st.Mtim.Nano() != f.Mtime:
		changed = "it was modified"
	}
	if changed != "" {
		lf.Close()
		if f.Carried {
			b.warnf("%s changed since the dump; the process gets a private copy with the image's contents", safetext.Quote(f.Path))
			return b.privateCopy(i, f)
		}
		return &FileChangedError{Path: f.Path, Why: changed}
	}
	b.local[i] = lf
	return nil
}

// ownProcFile says whether fd, an open file, lies in the /proc folder of
// this process or of one of its threads.
func ownProcFile(fd int) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return false
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return true // cannot tell: refuse
	}
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return false // another mount of proc: its own pid namespace
	}
	n, _, _ := strings.Cut(rest, "/")
	if n == "self" || n == "thread-self" || n == strconv.Itoa(os.Getpid()) {
		return true
	}
	if _, err := strconv.Atoi(n); err != nil {
		return false // /proc/sys, /proc/meminfo...
	}
	_, err = os.Lstat("/proc/self/task/" + n)
	return err == nil
}

// fileKind names the kind of file of mode, as kindOf does.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a folder"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a named pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "of no known kind"
}

// kindOf is the kind of file that a File of kind k is at its path.
func kindOf(k string) string {
	if m := files.TraitsOf(k).Mode; m != 0 {
		return fileKind(m)
	}
	return fileKind(unix.S_IFREG)
}

// makeMemfd makes memfd i (of the image's name), empty and of its size,
// with the mode and owner the image says, and room for its seals (see
// sealMemfds). Precondition: on the opener's thread, so that the memfd
// is the process's and gets no mode or owner the process could not give
// it (a set-user-ID root program).
func (b *builder) makeMemfd(i int, f *format.File) error {
	flags := unix.MFD_CLOEXEC
	if f.Seals != nil && *f.Seals != format.SealSeal {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(memfdName(f.Path), flags)
	if err != nil {
		return os.NewSyscallError("memfd_create", err)
	}
	mf := os.NewFile(uintptr(fd), f.Path)
	err = mf.Truncate(f.Size)
	if err == nil && f.Seals != nil {
		// Written by this procs-dump (older ones recorded no owner):
		// the mode and owner too.
		err = b.setOwner(i, fd, f)
	}
	if err != nil {
		mf.Close()
		return fmt.Errorf("memfd %s: %w", safetext.Quote(f.Path), err)
	}
	b.local[i], b.fill[i], b.own[i] = mf, mf, true
	return nil
}

// setOwner gives the loader's file fd the owner and the mode of f.
// Precondition: on the opener's thread: the kernel allows only what the
// process itself could do.
func (b *builder) setOwner(i, fd int, f *format.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != f.UID || int(st.Gid) != f.GID {
		if err := unix.Fchown(fd, f.UID, f.GID); err != nil {
			return fmt.Errorf("owner %d:%d: %w", f.UID, f.GID, err)
		}
	}
	if err := unix.Fchmod(fd, f.Mode&0o7777); err != nil {
		return fmt.Errorf("mode %#o: %w", f.Mode&0o7777, err)
	}
	// What the kernel let the process give (set-group-ID only in its
	// groups), to keep after the contents are written.
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	b.modes[i] = st.Mode & 0o7777
	return nil
}

// isMemfd tells whether file i is a memfd the loader made.
func (b *builder) isMemfd(i int) bool {
	return b.files[i].Kind == format.FileMemfd && b.own[i]
}

// memfdDescription is memfd i's own description (memfd_create's, which
// unlike an open of it does not count as a writer: the process can run
// it with execveat), with the status flags of flags.
func (b *builder) memfdDescription(i, flags int) (*os.File, error) {
	f := b.files[i]
	fd, err := unix.FcntlInt(b.local[i].Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&(unix.O_APPEND|unix.O_NONBLOCK|unix.O_NOATIME))
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("memfd %s: %w", safetext.Quote(f.Path), err)
	}
	return os.NewFile(uintptr(fd), f.Path), nil
}

// sealMemfds gives each memfd its seals, once it is filled and mapped
// (F_SEAL_WRITE would forbid both).
func (b *tree) sealMemfds() error {
	for i, f := range b.files {
		if f.Kind != format.FileMemfd || f.Seals == nil || *f.Seals == format.SealSeal || *f.Seals == 0 || !b.own[i] {
			continue
		}
		if _, err := unix.FcntlInt(b.local[i].Fd(), unix.F_ADD_SEALS, int(*f.Seals)); err != nil {
			return fmt.Errorf("memfd %s: seals %#x: %w", safetext.Quote(f.Path), *f.Seals, err)
		}
	}
	return nil
}

// ownStream says whether fd is, or shares the open file description of,
// one of the root's fds 0, 1 and 2 that the restorer's own stream stands
// in for (see StdioMode).
func (b *builder) ownStream(fd format.FD) bool {
	_, ok := b.streamOf(fd)
	return ok
}

// streamOf is the number of the restorer's stream that fd is, if it is
// one (ownStream).
func (b *builder) streamOf(fd format.FD) (int, bool) {
	for _, r := range b.imgs[0].FDs {
		if r.Num <= 2 && r.Open == fd.Open && b.rootStream(r) {
			return r.Num, true
		}
	}
	return 0, false
}

// rootStream says whether fd, one of the root's, is one of fds 0, 1 and 2
// that the restorer's own stream stands in for.
func (t *tree) rootStream(fd format.FD) bool {
	if fd.Num > 2 {
		return false
	}
	if fd.File < 0 || t.opts.Stdio == StdioInherit || t.files[fd.File].Self != "" {
		return true
	}
	f := t.files[fd.File]
	return !files.TraitsOf(f.Kind).Stdio || f.Deleted
}

// logStreams says under -v where each standard stream goes.
func (b *builder) logStreams() {
	own := map[int]bool{0: true, 1: true, 2: true}
	for _, fd := range b.img.FDs {
		if fd.Num <= 2 && !b.ownStream(fd) {
			own[fd.Num] = false
			b.logf("fd %d: %s, opened again as at the dump", fd.Num, b.files[fd.File].Path)
		}
	}
	for n := range 3 {
		if own[n] {
			b.logf("fd %d: procs-load's own", n)
		}
	}
}

// privateCopy makes an unlinked file beside the original path (or a
// memfd where that is impossible) to receive carried contents.
// Precondition: on the opener's thread.
func (b *builder) privateCopy(i int, f *format.File) error {
	fd, err := -1, error(unix.ENOENT)
	if f.Deleted {
		// Under its own name, unlinked at once, so that the process
		// sees the name it had ("/dir/name (deleted)").
		fd, err = unix.Open(f.Path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, f.Mode&0o777)
		if err == nil {
			if err = unix.Unlink(f.Path); err != nil {
				unix.Close(fd)
				return b.op.fail("deleted file", f.Path, err)
			}
		}
	}
	if err != nil {
		fd, err = unix.Open(filepath.Dir(f.Path), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, f.Mode&0o777)
	}
	if err != nil {
		fd, err = unix.MemfdCreate(memfdName(f.Path), unix.MFD_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("memfd_create", err)
		}
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	err = lf.Truncate(f.Size)
	if err == nil && f.Atime != 0 {
		// Written by this procs-dump: the owner and mode too.
		err = b.setOwner(i, fd, f)
	}
	if err != nil {
		lf.Close()
		return fmt.Errorf("deleted file %s: %w", safetext.Quote(f.Path), err)
	}
	b.local[i], b.fill[i], b.own[i] = lf, lf, true
	return nil
}

// deviceNode makes again the deleted device node f, as the process: a
// private node at its path, unlinked once open (as root), or else the
// device's own node in /dev. Precondition: on the opener's thread.
func (b *builder) deviceNode(i int, f *format.File, what string) error {
	var fd int
	err := unix.Mknod(f.Path, unix.S_IFCHR|f.Mode&0o777, int(f.Rdev))
	if err == nil {
		unix.Fchownat(unix.AT_FDCWD, f.Path, f.UID, f.GID, unix.AT_SYMLINK_NOFOLLOW)
		unix.Fchmodat(unix.AT_FDCWD, f.Path, f.Mode&0o777, 0)
		fd, err = unix.Open(f.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Unlink(f.Path)
	} else if known, ok := procfs.KnownDevices[f.Rdev]; ok {
		how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS}
		fd, err = unix.Openat2(unix.AT_FDCWD, known, &how)
	}
	if err != nil {
		return b.op.fail(what+" (a deleted device node)", f.Path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != f.Rdev {
		unix.Close(fd)
		return fmt.Errorf("%s: %s: no device %d:%d to open", what, safetext.Quote(f.Path), unix.Major(f.Rdev), unix.Minor(f.Rdev))
	}
	b.local[i] = os.NewFile(uintptr(fd), f.Path)
	return nil
}

// finishFiles completes the files whose contents the image carried, once
// every FILEDATA record is in: the zeros of their data extents that no
// record held are written (a hole stays a hole, an allocated block of
// zeros is one again), and a deleted file gets its mode back (a write
// may have cleared set-user-ID) and its times.
func (b *tree) finishFiles() error {
	zeros := make([]byte, 1<<20)
	for i, lf := range b.fill {
		f := b.files[i]
		if f.Extents != nil {
			done := b.covered[i]
			slices.SortFunc(done, func(a, c [2]int64) int { return int(a[0] - c[0]) })
			for _, e := range *f.Extents {
				at := e[0]
				for _, d := range done {
					if d[1] <= at || d[0] >= e[1] {
						continue
					}
					if err := writeZeros(lf, zeros, at, min(d[0], e[1])); err != nil {
						return err
					}
					at = max(at, d[1])
				}
				if err := writeZeros(lf, zeros, at, e[1]); err != nil {
					return err
				}
			}
		}
		if tr := files.TraitsOf(f.Kind); tr.Remade && tr.Mode == unix.S_IFREG && f.Atime != 0 {
			var st unix.Stat_t
			if unix.Fstat(int(lf.Fd()), &st) == nil && st.Mode&0o7777 != b.modes[i] {
				unix.Fchmod(int(lf.Fd()), b.modes[i])
			}
			ts := []unix.Timespec{unix.NsecToTimespec(f.Atime), unix.NsecToTimespec(f.Mtime)}
			if err := unix.UtimesNanoAt(int(lf.Fd()), "", ts, unix.AT_EMPTY_PATH); err != nil {
				b.warnf("deleted file %s: cannot set its times: %v", safetext.Quote(f.Path), err)
			}
		}
	}
	return nil
}

// writeZeros writes zeros into lf over [from, to).
func writeZeros(lf *os.File, zeros []byte, from, to int64) error {
	for from < to {
		n := min(int64(len(zeros)), to-from)
		if _, err := lf.WriteAt(zeros[:n], from); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// createAtPath puts a carried file back where it was, created as the
// process (it must be allowed to). Precondition: on the opener's thread.
func (b *builder) createAtPath(i int, f *format.File, what string) error {
	fd, err := unix.Open(f.Path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, f.Mode&0o777)
	if err != nil {
		return b.op.fail(what, f.Path, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	b.created = append(b.created, f.Path)
	if err := lf.Truncate(f.Size); err != nil {
		lf.Close()
		return err
	}
	b.local[i], b.fill[i], b.own[i] = lf, lf, true
	return nil
}

// memfdName is the name to give a memfd standing for path: a memfd's own
// name without the "/memfd:" the kernel shows, or a file's base name.
func memfdName(path string) string {
	if name, ok := strings.CutPrefix(path, "/memfd:"); ok {
		return name
	}
	return filepath.Base(path)
}

// callersCreds tells whether c are this process's own credentials (the fs
// ids follow the effective ones).
func callersCreds(c format.Creds) bool {
	r, e, s := unix.Getresuid()
	gr, ge, gs := unix.Getresgid()
	return c.UID == [4]int{r, e, s, e} && c.GID == [4]int{gr, ge, gs, ge}
}

// appendOnly says whether the processes use file i only to append to it:
// every fd of it is write-only with O_APPEND, and none maps it or runs it.
func appendOnly(procs []format.Process, i int) bool {
	held := false
	for p := range procs {
		if procs[p].Exe == i {
			return false
		}
		for _, m := range procs[p].Maps {
			if m.File == i {
				return false
			}
		}
		for _, fd := range procs[p].FDs {
			if fd.File != i {
				continue
			}
			if fd.Flags&unix.O_ACCMODE != unix.O_WRONLY || fd.Flags&unix.O_APPEND == 0 {
				return false
			}
			held = true
		}
	}
	return held
}

// FileChangedError refuses a file the process had open or mapped that
// changed since the dump, and whose contents the image does not carry.
type FileChangedError struct{ Path, Why string }

func (e *FileChangedError) Error() string {
	return fmt.Sprintf("file %s changed since the dump (%s)", safetext.Quote(e.Path), e.Why)
}

// fillFile reads the current record, FILEDATA, into buf and writes its
// contents into the loader's file.
func (t *tree) fillFile(h format.Header, buf []byte) error {
	b := t
	idx, off, data, err := b.r.ReadFileData(buf)
	if err != nil {
		return err
	}
	f, ok := b.fill[int(idx)]
	if !ok {
		if int(idx) < len(b.files) && b.local[int(idx)] != nil {
			return nil // the file at its path was still the same
		}
		return fmt.Errorf("corrupt image at byte %d (record %d): contents for file %d, which carries none", h.Offset, h.Index, idx)
	}
	if size := uint64(b.files[idx].Size); off > size || uint64(len(data)) > size-off {
		return fmt.Errorf("corrupt image at byte %d (record %d): contents of file %d at %d-%d, past its size %d", h.Offset, h.Index, idx, off, off+uint64(len(data)), size)
	}
	if ext := b.files[idx].Extents; ext != nil {
		r := [2]int64{int64(off), int64(off) + int64(len(data))}
		if !inExtent(*ext, r) {
			return fmt.Errorf("corrupt image at byte %d (record %d): contents of file %d at %d-%d, in none of its data extents", h.Offset, h.Index, idx, r[0], r[1])
		}
		b.covered[int(idx)] = append(b.covered[int(idx)], r)
	}
	_, err = f.WriteAt(data, int64(off))
	return err
}

// inExtent tells whether r lies within one of ext, which are in order.
func inExtent(ext [][2]int64, r [2]int64) bool {
	i := sort.Search(len(ext), func(i int) bool { return ext[i][1] >= r[1] })
	return i < len(ext) && ext[i][0] <= r[0]
}
