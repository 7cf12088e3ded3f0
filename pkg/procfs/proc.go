package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// listNumeric returns the sorted numeric names in directory dir (PIDs
// under /proc, TIDs under /proc/PID/task).
func listNumeric(dir string) ([]int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	buf := getBuf()
	defer putBuf(buf)
	if cap(*buf) < 16<<10 {
		*buf = make([]byte, 0, 16<<10)
	}
	b := (*buf)[:cap(*buf)]
	var out []int
	for {
		n, err := unix.Getdents(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64 records.
		for off := 0; off+linux.Dirent64NameOffset <= n; {
			reclen := int(binary.NativeEndian.Uint16(b[off+linux.Dirent64RecLenOffset:]))
			if reclen == 0 || off+reclen > n {
				break
			}
			name := b[off+linux.Dirent64NameOffset : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if v, ok := parseUint(name, 10); ok && (len(name) == 1 || name[0] != '0') {
				out = append(out, int(v))
			}
			off += reclen
		}
	}
	slices.Sort(out)
	return out, nil
}

// PIDs returns the sorted PIDs listed in /proc.
func PIDs() ([]int, error) { return listNumeric("/proc") }

// Tasks returns the sorted thread IDs listed in /proc/PID/task.
func Tasks(pid int) ([]int, error) {
	return listNumeric(pidPath(pid, "task"))
}

// Auxv returns the words of /proc/PID/auxv (pairs of type and value),
// including the terminating AT_NULL pair.
func Auxv(pid int) ([]uint64, error) {
	path := pidPath(pid, "auxv")
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return nil, err
	}
	if len(b)%8 != 0 {
		return nil, parseError(path, b)
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.NativeEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// Comm returns /proc/PID/task/TID/comm without the newline.
func Comm(pid, tid int) (string, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(taskPath(pid, tid, "comm"), buf)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b, []byte{'\n'})), nil
}

// Personality returns /proc/PID/personality.
func Personality(pid int) (uint32, error) {
	path := pidPath(pid, "personality")
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return 0, err
	}
	v, ok := parseUint(trimSpace(b), 16)
	if !ok || v > 1<<32-1 {
		return 0, parseError(path, b)
	}
	return uint32(v), nil
}

// Exe returns the target of /proc/PID/exe (with " (deleted)" if so).
func Exe(pid int) (string, error) { return os.Readlink(pidPath(pid, "exe")) }

// Cwd returns the target of /proc/PID/cwd.
func Cwd(pid int) (string, error) { return os.Readlink(pidPath(pid, "cwd")) }

// Root returns the target of /proc/PID/root.
func Root(pid int) (string, error) { return os.Readlink(pidPath(pid, "root")) }

// Cmdline returns the arguments in /proc/PID/cmdline. It is empty for
// kernel threads and zombies.
func Cmdline(pid int) ([]string, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(pidPath(pid, "cmdline"), buf)
	if err != nil {
		return nil, err
	}
	return splitNUL(b), nil
}

func splitNUL(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	out := make([]string, 0, bytes.Count(b, []byte{0})+1)
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(out, string(b))
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
}

// Limit is one resource limit; RLIM_INFINITY is ^uint64(0).
type Limit struct{ Cur, Max uint64 }

// NumLimits is the number of resource limits (RLIM_NLIMITS).
const NumLimits = 16

// Limits returns the 16 resource limits of a process, indexed by
// unix.RLIMIT_*. It uses prlimit(2); where that is refused (EPERM: the
// target has other credentials and we lack CAP_SYS_RESOURCE) it parses
// /proc/PID/limits instead.
func Limits(pid int) ([NumLimits]Limit, error) {
	var ls [NumLimits]Limit
	for r := range ls {
		var old unix.Rlimit
		err := unix.Prlimit(pid, r, nil, &old)
		for err == unix.EINTR {
			err = unix.Prlimit(pid, r, nil, &old)
		}
		if err == unix.EPERM {
			return limitsFromProc(pid)
		}
		if err != nil {
			return ls, os.NewSyscallError("prlimit", err)
		}
		ls[r] = Limit{old.Cur, old.Max}
	}
	return ls, nil
}

func limitsFromProc(pid int) ([NumLimits]Limit, error) {
	var ls [NumLimits]Limit
	path := pidPath(pid, "limits")
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return ls, err
	}
	if err := parseLimits(&ls, b); err != nil {
		return ls, &os.PathError{Op: "parse", Path: path, Err: err}
	}
	return ls, nil
}

// parseLimits parses /proc/PID/limits: a header line, then one line per
// resource in RLIMIT_* order, the name padded to 25 columns.
func parseLimits(ls *[NumLimits]Limit, b []byte) error {
	_, b = nextLine(b) // header
	for r := range ls {
		var line []byte
		line, b = nextLine(b)
		if len(line) < 26 {
			return errSyntax
		}
		cur, rest := field(line[25:])
		max, _ := field(rest)
		var ok bool
		if ls[r].Cur, ok = parseLimitValue(cur); !ok {
			return errSyntax
		}
		if ls[r].Max, ok = parseLimitValue(max); !ok {
			return errSyntax
		}
	}
	return nil
}

func parseLimitValue(b []byte) (uint64, bool) {
	if string(b) == "unlimited" {
		return unix.RLIM_INFINITY, true
	}
	return parseUint(b, 10)
}

// Timers returns /proc/PID/timers (the POSIX timers of the process) as
// it is, "" when there are none.
func Timers(pid int) (string, error) { return readString(pidPath(pid, "timers")) }

// A PosixTimer is one timer of timer_create(2) as /proc/PID/timers shows
// it.
type PosixTimer struct {
	ID     int
	Signo  int
	Value  uint64 // sigev_value
	Notify int    // sigev_notify: SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, each maybe | SIGEV_THREAD_ID
	Target int    // the PID or, with SIGEV_THREAD_ID, the thread that gets the signal
	Clock  int
}

// PosixTimers parses /proc/PID/timers.
// A kernel without /proc/PID/timers (no CONFIG_CHECKPOINT_RESTORE) tells
// nothing: no timers.
func PosixTimers(pid int) ([]PosixTimer, error) {
	s, err := Timers(pid)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(pidPath(pid, "")); serr == nil {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return parsePosixTimers(s)
}

// parsePosixTimers parses the contents of /proc/PID/timers: per timer,
// "ID: N", "signal: SIGNO/VALUE" (VALUE in hex), "notify: KIND/pid.P" or
// "notify: KIND/tid.T", "ClockID: C".
func parsePosixTimers(s string) ([]PosixTimer, error) {
	var ts []PosixTimer
	bad := func(line string) error { return fmt.Errorf("/proc/PID/timers: unexpected line %q", line) }
	for _, line := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(line, ": ")
		if line == "" {
			continue
		}
		if !ok {
			return nil, bad(line)
		}
		if key == "ID" {
			id, err := strconv.Atoi(val)
			if err != nil {
				return nil, bad(line)
			}
			ts = append(ts, PosixTimer{ID: id})
			continue
		}
		if len(ts) == 0 {
			return nil, bad(line)
		}
		t := &ts[len(ts)-1]
		var err error
		switch key {
		case "signal":
			signo, value, _ := strings.Cut(val, "/")
			if t.Signo, err = strconv.Atoi(signo); err == nil {
				t.Value, err = strconv.ParseUint(value, 16, 64)
			}
		case "notify":
			kind, target, _ := strings.Cut(val, "/")
			notify, ok := map[string]int{"signal": 0, "none": 1, "thread": 2}[kind]
			who, num, _ := strings.Cut(target, ".")
			switch {
			case !ok:
				err = bad(line)
			case who == "tid":
				notify |= linux.SIGEV_THREAD_ID
			case who != "pid":
				err = bad(line)
			}
			t.Notify = notify
			if err == nil {
				t.Target, err = strconv.Atoi(num)
			}
		case "ClockID":
			t.Clock, err = strconv.Atoi(val)
		}
		if err != nil {
			return nil, bad(line)
		}
	}
	return ts, nil
}

// ChildrenOf returns the sorted PIDs of the children of every thread of
// pid, from /proc/PID/task/*/children.
func ChildrenOf(pid int) ([]int, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	buf := getBuf()
	defer putBuf(buf)
	var out []int
	for _, tid := range tids {
		b, err := readInto(taskPath(pid, tid, "children"), buf)
		if err != nil {
			if os.IsNotExist(err) { // thread exited meanwhile
				continue
			}
			return nil, err
		}
		l, ok := parseIntList(b)
		if !ok {
			return nil, parseError(taskPath(pid, tid, "children"), b)
		}
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// FindByName returns the sorted PIDs of the processes whose comm is
// name, or whose executable or argv[0] has the base name name. The
// calling process is left out.
func FindByName(name string) ([]int, error) {
	pids, err := listNumeric("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	buf := getBuf()
	defer putBuf(buf)
	var out []int
	for _, pid := range pids {
		if pid == self {
			continue
		}
		if b, err := readInto(pidPath(pid, "comm"), buf); err == nil &&
			string(bytes.TrimSuffix(b, []byte{'\n'})) == name {
			out = append(out, pid)
			continue
		}
		if exe, err := Exe(pid); err == nil &&
			filepath.Base(strings.TrimSuffix(exe, deletedSuffix)) == name {
			out = append(out, pid)
			continue
		}
		if b, err := readInto(pidPath(pid, "cmdline"), buf); err == nil && len(b) > 0 {
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			if i := bytes.LastIndexByte(b, '/'); i >= 0 {
				b = b[i+1:]
			}
			if string(b) == name {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// TimeOffsets are what process pid's time namespace adds to
// CLOCK_MONOTONIC and CLOCK_BOOTTIME, in ns ("monotonic SECS NSECS" and
// "boottime SECS NSECS" lines of timens_offsets; all zero outside one,
// or when the file cannot be read).
func TimeOffsets(pid int) (monotonic, boottime int64) {
	b, _ := os.ReadFile(pidPath(pid, "timens_offsets"))
	for _, line := range strings.Split(string(b), "\n") {
		var name string
		var sec, nsec int64
		if n, _ := fmt.Sscan(line, &name, &sec, &nsec); n != 3 {
			continue
		}
		switch name {
		case "monotonic":
			monotonic += sec*1e9 + nsec
		case "boottime":
			boottime += sec*1e9 + nsec
		}
	}
	return monotonic, boottime
}

// Mount is a line of /proc/PID/mountinfo.
type Mount struct {
	Dev   uint64 // the file system's device (unix.Mkdev of "major:minor")
	Root  string // the folder of the file system mounted there
	Point string // where it is mounted, in the process's mount namespace
}

// Mounts lists the mounts of process pid's mount namespace.
func Mounts(pid int) ([]Mount, error) {
	b, err := os.ReadFile(pidPath(pid, "mountinfo"))
	if err != nil {
		return nil, err
	}
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(f[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		out = append(out, Mount{Dev: unix.Mkdev(major, minor), Root: unescapeOctal(f[3]), Point: unescapeOctal(f[4])})
	}
	return out, nil
}

// unescapeOctal undoes the \ooo escapes of mountinfo's paths (a space is
// \040).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
