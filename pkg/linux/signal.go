package linux

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SigAction is the kernel's struct sigaction (rt_sigaction's, not
// libc's): the handler, SA_* flags, the SA_RESTORER trampoline and the
// mask, in that order.
type SigAction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// SizeofSigAction is sizeof(struct sigaction).
const SizeofSigAction = 32

// SizeofSigset is the kernel's sizeof(sigset_t), rt_sigaction's and
// rt_sigprocmask's sigsetsize.
const SizeofSigset = 8

// Encode returns s in the kernel's layout.
func (s SigAction) Encode() []byte { return encode(s) }

// Decode reads s from b.
func (s *SigAction) Decode(b []byte) { decode(b[:SizeofSigAction], s) }

// Flags of stack_t's ss_flags.
const (
	SS_ONSTACK = 1
	SS_DISABLE = 2
)

// StackT is stack_t, an alternate signal stack.
type StackT struct {
	SP    uint64
	Flags int32
	_     [4]byte
	Size  uint64
}

// SizeofStackT is sizeof(stack_t).
const SizeofStackT = 24

// Encode returns s in the kernel's layout.
func (s StackT) Encode() []byte { return encode(s) }

// Decode reads s from b.
func (s *StackT) Decode(b []byte) { decode(b[:SizeofStackT], s) }

// Sigevent is struct sigevent as timer_create takes it: the value, the
// signal, SIGEV_* and, with SIGEV_THREAD_ID, the thread to signal (the
// rest of the union is not used here).
type Sigevent struct {
	Value    uint64
	Signo    int32
	Notify   int32
	ThreadID int32
	_        [44]byte
}

// SizeofSigevent is sizeof(struct sigevent).
const SizeofSigevent = 64

// Encode returns s in the kernel's layout.
func (s Sigevent) Encode() []byte { return encode(s) }

// Decode reads s from b.
func (s *Sigevent) Decode(b []byte) { decode(b[:SizeofSigevent], s) }

// SizeofSiginfo is sizeof(siginfo_t), whose first word is si_signo (x/sys
// has the struct: unix.Siginfo).
const SizeofSiginfo = 128

// SiginfoSigno returns the si_signo of a siginfo_t.
func SiginfoSigno(b []byte) uint32 {
	var si struct{ Signo uint32 }
	decode(b[:SizeofSiginfo], &si)
	return si.Signo
}

// WCOREFLAG is the bit of a wait status (wait(2)) that says the process
// dumped core.
const WCOREFLAG = 0x80

// StopSignals are the signals whose default action stops a process.
var StopSignals = sigs(unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)

// notFatal are the signals by which no process dies: their default
// action is to ignore them, or to stop or continue the process.
var notFatal = sigs(unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH, unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)

// coreSignals are the signals whose default action dumps core.
var coreSignals = sigs(unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
	unix.SIGSEGV, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSYS)

func sigs(list ...unix.Signal) map[int]bool {
	m := map[int]bool{}
	for _, s := range list {
		m[int(s)] = true
	}
	return m
}

// BadExitStatus says what is wrong with st as the wait status of a process
// that ended, or "": an exit code shifted left by 8, or a signal by which
// a process dies, with WCOREFLAG only for one that dumps core.
func BadExitStatus(st int) string {
	sig := st & 0x7f
	switch {
	case st < 0 || st > 0xffff:
		return "is out of range"
	case sig == 0 && st&0xff != 0:
		return "has the core flag without a signal"
	case sig == 0:
		return ""
	case st>>8 != 0:
		return "has both a signal and an exit code"
	case sig > 64 || notFatal[sig]:
		return fmt.Sprintf("names signal %d, by which no process dies", sig)
	case st&WCOREFLAG != 0 && !coreSignals[sig]:
		return fmt.Sprintf("says signal %d dumped core, which it never does", sig)
	}
	return ""
}
