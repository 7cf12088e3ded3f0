package dump

import (
	"errors"
	"fmt"
	"sort"

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
}

func freeze(pid int) (*frozen, error) {
	f := &frozen{pid: pid, held: map[int][]unix.Signal{}}
	seized := map[int]bool{}
	for {
		tids, err := procfs.Tasks(pid)
		if err != nil {
			f.release()
			return nil, err
		}
		var fresh []int
		for _, tid := range tids {
			if seized[tid] {
				continue
			}
			if err := ptrace.Seize(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				f.release()
				if errors.Is(err, unix.EPERM) {
					return nil, fmt.Errorf("cannot attach to thread %d (is it traced by another process?): %w", tid, err)
				}
				return nil, err
			}
			seized[tid] = true
			f.tids = append(f.tids, tid)
			if err := ptrace.Interrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				f.release()
				return nil, err
			}
			fresh = append(fresh, tid)
		}
		for _, tid := range fresh {
			if err := f.waitStop(tid); err != nil {
				f.release()
				return nil, err
			}
		}
		if len(fresh) == 0 {
			break
		}
	}
	// Threads that exited were dropped by waitStop.
	sort.Slice(f.tids, func(i, j int) bool {
		if (f.tids[i] == pid) != (f.tids[j] == pid) {
			return f.tids[i] == pid
		}
		return f.tids[i] < f.tids[j]
	})
	if len(f.tids) == 0 || f.tids[0] != pid {
		f.release()
		return nil, fmt.Errorf("process %d has no main thread (it exited)", pid)
	}
	return f, nil
}

// waitStop waits until tid is in the stop PTRACE_INTERRUPT asked for. A
// signal met on the way is delivered, as it would have been without us.
func (f *frozen) waitStop(tid int) error {
	for {
		ws, err := ptrace.Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return f.gone(tid)
		case ws.Stopped() && ws.TrapCause() == ptrace.EventStop:
			if s := ws.StopSignal(); s != unix.SIGTRAP {
				// A group stop: the process was being stopped.
				return fmt.Errorf("process %d is stopped by %v: continue it before dumping", f.pid, s)
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

// maxVdsoSteps bounds leaveVdso: vDSO functions are a few dozen
// instructions, and loop only while the kernel updates the time.
const maxVdsoSteps = 10000

// leaveVdso lets thread tid, if it was stopped in user code in [lo, hi)
// (the vDSO), run one instruction at a time until it is out. A restore on
// another kernel build keeps the old vDSO's code only as jumps to the new
// one at each function's start (see procs/pkg/vdso): a thread resumed in
// the middle of a function would run old code on new data. Signals met
// meanwhile are held. The thread ends in an interrupt stop, as freeze
// left it.
func (f *frozen) leaveVdso(tid int, lo, hi uint64) error {
	stepped := false
	for i := range maxVdsoSteps {
		regs, err := ptrace.GetRegs(tid)
		if err != nil {
			return err
		}
		if regs.Rip < lo || regs.Rip >= hi {
			break
		}
		if i == 0 && int64(regs.Orig_rax) >= 0 {
			return nil // in a system call, restarted as it is
		}
		if err := ptrace.Step(tid, 0); err != nil {
			return err
		}
		stepped = true
		ws, err := ptrace.Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return f.gone(tid)
		case ws.Stopped() && ws.TrapCause() == ptrace.EventStop:
			return fmt.Errorf("process %d was stopped while being frozen", f.pid)
		case ws.Stopped() && ws.StopSignal() != unix.SIGTRAP:
			f.held[tid] = append(f.held[tid], ws.StopSignal())
		}
	}
	if !stepped {
		return nil
	}
	if err := ptrace.Interrupt(tid); err != nil {
		return err
	}
	if err := ptrace.Cont(tid, 0); err != nil {
		return err
	}
	return f.waitStop(tid)
}

// gone forgets thread tid, which exited: an error if it was the main
// thread.
func (f *frozen) gone(tid int) error {
	f.drop(tid)
	if tid == f.pid {
		return fmt.Errorf("process %d exited while being frozen", f.pid)
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

// kill kills the frozen process and waits until every thread is gone.
func (f *frozen) kill() error {
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
