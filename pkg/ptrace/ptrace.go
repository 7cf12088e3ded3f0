package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// Options are the ptrace options of every seized thread.
const Options = unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK

// Regs is the general register set of an x86-64 thread (user_regs_struct).
type Regs = unix.PtraceRegs

func errno(name string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError(name, err)
}

func ptrace(req int, tid int, addr, data uintptr) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// Seize attaches to tid without stopping it, with the given options.
func Seize(tid int, options int) error {
	return errno("ptrace(SEIZE)", ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)))
}

// Interrupt asks a seized thread to stop.
func Interrupt(tid int) error {
	return errno("ptrace(INTERRUPT)", ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0))
}

// SetOptions sets ptrace options on an attached, stopped thread.
func SetOptions(tid int, options int) error {
	return errno("ptrace(SETOPTIONS)", ptrace(unix.PTRACE_SETOPTIONS, tid, 0, uintptr(options)))
}

// Detach lets a stopped thread go, delivering sig if it is not 0.
func Detach(tid int, sig int) error {
	return errno("ptrace(DETACH)", ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)))
}

// Cont resumes a stopped thread, delivering sig if it is not 0.
func Cont(tid int, sig int) error {
	return errno("ptrace(CONT)", ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)))
}

// SingleStep resumes a stopped thread for one instruction, delivering sig
// if it is not 0.
func SingleStep(tid int, sig int) error {
	return errno("ptrace(SINGLESTEP)", ptrace(unix.PTRACE_SINGLESTEP, tid, 0, uintptr(sig)))
}

// ContSyscall resumes a stopped thread until its next system call entry or
// exit (a syscall stop), delivering sig if it is not 0.
func ContSyscall(tid int, sig int) error {
	return errno("ptrace(SYSCALL)", ptrace(unix.PTRACE_SYSCALL, tid, 0, uintptr(sig)))
}

// GetEventMsg returns the message of the last ptrace event (a new tid).
func GetEventMsg(tid int) (uint, error) {
	m, err := unix.PtraceGetEventMsg(tid)
	return m, errno("ptrace(GETEVENTMSG)", err)
}

// GetRegs reads the general registers.
func GetRegs(tid int) (Regs, error) {
	var r Regs
	err := unix.PtraceGetRegs(tid, &r)
	return r, errno("ptrace(GETREGS)", err)
}

// SetRegs writes the general registers.
func SetRegs(tid int, r *Regs) error {
	return errno("ptrace(SETREGS)", unix.PtraceSetRegs(tid, r))
}

// GetXState reads the XSAVE area (NT_X86_XSTATE). The buffer returned is
// as long as the kernel's xstate size.
func GetXState(tid int) ([]byte, error) {
	buf := make([]byte, 16384)
	n, err := getRegset(tid, unix.NT_X86_XSTATE, buf)
	if err != nil {
		return nil, errno("ptrace(GETREGSET)", err)
	}
	return buf[:n], nil
}

// SetXState writes the XSAVE area.
func SetXState(tid int, buf []byte) error {
	return errno("ptrace(SETREGSET)", setRegset(tid, unix.NT_X86_XSTATE, buf))
}

// XFeatures returns the XCR0 value of an XSAVE area read with GetXState
// (0 if it is too short): for ptrace the kernel puts it in the first
// word of the software reserved bytes, at XSAVE_SW_RESERVED_OFFSET (see
// arch/x86/include/asm/user.h). A signal frame's fpstate holds a struct
// _fpx_sw_bytes there instead (linux.FpxSwBytes).
func XFeatures(xstate []byte) uint64 {
	if len(xstate) < linux.XSAVE_SW_RESERVED_OFFSET+8 {
		return 0
	}
	return binary.LittleEndian.Uint64(xstate[linux.XSAVE_SW_RESERVED_OFFSET:])
}

// xfeatureBits names the XSAVE state components by XCR0 bit.
var xfeatureBits = []string{"x87", "SSE", "AVX", "MPX bndregs", "MPX bndcsr", "AVX-512 opmask", "AVX-512 ZMM_Hi256", "AVX-512 Hi16_ZMM", "PT", "PKRU", "PASID", "CET user", "CET supervisor", "HDC", "UINTR", "LBR", "HWP", "AMX tilecfg", "AMX tiledata"}

// XFeatureNames names the XSAVE state components of an XCR0 mask ("AVX",
// "PKRU"...; "bit N" for one it does not know), lowest bit first.
func XFeatureNames(m uint64) []string {
	var out []string
	for i := 0; i < 64; i++ {
		if m&(1<<i) != 0 {
			if i < len(xfeatureBits) {
				out = append(out, xfeatureBits[i])
			} else {
				out = append(out, fmt.Sprintf("bit %d", i))
			}
		}
	}
	return out
}

// GetSigmask returns the thread's blocked signal mask.
func GetSigmask(tid int) (uint64, error) {
	var m uint64
	err := ptraceSigmask(unix.PTRACE_GETSIGMASK, tid, &m)
	return m, errno("ptrace(GETSIGMASK)", err)
}

// SetSigmask sets the thread's blocked signal mask.
func SetSigmask(tid int, m uint64) error {
	return errno("ptrace(SETSIGMASK)", ptraceSigmask(unix.PTRACE_SETSIGMASK, tid, &m))
}

// PeekSiginfo returns the pending signals' siginfo (128 bytes each) of the
// thread, or of the whole process when shared is set. Nothing is dequeued.
func PeekSiginfo(tid int, shared bool) ([][]byte, error) {
	var out [][]byte
	for {
		infos, err := peekSiginfo(tid, uint64(len(out)), shared)
		if err != nil {
			return nil, errno("ptrace(PEEKSIGINFO)", err)
		}
		if len(infos) == 0 {
			return out, nil
		}
		out = append(out, infos...)
	}
}

// Rseq is a thread's restartable-sequences registration.
type Rseq struct {
	Addr  uint64 `json:"addr"`
	Size  uint32 `json:"size"`
	Sig   uint32 `json:"sig"`
	Flags uint32 `json:"flags,omitempty"`
}

// GetRseq returns the thread's rseq registration (zero Addr when none).
func GetRseq(tid int) (Rseq, error) {
	r, err := getRseq(tid)
	return r, errno("ptrace(GET_RSEQ_CONFIGURATION)", err)
}

// WaitStop waits for tid to stop and returns its status. An exit or a
// death is an error.
func Wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, errno("wait4", err)
		}
		return ws, nil
	}
}

// StopEvent is the ptrace event (PTRACE_EVENT_*) of a stop, 0 for none.
// Unlike WaitStatus.TrapCause it is there for a group stop too, which a
// seized thread reports as PTRACE_EVENT_STOP with the signal that
// stopped its process instead of SIGTRAP: for a process stopped by job
// control, every PTRACE_INTERRUPT is reported so.
func StopEvent(ws unix.WaitStatus) int { return int(uint32(ws) >> 16) }

// ErrExited is returned when a thread exits while being traced.
var ErrExited = errors.New("thread exited")

// StopError describes an unexpected stop.
type StopError struct {
	TID    int
	Status unix.WaitStatus
}

func (e *StopError) Error() string {
	ws := e.Status
	switch {
	case ws.Exited():
		return fmt.Sprintf("thread %d exited with status %d", e.TID, ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("thread %d killed by %v", e.TID, ws.Signal())
	case ws.Stopped():
		return fmt.Sprintf("thread %d stopped unexpectedly by %v (event %d)", e.TID, ws.StopSignal(), StopEvent(ws))
	}
	return fmt.Sprintf("thread %d: unexpected wait status %#x", e.TID, uint32(ws))
}
