package inject

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/ptrace"
)

// Batched calls. Each injected call costs two ptrace stops (syscall entry
// and exit), each a trip through the scheduler: 70-180 us on a 2-vCPU VM.
// A batch runs many read-only calls in one trip: the thread runs the
// trampoline's batch code on its own, with all signals blocked,
//
//	B+0:  mov rax, [rbx]         next call's number; -1 ends the table
//	      test rax, rax
//	      js done
//	      mov rdi..r9, [rbx+8..48]
//	      syscall
//	      mov [rbx+56], rax      its result
//	      add rbx, 64
//	      jmp B+0
//	done: mov qword [rbx+8], 1   tell the tracer
//	      pselect6(0, 0, 0, 0, rbx+16, 0)  sleep, at most the timeout there
//	      mov eax, 15
//	      syscall                rt_sigreturn, as the trampoline's
//
// and the tracer, which sees the mark, interrupts it in its sleep and
// parks it again. If the tracer dies at any moment, the thread finishes
// the table, sleeps out the timeout and returns through the trampoline's
// frame to exactly where it was: the calls must be ones that change
// nothing. The sleep is pselect6's because an interrupted pselect6 keeps
// what is left of its timeout in memory: a nanosleep, poll or futex wait
// would keep it in the thread's restart block, over that of a call the
// thread was frozen in, which would then restart as the wrong call.
var batchCode = []byte{
	0x48, 0x8b, 0x03, // mov rax, [rbx]
	0x48, 0x85, 0xc0, // test rax, rax
	0x78, 0x24, // js done (+36)
	0x48, 0x8b, 0x7b, 0x08, // mov rdi, [rbx+8]
	0x48, 0x8b, 0x73, 0x10, // mov rsi, [rbx+16]
	0x48, 0x8b, 0x53, 0x18, // mov rdx, [rbx+24]
	0x4c, 0x8b, 0x53, 0x20, // mov r10, [rbx+32]
	0x4c, 0x8b, 0x43, 0x28, // mov r8, [rbx+40]
	0x4c, 0x8b, 0x4b, 0x30, // mov r9, [rbx+48]
	0x0f, 0x05, // syscall
	0x48, 0x89, 0x43, 0x38, // mov [rbx+56], rax
	0x48, 0x83, 0xc3, 0x40, // add rbx, 64
	0xeb, 0xd4, // jmp B+0 (-44)
	// done (B+44):
	0x48, 0xc7, 0x43, 0x08, 0x01, 0x00, 0x00, 0x00, // mov qword [rbx+8], 1
	0xb8, 0x0e, 0x01, 0x00, 0x00, // mov eax, 270 (pselect6)
	0x31, 0xff, // xor edi, edi
	0x31, 0xf6, // xor esi, esi
	0x31, 0xd2, // xor edx, edx
	0x45, 0x31, 0xd2, // xor r10d, r10d
	0x4c, 0x8d, 0x43, 0x10, // lea r8, [rbx+16]
	0x45, 0x31, 0xc9, // xor r9d, r9d
	0x0f, 0x05, // syscall
	0xb8, 0x0f, 0x00, 0x00, 0x00, // mov eax, 15 (rt_sigreturn)
	0x0f, 0x05, // syscall
	0xcc, // int3: never reached
}

const (
	batchDone    = 44 // offset of done in batchCode
	batchWaitEnd = 75 // offset just after the pselect6 syscall
	batchEntry   = 64 // bytes of one table entry
	batchTimeout = time.Second
	// batchCalls bounds the wait for the calls themselves: before they
	// are done the thread cannot leave (it sleeps batchTimeout after),
	// so the tracer may wait long on a loaded machine.
	batchCalls    = 10 * time.Second
	batchMaxCalls = 32
)

// A Call is one system call of a batch: number and arguments.
type Call struct {
	Nr   uintptr
	Args [6]uint64
}

// BatchSize is the bytes of target memory that Batch needs for n calls.
func BatchSize(n int) uint64 { return uint64(n+1) * batchEntry }

// ErrEscaped means a thread left its batch on its own (the tracer was too
// slow): it runs its program again, and what was read of it is stale.
var ErrEscaped = errors.New("thread returned to its program during a batch of injected calls")

// Batch runs calls, at most batchMaxCalls, in the thread in one trip (see
// batchCode), using BatchSize(len(calls)) bytes of writable target memory
// at table, and returns each call's raw result (-errno on failure). Only
// calls that change nothing in the target may be batched. The Remote must
// be a trampoline one. When the trampoline had no room for the batch
// code (or there is none), the calls are made one by one, with the same
// results.
func (r *Remote) Batch(table uint64, calls []Call) ([]uint64, error) {
	if r.tramp == nil || r.tramp.Batch == 0 {
		res := make([]uint64, len(calls))
		for i, c := range calls {
			var err error
			if res[i], err = r.rawSyscall(fmt.Sprintf("system call %d", c.Nr), c.Nr, c.Args[:]...); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	if err := r.StartBatch(table, calls); err != nil {
		return nil, err
	}
	if err := r.runBatch(table + uint64(len(calls))*batchEntry + 8); err != nil {
		return nil, err
	}
	return r.FinishBatch(table, len(calls))
}

// BatchChained runs calls as Batch does, but stops the thread when the
// first call returns and has patch rewrite the calls after it (their
// arguments may be its result: patch returns them, as many as given),
// before the thread goes on. Whatever happens then, the tracer dying
// included, the thread makes the later calls: a call that undoes the
// first (a close of the fd it made) is made even if the tracer is gone,
// but in the instant between the first call's return and the rewrite.
// There must be batch code in the trampoline.
func (r *Remote) BatchChained(table uint64, calls []Call, patch func(first uint64) ([]Call, error)) ([]uint64, error) {
	if err := r.StartBatch(table, calls); err != nil {
		return nil, err
	}
	for _, what := range []string{"entry", "exit"} {
		if err := r.syscallStop(what); err != nil {
			return nil, err
		}
	}
	regs, err := ptrace.GetRegs(r.TID)
	if err != nil {
		return nil, err
	}
	later, err := patch(regs.Rax)
	if err != nil {
		// The later calls still run, as the table has them.
		if rerr := r.runBatch(table + uint64(len(calls))*batchEntry + 8); rerr == nil {
			r.FinishBatch(table, len(calls))
		}
		return nil, err
	}
	if len(later) != len(calls)-1 {
		return nil, fmt.Errorf("batch: %d calls after the first, %d given back", len(calls)-1, len(later))
	}
	if err := ptrace.WriteMem(r.TID, table+batchEntry, encodeCalls(later)); err != nil {
		return nil, err
	}
	if err := r.runBatch(table + uint64(len(calls))*batchEntry + 8); err != nil {
		return nil, err
	}
	return r.FinishBatch(table, len(calls))
}

// encodeCalls is the table entries of calls.
func encodeCalls(calls []Call) []byte {
	le := binary.LittleEndian
	buf := make([]byte, len(calls)*batchEntry)
	for i, c := range calls {
		e := buf[i*batchEntry:]
		le.PutUint64(e, uint64(c.Nr))
		for j, a := range c.Args {
			le.PutUint64(e[8+8*j:], a)
		}
	}
	return buf
}

// StartBatch writes the table of calls at table and points the thread at
// the batch code, without letting it run: Batch's first half, for tests
// that let the thread go there as a dying tracer would.
func (r *Remote) StartBatch(table uint64, calls []Call) error {
	if r.tramp == nil || r.tramp.Batch == 0 {
		return errors.New("no batch code in the trampoline")
	}
	if len(calls) > batchMaxCalls {
		return fmt.Errorf("batch of %d calls: at most %d", len(calls), batchMaxCalls)
	}
	le := binary.LittleEndian
	buf := append(encodeCalls(calls), make([]byte, batchEntry)...)
	end := buf[len(calls)*batchEntry:]
	le.PutUint64(end, ^uint64(0))                            // end of the table
	le.PutUint64(end[16:], uint64(batchTimeout/time.Second)) // the sleep: tv_sec
	if err := ptrace.WriteMem(r.TID, table, buf); err != nil {
		return err
	}
	regs := r.parked
	regs.Rip = r.tramp.Batch
	regs.Rbx = table
	regs.Orig_rax = ^uint64(0)
	if err := ptrace.SetRegs(r.TID, &regs); err != nil {
		return err
	}
	r.restored = false
	return nil
}

// FinishBatch checks that the thread, stopped, is done with the table of
// n calls at table, parks it again and returns the calls' results.
func (r *Remote) FinishBatch(table uint64, n int) ([]uint64, error) {
	out, err := ptrace.GetRegs(r.TID)
	if err != nil {
		return nil, err
	}
	switch {
	case out.Rip < r.tramp.Batch || out.Rip >= r.tramp.Batch+uint64(len(batchCode)):
		// Back in its program, with its own registers and mask: they
		// must not be set back to those of before.
		r.Forget()
		return nil, fmt.Errorf("thread %d at %#x: %w", r.TID, out.Rip, ErrEscaped)
	case out.Rip < r.tramp.Batch+batchDone || out.Rip > r.tramp.Batch+batchWaitEnd:
		return nil, fmt.Errorf("thread %d did not finish a batch of %d calls in %v (at %#x)", r.TID, n, batchCalls, out.Rip)
	}
	// Parked again: no restart of the sleep, and back on the trampoline.
	if err := ptrace.SetRegs(r.TID, &r.parked); err != nil {
		return nil, err
	}
	buf := make([]byte, n*batchEntry)
	if err := ptrace.ReadMem(r.TID, table, buf); err != nil {
		return nil, err
	}
	res := make([]uint64, n)
	for i := range res {
		res[i] = binary.LittleEndian.Uint64(buf[i*batchEntry+56:])
	}
	return res, nil
}

// runBatch lets the thread run until the word at mark is 1, then stops it
// with an interrupt.
func (r *Remote) runBatch(mark uint64) error {
	if err := ptrace.Cont(r.TID, 0); err != nil {
		return err
	}
	var word [8]byte
	deadline := time.Now().Add(batchCalls)
	for polls := 0; ; polls++ {
		if polls > 20 {
			// Not done at once: let the thread have this CPU, which may
			// be the only one. nanosleep itself, not time.Sleep, whose
			// 50 µs came out at ~1.1 ms here (the runtime's timers wait
			// in epoll with a resolution of a millisecond).
			unix.Nanosleep(&unix.Timespec{Nsec: 20_000}, nil)
		}
		if err := ptrace.ReadMem(r.TID, mark, word[:]); err != nil {
			return err
		}
		if word[0] == 1 {
			break
		}
		if time.Now().After(deadline) {
			break // interrupt it wherever it is; Batch checks where
		}
		// A thread stopped on its way (a signal that cannot be blocked)
		// would never get there.
		var ws unix.WaitStatus
		pid, err := unix.Wait4(r.TID, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil && err != unix.EINTR {
			return os.NewSyscallError("wait4", err)
		}
		if pid == r.TID {
			if err := r.passStop(ws); err != nil {
				return err
			}
			if err := ptrace.Cont(r.TID, 0); err != nil {
				return err
			}
		}
	}
	if err := ptrace.Interrupt(r.TID); err != nil {
		return err
	}
	for {
		ws, err := ptrace.Wait(r.TID)
		if err != nil {
			return err
		}
		if ws.Stopped() && ptrace.StopEvent(ws) == unix.PTRACE_EVENT_STOP {
			return nil
		}
		if err := r.passStop(ws); err != nil {
			return err
		}
		if err := ptrace.Cont(r.TID, 0); err != nil {
			return err
		}
	}
}
