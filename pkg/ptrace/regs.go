package ptrace

import (
	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// RegsToWords returns r as the linux.NumUserRegs words of struct user_regs_struct, in
// the kernel's order.
func RegsToWords(r *Regs) []uint64 {
	return []uint64{r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10,
		r.R9, r.R8, r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Orig_rax, r.Rip,
		r.Cs, r.Eflags, r.Rsp, r.Ss, r.Fs_base, r.Gs_base, r.Ds, r.Es, r.Fs, r.Gs}
}

// WordsToRegs is the inverse of RegsToWords; ok is false when w is not
// linux.NumUserRegs words long.
func WordsToRegs(w []uint64) (r Regs, ok bool) {
	if len(w) != linux.NumUserRegs {
		return r, false
	}
	r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
	r.R9, r.R8, r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Orig_rax, r.Rip = w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15], w[16]
	r.Cs, r.Eflags, r.Rsp, r.Ss, r.Fs_base, r.Gs_base, r.Ds, r.Es, r.Fs, r.Gs = w[17], w[18], w[19], w[20], w[21], w[22], w[23], w[24], w[25], w[26]
	return r, true
}

// FixRestart turns the registers of a thread stopped inside a system call
// into ones that make the call again once the thread runs without the
// kernel's restart bookkeeping (restart_block stays with the kernel task):
// the call is issued again with its original arguments (a relative sleep
// starts over; absolute sleeps and blocking reads simply go on). A call
// that can only go on through restart_syscall, with nothing left to tell
// which call it was, returns EINTR instead. The result has orig_rax = -1.
func FixRestart(r *Regs) {
	nr := int64(r.Orig_rax)
	if nr < 0 {
		return
	}
	r.Orig_rax = ^uint64(0)
	switch int64(r.Rax) {
	case -linux.ERESTARTSYS, -linux.ERESTARTNOINTR, -linux.ERESTARTNOHAND, -linux.ERESTART_RESTARTBLOCK:
		if nr == unix.SYS_RESTART_SYSCALL {
			r.Rax = ^uint64(3) // -EINTR
			return
		}
		r.Rax = uint64(nr)
		r.Rip -= 2
	}
}
