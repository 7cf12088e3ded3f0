package dump

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// frozen is a process whose every thread is seized and in a ptrace stop.
// Precondition for every method: the OS thread is the tracer's.
type frozen struct {
	pid  int
	tids []int // main thread first
	// held are signals met in a delivery stop that were not delivered;
	// they are sent again after detaching.
	held map[int][]unix.Signal
	// seized are the threads ever seized, exited ones too.
	seized map[int]bool
	// children are its children when the tree was frozen (frozen too).
	children []int
	ppid     int // its parent, once the tree is sorted
	// stopped is the signal that stopped the process (job control),
	// which its threads report in their group stop; 0 when it runs.
	// Detached, it stops again.
	stopped unix.Signal
	// zombie: a member of the tree that has exited, and that its
	// parent has not waited for. It has no thread to seize (tids is
	// empty): it cannot change while its parent is frozen.
	zombie bool
	// restarts are the calls threads went on with in restart_syscall
	// when seized (noteRestart).
	restarts map[int]procfs.Syscall
}

func freeze(pid int) (*frozen, error) {
	f := &frozen{pid: pid, held: map[int][]unix.Signal{}, seized: map[int]bool{}}
	if err := f.seizeAll(); err != nil {
		f.release()
		return nil, err
	}
	return f, nil
}

// seizeAll seizes and stops every thread of the process not yet in
// f.tids, until a listing of its threads shows no new one, and sorts
// f.tids main thread first.
func (f *frozen) seizeAll() error {
	for {
		tids, err := procfs.Tasks(f.pid)
		if err != nil {
			return err
		}
		var fresh []int
		for _, tid := range tids {
			if f.seized[tid] {
				continue
			}
			f.noteRestart(tid)
			if err := ptrace.Seize(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				if errors.Is(err, unix.EPERM) {
					return fmt.Errorf("cannot attach to thread %d (is it traced by another process?): %w", tid, err)
				}
				return err
			}
			f.seized[tid] = true
			f.tids = append(f.tids, tid)
			if err := ptrace.Interrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			fresh = append(fresh, tid)
		}
		for _, tid := range fresh {
			if err := f.waitStop(tid); err != nil {
				return err
			}
		}
		if len(fresh) == 0 {
			break
		}
	}
	// Threads that exited were dropped by waitStop.
	sort.Slice(f.tids, func(i, j int) bool {
		if (f.tids[i] == f.pid) != (f.tids[j] == f.pid) {
			return f.tids[i] == f.pid
		}
		return f.tids[i] < f.tids[j]
	})
	if len(f.tids) == 0 || f.tids[0] != f.pid {
		return &exitedError{f.pid, "has no main thread (it exited)"}
	}
	return nil
}

// exitedError is a process that exited while procs-dump froze it.
type exitedError struct {
	pid int
	how string
}

func (e *exitedError) Error() string { return fmt.Sprintf("process %d %s", e.pid, e.how) }

// waitStop waits until tid is in the stop PTRACE_INTERRUPT asked for. A
// signal met on the way is delivered, as it would have been without us.
// A process stopped by job control reports its stop signal there instead
// (a group stop), which f.stopped records.
func (f *frozen) waitStop(tid int) error {
	for {
		ws, err := ptrace.Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return f.gone(tid)
		case ws.Stopped() && ptrace.StopEvent(ws) == unix.PTRACE_EVENT_STOP:
			if s := ws.StopSignal(); s != unix.SIGTRAP {
				// A group stop: the process is stopped, or was
				// being stopped.
				f.stopped = s
			}
			return nil
		case ws.Stopped():
			// A signal-delivery stop: let the signal through.
			if err := ptrace.Cont(tid, int(ws.StopSignal())); err != nil {
				return err
			}
		}
	}
}

// leaveVdso lets each thread stopped in user code inside [lo, hi), the
// vDSO, run on until it stops outside. A restore on another kernel build
// keeps the old vDSO's code only as jumps to the new one at the start of
// each function (see procs/pkg/vdso): a thread resumed in the middle of
// one would run old code on new data.
//
// Such a thread runs free for a moment and is stopped again, up to
// maxVdsoRuns times (and else is saved where it is: the image still
// restores on this kernel build). Single steps would stop it sooner, but
// a thread stopped by a step has a SIGTRAP pending, which kills the
// process if procs-dump dies then; a thread that runs or is stopped by
// PTRACE_INTERRUPT just goes on. What the thread does meanwhile it would
// have done anyway: threads it made are seized like the others, and a
// child process it made ends the dump.
//
// A thread in [pad, hi), the vDSO's padding, is on its way back from the
// trampoline of a procs-dump that died (see vdsopad.go): it runs, system
// calls and all, until it is back, within maxTrampolineReturn.
func (f *frozen) leaveVdso(lo, pad, hi uint64) error {
	ran := false
	for _, tid := range slices.Clone(f.tids) {
		var deadline time.Time
		first := time.Now()
		for i := 0; slices.Contains(f.tids, tid); i++ {
			regs, err := ptrace.GetRegs(tid)
			if err != nil {
				return err
			}
			wait := 20 * time.Microsecond
			if regs.Rip >= pad && regs.Rip < hi {
				if deadline.IsZero() {
					deadline = time.Now().Add(maxTrampolineReturn)
				} else if time.Now().After(deadline) {
					return fmt.Errorf("thread %d is still in the trampoline of a procs-dump that died (at %#x)", tid, regs.Rip)
				}
				wait = time.Millisecond
			} else if regs.Rip < lo || regs.Rip >= hi || int64(regs.Orig_rax) >= 0 || i >= maxVdsoRuns && time.Since(first) >= maxVdsoTime {
				break // outside, or in a system call, made again as it is
			}
			ran = true
			if err := ptrace.Cont(tid, 0); err != nil {
				return err
			}
			unix.Nanosleep(&unix.Timespec{Nsec: wait.Nanoseconds()}, nil)
			if err := ptrace.Interrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			if err := f.waitStop(tid); err != nil {
				return err
			}
		}
	}
	if !ran {
		return nil
	}
	if err := f.seizeAll(); err != nil {
		return err
	}
	if kids, err := procfs.ChildrenOf(f.pid); err == nil {
		if i := slices.IndexFunc(kids, func(k int) bool { return !slices.Contains(f.children, k) }); i >= 0 {
			return &refusal{fmt.Sprintf("process %d made a child process (%d) while being frozen", f.pid, kids[i])}
		}
	}
	return nil
}

// maxTrampolineReturn bounds the wait for a thread to come back from the
// trampoline of a procs-dump that died: the sleep of a batch
// (inject.Batch) is at most a second.
const maxTrampolineReturn = 2 * time.Second

// maxVdsoRuns and maxVdsoTime bound how often and how long leaveVdso
// lets one thread run: a thread that calls the vDSO in a loop is found
// outside it one time in a few, when it ran; on a busy machine it may
// not get a CPU in the moment it is let go, so the runs go on for at
// least maxVdsoTime.
const (
	maxVdsoRuns = 200
	maxVdsoTime = 200 * time.Millisecond
)

// gone forgets thread tid, which exited: an error if it was the main
// thread.
func (f *frozen) gone(tid int) error {
	f.drop(tid)
	if tid == f.pid {
		return &exitedError{f.pid, "exited while being frozen"}
	}
	return nil
}

func (f *frozen) drop(tid int) {
	for i, t := range f.tids {
		if t == tid {
			f.tids = append(f.tids[:i], f.tids[i+1:]...)
			return
		}
	}
}

// release detaches every thread, letting the process go on as before.
func (f *frozen) release() {
	for _, tid := range f.tids {
		ptrace.Detach(tid, 0)
	}
	for tid, sigs := range f.held {
		for _, s := range sigs {
			unix.Tgkill(f.pid, tid, s)
		}
	}
	f.tids = nil
}

// kill kills the frozen process and waits until every thread is gone. A
// zombie goes with its parent.
func (f *frozen) kill() error {
	if f.zombie {
		return nil
	}
	if err := unix.Kill(f.pid, unix.SIGKILL); err != nil {
		return err
	}
	// The leader's exit is reported after every other thread's.
	for i := len(f.tids) - 1; i >= 0; i-- {
		tid := f.tids[i]
		for {
			ws, err := ptrace.Wait(tid)
			if err != nil || ws.Exited() || ws.Signaled() {
				break
			}
			ptrace.Cont(tid, 0)
		}
	}
	f.tids = nil
	return nil
}
