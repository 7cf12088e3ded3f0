// File locks: the flock, POSIX and OFD locks the processes of the tree
// hold, read from the "lock:" lines of their fdinfo, and recorded in the
// File they lock, each with the open file description it belongs to (or,
// a POSIX lock, was taken through) and, a POSIX lock, its process.

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
		c.t.locks = map[format.Lock]bool{}
	}
	f := &c.t.files[out.File]
	for _, l := range locks {
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

// checkUnseenLocks refuses an flock or a POSIX lock that /proc/locks says
// a process of the tree took (in says which PIDs are) on a file none of
// whose recorded locks it is: held through an open file no fd of the
// tree has (a mapping's, or one passed to a process outside), which
// procs cannot carry.
func checkUnseenLocks(fs []format.File, in func(pid int) bool) error {
	all, err := procfs.Locks()
	if err != nil {
		return err
	}
	seen := map[uint64]bool{} // inodes of locked files
	for _, f := range fs {
		if len(f.Locks) > 0 {
			seen[f.Ino] = true
		}
	}
	for _, l := range all {
		if l.Blocked || l.PID <= 0 || !in(l.PID) || seen[l.Ino] || l.Class != "FLOCK" && l.Class != "POSIX" {
			continue
		}
		return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a %s lock on inode %d (device %d:%d) that no fd of the tree holds (held through a mapping of the file, or an open file passed on)",
			l.PID, strings.ToLower(l.Class), l.Ino, unix.Major(l.Dev), unix.Minor(l.Dev))}
	}
	return nil
}
