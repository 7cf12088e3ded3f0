// Threads: each thread's registers and state.

package dump

import (
	"fmt"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

func (c *collector) collectThreads() error {
	for _, tid := range c.f.tids {
		regs, err := ptrace.GetRegs(tid)
		if err != nil {
			return err
		}
		c.f.restartedCall(tid, &regs)
		t := format.Thread{TID: tid, Regs: ptrace.RegsToWords(&regs)}
		if t.XState, err = ptrace.GetXState(tid); err != nil {
			return err
		}
		t.XCR0 = ptrace.XFeatures(t.XState)
		if t.Sigmask, err = ptrace.GetSigmask(tid); err != nil {
			return err
		}
		if t.Pending, err = ptrace.PeekSiginfo(tid, false); err != nil {
			return err
		}
		r, err := ptrace.GetRseq(tid)
		if err != nil {
			return err
		}
		t.Rseq = format.Rseq{Addr: r.Addr, Size: r.Size, Sig: r.Sig}
		if t.Robust[0], t.Robust[1], err = ptrace.GetRobustList(tid); err != nil {
			return err
		}
		if t.Comm, err = procfs.Comm(c.pid, tid); err != nil {
			return err
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return fmt.Errorf("sched_getattr(%d): %w", tid, err)
		}
		if err := checkSched(tid, attr); err != nil {
			return err
		}
		t.Policy, t.Priority, t.Nice = int(attr.Policy), int(attr.Priority), int(int32(attr.Nice))
		t.SchedFlags = attr.Flags & schedFlagResetOnFork
		// sched_getattr gives no nice for a real-time thread, which has
		// one all the same (for when it leaves its policy); stat has it.
		st, err := procfs.ReadTaskStat(c.pid, tid)
		if err != nil {
			return err
		}
		t.Nice = st.Nice
		c.p.Threads = append(c.p.Threads, t)
	}
	return nil
}
