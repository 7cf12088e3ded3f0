package inject

import (
	"fmt"

	"golang.org/x/sys/unix"

	"procs/pkg/ptrace"
)

// Remote runs system calls inside a stopped thread of another process by
// pointing it at a syscall instruction and single-stepping over it. The
// thread's registers and signal mask are saved when the Remote is made and
// put back by Restore. All signals are blocked while calls run, so no
// handler of the target runs on the borrowed registers.
//
// Precondition: the OS thread must be locked and be tid's tracer.
type Remote struct {
	TID  int
	Insn uint64 // address of a 0f 05 (syscall) instruction in the target

	saved     ptrace.Regs
	savedMask uint64
	restored  bool
	tramp     *Trampoline
	frame     frame
	parked    ptrace.Regs // where the thread waits between calls (trampoline mode)

	// NewTIDs collects threads or processes created by injected clone
	// calls (reported through PTRACE_EVENT_CLONE/FORK).
	NewTIDs []int
	// Signals collects signals whose delivery stop was met while running
	// calls; the caller re-sends them after detaching.
	Signals []unix.Signal
}

// NewRemote prepares tid for injected calls. tid must be in a ptrace stop.
func NewRemote(tid int, insn uint64) (*Remote, error) {
	r := &Remote{TID: tid, Insn: insn}
	var err error
	if r.saved, err = ptrace.GetRegs(tid); err != nil {
		return nil, err
	}
	if r.savedMask, err = ptrace.GetSigmask(tid); err != nil {
		return nil, err
	}
	if err := ptrace.SetSigmask(tid, ^uint64(0)); err != nil {
		return nil, err
	}
	return r, nil
}

// NewSafeRemote prepares tid for injected calls through a trampoline,
// which brings the thread back on its own if the tracer dies at any time.
// The order of the steps keeps that true at every instant: the frame is
// written first, then the thread is parked on the trampoline, and only
// then are its signals blocked.
func NewSafeRemote(tid int, t *Trampoline) (*Remote, error) {
	r := &Remote{TID: tid, Insn: t.Code, tramp: t}
	var err error
	if r.saved, err = ptrace.GetRegs(tid); err != nil {
		return nil, err
	}
	if r.savedMask, err = ptrace.GetSigmask(tid); err != nil {
		return nil, err
	}
	if r.frame, err = t.take(); err != nil {
		return nil, err
	}
	if err := t.arm(r.frame, tid, r.saved, r.savedMask); err != nil {
		t.give(r.frame)
		return nil, err
	}
	r.parked = r.saved
	r.parked.Rip = t.Code
	r.parked.Rax = 39 // getpid: harmless if the thread runs on its own
	r.parked.Orig_rax = ^uint64(0)
	r.parked.Rsp = r.frame.addr + 8
	if err := ptrace.SetRegs(tid, &r.parked); err != nil {
		return nil, err
	}
	r.restored = false
	if err := ptrace.SetSigmask(tid, ^uint64(0)); err != nil {
		r.Restore()
		return nil, err
	}
	return r, nil
}

// Restore puts back the thread's registers and signal mask.
func (r *Remote) Restore() error {
	if r.restored {
		return nil
	}
	// Mask first: until the registers are back, a thread let go by a
	// dead tracer still returns through the trampoline's frame.
	if err := ptrace.SetSigmask(r.TID, r.savedMask); err != nil {
		return err
	}
	if err := ptrace.SetRegs(r.TID, &r.saved); err != nil {
		return err
	}
	if r.tramp != nil {
		r.tramp.give(r.frame)
	}
	r.restored = true
	return nil
}

// Forget makes Restore a no-op: the thread's registers will be set by the
// caller.
func (r *Remote) Forget() { r.restored = true }

// DetachInto sets the thread to make system call nr with args as soon as
// it runs, with signal mask mask, and lets it go: for a call that does
// not come back (execve), whose result the caller learns otherwise.
func (r *Remote) DetachInto(mask uint64, nr uintptr, args ...uint64) error {
	regs := r.callRegs(nr, args)
	if err := ptrace.SetRegs(r.TID, &regs); err != nil {
		return err
	}
	if err := ptrace.SetSigmask(r.TID, mask); err != nil {
		return err
	}
	r.restored = true
	return ptrace.Detach(r.TID, 0)
}

// SyscallError is a failed injected call.
type SyscallError struct {
	Name  string
	Errno unix.Errno
}

func (e *SyscallError) Error() string { return fmt.Sprintf("%s in target: %v", e.Name, e.Errno) }
func (e *SyscallError) Unwrap() error { return e.Errno }

// Syscall runs syscall nr with up to six arguments in the thread and
// returns its result; a result in [-4095, -1] is returned as an error.
func (r *Remote) Syscall(name string, nr uintptr, args ...uint64) (uint64, error) {
	ret, err := r.rawSyscall(name, nr, args...)
	if err == nil && int64(ret) < 0 && int64(ret) >= -4095 {
		return 0, &SyscallError{Name: name, Errno: unix.Errno(-int64(ret))}
	}
	return ret, err
}

// callRegs are the thread's registers set to make system call nr with
// args at the syscall instruction.
func (r *Remote) callRegs(nr uintptr, args []uint64) ptrace.Regs {
	regs := r.saved
	if r.tramp != nil {
		regs = r.parked
	}
	regs.Rip = r.Insn
	regs.Rax = uint64(nr)
	regs.Orig_rax = ^uint64(0)
	var a [6]uint64
	copy(a[:], args)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	return regs
}

// rawSyscall is Syscall returning what the call returned, -errno
// included.
func (r *Remote) rawSyscall(name string, nr uintptr, args ...uint64) (uint64, error) {
	regs := r.callRegs(nr, args)
	if err := ptrace.SetRegs(r.TID, &regs); err != nil {
		return 0, err
	}
	r.restored = false
	if err := r.step(); err != nil {
		return 0, fmt.Errorf("%s in target: %w", name, err)
	}
	out, err := ptrace.GetRegs(r.TID)
	if err != nil {
		return 0, err
	}
	if out.Rip != r.Insn+2 {
		return 0, fmt.Errorf("%s in target: thread %d stopped at %#x, not after the syscall at %#x", name, r.TID, out.Rip, r.Insn)
	}
	return out.Rax, nil
}

// step runs the thread over the syscall instruction and waits until the
// call is done, handling the stops that may come first. A trampoline
// thread goes through syscall-entry and syscall-exit stops: unlike a
// single-step trap, they leave nothing behind if the tracer dies (the
// kernel clears syscall tracing on detach, but not the trap flag).
func (r *Remote) step() error {
	if r.tramp != nil {
		for _, what := range []string{"entry", "exit"} {
			if err := r.syscallStop(what); err != nil {
				return err
			}
		}
		return nil
	}
	sig := 0
	for {
		if err := ptrace.SingleStep(r.TID, sig); err != nil {
			return err
		}
		sig = 0
		ws, err := ptrace.Wait(r.TID)
		if err != nil {
			return err
		}
		if !ws.Stopped() {
			return &ptrace.StopError{TID: r.TID, Status: ws}
		}
		switch s := ws.StopSignal(); {
		case s == unix.SIGTRAP && ws.TrapCause() <= 0:
			return nil
		case s == unix.SIGTRAP:
			switch ws.TrapCause() {
			case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
				m, err := ptrace.GetEventMsg(r.TID)
				if err != nil {
					return err
				}
				r.NewTIDs = append(r.NewTIDs, int(m))
			}
			// other events (EVENT_STOP from a late interrupt): step again
		case ptrace.StopEvent(ws) == unix.PTRACE_EVENT_STOP:
			// a group-stop or interrupt notification: step again
		default:
			if err := r.hold(s); err != nil {
				return err
			}
		}
	}
}

// syscallStop resumes the thread until its next syscall stop (it must be
// seized with PTRACE_O_TRACESYSGOOD).
func (r *Remote) syscallStop(what string) error {
	for {
		if err := ptrace.ContSyscall(r.TID, 0); err != nil {
			return err
		}
		ws, err := ptrace.Wait(r.TID)
		if err != nil {
			return err
		}
		if !ws.Stopped() {
			return &ptrace.StopError{TID: r.TID, Status: ws}
		}
		if ws.StopSignal() == unix.SIGTRAP|0x80 {
			return nil
		}
		if err := r.passStop(ws); err != nil {
			return fmt.Errorf("at syscall %s: %w", what, err)
		}
	}
}

// passStop deals with a stop that is not the one waited for: a thread
// gone is an error, a signal's delivery stop is held back (hold), an
// event or an interrupt is passed over. The caller resumes the thread.
func (r *Remote) passStop(ws unix.WaitStatus) error {
	if !ws.Stopped() {
		return &ptrace.StopError{TID: r.TID, Status: ws}
	}
	if s := ws.StopSignal(); s != unix.SIGTRAP && ptrace.StopEvent(ws) != unix.PTRACE_EVENT_STOP {
		return r.hold(s)
	}
	return nil
}

// hold keeps back a signal met in a delivery stop while a call runs (one
// that cannot be blocked) for the caller to send again after detaching;
// a fault in the injected call is an error.
func (r *Remote) hold(s unix.Signal) error {
	r.Signals = append(r.Signals, s)
	if s == unix.SIGSEGV || s == unix.SIGBUS || s == unix.SIGILL {
		return fmt.Errorf("thread %d faulted with %v", r.TID, s)
	}
	return nil
}
