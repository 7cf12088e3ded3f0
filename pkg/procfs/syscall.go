package procfs

import (
	"strings"
)

// Syscall is what /proc/PID/task/TID/syscall says of a thread blocked in
// a system call: its number, its six arguments, and the user stack
// pointer and instruction pointer it will go back to.
type Syscall struct {
	Nr     int
	Args   [6]uint64
	SP, PC uint64
}

// ReadSyscall reads the system call thread tid of process pid is blocked
// in; ok is false when it runs, is in no call, or the file cannot be
// read (another user's thread).
func ReadSyscall(pid, tid int) (sc Syscall, ok bool) {
	s, err := readString(taskPath(pid, tid, "syscall"))
	if err != nil {
		return sc, false
	}
	f := strings.Fields(s)
	if len(f) != 9 {
		return sc, false // "running", or "-1 SP PC": in no call
	}
	nr, ok := parseInt([]byte(f[0]))
	if !ok || nr < 0 {
		return sc, false
	}
	sc.Nr = int(nr)
	vals := make([]uint64, 8)
	for i, s := range f[1:] {
		v, ok := parseUint([]byte(strings.TrimPrefix(s, "0x")), 16)
		if !ok {
			return sc, false
		}
		vals[i] = v
	}
	copy(sc.Args[:], vals[:6])
	sc.SP, sc.PC = vals[6], vals[7]
	return sc, true
}

// KernelStack returns the kernel functions of /proc/PID/task/TID/stack,
// innermost first ("[<0>] do_sys_poll+0x437/0x5c0" gives do_sys_poll).
// Only root may read it.
func KernelStack(pid, tid int) ([]string, error) {
	s, err := readString(taskPath(pid, tid, "stack"))
	if err != nil {
		return nil, err
	}
	var fns []string
	for _, l := range strings.Split(s, "\n") {
		_, fn, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		fn, _, _ = strings.Cut(fn, "+")
		fns = append(fns, fn)
	}
	return fns, nil
}
