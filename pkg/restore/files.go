package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
)

// validate refuses images that cannot be restored here and now, before
// anything is started.
func validate(img *format.Process) error {
	if len(img.Threads) == 0 {
		return fmt.Errorf("image holds no thread")
	}
	for i, t := range img.Threads {
		if len(t.Regs) != 27 {
			return fmt.Errorf("image thread %d has %d register words, want 27", i, len(t.Regs))
		}
	}
	if img.Exe < 0 || img.Exe >= len(img.Files) {
		return fmt.Errorf("image names no executable")
	}
	for i, f := range img.Files {
		switch f.Kind {
		case format.FileRegular, format.FileDir, format.FileChar, format.FileTTY,
			format.FileMemfd, format.FileEventfd, format.FileEpoll:
		default:
			// An open file of a kind this restorer cannot make again
			// (from a later writer): opening its path would be wrong.
			return fmt.Errorf("image file %d (%s) is of kind %q, which this procs-load cannot restore", i, f.Path, f.Kind)
		}
	}
	for _, m := range img.Maps {
		if m.File >= len(img.Files) {
			return fmt.Errorf("image mapping %x-%x names file %d of %d", m.Start, m.End, m.File, len(img.Files))
		}
	}
	for _, fd := range img.FDs {
		if fd.File >= len(img.Files) {
			return fmt.Errorf("image fd %d names file %d of %d", fd.Num, fd.File, len(img.Files))
		}
	}
	if os.Geteuid() != 0 {
		if c := img.Creds; !callersCreds(c) {
			return fmt.Errorf("the process ran as uid %d gid %d; restoring it as uid %d needs root (a restore never changes credentials otherwise)", c.UID[1], c.GID[1], os.Geteuid())
		}
	}
	return nil
}

// prepareFiles opens, on the loader's side, every file the process had
// open or mapped, checks that it is the file the image was made with, and
// makes the files whose contents travel in the image. The process built
// later opens them through /proc/<loader>/fd/N, so what it gets is exactly
// what was checked here.
func (b *builder) prepareFiles() error {
	b.local = map[int]*os.File{}
	b.fill = map[int]*os.File{}
	used := map[int]bool{b.img.Exe: true}
	for _, m := range b.img.Maps {
		if m.File >= 0 {
			used[m.File] = true
		}
	}
	for _, fd := range b.img.FDs {
		if fd.File >= 0 && !b.ownStream(fd) {
			used[fd.File] = true
		}
	}
	for i, f := range b.img.Files {
		if !used[i] {
			continue
		}
		switch f.Kind {
		case format.FileRegular, format.FileDir:
			if err := b.prepareFile(i, &f); err != nil {
				return err
			}
		case format.FileTTY:
			t := b.opts.terminal(b.img)
			if t == nil {
				return fmt.Errorf("the process had its terminal (%s) open beyond its standard streams, and procs-load has no terminal to give it", f.Path)
			}
			fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", t.Fd()), unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("reopening this terminal: %w", err)
			}
			b.local[i] = os.NewFile(uintptr(fd), f.Path)
		case format.FileMemfd:
			fd, err := unix.MemfdCreate(memfdName(f.Path), unix.MFD_CLOEXEC)
			if err != nil {
				return os.NewSyscallError("memfd_create", err)
			}
			mf := os.NewFile(uintptr(fd), f.Path)
			if err := mf.Truncate(f.Size); err != nil {
				mf.Close()
				return err
			}
			b.local[i], b.fill[i] = mf, mf
		}
	}
	return nil
}

func (b *builder) prepareFile(i int, f *format.File) error {
	if f.Carried && f.Deleted {
		return b.privateCopy(i, f)
	}
	flags := unix.O_PATH | unix.O_CLOEXEC
	if f.Kind == format.FileDir {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Open(f.Path, flags, 0)
	if err == unix.ENOENT && f.Carried {
		return b.createAtPath(i, f)
	}
	if err != nil {
		if f.Deleted {
			return fmt.Errorf("file %s was deleted before the dump and its contents are not in the image", f.Path)
		}
		if err == unix.ENOENT {
			return &FileChangedError{Path: f.Path, Why: "it no longer exists"}
		}
		return fmt.Errorf("cannot open %s: %w", f.Path, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		lf.Close()
		return err
	}
	changed := ""
	switch {
	case f.Pseudo || f.Kind == format.FileDir:
	case st.Mode&unix.S_IFMT != f.Mode&unix.S_IFMT:
		changed = "it is no longer the same kind of file"
	case st.Size != f.Size:
		changed = fmt.Sprintf("its size is %d, was %d", st.Size, f.Size)
	case st.Mtim.Nano() != f.Mtime:
		changed = "it was modified"
	}
	if changed != "" {
		lf.Close()
		if f.Carried {
			b.warnf("%s changed since the dump; the process gets a private copy with the image's contents", f.Path)
			return b.privateCopy(i, f)
		}
		return &FileChangedError{Path: f.Path, Why: changed}
	}
	b.local[i] = lf
	return nil
}

// ownStream says whether fd is one of fds 0, 1 and 2 that the restorer's
// own stream stands in for (see StdioMode).
func (b *builder) ownStream(fd format.FD) bool {
	if fd.Num > 2 {
		return false
	}
	if fd.File < 0 || b.opts.Stdio == StdioInherit {
		return true
	}
	switch f := b.img.Files[fd.File]; f.Kind {
	case format.FileRegular, format.FileDir, format.FileChar:
		return f.Deleted
	}
	return true
}

// logStreams says under -v where each standard stream goes.
func (b *builder) logStreams() {
	own := map[int]bool{0: true, 1: true, 2: true}
	for _, fd := range b.img.FDs {
		if fd.Num <= 2 && !b.ownStream(fd) {
			own[fd.Num] = false
			b.logf("fd %d: %s, opened again as at the dump", fd.Num, b.img.Files[fd.File].Path)
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
func (b *builder) privateCopy(i int, f *format.File) error {
	fd, err := unix.Open(filepath.Dir(f.Path), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, f.Mode&0o7777)
	if err != nil {
		fd, err = unix.MemfdCreate(memfdName(f.Path), unix.MFD_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("memfd_create", err)
		}
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := lf.Truncate(f.Size); err != nil {
		lf.Close()
		return err
	}
	b.local[i], b.fill[i] = lf, lf
	return nil
}

// createAtPath puts a carried file back where it was.
func (b *builder) createAtPath(i int, f *format.File) error {
	lf, err := os.OpenFile(f.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, os.FileMode(f.Mode&0o777))
	if err != nil {
		return err
	}
	if err := lf.Truncate(f.Size); err != nil {
		lf.Close()
		return err
	}
	b.local[i], b.fill[i] = lf, lf
	b.created = append(b.created, f.Path)
	return nil
}

func (b *builder) closeLocal() {
	for _, f := range b.local {
		f.Close()
	}
}

// localPath is the path through which the process opens file i.
func (b *builder) localPath(i int) string {
	f := b.img.Files[i]
	if lf, ok := b.local[i]; ok {
		return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), lf.Fd())
	}
	return f.Path
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

// FileChangedError refuses a file the process had open or mapped that
// changed since the dump, and whose contents the image does not carry.
type FileChangedError struct{ Path, Why string }

func (e *FileChangedError) Error() string {
	return fmt.Sprintf("file %s changed since the dump (%s)", e.Path, e.Why)
}
