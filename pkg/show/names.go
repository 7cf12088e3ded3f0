package show

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// archName names an ELF machine.
func archName(m int) string {
	switch m {
	case 62:
		return "x86-64"
	case 183:
		return "aarch64"
	case 243:
		return "riscv64"
	case 3:
		return "i386"
	}
	return fmt.Sprintf("ELF machine %d", m)
}

func policyName(p int) string {
	switch p {
	case unix.SCHED_NORMAL:
		return "other"
	case unix.SCHED_FIFO:
		return "fifo"
	case unix.SCHED_RR:
		return "rr"
	case unix.SCHED_BATCH:
		return "batch"
	case unix.SCHED_IDLE:
		return "idle"
	case unix.SCHED_DEADLINE:
		return "deadline"
	}
	return fmt.Sprintf("policy %d", p)
}

func clockName(c int) string {
	switch c {
	case unix.CLOCK_REALTIME:
		return "realtime"
	case unix.CLOCK_MONOTONIC:
		return "monotonic"
	case unix.CLOCK_BOOTTIME:
		return "boottime"
	case unix.CLOCK_REALTIME_ALARM:
		return "realtime_alarm"
	case unix.CLOCK_BOOTTIME_ALARM:
		return "boottime_alarm"
	case unix.CLOCK_TAI:
		return "tai"
	}
	return fmt.Sprintf("clock %d", c)
}

// notifyName names a sigev_notify.
func notifyName(n int) string {
	switch n {
	case 0:
		return "signal"
	case 1:
		return "none"
	case 2:
		return "thread"
	case 4:
		return "thread_id"
	}
	return fmt.Sprintf("notify %d", n)
}

// signalName names a signal: "SIGALRM", "SIGRTMIN+3", or its number.
func signalName(s int) string {
	if s <= 0 || s > 64 {
		return fmt.Sprintf("%d", s)
	}
	if n := unix.SignalName(unix.Signal(s)); n != "" {
		return n
	}
	if s == 32 || s == 33 {
		return fmt.Sprintf("SIG%d", s) // glibc's own, below SIGRTMIN
	}
	if s >= 34 {
		return fmt.Sprintf("SIGRTMIN+%d", s-34)
	}
	return fmt.Sprintf("%d", s)
}

// syscallNames names the x86-64 system calls a stopped thread is most
// often in.
var syscallNames = map[int]string{
	0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 23: "select",
	34: "pause", 35: "nanosleep", 43: "accept", 45: "recvfrom", 47: "recvmsg",
	61: "wait4", 72: "fcntl", 128: "rt_sigtimedwait", 130: "rt_sigsuspend",
	202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid",
	270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4",
	441: "epoll_pwait2",
}
