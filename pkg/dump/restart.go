package dump

import (
	"golang.org/x/sys/unix"

	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// A thread that a signal or a stop interrupted in poll(2) or a timed
// futex wait goes on in restart_syscall(2): the kernel keeps which call
// it was, and what is left of its timeout, in the task's restart_block,
// which no interface shows and no restore can make again. Its registers
// still hold the call's arguments, though, and while it sleeps there its
// kernel stack names the function that goes on with the call: seen before
// the thread is seized, that tells the call, and the image gets registers
// that make that call again (with its whole timeout, as any other call
// made again does) rather than an EINTR the program never had. Such a
// thread is common: a process that an earlier procs-dump -K froze goes
// on so. Reading a kernel stack needs root; without it, the EINTR stays
// (ptrace.FixRestart).

// restartCalls are the functions restart_syscall runs for a call that is
// made again, by the call.
var restartCalls = map[string]int{
	"do_restart_poll":    unix.SYS_POLL,
	"futex_wait_restart": unix.SYS_FUTEX,
}

// noteRestart records the call thread tid goes on with, when it is
// blocked in restart_syscall and its kernel stack tells which call that
// is. Called before tid is seized: once stopped, its stack is the stop's.
func (f *frozen) noteRestart(tid int) {
	sc, ok := procfs.ReadSyscall(f.pid, tid)
	if !ok || sc.Nr != unix.SYS_RESTART_SYSCALL {
		return
	}
	fns, err := procfs.KernelStack(f.pid, tid)
	if err != nil {
		return
	}
	for _, fn := range fns {
		if nr, ok := restartCalls[fn]; ok {
			sc.Nr = nr
			if f.restarts == nil {
				f.restarts = map[int]procfs.Syscall{}
			}
			f.restarts[tid] = sc
			return
		}
	}
}

// restartedCall turns r, the registers of thread tid stopped in
// restart_syscall, into those of the call noteRestart saw it go on with:
// only when they are the same arguments, stack and place, so the thread
// did not leave that call and block again in another between the two
// looks.
func (f *frozen) restartedCall(tid int, r *ptrace.Regs) {
	sc, ok := f.restarts[tid]
	if !ok || int64(r.Orig_rax) != unix.SYS_RESTART_SYSCALL || int64(r.Rax) != -linux.ERESTART_RESTARTBLOCK {
		return
	}
	if sc.Args != [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9} || sc.SP != r.Rsp || sc.PC != r.Rip {
		return
	}
	r.Orig_rax = uint64(sc.Nr)
}
