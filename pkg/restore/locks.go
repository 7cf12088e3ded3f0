// File locks: the flock, POSIX and OFD locks of the image (File.Locks),
// checked, then taken again by the processes that held them, before any
// of them runs.
//
// Each lock is taken by its process, with a system call run in it on
// its own fd: flock(2) or fcntl(2) F_OFD_SETLK on an fd of the open file
// description the lock belongs to, in the first process that holds that
// description (the description is the lock's owner, whoever shares it);
// F_SETLK in the process that held a POSIX lock, on an fd of the
// description it took it through; an flock held through a mapping
// (Lock.Map), in the process that maps the file, on the open file its
// mapping is made from. So the locks belong to what they belonged to,
// and the kernel names the restored process as their holder
// (/proc/locks, F_GETLK). The fds were opened by the loader as the
// process (opener), so a lock is taken only on what the process could
// open, with the rights it had: a write lock on a file it holds only for
// reading fails as it would have (EBADF). Never blocking (LOCK_NB,
// F_SETLK): a lock another process holds refuses the restore, naming the
// holder, and every process made is killed.
//
// When: once nothing will close an fd of the process any more (closing
// any fd of a file drops every POSIX lock the process holds on it), at
// the end of finish, before the threads are given their registers;
// release lets them run only once every process has its locks. An flock
// held through a mapping, when the mapping is made (takeMappedLocks).

package restore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// maxLocks bounds the locks of an image: each is a system call in its
// process.
const maxLocks = 1 << 16

// validateLocks checks every lock of the image: of a kind procs knows, on
// an open file description that an fd of the locked file has (not
// O_PATH), of a process that holds that description (a POSIX lock's),
// with the access a lock of its type needs, its range in bounds; an
// flock held through a mapping, on a mapping of the locked file.
func validateLocks(fs []format.File, procs []format.Process) error {
	type desc struct {
		fd      format.FD
		holders map[int]bool // the PIDs of the processes that hold it
	}
	descs := map[int]*desc{}
	for _, p := range procs {
		for _, fd := range p.FDs {
			d := descs[fd.Open]
			if d == nil {
				d = &desc{fd: fd, holders: map[int]bool{}}
				descs[fd.Open] = d
			}
			d.holders[p.PID] = true
		}
	}
	var maps map[mapAt]format.Mapping
	n := 0
	for i, f := range fs {
		flocked := map[int]bool{}
		mapFlocked := map[int]bool{} // by mapMode
		for _, l := range f.Locks {
			if n++; n > maxLocks {
				return fmt.Errorf("image holds more than %d file locks", maxLocks)
			}
			if l.Map != 0 {
				if maps == nil {
					maps = mappingsAt(procs)
				}
				if err := validateMappedLock(i, f, l, maps, mapFlocked); err != nil {
					return err
				}
				continue
			}
			at := fmt.Sprintf("image file %d (%s): a %s lock of open file description %d", i, safetext.Quote(f.Path), safetext.Quote(l.Kind), l.Open)
			d := descs[l.Open]
			switch {
			case d == nil || d.fd.File != i:
				return fmt.Errorf("%s, which no fd has on that file", at)
			case d.fd.Flags&unix.O_PATH != 0:
				return fmt.Errorf("%s, which is O_PATH", at)
			}
			switch l.Kind {
			case format.LockFlock:
				if l.PID != 0 || l.Start != 0 || l.Len != 0 || flocked[l.Open] {
					return fmt.Errorf("%s with a process or a range, or twice", at)
				}
				flocked[l.Open] = true
				continue
			case format.LockPosix:
				if !d.holders[l.PID] {
					return fmt.Errorf("%s held by process %d, which does not hold it", at, l.PID)
				}
			case format.LockOFD:
				if l.PID != 0 {
					return fmt.Errorf("%s held by a process", at)
				}
			default:
				return fmt.Errorf("%s: no such kind of lock", at)
			}
			// fcntl(2) locks need the file open for what they lock.
			mode := d.fd.Flags & unix.O_ACCMODE
			if l.Write && mode == unix.O_RDONLY || !l.Write && mode == unix.O_WRONLY {
				return fmt.Errorf("%s, a %s lock, on a file open %s", at, lockType(l), accessName(mode))
			}
			if l.Start < 0 || l.Len < 0 || l.Len > 0 && l.Len-1 > math.MaxInt64-l.Start {
				return fmt.Errorf("%s on %d bytes from byte %d: out of range", at, l.Len, l.Start)
			}
		}
	}
	return nil
}

// mapAt is the mapping of a process at an address.
type mapAt struct {
	pid   int
	start uint64
}

// mappingsAt indexes the mappings of procs by process and start.
func mappingsAt(procs []format.Process) map[mapAt]format.Mapping {
	maps := map[mapAt]format.Mapping{}
	for _, p := range procs {
		for _, m := range p.Maps {
			maps[mapAt{p.PID, m.Start}] = m
		}
	}
	return maps
}

// validateMappedLock checks lock l of file i, held through a mapping: an
// flock, with no description or range, on a mapping of file i, at most
// one for the open file of the mappings made alike (flocked, by mapMode).
func validateMappedLock(i int, f format.File, l format.Lock, maps map[mapAt]format.Mapping, flocked map[int]bool) error {
	at := fmt.Sprintf("image file %d (%s): a %s lock held through the mapping at %#x of process %d", i, safetext.Quote(f.Path), safetext.Quote(l.Kind), l.Map, l.PID)
	m, ok := maps[mapAt{l.PID, l.Map}]
	switch {
	case l.Kind != format.LockFlock || l.Open != 0 || l.Start != 0 || l.Len != 0:
		return fmt.Errorf("%s: only an flock, of no open file description and no range, is held so", at)
	case !ok || m.File != i:
		return fmt.Errorf("%s, which has no mapping of that file there", at)
	case flocked[mapMode(m)]:
		return fmt.Errorf("%s, twice", at)
	}
	flocked[mapMode(m)] = true
	return nil
}

// accessName names an access mode (O_ACCMODE bits).
func accessName(mode int) string {
	switch mode {
	case unix.O_RDONLY:
		return "read-only"
	case unix.O_WRONLY:
		return "write-only"
	}
	return "for reading and writing"
}

// lockType is "write" or "read".
func lockType(l format.Lock) string {
	if l.Write {
		return "write"
	}
	return "read"
}

// describeLock says what l is, for messages: "a POSIX write lock on bytes
// 5-14", "an flock read lock".
func describeLock(l format.Lock) string {
	switch l.Kind {
	case format.LockFlock:
		return fmt.Sprintf("an flock %s lock", lockType(l))
	case format.LockOFD:
		return fmt.Sprintf("an OFD %s lock on %s", lockType(l), lockRange(l))
	}
	return fmt.Sprintf("a POSIX %s lock on %s", lockType(l), lockRange(l))
}

// lockRange says which bytes l covers.
func lockRange(l format.Lock) string {
	if l.Len == 0 {
		return fmt.Sprintf("bytes %d to the end", l.Start)
	}
	return fmt.Sprintf("bytes %d-%d", l.Start, l.Start+l.Len-1)
}

// lockRef is a lock of the image and the file it is on.
type lockRef struct {
	file int
	lock format.Lock
}

// locksOf returns the locks process task takes: the POSIX locks it held,
// the flock and OFD locks of the descriptions it is the first to hold, the
// flocks held through its mappings.
func (t *tree) locksOf(task int) []lockRef {
	if t.taskLocks == nil {
		holder := map[int]int{} // open id -> the first process that holds it
		for i := len(t.imgs) - 1; i >= 0; i-- {
			for _, fd := range t.imgs[i].FDs {
				holder[fd.Open] = i
			}
		}
		byPID := map[int]int{}
		for i, p := range t.imgs {
			byPID[p.PID] = i
		}
		t.taskLocks = map[int][]lockRef{}
		for i, f := range t.files {
			for _, l := range f.Locks {
				task := holder[l.Open]
				if l.PID != 0 { // a POSIX lock, one held through a mapping
					task = byPID[l.PID]
				}
				t.taskLocks[task] = append(t.taskLocks[task], lockRef{i, l})
			}
		}
	}
	return t.taskLocks[task]
}

// takeLocks has the process take again each lock it holds (see the top of
// this file), never waiting for one.
func (b *builder) takeLocks() error {
	refs := b.locksOf(b.task)
	if len(refs) == 0 {
		return nil
	}
	first := map[int]format.FD{} // open id -> the process's first fd of it
	for _, fd := range b.img.FDs {
		if _, ok := first[fd.Open]; !ok {
			first[fd.Open] = fd
		}
	}
	for _, ref := range refs {
		l := ref.lock
		if l.Map != 0 {
			continue // taken with the mappings
		}
		fd := first[l.Open]
		if b.ownStream(fd) {
			b.warnf("fd %d is procs-load's own stream now: %s on %s is not taken again", fd.Num, describeLock(l), safetext.Quote(b.files[ref.file].Path))
			continue
		}
		if err := b.lockOn(uint64(fd.Num), ref); err != nil {
			return err
		}
	}
	b.logf("%d file locks taken again", len(refs))
	return nil
}

// takeMappedLocks takes the flocks held through mappings of the process
// (Lock.Map), once mapMemory made them, on the open files it made them
// from (fds: the process's fd of each, closed after), so that each
// mapping's open file holds its lock as long as the mapping lasts, as it
// did. Every mapping of a file made alike, in any process of the tree,
// has that open file (mapFiles): mappings shared since a fork share the
// lock again. A mapping inherited from the parent (Mapping.Inherit) has
// its parent's open file, given to the process for the call. Here, before
// the fds are made and any POSIX lock taken, closing these fds drops
// nothing.
func (b *builder) takeMappedLocks(fds map[mapKey]uint64) error {
	for _, ref := range b.locksOf(b.task) {
		if ref.lock.Map == 0 {
			continue
		}
		var k mapKey
		for _, m := range b.img.Maps {
			if m.Start == ref.lock.Map {
				k = mapKey{m.File, mapMode(m)}
			}
		}
		fd, ok := fds[k]
		if !ok {
			var err error
			if fd, err = b.takeFD(b.mapFiles[k]); err != nil {
				return err
			}
			fds[k] = fd
		}
		if err := b.lockOn(fd, ref); err != nil {
			return err
		}
	}
	return nil
}

// lockOn has the process take lock ref on its fd, never waiting: a lock
// another process holds is a LockedError.
func (b *builder) lockOn(fd uint64, ref lockRef) error {
	l := ref.lock
	var err error
	if l.Kind == format.LockFlock {
		op := unix.LOCK_SH
		if l.Write {
			op = unix.LOCK_EX
		}
		_, err = b.main.Syscall("flock", unix.SYS_FLOCK, fd, uint64(op|unix.LOCK_NB))
	} else {
		cmd, name := unix.F_SETLK, "fcntl(F_SETLK)"
		if l.Kind == format.LockOFD {
			cmd, name = unix.F_OFD_SETLK, "fcntl(F_OFD_SETLK)"
		}
		typ := int16(unix.F_RDLCK)
		if l.Write {
			typ = unix.F_WRLCK
		}
		if err = b.write(offArgs, linux.Flock{Type: typ, Whence: unix.SEEK_SET, Start: l.Start, Len: l.Len}.Encode()); err == nil {
			_, err = b.main.Syscall(name, unix.SYS_FCNTL, fd, uint64(cmd), b.scratch+offArgs)
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return b.lockConflict(ref, int(fd))
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %s: %w", lockPlace(l, int(fd)), safetext.Quote(b.files[ref.file].Path), describeLock(l), err)
	}
	return nil
}

// lockPlace says where lock l is taken, fd num of the process: "fd 4",
// or, for a lock held through a mapping, "mapping 7f00c0de0000".
func lockPlace(l format.Lock, num int) string {
	if l.Map != 0 {
		return fmt.Sprintf("mapping %x", l.Map)
	}
	return fmt.Sprintf("fd %d", num)
}

// LockedError refuses a restore because a process outside the image
// holds a lock on a file that conflicts with one of the image's.
type LockedError struct {
	FD     int    // the fd of the restored process the lock is taken on
	Map    uint64 // or, a lock held through a mapping, the mapping's start
	Path   string // the file
	Holder int    // the process that holds the conflicting lock, or 0
	Comm   string // its name
	Lock   string // the image's lock ("a POSIX write lock on bytes 5-14")
	// Original: the holder has the PID the lock's process had at the dump,
	// which the restored one does not have: most likely the process the
	// image was made of, still running (procs-dump -K).
	Original bool
}

func (e *LockedError) Error() string {
	holder := "another process"
	if e.Holder > 0 {
		holder = fmt.Sprintf("process %d (%s)", e.Holder, e.Comm)
	}
	return fmt.Sprintf("%s: %s is locked by %s, outside the image: the process held %s there", lockPlace(format.Lock{Map: e.Map}, e.FD), safetext.Quote(e.Path), holder, e.Lock)
}

// lockConflict is the error of a lock that another process holds on the
// file of fd num: it names the file and the holder.
func (b *builder) lockConflict(ref lockRef, num int) error {
	l := ref.lock
	e := &LockedError{FD: num, Map: l.Map, Path: b.files[ref.file].Path, Lock: describeLock(l)}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", b.pid, num), &st) == nil {
		if e.Holder = b.lockHolder(st.Ino, l); e.Holder > 0 {
			e.Comm = commOf(e.Holder)
		}
	}
	owner := b.img.PID
	if l.PID != 0 {
		owner = l.PID
	}
	e.Original = e.Holder == owner && b.pid != owner
	return e
}

// lockHolder finds the process that holds a lock on inode ino that l
// conflicts with: in /proc/locks, which names the process of a POSIX lock
// and the one that took an flock (if it still runs), or else in every
// process's fdinfo (an OFD lock, which /proc/locks names no process of).
// 0: none found.
func (b *builder) lockHolder(ino uint64, l format.Lock) int {
	conflicts := func(k procfs.FileLock) bool {
		if k.Blocked || k.Ino != ino || !l.Write && !k.Write {
			return false
		}
		if l.Kind == format.LockFlock {
			return k.Class == "FLOCK"
		}
		end := int64(math.MaxInt64)
		if l.Len > 0 {
			end = l.Start + l.Len - 1
		}
		return (k.Class == "POSIX" || k.Class == "OFDLCK") && k.Start <= end && l.Start <= k.End
	}
	all, _ := procfs.Locks()
	for _, k := range all {
		if conflicts(k) && k.PID > 0 && commOf(k.PID) != "" {
			return k.PID
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		for _, locks := range procfs.FDInfoLocks(pid) {
			for _, k := range locks {
				if conflicts(k) {
					return pid
				}
			}
		}
	}
	return 0
}

// commOf is the name of process pid, or "".
func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
