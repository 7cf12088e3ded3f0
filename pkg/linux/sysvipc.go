package linux

// System V IPC: struct ipc64_perm, semid64_ds and msqid64_ds of x86-64
// (x/sys has shared memory's, not these), the commands and flags x/sys
// lacks, and thin wrappers of semget, semctl, msgget, msgctl and msgrcv
// (sysvipc_unsafe.go).

// Commands and flags of semctl, msgctl and msgrcv.
const (
	GETPID = 11 // semctl: the PID of the last process to change a semaphore
	GETALL = 13
	SETALL = 17

	SEM_STAT_ANY = 20
	MSG_STAT_ANY = 13

	SHM_DEST = 0o1000 // shm_perm.mode: marked for removal (IPC_RMID) while attached

	MSG_NOERROR = 0o10000
	MSG_COPY    = 0o40000 // msgrcv: read message number msgtyp, leave it queued
)

// Limits of the kernel's that an image is checked against.
const (
	SEMMSL = 32000   // most semaphores in a set (kernel.sem's first field, at most)
	SEMVMX = 32767   // the greatest value of a semaphore
	MSGMAX = 1 << 20 // most bytes a message may be given, whatever kernel.msgmax says (HARD_MSGMAX is 16 MiB)
)

// IPC64Perm is struct ipc64_perm.
type IPC64Perm struct {
	Key  int32
	UID  uint32
	GID  uint32
	CUID uint32
	CGID uint32
	Mode uint32 // __kernel_mode_t, 2 bytes, and its padding
	Seq  uint16
	_    uint16
	_    uint32
	_    uint64
	_    uint64
}

// SizeofIPC64Perm is its size.
const SizeofIPC64Perm = 48

// SemidDS is struct semid64_ds.
type SemidDS struct {
	Perm  IPC64Perm
	Otime int64
	_     uint64
	Ctime int64
	_     uint64
	Nsems uint64
	_     uint64
	_     uint64
}

// SizeofSemidDS is its size.
const SizeofSemidDS = 104

// MsqidDS is struct msqid64_ds.
type MsqidDS struct {
	Perm   IPC64Perm
	Stime  int64
	Rtime  int64
	Ctime  int64
	Cbytes uint64
	Qnum   uint64
	Qbytes uint64
	Lspid  int32
	Lrpid  int32
	_      uint64
	_      uint64
}

// SizeofMsqidDS is its size.
const SizeofMsqidDS = 120

func (s SemidDS) Encode() []byte     { return encode(&s) }
func (s *SemidDS) Decode(b []byte)   { decode(b[:SizeofSemidDS], s) }
func (m MsqidDS) Encode() []byte     { return encode(&m) }
func (m *MsqidDS) Decode(b []byte)   { decode(b[:SizeofMsqidDS], m) }
func (p IPC64Perm) Encode() []byte   { return encode(&p) }
func (p *IPC64Perm) Decode(b []byte) { decode(b[:SizeofIPC64Perm], p) }
