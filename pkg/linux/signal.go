package linux

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
