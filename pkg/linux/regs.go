package linux

// Indices of the words of x86-64's struct user_regs_struct (the names of
// <sys/reg.h>), as ptrace gives them and an image keeps them.
const (
	R15 = iota
	R14
	R13
	R12
	RBP
	RBX
	R11
	R10
	R9
	R8
	RAX
	RCX
	RDX
	RSI
	RDI
	ORIG_RAX
	RIP
	CS
	EFLAGS
	RSP
	SS
	FS_BASE
	GS_BASE
	DS
	ES
	FS
	GS
	NumUserRegs // words in struct user_regs_struct
)
