package linux

// SIGEV_THREAD_ID is the bit of sigev_notify that names a thread to
// signal (Sigevent.ThreadID).
const SIGEV_THREAD_ID = 4

// KCMP_FILE is kcmp's type for comparing two open file descriptions.
const KCMP_FILE = 0

// Kernel-internal return values of a system call interrupted by a stop,
// as a ptrace stop shows them in rax.
const (
	ERESTARTSYS           = 512
	ERESTARTNOINTR        = 513
	ERESTARTNOHAND        = 514
	ERESTART_RESTARTBLOCK = 516
)

// membarrier(2) commands: MEMBARRIER_CMD_GET_REGISTRATIONS reports the
// MEMBARRIER_CMD_REGISTER_* commands a process made, as their own bits.
const (
	MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED            = 1 << 2
	MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED           = 1 << 4
	MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 6
	MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ      = 1 << 8
	MEMBARRIER_CMD_GET_REGISTRATIONS                    = 1 << 9
)

// Offsets in struct linux_dirent64 (getdents64): d_ino u64, d_off s64,
// d_reclen u16 at Dirent64RecLenOffset, d_type u8, then the name at
// Dirent64NameOffset. Read in place, without a struct: listing /proc is
// hot.
const (
	Dirent64RecLenOffset = 16
	Dirent64NameOffset   = 19
)
