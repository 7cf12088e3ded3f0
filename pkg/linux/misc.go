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

// Flock is the kernel's struct flock of x86-64, for fcntl(2) F_SETLK,
// F_OFD_SETLK and their GETLK.
type Flock struct {
	Type   int16 // F_RDLCK, F_WRLCK, F_UNLCK
	Whence int16 // SEEK_SET...
	_      [4]byte
	Start  int64
	Len    int64 // 0: to the end of the file
	Pid    int32 // 0 to set; the holder of a POSIX lock GETLK found
	_      [4]byte
}

// SizeofFlock is the size of struct flock.
const SizeofFlock = 32

// Encode returns l in the kernel's layout.
func (l Flock) Encode() []byte { return encode(l) }

// Decode fills l from the kernel's layout in b.
func (l *Flock) Decode(b []byte) { decode(b[:SizeofFlock], l) }
