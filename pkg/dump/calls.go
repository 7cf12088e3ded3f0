// Injected calls: the state only the process itself can tell, read by
// system calls made in its threads (see inject.Remote and inject.Batch).

package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// inject reads the state only the process itself can tell: signal
// handlers, interval timers, brk, and per thread the alternate signal
// stack and clear_child_tid. It borrows one thread at a time through the
// trampoline (see inject.Trampoline), puts back its registers and mask,
// and puts back the bytes its results were written over.
func (c *collector) inject(status procfs.Status) (err error) {
	scratch, err := c.resultArea()
	if err != nil {
		return err
	}
	orig := make([]byte, scratchSize)
	if err := ptrace.ReadMem(c.pid, scratch, orig); err != nil {
		return err
	}
	tr, err := inject.InstallTrampoline(c.pid, c.vdsoStart, c.vdso)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := tr.Uninstall(); err == nil {
			err = uerr
		}
		if werr := ptrace.WriteMem(c.pid, scratch, orig); err == nil {
			err = werr
		}
	}()
	// One thread at a time is parked on the trampoline, which has one
	// frame: whenever the tracer dies, at most that thread needs it.
	for i, tid := range c.f.tids {
		r, err := inject.NewSafeRemote(tid, tr)
		if err != nil {
			return err
		}
		var calls []call
		if i == 0 {
			calls = c.processCalls(status)
		}
		calls = append(calls, c.threadCalls(&c.p.Threads[i])...)
		err = c.run(r, scratch, calls)
		if rerr := r.Restore(); err == nil {
			err = rerr
		}
		c.f.held[tid] = append(c.f.held[tid], r.Signals...)
		if err != nil {
			return err
		}
	}
	return nil
}

// The result area: slotSize bytes of results per call, then the table of
// a batch (inject.Batch).
const (
	scratchSize = 4096
	slotSize    = 32
	batchCalls  = 24 // calls per batch: 24 slots, and a table that fits after them
	tableOff    = 2048
)

// call is one injected call: its arguments given where its result goes
// (slot), how many bytes of result to read there, and what to do with
// them.
type call struct {
	name string
	nr   uintptr
	args func(slot uint64) [6]uint64
	size int
	done func(ret uint64, out []byte)
}

// run makes calls in the thread of r, in batches (inject.Remote.Batch).
func (c *collector) run(r *inject.Remote, scratch uint64, calls []call) error {
	for len(calls) > 0 {
		chunk := calls[:min(len(calls), batchCalls)]
		calls = calls[len(chunk):]
		list := make([]inject.Call, len(chunk))
		for i, cl := range chunk {
			list[i] = inject.Call{Nr: cl.nr, Args: cl.args(scratch + uint64(i*slotSize))}
		}
		rets, err := r.Batch(scratch+tableOff, list)
		if err != nil {
			return err
		}
		out := make([]byte, len(chunk)*slotSize)
		if err := ptrace.ReadMem(c.pid, scratch, out); err != nil {
			return err
		}
		for i, cl := range chunk {
			if e := int64(rets[i]); e < 0 && e >= -4095 {
				return &inject.SyscallError{Name: cl.name, Errno: unix.Errno(-e)}
			}
			cl.done(rets[i], out[i*slotSize:i*slotSize+cl.size])
		}
	}
	return nil
}

// resultArea picks where injected calls write their results: the first
// bytes of the main thread's stack mapping, below every thread's stack
// pointer (and Go's runtime uses only the top 64 KiB of it). They are dead
// memory to the program; their old contents are put back after.
func (c *collector) resultArea() (uint64, error) {
	for _, m := range c.maps {
		if m.Path != "[stack]" {
			continue
		}
		for _, t := range c.p.Threads {
			if sp := t.Regs[linux.RSP]; sp >= m.Start && sp < m.Start+scratchSize {
				return 0, fmt.Errorf("thread %d runs deep in the main stack (sp %#x): no room to work", t.TID, sp)
			}
		}
		return m.Start, nil
	}
	return 0, errors.New("process has no [stack] mapping")
}

// processCalls read signal handlers, interval timers, POSIX timers and
// brk.
func (c *collector) processCalls(status procfs.Status) []call {
	c.p.Sigactions = make([]format.Sigaction, 64)
	var calls []call
	for sig := 1; sig <= 64; sig++ {
		bit := uint64(1) << (sig - 1)
		switch {
		case status.SigCgt&bit != 0:
			sa := &c.p.Sigactions[sig-1]
			calls = append(calls, call{name: "rt_sigaction", nr: unix.SYS_RT_SIGACTION, size: linux.SizeofSigAction,
				args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(sig), 0, slot, linux.SizeofSigset} },
				done: func(_ uint64, b []byte) {
					var ks linux.SigAction
					ks.Decode(b)
					*sa = format.Sigaction(ks)
				}})
		case status.SigIgn&bit != 0:
			c.p.Sigactions[sig-1] = format.Sigaction{Handler: 1} // SIG_IGN
		}
	}
	for which := 0; which < 3; which++ {
		calls = append(calls, call{name: "getitimer", nr: unix.SYS_GETITIMER, size: linux.SizeofItimer,
			args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(which), slot} },
			done: func(_ uint64, b []byte) {
				it := &c.p.Itimers[which]
				it.IntervalUsec, it.ValueUsec = timerValue(b, 1e6)
			}})
	}
	for i := range c.p.Timers {
		t := &c.p.Timers[i]
		calls = append(calls, call{name: fmt.Sprintf("timer_gettime(%d)", t.ID), nr: unix.SYS_TIMER_GETTIME, size: linux.SizeofItimer,
			args: func(slot uint64) [6]uint64 { return [6]uint64{uint64(t.ID), slot} },
			done: func(_ uint64, b []byte) { t.IntervalNsec, t.ValueNsec = timerValue(b, 1e9) }})
	}
	calls = append(calls, c.exactCalls()...)
	calls = append(calls, c.treeCalls()...)
	calls = append(calls, call{name: "brk", nr: unix.SYS_BRK,
		args: func(uint64) [6]uint64 { return [6]uint64{} },
		done: func(ret uint64, _ []byte) { c.p.MM.Brk = ret }})
	return calls
}

// threadCalls read a thread's alternate signal stack and clear_child_tid.
func (c *collector) threadCalls(t *format.Thread) []call {
	le := binary.LittleEndian
	return []call{
		{name: "sigaltstack", nr: unix.SYS_SIGALTSTACK, size: linux.SizeofStackT,
			args: func(slot uint64) [6]uint64 { return [6]uint64{0, slot} },
			done: func(_ uint64, b []byte) {
				var ss linux.StackT
				ss.Decode(b)
				t.Altstack = format.Altstack{SP: ss.SP, Flags: ss.Flags, Size: ss.Size}
			}},
		{name: "prctl(PR_GET_TID_ADDRESS)", nr: unix.SYS_PRCTL, size: 8,
			args: func(slot uint64) [6]uint64 { return [6]uint64{unix.PR_GET_TID_ADDRESS, slot} },
			done: func(_ uint64, b []byte) { t.ClearTID = le.Uint64(b) }},
		{name: "prctl(PR_GET_PDEATHSIG)", nr: unix.SYS_PRCTL, size: 4,
			args: func(slot uint64) [6]uint64 { return [6]uint64{unix.PR_GET_PDEATHSIG, slot} },
			done: func(_ uint64, b []byte) { t.Pdeathsig = int(int32(le.Uint32(b))) }},
	}
}
