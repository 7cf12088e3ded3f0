package inject

import (
	"bytes"
	"encoding/binary"
	"errors"

	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

// A Trampoline makes injected system calls safe against the death of the
// tracer. It is a few bytes of code and a signal frame written into the
// zero padding at the end of the target's [vDSO], which no code ever runs:
//
//	T+0: syscall            the injected call
//	T+2: mov eax, 15
//	T+7: syscall            rt_sigreturn
//
// A thread borrowed for injection always has its instruction pointer at
// T and its stack pointer at the frame, which holds the thread's own
// registers, signal mask and extended state. If the tracer dies at any
// moment (even by SIGKILL), the kernel detaches the thread, which finishes
// the injected call and returns through rt_sigreturn to exactly where it
// was, with its own mask, its own registers and a system call it was in
// made again.
//
// The padding holds one frame: one thread at a time may be parked.
type Trampoline struct {
	PID   int
	Code  uint64  // T: the injected syscall instruction
	Batch uint64  // the batch code (see batchCode) at T+16, or 0 if no room
	free  []frame // frames not in use
	orig  []byte  // what the padding held
	xsize int     // this machine's xstate size
}

// A frame is an rt_sigframe at addr (a thread's rsp is addr+8), with its
// XSAVE area at fp (64-byte aligned) if it has room for one.
type frame struct{ addr, fp uint64 }

var trampolineCode = []byte{0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xcc}

const frameSize = linux.SizeofRtSigframe

// InstallTrampoline writes the trampoline code into the padding of the
// target's vDSO, whose contents (read by the caller) are vdso at address
// start. The page becomes the process's private copy, with the same
// contents once Uninstall ran.
func InstallTrampoline(pid int, start uint64, vdso []byte) (*Trampoline, error) {
	xs, err := ptrace.GetXState(pid)
	if err != nil {
		return nil, err
	}
	pad := len(vdso) - len(bytes.TrimRight(vdso, "\x00"))
	off := (len(vdso) - pad + 15) &^ 15
	if len(vdso)-off < 16+frameSize {
		return nil, errors.New("no room for a trampoline in [vdso]")
	}
	t := &Trampoline{PID: pid, Code: start + uint64(off), xsize: len(xs)}
	end := start + uint64(len(vdso))
	layout := func(codeLen int) frame {
		f := frame{addr: t.Code + uint64(codeLen)}
		f.fp = (f.addr + frameSize + 63) &^ 63
		if f.fp+uint64(t.xsize)+4 > end {
			f.fp = 0 // no room for the FPU state: it would be reset; better than a crash
		}
		return f
	}
	// The batch code goes at T+16 when there is room for it and still
	// for the FPU state; else calls go one at a time.
	code := append(append([]byte(nil), trampolineCode...), make([]byte, 16-len(trampolineCode))...)
	withBatch := 16 + (len(batchCode)+15)&^15
	f := layout(16)
	if fb := layout(withBatch); f.addr+uint64(withBatch-16)+frameSize <= end && (fb.fp != 0 || f.fp == 0) {
		f = fb
		t.Batch = t.Code + 16
		code = append(code, batchCode...)
	}
	t.free = []frame{f}
	t.orig = append([]byte(nil), vdso[off:]...)
	if err := ptrace.PokeMem(pid, t.Code, code); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Trampoline) take() (frame, error) {
	if len(t.free) == 0 {
		return frame{}, errors.New("trampoline: another thread is parked")
	}
	f := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	return f, nil
}

func (t *Trampoline) give(f frame) { t.free = append(t.free, f) }

// Uninstall puts the padding back as it was.
func (t *Trampoline) Uninstall() error {
	return ptrace.PokeMem(t.PID, t.Code, t.orig)
}

// arm writes a frame that returns thread tid to regs (made restartable)
// with mask and the thread's current extended state.
func (t *Trampoline) arm(f frame, tid int, regs ptrace.Regs, mask uint64) error {
	ptrace.FixRestart(&regs)
	xs, err := ptrace.GetXState(tid)
	if err != nil {
		return err
	}
	fp := f.fp
	sc := linux.Sigcontext{R8: regs.R8, R9: regs.R9, R10: regs.R10, R11: regs.R11, R12: regs.R12,
		R13: regs.R13, R14: regs.R14, R15: regs.R15, Rdi: regs.Rdi, Rsi: regs.Rsi, Rbp: regs.Rbp,
		Rbx: regs.Rbx, Rdx: regs.Rdx, Rax: regs.Rax, Rcx: regs.Rcx, Rsp: regs.Rsp, Rip: regs.Rip,
		Eflags: regs.Eflags, Cs: uint16(regs.Cs), Ss: uint16(regs.Ss), Fpstate: fp}
	sf := linux.RtSigframe{UC: linux.UContext{
		Flags:    linux.UC_FP_XSTATE | linux.UC_SIGCONTEXT_SS | linux.UC_STRICT_RESTORE_SS,
		Stack:    linux.StackT{Flags: 0x7f}, // invalid flags, so the altstack is left alone
		Mcontext: sc,
		Sigmask:  mask,
	}}
	// The frame, then zeros up to the 64-byte aligned XSAVE area.
	buf := append(sf.Encode(), make([]byte, (f.addr+frameSize+63)&^63-f.addr-frameSize)...)
	if fp != 0 {
		xf := ptrace.XFeatures(xs) // before the ptrace layout is overwritten
		xs = append(xs, make([]byte, linux.FP_XSTATE_MAGIC2_SIZE)...)
		sw := linux.FpxSwBytes{Magic1: linux.FP_XSTATE_MAGIC1, ExtendedSize: uint32(len(xs)),
			Xfeatures: xf, XstateSize: uint32(len(xs) - linux.FP_XSTATE_MAGIC2_SIZE)}
		copy(xs[linux.XSAVE_SW_RESERVED_OFFSET:], sw.Encode())
		binary.LittleEndian.PutUint32(xs[len(xs)-linux.FP_XSTATE_MAGIC2_SIZE:], linux.FP_XSTATE_MAGIC2)
		buf = append(buf, xs...)
	}
	return ptrace.PokeMem(t.PID, f.addr, buf)
}
