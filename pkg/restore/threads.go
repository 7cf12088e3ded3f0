// Threads: made again in the built process, with their own state and
// their final registers.

package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

// makeThreads clones every thread but the first from the main thread.
func (b *builder) makeThreads() error {
	const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	mode := b.mode
	if b.innerTID(0) != b.img.PID {
		mode = PIDNew // new PID, new thread ids
	}
	for _, t := range b.img.Threads[1:] {
		// clone3 adds the thread to b.tids.
		if _, err := b.clone3(b.main, b.pid, threadFlags, 0, t.TID, mode); err != nil {
			return fmt.Errorf("creating thread %d: %w", t.TID, err)
		}
	}
	return nil
}

// threadState sets thread i's alternate signal stack, clear_child_tid,
// robust list, rseq and name, from inside the thread.
func (b *builder) threadState(i int) error {
	t := &b.img.Threads[i]
	tid := b.tids[i]
	r := b.main
	if i > 0 {
		var err error
		if r, err = inject.NewRemote(tid, b.scratch); err != nil {
			return err
		}
		r.Forget()
	}
	if t.Altstack.Flags&linux.SS_DISABLE == 0 && t.Altstack.SP != 0 {
		ss := linux.StackT{SP: t.Altstack.SP, Flags: t.Altstack.Flags &^ linux.SS_ONSTACK, Size: t.Altstack.Size}
		if err := b.write(offArgs, ss.Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall("sigaltstack", unix.SYS_SIGALTSTACK, b.scratch+offArgs, 0); err != nil {
			return err
		}
	}
	if _, err := r.Syscall("set_tid_address", unix.SYS_SET_TID_ADDRESS, t.ClearTID); err != nil {
		return err
	}
	if t.Robust[0] != 0 {
		if _, err := r.Syscall("set_robust_list", unix.SYS_SET_ROBUST_LIST, t.Robust[0], t.Robust[1]); err != nil {
			return err
		}
	}
	if t.Rseq.Addr != 0 {
		if _, err := r.Syscall("rseq", unix.SYS_RSEQ, t.Rseq.Addr, uint64(t.Rseq.Size), 0, uint64(t.Rseq.Sig)); err != nil {
			return err
		}
	}
	p, err := b.writePath(t.Comm)
	if err != nil {
		return err
	}
	if _, err := r.Syscall("prctl(PR_SET_NAME)", unix.SYS_PRCTL, unix.PR_SET_NAME, p); err != nil {
		return err
	}
	return b.threadSched(i)
}

// finalRegs gives thread i its registers, extended state and signal mask.
func (b *builder) finalRegs(i int) error {
	t := &b.img.Threads[i]
	tid := b.tids[i]
	regs, _ := ptrace.WordsToRegs(t.Regs)
	ptrace.FixRestart(&regs)
	if err := ptrace.SetRegs(tid, &regs); err != nil {
		return fmt.Errorf("thread %d: registers: %w", tid, err)
	}
	xs := make([]byte, b.xlen)
	copy(xs, t.XState)
	if len(t.XState) != b.xlen && b.xlen >= linux.XSAVE_HDR_OFFSET+8 {
		// Keep only the components both machines know: XSTATE_BV.
		bv := binary.LittleEndian.Uint64(xs[linux.XSAVE_HDR_OFFSET:]) & b.xcr0
		binary.LittleEndian.PutUint64(xs[linux.XSAVE_HDR_OFFSET:], bv)
	}
	if err := ptrace.SetXState(tid, xs); err != nil {
		return fmt.Errorf("thread %d: extended state: %w", tid, err)
	}
	return ptrace.SetSigmask(tid, t.Sigmask)
}

func xfeatureNames(m uint64) string { return fmt.Sprint(ptrace.XFeatureNames(m)) }
