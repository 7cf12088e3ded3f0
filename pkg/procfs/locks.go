package procfs

import (
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileLock is a file lock as the kernel lists it ("lock:" lines of
// /proc/PID/fdinfo/N, lines of /proc/locks):
//
//	1: POSIX  ADVISORY  WRITE 4242 fe:00:9977928 5 14
//	2: -> FLOCK  ADVISORY  WRITE 4300 fe:00:9977926 0 EOF
type FileLock struct {
	// Class is FLOCK, POSIX, OFDLCK (an OFD lock), LEASE, DELEG,
	// ACCESS...
	Class string
	// Mode is ADVISORY for a lock (mandatory locks are gone since
	// Linux 5.15), a lease's state (ACTIVE, BREAKING, BREAKER).
	Mode string
	// Write: a write lock; otherwise a read one (or UNLCK, for a lease
	// being broken).
	Write bool
	// PID is the process that took it (a flock's, which may be gone), or
	// holds it (a POSIX lock's), as the reader's PID namespace sees it;
	// -1 for an OFD lock, which has none.
	PID int
	// Dev and Ino are the file's: its file system's device and its inode.
	Dev, Ino uint64
	// Start and End are the range, End included; End is math.MaxInt64
	// for a lock to the end of the file ("EOF").
	Start, End int64
	// Blocked: a request waiting for the lock, not a lock held (only
	// /proc/locks lists them, "->").
	Blocked bool
}

// ParseLock parses a lock line of /proc/locks, or what follows "lock:"
// in fdinfo.
func ParseLock(line string) (FileLock, bool) {
	f := strings.Fields(line)
	var l FileLock
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	if len(f) > 0 && f[0] == "->" {
		l.Blocked, f = true, f[1:]
	}
	if len(f) != 7 {
		return l, false
	}
	l.Class, l.Mode = f[0], f[1]
	switch f[2] {
	case "WRITE":
		l.Write = true
	case "READ", "UNLCK":
	default:
		return l, false
	}
	pid, err := strconv.Atoi(f[3])
	if err != nil {
		return l, false
	}
	l.PID = pid
	// MAJOR:MINOR:INODE, the device in hex ("<none>:0" without an
	// inode).
	i := strings.LastIndexByte(f[4], ':')
	maj, min, ok := strings.Cut(f[4][:max(i, 0)], ":")
	a, err1 := strconv.ParseUint(maj, 16, 32)
	b, err2 := strconv.ParseUint(min, 16, 32)
	n, err3 := strconv.ParseUint(f[4][i+1:], 10, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil {
		return l, false
	}
	l.Dev, l.Ino = unix.Mkdev(uint32(a), uint32(b)), n
	start, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil || start < 0 {
		return l, false
	}
	l.Start, l.End = start, math.MaxInt64
	if f[6] != "EOF" {
		if l.End, err = strconv.ParseInt(f[6], 10, 64); err != nil || l.End < start {
			return l, false
		}
	}
	return l, true
}

// Locks returns the locks an fd's fdinfo listed: those its open file
// description holds (flock, OFD locks, leases) and the POSIX locks its
// process took through it. A line it cannot read is returned whole, as
// bad.
func (fd *FD) Locks() (locks []FileLock, bad string) {
	for _, e := range fd.Extra {
		rest, ok := strings.CutPrefix(e, "lock:")
		if !ok {
			continue
		}
		l, ok := ParseLock(rest)
		if !ok {
			return nil, e
		}
		locks = append(locks, l)
	}
	return locks, ""
}

// Locks reads /proc/locks: every lock of the system, and every request
// waiting for one. Lines it cannot read are left out.
func Locks() ([]FileLock, error) {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil, err
	}
	var out []FileLock
	for _, line := range strings.Split(string(b), "\n") {
		if l, ok := ParseLock(line); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// FDInfoLocks returns the locks the fdinfo of every fd of process pid
// lists, by fd number; a file it cannot read is left out (an fd closed
// meanwhile, a process gone).
func FDInfoLocks(pid int) map[int][]FileLock {
	dir := pidPath(pid, "fdinfo")
	nums, _ := listNumeric(dir)
	out := map[int][]FileLock{}
	for _, n := range nums {
		b, err := os.ReadFile(dir + "/" + strconv.Itoa(n))
		if err != nil {
			continue
		}
		fd := FD{Extra: strings.Split(string(b), "\n")}
		if locks, _ := fd.Locks(); len(locks) > 0 {
			out[n] = locks
		}
	}
	return out
}
