// File locks: the flock, POSIX and OFD locks the processes of the tree
// hold, read from the "lock:" lines of their fdinfo, and recorded in the
// File they lock, each with the open file description it belongs to (or,
// a POSIX lock, was taken through) and, a POSIX lock, its process. An
// flock that no fd lists, held by the open file behind a mapping of its
// file (a JVM's perf-data file: mmap, flock, close), is recorded against
// that mapping.

package dump

import (
	"fmt"
	"math"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// lockKinds are the classes of locks procs carries, by their fdinfo
// name.
var lockKinds = map[string]string{"FLOCK": format.LockFlock, "POSIX": format.LockPosix, "OFDLCK": format.LockOFD}

// lockProblem says why procs cannot carry a lock fd's fdinfo lists, or
// "": a lease or a delegation (what breaks one is another process's
// open, which a restore cannot replay), a lock of a kind it does not
// know, a line it cannot read.
func lockProblem(fd *procfs.FD) string {
	locks, bad := fd.Locks()
	if bad != "" {
		return fmt.Sprintf("fd %d holds a lock procs cannot read (%s)", fd.Num, safetext.Quote(bad))
	}
	for _, l := range locks {
		switch {
		case l.Class == "LEASE":
			return fmt.Sprintf("fd %d holds a lease (F_SETLEASE) on %s", fd.Num, fd.Target)
		case l.Class == "DELEG":
			return fmt.Sprintf("fd %d holds a delegation on %s", fd.Num, fd.Target)
		case lockKinds[l.Class] == "":
			return fmt.Sprintf("fd %d holds a lock of kind %s on %s", fd.Num, safetext.Quote(l.Class), fd.Target)
		case l.Mode != "ADVISORY":
			return fmt.Sprintf("fd %d holds a %s lock on %s", fd.Num, safetext.Quote(l.Mode), fd.Target)
		}
	}
	return ""
}

// recordLocks records in the image's file of out, process c's fd, the
// locks its fdinfo lists: a flock or OFD lock once for its open file
// description (every fd of it, in any process, lists it), a POSIX lock
// once for its process and description (only the fds of the description
// through which the process took it list it). checkFDs refused what
// procs cannot carry.
func (c *collector) recordLocks(fd *procfs.FD, out format.FD) error {
	locks, _ := fd.Locks()
	if len(locks) == 0 {
		return nil
	}
	if out.File < 0 {
		return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a lock through its fd %d (%s), which procs-load replaces with its own stream", c.pid, fd.Num, fd.Target)}
	}
	if c.t.locks == nil {
		c.t.locks, c.t.listed = map[format.Lock]bool{}, map[listedLock]bool{}
	}
	f := &c.t.files[out.File]
	for _, l := range locks {
		c.t.listed[listedLock{out.Open, l}] = true
		lk := format.Lock{Kind: lockKinds[l.Class], Write: l.Write, Open: out.Open}
		if lk.Kind == "" {
			return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: %s", c.pid, lockProblem(fd))}
		}
		if lk.Kind == format.LockPosix {
			lk.PID = c.pid
		}
		if lk.Kind != format.LockFlock {
			lk.Start = l.Start
			if l.End != math.MaxInt64 {
				lk.Len = l.End - l.Start + 1
			}
		}
		if !c.t.locks[lk] {
			c.t.locks[lk] = true
			f.Locks = append(f.Locks, lk)
		}
	}
	return nil
}

// listedLock is a lock an fd's fdinfo listed, once per open file
// description (every fd of a description lists its flock): each is one
// line of /proc/locks.
type listedLock struct {
	open int
	lock procfs.FileLock
}

// checkUnseenLocks finds the flock and POSIX locks that /proc/locks says
// a process of the tree took (in says which PIDs are) and that no fd of
// the tree lists: held through an open file that no fd of the tree has.
// An flock on a file that a process of the tree maps is the mapping's
// (mappedLock); any other procs cannot carry: a POSIX lock (closing any
// fd of its file dropped it, so this one is held through an fd of a
// sharer of the process's fd table outside), an flock on an open file
// passed to a process outside.
func (s *snapshot) checkUnseenLocks(in func(pid int) bool) error {
	all, err := procfs.Locks()
	if err != nil {
		return err
	}
	listed := map[procfs.FileLock]int{}
	for k := range s.table.listed {
		listed[k.lock]++
	}
	for _, l := range all {
		if l.Blocked || l.PID <= 0 || !in(l.PID) || l.Class != "FLOCK" && l.Class != "POSIX" {
			continue
		}
		if listed[l] > 0 {
			listed[l]--
			continue
		}
		if l.Class == "FLOCK" {
			if ok, err := s.mappedLock(l); ok || err != nil {
				return err
			}
		}
		return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a %s lock on inode %d (device %d:%d) that neither an fd nor a mapping of the tree holds (an open file passed to a process outside)",
			l.PID, strings.ToLower(l.Class), l.Ino, unix.Major(l.Dev), unix.Minor(l.Dev))}
	}
	return nil
}

// mappedLock records flock l, which no fd of the tree holds, against a
// mapping of its file, whose open file holds it: the first mapping of the
// process that took it, else of the first process that maps the file. A
// restore makes every mapping of the file with the same access from one
// open file, and takes the flock on it, so mappings shared since a fork
// share the lock as they did. It returns false if no process of the tree
// maps the file.
func (s *snapshot) mappedLock(l procfs.FileLock) (bool, error) {
	var at *collector
	mi := -1
	for _, c := range s.cs {
		if at != nil && at.pid == l.PID {
			break
		}
		for i, m := range c.maps {
			if m.Dev == l.Dev && m.Inode == l.Ino && c.p.Maps[i].File >= 0 {
				if at == nil || c.pid == l.PID {
					at, mi = c, i
				}
				break
			}
		}
	}
	if at == nil {
		return false, nil
	}
	m := at.p.Maps[mi]
	f := &s.table.files[m.File]
	for _, k := range f.Locks {
		if k.Map != 0 {
			return true, &refusal{fmt.Sprintf("process %d holds what procs cannot carry: two flock locks on %s that no fd holds, only mappings of the file", l.PID, safetext.Quote(f.Path))}
		}
	}
	lk := format.Lock{Kind: format.LockFlock, Write: l.Write, PID: at.pid, Map: m.Start}
	if s.table.locks == nil {
		s.table.locks = map[format.Lock]bool{}
	}
	s.table.locks[lk] = true
	f.Locks = append(f.Locks, lk)
	return true, nil
}

// warmLocks reads /proc/locks once, just before a live dump freezes the
// tree, so that checkUnseenLocks reads it again fast while the tree is
// frozen. Its reader takes the kernel's lock-list semaphore for writing
// (percpu_down_write), which first waits for an RCU grace period
// (5-40 ms here), unless another writer had it less than about one
// grace period before (0.05 ms then): the wait moves out of the frozen
// time. The list is read again frozen: what it held before is not used.
func warmLocks() {
	procfs.Locks()
}
