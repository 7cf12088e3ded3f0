package restore

import "procs/pkg/ptrace"

// Kernel-internal return values of a system call interrupted by a stop.
const (
	errRestartSys     = -512
	errRestartNoIntr  = -513
	errRestartNoHand  = -514
	errRestartBlock   = -516
	errIntr           = -4
	sysRestartSyscall = 219
)

// fixRestart turns the registers of a thread stopped inside a system call
// into ones that make the call again once the thread runs: the kernel's
// restart bookkeeping (restart_block) stayed in the old process. A call
// that can only go on through restart_syscall, with nothing left to tell
// which call it was, returns EINTR instead. The result has orig_rax = -1
// so the kernel does no restart handling of its own.
func fixRestart(r *ptrace.Regs) {
	nr := int64(r.Orig_rax)
	if nr < 0 {
		return
	}
	r.Orig_rax = ^uint64(0)
	switch int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartBlock:
		if nr == sysRestartSyscall {
			r.Rax = ^uint64(3) // -EINTR
			return
		}
		// Re-issue the call with its original arguments (a relative
		// sleep starts over; absolute ones and blocking reads simply
		// go on).
		r.Rax = uint64(nr)
		r.Rip -= 2
	}
}
