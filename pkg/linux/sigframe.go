package linux

// Sigcontext is x86-64's struct sigcontext, the registers in a signal
// frame.
type Sigcontext struct {
	R8, R9, R10, R11, R12, R13, R14, R15        uint64
	Rdi, Rsi, Rbp, Rbx, Rdx, Rax, Rcx, Rsp, Rip uint64
	Eflags                                      uint64
	Cs, Gs, Fs, Ss                              uint16
	Err, Trapno, Oldmask, Cr2                   uint64
	Fpstate                                     uint64 // address of the XSAVE area, 64-byte aligned
	_                                           [8]uint64
}

// UContext is the kernel's struct ucontext, what rt_sigreturn reads.
type UContext struct {
	Flags    uint64 // UC_*
	Link     uint64
	Stack    StackT
	Mcontext Sigcontext
	Sigmask  uint64
}

// SizeofUContext is sizeof(struct ucontext).
const SizeofUContext = 304

// Flags of UContext.Flags.
const (
	UC_FP_XSTATE         = 1 // Fpstate has an XSAVE area with FpxSwBytes
	UC_SIGCONTEXT_SS     = 2 // Ss is meaningful
	UC_STRICT_RESTORE_SS = 4 // and is restored as it is
)

// RtSigframe is the part of x86-64's struct rt_sigframe that
// rt_sigreturn reads, at the stack pointer minus 8 when it is called:
// the return address of the handler (pretcode), then the ucontext.
type RtSigframe struct {
	Pretcode uint64
	UC       UContext
}

// SizeofRtSigframe is the size of RtSigframe (struct rt_sigframe without
// its siginfo).
const SizeofRtSigframe = 8 + SizeofUContext

// Encode returns f in the kernel's layout.
func (f RtSigframe) Encode() []byte { return encode(f) }

// Decode reads f from b.
func (f *RtSigframe) Decode(b []byte) { decode(b[:SizeofRtSigframe], f) }

// The XSAVE area: the legacy FXSAVE region, whose software-reserved
// bytes at XSAVE_SW_RESERVED_OFFSET hold, as ptrace(PTRACE_GETREGSET,
// NT_X86_XSTATE) gives it, XCR0 in their first word, and in a signal
// frame a struct _fpx_sw_bytes; then the XSAVE header at
// XSAVE_HDR_OFFSET, whose first word is XSTATE_BV.
const (
	XSAVE_SW_RESERVED_OFFSET = 464
	XSAVE_HDR_OFFSET         = 512
	FP_XSTATE_MAGIC1         = 0x46505853
	FP_XSTATE_MAGIC2         = 0x46505845 // in the 4 bytes after a signal frame's XSAVE area
	FP_XSTATE_MAGIC2_SIZE    = 4
)

// FpxSwBytes is struct _fpx_sw_bytes.
type FpxSwBytes struct {
	Magic1       uint32 // FP_XSTATE_MAGIC1
	ExtendedSize uint32 // the XSAVE area and FP_XSTATE_MAGIC2
	Xfeatures    uint64
	XstateSize   uint32 // the XSAVE area
	_            [7]uint32
}

// SizeofFpxSwBytes is sizeof(struct _fpx_sw_bytes).
const SizeofFpxSwBytes = 48

// Encode returns s in the kernel's layout.
func (s FpxSwBytes) Encode() []byte { return encode(s) }

// Decode reads s from b.
func (s *FpxSwBytes) Decode(b []byte) { decode(b[:SizeofFpxSwBytes], s) }
