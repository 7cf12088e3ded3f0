package format

import "sort"

// This file holds the engine's description of processes and their files:
// the JSON payloads of the FILES record (0x0011) and of the PROCESS
// records (0x0010). See SPEC.md, "Engine records".

// FileTable is the FILES record: every file of the image, whoever holds
// it. A file's id is its index here: fds and mappings of every process
// name files by id, and FILEDATA records carry their contents.
type FileTable struct {
	Files []File `json:"files"`
	// IPC holds the System V semaphore sets and message queues of the
	// tree, and whether it had an IPC namespace of its own (see the
	// System V IPC block below); its shared memory segments are files
	// (FileSysvShm).
	IPC *IPC `json:"ipc,omitempty"`
}

// Process is everything about one process but its memory contents and its
// files' (which are the image's, in FileTable).
type Process struct {
	PID int `json:"pid"`
	// PPID is the parent's PID. The first process of an image is the
	// root of the tree, whose parent is not in the image; every other
	// process's parent is a process before it in the image.
	PPID int `json:"ppid"`
	// Pgid is the process's process group; it led the group when Pgid
	// is PID (as every job a shell starts does).
	Pgid int `json:"pgid,omitempty"`
	// Sid is the process's session; it led the session when Sid is PID.
	Sid         int          `json:"sid,omitempty"`
	Comm        string       `json:"comm"`
	Exe         int          `json:"exe"` // a file id
	Cwd         string       `json:"cwd"`
	Root        string       `json:"root"`
	Umask       uint32       `json:"umask"`
	Personality uint32       `json:"personality"`
	Creds       Creds        `json:"creds"`
	Limits      []Rlimit     `json:"limits"` // indexed by RLIMIT_* number
	MM          MM           `json:"mm"`
	Maps        []Mapping    `json:"maps"`
	FDs         []FD         `json:"fds"`
	Sigactions  []Sigaction  `json:"sigactions"`        // index i is signal i+1
	Pending     [][]byte     `json:"pending,omitempty"` // shared pending siginfo, 128 bytes each
	Itimers     [3]Itimerval `json:"itimers"`
	Threads     []Thread     `json:"threads"`        // the main thread first
	Vdso        []byte       `json:"vdso,omitempty"` // contents of [vdso], to check the restoring kernel's
	// Clocks are the process's CLOCK_MONOTONIC and CLOCK_BOOTTIME, in
	// nanoseconds, when it was frozen: a restorer may give it a time
	// namespace in which they go on from there.
	Clocks *Clocks `json:"clocks,omitempty"`
	// Terminal is the state of the terminal on the process's standard
	// streams, if one of them was a terminal.
	Terminal *Terminal `json:"terminal,omitempty"`
	// Timers are the process's POSIX timers (timer_create(2)).
	Timers []PosixTimer `json:"timers,omitempty"`
	// CwdDeleted: the working directory was removed (see exact files);
	// the image's files then hold it, a deleted dir of path Cwd.
	CwdDeleted bool `json:"cwd_deleted,omitempty"`
	// OomScoreAdj is /proc/PID/oom_score_adj, in [-1000, 1000]; absent,
	// the process gets the restorer's.
	OomScoreAdj *int `json:"oom_score_adj,omitempty"`
	// THPDisable is what prctl(PR_GET_THP_DISABLE) returned: 0, 1, or
	// 1|PR_THP_DISABLE_EXCEPT_ADVISED (3); absent, the restorer's.
	THPDisable *int `json:"thp_disable,omitempty"`
	// Membarrier is the set of membarrier(2) registrations of the
	// process, as MEMBARRIER_CMD_GET_REGISTRATIONS returns it: the
	// MEMBARRIER_CMD_REGISTER_* bits.
	Membarrier uint32 `json:"membarrier,omitempty"`
	// Trees (zombies, stops, reapers): see the block below.
	Zombie    *Exit `json:"zombie,omitempty"`
	Stopped   *Stop `json:"stopped,omitempty"`
	Subreaper bool  `json:"subreaper,omitempty"`
}

// Seccomp is a thread's seccomp state.
type Seccomp struct {
	// Mode is 1 (SECCOMP_MODE_STRICT) or 2 (SECCOMP_MODE_FILTER).
	Mode int `json:"mode"`
	// Filters are the thread's filters, the first installed first (the
	// kernel runs them all, the last installed first).
	Filters []SeccompFilter `json:"filters,omitempty"`
}

// SeccompFilter is one classic BPF seccomp program.
type SeccompFilter struct {
	// Flags are the SECCOMP_FILTER_FLAG_* it was installed with that
	// PTRACE_SECCOMP_GET_METADATA reports (LOG).
	Flags uint64 `json:"flags,omitempty"`
	// Prog is its struct sock_filter instructions, 8 bytes each, at
	// most 4096 of them (BPF_MAXINSNS).
	Prog []byte `json:"prog"`
}

// PosixTimer is one timer of timer_create(2): its id, clock and struct
// sigevent, and when it expires next.
type PosixTimer struct {
	ID     int    `json:"id"`
	Clock  int    `json:"clock"`  // clockid_t: REALTIME, MONOTONIC, BOOTTIME, their ALARMs, TAI
	Notify int    `json:"notify"` // sigev_notify; with SIGEV_THREAD_ID (4), Target is a thread
	Signo  int    `json:"signo"`
	Value  uint64 `json:"value"` // sigev_value
	// Target is the thread (a tid of Threads) that gets the signal, with
	// SIGEV_THREAD_ID; otherwise 0.
	Target       int   `json:"target,omitempty"`
	IntervalNsec int64 `json:"interval_ns"`
	ValueNsec    int64 `json:"value_ns"` // time to the next expiry; 0: disarmed
}

// Terminal is the state of the process's own terminal (its controlling
// terminal, or one on fds 0-2), read through the first fd that has it,
// 0-2 first. The flags and
// control characters are those of struct termios (termios(3)); rows and
// cols are the window size.
type Terminal struct {
	FD    int    `json:"fd"`
	Iflag uint32 `json:"iflag"`
	Oflag uint32 `json:"oflag"`
	Cflag uint32 `json:"cflag"`
	Lflag uint32 `json:"lflag"`
	Line  uint8  `json:"line"`
	Cc    []byte `json:"cc"` // c_cc, NCCS (19) bytes
	Rows  uint16 `json:"rows"`
	Cols  uint16 `json:"cols"`
}

// Clocks are clock readings in nanoseconds.
type Clocks struct {
	Monotonic int64 `json:"monotonic_ns"`
	Boottime  int64 `json:"boottime_ns"`
}

// Creds are the process's credentials.
type Creds struct {
	UID        [4]int `json:"uid"` // real, effective, saved, fs
	GID        [4]int `json:"gid"`
	Groups     []int  `json:"groups"`
	NoNewPrivs bool   `json:"no_new_privs,omitempty"`
}

// Rlimit is one resource limit; ^uint64(0) is infinity.
type Rlimit struct {
	Cur uint64 `json:"cur"`
	Max uint64 `json:"max"`
}

// MM holds the fields of struct prctl_mm_map and the auxiliary vector.
type MM struct {
	StartCode  uint64   `json:"start_code"`
	EndCode    uint64   `json:"end_code"`
	StartData  uint64   `json:"start_data"`
	EndData    uint64   `json:"end_data"`
	StartBrk   uint64   `json:"start_brk"`
	Brk        uint64   `json:"brk"`
	StartStack uint64   `json:"start_stack"`
	ArgStart   uint64   `json:"arg_start"`
	ArgEnd     uint64   `json:"arg_end"`
	EnvStart   uint64   `json:"env_start"`
	EnvEnd     uint64   `json:"env_end"`
	Auxv       []uint64 `json:"auxv"`
}

// Mapping kinds.
const (
	MapAnon     = "anon"     // private anonymous (also [heap], [stack])
	MapFile     = "file"     // file-backed, private or shared
	MapShmem    = "shmem"    // shared anonymous or memfd: contents in FILEDATA
	MapVdso     = "vdso"     // [vdso], [vvar], [vvar_vclock]: moved, never stored
	MapVsyscall = "vsyscall" // fixed by the kernel
	MapSysV     = "sysv"     // a System V shared memory attachment (shmat): File is a FileSysvShm
)

// Mapping is one VMA.
type Mapping struct {
	Start  uint64 `json:"start"`
	End    uint64 `json:"end"`
	Prot   int    `json:"prot"`   // PROT_* bits
	Shared bool   `json:"shared"` // MAP_SHARED
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"` // "[heap]", "[stack]", "[vdso]", a path...
	File   int    `json:"file"`           // a file id, or -1
	Offset uint64 `json:"offset"`
	// Advice lists the smaps VmFlags that procs puts back with madvise,
	// mmap flags or mprotect: gd (grows down), ac (memory accounted: the
	// mapping was writable once), dc, dd, hg, nh, wf, mg, lo (mlock), lf
	// (mlock2 MLOCK_ONFAULT), dp (MAP_DROPPABLE). A restorer refuses a
	// flag it does not know.
	Advice []string `json:"advice,omitempty"`
	// Access is how the open file behind a shared file mapping was open
	// (see exact files below).
	Access string `json:"file_access,omitempty"`
	// Inherit lists the ranges [start, end) of this private mapping
	// whose pages the process shares copy-on-write with its parent (a
	// fork), sorted and apart: they are in the parent's pages, not in
	// this process's. The parent (not the root's) has a mapping of the
	// same range, kind, file and offset; a restore forks the process
	// from it once its memory is filled, and keeps those pages.
	Inherit [][2]uint64 `json:"inherit,omitempty"`
}

// File kinds: the names pkg/files gives its kinds (one Go file each there
// says how it is dumped and restored).
const (
	FileRegular = "reg"
	FileDir     = "dir"
	FileChar    = "chr"
	FileTTY     = "tty"   // the process's own terminal: the restorer's terminal
	FileMemfd   = "memfd" // memfd or shared anonymous memory: contents always carried
	FileEventfd = "eventfd"
	FileEpoll   = "epoll"
	FilePipe    = "pipe"    // an anonymous pipe: its ends are fds of the tree
	FileUnix    = "unix"    // a unix socket: a socketpair's end, bound, listening, connected
	FilePidfd   = "pidfd"   // a pidfd on a process of the tree
	FileSysvShm = "sysvshm" // a System V shared memory segment: contents always carried
)

// --- exact files (issue 14): members of open files that must come back
// exactly. Kept in one block for merges.

// File kinds that only an O_PATH fd has open: the file itself, never its
// contents (a symbolic link opened O_PATH|O_NOFOLLOW, a named pipe, a
// socket's file, a block device). Every fd of such a file has O_PATH.
const (
	FileSymlink = "lnk"
	FileFIFO    = "fifo"
	FileSocket  = "sock"
	FileBlock   = "blk"
)

// Access modes of the open file behind a shared mapping (Mapping.Access),
// as /proc/PID/map_files shows them: "r" read-only, "rw" read-write (a
// read-only mapping of it may later be made writable with mprotect).
const (
	AccessRead      = "r"
	AccessReadWrite = "rw"
)

// Seals of a memfd (File.Seals, F_GET_SEALS): F_SEAL_SEAL alone is a
// memfd made without MFD_ALLOW_SEALING.
const (
	SealSeal        = 0x1
	SealShrink      = 0x2
	SealGrow        = 0x4
	SealWrite       = 0x8
	SealFutureWrite = 0x10
	SealExec        = 0x20
	SealsAll        = 0x3f
)

// --- end of exact files

// File is one open file object (shared by fds and mappings that refer to
// the same open file or inode).
type File struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Deleted bool   `json:"deleted,omitempty"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Rdev    uint64 `json:"rdev,omitempty"`
	Mode    uint32 `json:"mode"`
	Size    int64  `json:"size"`
	Mtime   int64  `json:"mtime_ns"`
	// Pseudo is set for files of pseudo file systems (proc, sysfs,
	// cgroup...) whose size and time say nothing: they are reopened by
	// path without an identity check.
	Pseudo bool `json:"pseudo,omitempty"`
	// Carried is set when the contents travel in FILEDATA records with
	// this file's id.
	Carried bool `json:"carried,omitempty"`
	// The state of a kind that has one, a member named after the kind
	// (pkg/files says what each holds).
	Eventfd *Eventfd `json:"eventfd,omitempty"`
	Epoll   *Epoll   `json:"epoll,omitempty"`
	Pipe    *Pipe    `json:"pipe,omitempty"`
	Unix    *Unix    `json:"unix,omitempty"`
	Pidfd   *Pidfd   `json:"pidfd,omitempty"`
	Shm     *Shm     `json:"sysvshm,omitempty"`
	PTY     *PTY     `json:"pty,omitempty"` // pseudo-terminals (issue 11, pty)
	TCP     *TCP     `json:"tcp,omitempty"` // format/inet.go
	// Other sockets (issue 12, udp; format/inet.go).
	UDP     *Dgram   `json:"udp,omitempty"`
	Ping    *Dgram   `json:"ping,omitempty"`
	Netlink *Netlink `json:"netlink,omitempty"`
	// Event-loop kinds (issue 11, see their block below).
	Timerfd  *Timerfd  `json:"timerfd,omitempty"`
	Signalfd *Signalfd `json:"signalfd,omitempty"`
	Inotify  *Inotify  `json:"inotify,omitempty"`
	// Exact files (see below): a memfd's seals; the owner of a memfd
	// or a deleted file.
	Seals *uint32 `json:"seals,omitempty"`
	UID   int     `json:"uid,omitempty"`
	GID   int     `json:"gid,omitempty"`
	// Atime of a deleted file, made again with its owner, mode and
	// times.
	Atime int64 `json:"atime_ns,omitempty"`
	// Extents of a carried file: its ranges of data, [start, end) in
	// order, the rest holes. FILEDATA records lie in them; what of them
	// no record covers is zeros that were written (allocated), not holes.
	Extents *[][2]int64 `json:"extents,omitempty"`
	// Self is set for a file of the process's own /proc folder: the
	// path within it ("status", "task/PID/stat"), to open in the
	// restored process's.
	Self string `json:"proc_self,omitempty"`
	// Locks are the locks held on the file (see file locks below).
	Locks []Lock `json:"locks,omitempty"`
	// ProcPID, with Self, is the process of the tree whose /proc folder
	// that is (issue 11); 0 in older images: the holder's own.
	ProcPID int `json:"proc_pid,omitempty"`
}

// --- file locks (issue 11): flock, POSIX and OFD locks held on the
// image's files. Kept in one block for merges.

// FeatureFileLocks is the name in INFO.requires of an image whose files
// hold locks: a reader that ignored them would restore the processes
// without their locks, and other processes would then write what they
// had locked.
const FeatureFileLocks = "file-locks"

// Lock kinds (Lock.Kind).
const (
	// LockFlock is flock(2): held by an open file description, on the
	// whole file.
	LockFlock = "flock"
	// LockPosix is fcntl(2) F_SETLK: held by a process, on a range.
	LockPosix = "posix"
	// LockOFD is fcntl(2) F_OFD_SETLK: held by an open file
	// description, on a range.
	LockOFD = "ofd"
)

// Lock is one lock held on a file, as /proc/PID/fdinfo shows it. It is
// taken again, before any process of the image runs, by the process
// that holds it, on an fd of open file description Open, or (Map) on the
// open file its mapping of the file is made from.
type Lock struct {
	Kind string `json:"kind"`
	// Write: a write (exclusive) lock; otherwise a read (shared) one.
	Write bool `json:"write,omitempty"`
	// Open is the open file description the lock belongs to (flock,
	// ofd) or was taken through (posix); 0 with Map.
	Open int `json:"open"`
	// PID is the process that holds a posix lock, or that maps the file
	// of a lock held through a mapping (Map); 0 for the others.
	PID int `json:"pid,omitempty"`
	// Map is set for an flock that no fd holds, only the open file
	// behind a mapping of the file (mmap(2), then close(2) of the fd: a
	// JVM's perf-data file): the start of that mapping in process PID.
	// Every mapping of the file made the same way (shared and
	// writable, or not) shares that open file in a restore.
	Map uint64 `json:"map,omitempty"`
	// Start and Len are the range, as struct flock has them: Len 0 is
	// up to the end of the file and beyond. Both 0 for flock.
	Start int64 `json:"start,omitempty"`
	Len   int64 `json:"len,omitempty"`
}

// --- end of file locks

// FD is one file descriptor.
type FD struct {
	Num     int   `json:"num"`
	File    int   `json:"file"`  // a file id; -1 for 0, 1, 2 replaced by the loader's
	Flags   int   `json:"flags"` // open flags: access mode, O_APPEND, O_NONBLOCK...
	Cloexec bool  `json:"cloexec,omitempty"`
	Pos     int64 `json:"pos"`
	// Open names the fd's open file description, from 1: fds with the
	// same Open, in one process (after dup(2)) or in several (after
	// fork(2)), share one description, with its offset and flags. The
	// first of them in the image (processes in order, then fds) says
	// the description's file, flags and offset; the others say the same.
	Open int `json:"open"`
	// Owner and Sig (F_SETOWN_EX, F_SETSIG), of the description, are
	// on its first fd in the image only (see the event-loop block).
	Owner *Owner `json:"owner,omitempty"`
	Sig   int    `json:"sig,omitempty"`
}

// Eventfd is the state of an eventfd (FileEventfd).
type Eventfd struct {
	Count     uint64 `json:"count"`
	Semaphore bool   `json:"semaphore,omitempty"`
}

// Pipe is the state of an anonymous pipe (FilePipe): its buffer's size
// in bytes (F_GETPIPE_SZ) and the bytes in it that were not read yet, at
// most Size.
type Pipe struct {
	Size int    `json:"size"`
	Data []byte `json:"data"`
	// Readers and Writers say whether the pipe had a read end and a
	// write end open anywhere, the tree's own included, as the dump
	// saw: it refuses one whose other end is held outside the tree by
	// a process it cannot see.
	Readers, Writers bool `json:"-"`
}

// Unix is the state of a unix socket (FileUnix).
type Unix struct {
	Type int `json:"type"` // SOCK_STREAM (1), SOCK_DGRAM (2), SOCK_SEQPACKET (5)
	// Connected: it was connected; Peer is the file id of the socket it
	// is connected to, or -1 when that one is gone (it comes back
	// connected to an end that is closed), or when it is queued on a
	// listening socket of the image (in that one's Queue).
	Connected bool `json:"connected,omitempty"`
	Peer      int  `json:"peer"`
	// Shutdown holds RCV_SHUTDOWN (1) and SEND_SHUTDOWN (2).
	Shutdown int `json:"shutdown,omitempty"`
	// Data is the bytes in its receive queue, of a stream socket.
	Data []byte `json:"data,omitempty"`
	// SndBuf and RcvBuf are its buffer sizes as getsockopt tells them
	// (SO_SNDBUF, SO_RCVBUF: twice what setsockopt was given).
	SndBuf int `json:"sndbuf,omitempty"`
	RcvBuf int `json:"rcvbuf,omitempty"`

	// Unix sockets with addresses, listening sockets, messages.

	// Path is the path it is bound to, as bind(2) was given it; Dir,
	// for a relative Path, the folder it is relative to. Mode, UID and
	// GID are the socket file's; Unlinked says the path no longer named
	// it at the dump (removed, or another file since).
	Path     string `json:"path,omitempty"`
	Dir      string `json:"dir,omitempty"`
	Mode     uint32 `json:"mode,omitempty"`
	UID      int    `json:"uid,omitempty"`
	GID      int    `json:"gid,omitempty"`
	Unlinked bool   `json:"unlinked,omitempty"`
	// Abstract is the abstract name it is bound to, without its
	// leading NUL byte.
	Abstract []byte `json:"abstract,omitempty"`
	// Listening: listen(2) with Backlog; Queue is the file ids of the
	// client ends of the connections queued on it and not yet accepted,
	// the next to accept first (-1: a client outside the tree, which
	// comes back closed).
	Listening bool  `json:"listening,omitempty"`
	Backlog   int   `json:"backlog,omitempty"`
	Queue     []int `json:"queue,omitempty"`
	// Listener is the file id of the listening socket that accepted
	// this connection (its address is the listener's).
	Listener *int `json:"listener,omitempty"`
	// Messages are the messages in the receive queue of a datagram or
	// seqpacket socket, the next to read first.
	Messages [][]byte `json:"messages,omitempty"`
	// Senders are, of a datagram socket's Messages, the file id of the
	// bound socket of the image that sent each (the address recvfrom
	// tells), or -1 (another, or one with no address).
	Senders []int `json:"senders,omitempty"`
	// Rights are the files in flight in its queue (SCM_RIGHTS), each
	// with what it came with.
	Rights []UnixRights `json:"rights,omitempty"`
	// PassCred is SO_PASSCRED; Creds says messages or bytes in its
	// queue carried their sender's credentials (SCM_CREDENTIALS).
	PassCred bool `json:"passcred,omitempty"`
	Creds    bool `json:"creds,omitempty"`
	// RcvTimeo and SndTimeo are SO_RCVTIMEO and SO_SNDTIMEO, in
	// nanoseconds (0: none).
	RcvTimeo int64 `json:"rcvtimeo_ns,omitempty"`
	SndTimeo int64 `json:"sndtimeo_ns,omitempty"`
	// PeekOff is SO_PEEK_OFF when the program set one.
	PeekOff *int `json:"peek_off,omitempty"`
	// External: its peer was a socket outside the tree, and procs-dump
	// was told --external=close: it comes back as if the peer had
	// closed.
	External bool `json:"external,omitempty"`

	// What the dump reads and resolves to file ids (CheckTree).
	PeerIno     uint64   `json:"-"` // the peer's inode
	QueueIno    []uint64 `json:"-"` // a listener's queued clients
	ListenerIno uint64   `json:"-"` // the listener it is queued on, or was accepted from
	PeerName    string   `json:"-"` // the peer's address, for messages
	From        []string `json:"-"` // the sender address of each message
	Sent        uint32   `json:"-"` // bytes it sent that its peer has not read
}

// UnixRights are files in flight in a unix socket's queue, sent with one
// message (SCM_RIGHTS).
type UnixRights struct {
	// At is the message they came with (its index in Messages), or in
	// a stream, the end of the bytes they came with (an offset in
	// Data).
	At int `json:"at"`
	// FDs are the open file descriptions in flight, in order: File and
	// Open as an fd's (shared with the fds of the processes that hold
	// them too), Flags and Pos the description's; Num is 0.
	FDs []FD `json:"fds"`
}

// Epoll is the interest list of an epoll instance (FileEpoll). Its
// targets are fds of the first process that holds the epoll.
type Epoll struct {
	Targets []EpollEntry `json:"targets"`

	// Carried is procs-dump's own fd of an epoll it met in flight first
	// (in a unix socket's queue), whose targets CheckTree finds.
	Carried int `json:"-"`
}

// EpollEntry is one watched fd.
type EpollEntry struct {
	FD     int    `json:"fd"`
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`

	// Of an epoll no process holds (one in flight): Open is the open id
	// of the fds of the open file description it watches; FD the number
	// it was added under (which epoll_ctl MOD and DEL name).
	Open int `json:"open,omitempty"`

	// Ino is the target's inode, as fdinfo tells (in flight).
	Ino uint64 `json:"-"`
}

// Sigaction is a kernel struct sigaction.
type Sigaction struct {
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// Itimerval is one interval timer (microseconds).
type Itimerval struct {
	IntervalUsec int64 `json:"interval_us"`
	ValueUsec    int64 `json:"value_us"`
}

// Thread is one thread's state.
type Thread struct {
	TID      int       `json:"tid"`
	Comm     string    `json:"comm"`
	Regs     []uint64  `json:"regs"`   // struct user_regs_struct, 27 words
	XState   []byte    `json:"xstate"` // NT_X86_XSTATE
	XCR0     uint64    `json:"xcr0"`
	Sigmask  uint64    `json:"sigmask"`
	Pending  [][]byte  `json:"pending,omitempty"` // per-thread pending siginfo
	Altstack Altstack  `json:"altstack"`
	ClearTID uint64    `json:"clear_child_tid"`
	Robust   [2]uint64 `json:"robust_list"` // head, len
	Rseq     Rseq      `json:"rseq"`
	Policy   int       `json:"policy"`
	Priority int       `json:"priority"`
	Nice     int       `json:"nice"`
	// SchedFlags are the sched_getattr(2) flags that belong to the
	// thread (SCHED_FLAG_RESET_ON_FORK).
	SchedFlags uint64 `json:"sched_flags,omitempty"`
	// Creds, when set, are the thread's own credentials, which differ
	// from the process's (a thread that changed its ids with the raw
	// system calls); absent, the thread has the process's.
	Creds *Creds `json:"creds,omitempty"`
	// Seccomp is the thread's seccomp mode and filters; absent: none.
	Seccomp *Seccomp `json:"seccomp,omitempty"`
	// Pdeathsig is the thread's parent-death signal (PR_SET_PDEATHSIG),
	// 0 for none.
	Pdeathsig int `json:"pdeathsig,omitempty"`
}

// Altstack is a stack_t.
type Altstack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// Rseq is a restartable-sequences registration.
type Rseq struct {
	Addr uint64 `json:"addr"`
	Size uint32 `json:"size"`
	Sig  uint32 `json:"sig"`
}

// Outside appends to dst the parts of [lo, hi) outside ranges, which are
// sorted and apart (as Mapping.Inherit's), and returns it, and what of
// ranges may still reach past hi: a caller that walks up the address
// space passes that for its next [lo, hi), and looks at each range about
// once however many it has.
func Outside(dst [][2]uint64, lo, hi uint64, ranges [][2]uint64) ([][2]uint64, [][2]uint64) {
	for len(ranges) > 0 && ranges[0][1] <= lo {
		ranges = ranges[1:]
	}
	for _, r := range ranges {
		if r[0] >= hi || lo >= hi {
			break
		}
		if r[0] > lo {
			dst = append(dst, [2]uint64{lo, r[0]})
		}
		lo = max(lo, r[1])
	}
	if lo < hi {
		dst = append(dst, [2]uint64{lo, hi})
	}
	for len(ranges) > 0 && ranges[0][1] <= hi {
		ranges = ranges[1:]
	}
	return dst, ranges
}

// ForkedFrom says whether maps, a parent's, sorted by address, hold a
// private mapping of the range, kind, file and offset of m: the one a fork
// gave the process whose mapping m is.
func ForkedFrom(maps []Mapping, m *Mapping) bool {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].Start >= m.Start })
	if i == len(maps) {
		return false
	}
	p := &maps[i]
	return p.Start == m.Start && p.End == m.End && p.Kind == m.Kind && !p.Shared && p.File == m.File && p.Offset == m.Offset
}

// --- event-loop kinds (issue 11): timerfd, signalfd, inotify. Kept in
// one block for merges.

// File kinds an event loop holds beside eventfds and epolls.
const (
	FileTimerfd  = "timerfd"
	FileSignalfd = "signalfd"
	FileInotify  = "inotify"
)

// Timerfd settime flags (Timerfd.Flags).
const (
	TimerAbstime     = 0x1 // TFD_TIMER_ABSTIME
	TimerCancelOnSet = 0x2 // TFD_TIMER_CANCEL_ON_SET
)

// Timerfd is the state of a timerfd (FileTimerfd).
type Timerfd struct {
	// Clock is its clock: 0 REALTIME, 1 MONOTONIC, 7 BOOTTIME.
	Clock int `json:"clock"`
	// Flags are the flags of its last timerfd_settime (TimerAbstime,
	// TimerCancelOnSet).
	Flags int `json:"flags,omitempty"`
	// Ticks are the expirations no read had taken yet.
	Ticks uint64 `json:"ticks,omitempty"`
	// Interval is its period; Value the time left to its next
	// expiry (0: disarmed), both in ns.
	Interval int64 `json:"interval_ns,omitempty"`
	Value    int64 `json:"value_ns,omitempty"`
	// Deadline, with TimerAbstime, is its next expiry on its clock as
	// the process read it (time-namespace offsets included).
	Deadline int64 `json:"deadline_ns,omitempty"`
}

// Signalfd is the state of a signalfd (FileSignalfd): the signals it
// takes, bit i-1 for signal i.
type Signalfd struct {
	Mask uint64 `json:"mask"`
}

// Inotify is the state of an inotify instance (FileInotify): its
// watches, by watch descriptor.
type Inotify struct {
	Watches []InotifyWatch `json:"watches"`
}

// InotifyWatch is one watch: the file at Path, watched for Mask under
// the watch descriptor WD.
type InotifyWatch struct {
	WD   int    `json:"wd"`
	Path string `json:"path"`
	Mask uint32 `json:"mask"`
}

// Owner is who gets the signals of an open file's I/O (O_ASYNC, and
// SIGURG of a socket): F_GETOWN_EX.
type Owner struct {
	// Type is F_OWNER_TID (0: a thread, here a main one), F_OWNER_PID
	// (1) or F_OWNER_PGRP (2).
	Type int `json:"type"`
	// PID is the process, or the process group, of the tree.
	PID int `json:"pid"`
}

// --- end of event-loop kinds

// --- trees: zombies, stopped processes, pidfds. Kept in one block for
// merges.

// Exit is how a process ended: what a zombie has besides its ids, name
// and credentials (a zombie's PROCESS record holds pid, ppid, pgid, sid,
// comm, creds and zombie, and no other member: Record writes it so), and
// what a pidfd on a reaped process tells.
type Exit struct {
	// Status is the exit status as wait(2) reports it: the exit code
	// shifted left by 8, or the number of the signal that killed it,
	// with 0x80 when it dumped core.
	Status int `json:"status"`
}

// Stop says that a process was stopped by job control (a group stop).
type Stop struct {
	// Signal is the signal that stopped it: SIGSTOP, SIGTSTP, SIGTTIN or
	// SIGTTOU.
	Signal int `json:"signal"`
	// Waited: its parent had already collected the stop with wait(2)
	// (WUNTRACED); absent, a wait of the parent's would report it.
	Waited bool `json:"waited,omitempty"`
}

// Pidfd is the state of a pidfd (FilePidfd): the process it refers to,
// or, when that process had ended and was reaped, how it ended.
type Pidfd struct {
	PID    int   `json:"pid,omitempty"`
	Reaped *Exit `json:"reaped,omitempty"`
}

// zombieRecord is the JSON of a zombie's PROCESS record.
type zombieRecord struct {
	PID    int    `json:"pid"`
	PPID   int    `json:"ppid"`
	Pgid   int    `json:"pgid,omitempty"`
	Sid    int    `json:"sid,omitempty"`
	Comm   string `json:"comm"`
	Creds  Creds  `json:"creds"`
	Zombie *Exit  `json:"zombie"`
}

// Record is what a writer writes as the PROCESS record of p: p, or for
// a zombie only the members a zombie has.
func (p *Process) Record() any {
	if p.Zombie == nil {
		return p
	}
	return &zombieRecord{PID: p.PID, PPID: p.PPID, Pgid: p.Pgid, Sid: p.Sid, Comm: p.Comm, Creds: p.Creds, Zombie: p.Zombie}
}

// --- end of trees

// PIDRefs are the members of p that hold a process or thread id of the
// tree: its own, its parent's, its group's and session's, its threads',
// a timer's target thread, an fd's owner. Every member that holds one is listed here:
// a dump of a tree that runs in a PID namespace rewrites them all to the
// ids its programs see there.
func (p *Process) PIDRefs() []*int {
	refs := []*int{&p.PID, &p.PPID, &p.Pgid, &p.Sid}
	for i := range p.Threads {
		refs = append(refs, &p.Threads[i].TID)
	}
	for i := range p.Timers {
		if p.Timers[i].Target != 0 {
			refs = append(refs, &p.Timers[i].Target)
		}
	}
	for i := range p.FDs {
		if o := p.FDs[i].Owner; o != nil && o.PID > 0 {
			refs = append(refs, &o.PID)
		}
	}
	return refs
}

// PIDRefs are the members of f that hold a process id of the tree (see
// Process.PIDRefs).
func (f *File) PIDRefs() []*int {
	var refs []*int
	if f.Pidfd != nil && f.Pidfd.PID > 0 {
		refs = append(refs, &f.Pidfd.PID)
	}
	if f.ProcPID > 0 {
		refs = append(refs, &f.ProcPID)
	}
	for i := range f.Locks {
		if f.Locks[i].PID > 0 {
			refs = append(refs, &f.Locks[i].PID)
		}
	}
	return refs
}

// --- System V IPC: shared memory segments (FileSysvShm files), semaphore
// sets and message queues. Kept in one block for merges.

// FeatureSysVIPC is the INFO.requires name of images whose FILES record
// holds IPC: an older reader would drop its sets and queues silently.
const FeatureSysVIPC = "sysv-ipc"

// IPCPerm is what struct ipc64_perm holds that a restorer gives back:
// the object's id and key, its owner, its creator and its mode.
type IPCPerm struct {
	ID   int    `json:"id"`
	Key  int32  `json:"key"` // 0 is IPC_PRIVATE
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	CUID int    `json:"cuid"`
	CGID int    `json:"cgid"`
	Mode uint32 `json:"mode"` // the permission bits, 0777
}

// Shm is a System V shared memory segment (FileSysvShm). Its size is
// the File's size, its contents travel as FILEDATA records of the file.
type Shm struct {
	IPCPerm
	// Removed: it was marked for removal (IPC_RMID) while attached: its
	// key is IPC_PRIVATE, and it goes once no process attaches it.
	Removed bool `json:"removed,omitempty"`
}

// IPC is the tree's System V IPC besides its shared memory segments.
type IPC struct {
	// OwnNS: the tree ran in an IPC namespace of its own (not its
	// dumper's): every object of it is in the image, and a restorer
	// gives it one of its own again.
	OwnNS bool       `json:"own_ns,omitempty"`
	Sem   []SemSet   `json:"sem,omitempty"`
	Msg   []MsgQueue `json:"msg,omitempty"`
}

// SemSet is a semaphore set: its values, in order.
type SemSet struct {
	IPCPerm
	Values []uint16 `json:"values"`
}

// MsgQueue is a message queue with the messages in it, the first to be
// received first.
type MsgQueue struct {
	IPCPerm
	// QBytes is msg_qbytes: the most bytes the queue holds.
	QBytes   uint64 `json:"qbytes"`
	Messages []Msg  `json:"messages,omitempty"`
}

// Msg is one message of a queue: its type (mtype, above 0) and text.
type Msg struct {
	Type int64  `json:"type"`
	Text []byte `json:"text"`
}

// --- end of System V IPC

// --- pseudo-terminals (issue 11, pty): kept in one block for merges.

// File kinds of a pseudo-terminal whose master a process of the image
// holds: its master (/dev/ptmx) and its slave (/dev/pts/N).
const (
	FilePTYMaster = "ptmx"
	FilePTYSlave  = "pts"
)

// PTY is one end of a pseudo-terminal pair (FilePTYMaster, FilePTYSlave). The pair's state
// is on its master's File; a slave's File says which master is its.
type PTY struct {
	// Index is N of /dev/pts/N.
	Index int `json:"index"`
	// Master is, of a slave, the file id of its master; of a master,
	// -1.
	Master int `json:"master"`
	// Exclusive: the slave is in exclusive mode (TIOCEXCL). Of a slave
	// only.
	Exclusive bool `json:"exclusive,omitempty"`

	// The rest is the pair's, of a master only. The slave's termios
	// (struct termios, NCCS 19 control characters) and window size.
	Iflag  uint32 `json:"iflag,omitempty"`
	Oflag  uint32 `json:"oflag,omitempty"`
	Cflag  uint32 `json:"cflag,omitempty"`
	Lflag  uint32 `json:"lflag,omitempty"`
	Line   uint8  `json:"line,omitempty"`
	Cc     []byte `json:"cc,omitempty"`
	Rows   uint16 `json:"rows,omitempty"`
	Cols   uint16 `json:"cols,omitempty"`
	XPixel uint16 `json:"xpixel,omitempty"`
	YPixel uint16 `json:"ypixel,omitempty"`
	// Packet: the master is in packet mode (TIOCPKT); Locked: the
	// slave cannot be opened (TIOCSPTLCK).
	Packet bool `json:"packet,omitempty"`
	Locked bool `json:"locked,omitempty"`
	// Hangup: every slave was closed after one was opened (the master
	// reads EIO once its queue is empty).
	Hangup bool `json:"hangup,omitempty"`
	// Input: bytes written to the master that the slave side had not
	// read; Output: bytes written to the slave that the master side had
	// not read.
	Input  []byte `json:"input,omitempty"`
	Output []byte `json:"output,omitempty"`
	// Session is the session (its leader's PID) whose controlling
	// terminal the slave is, 0 for none; Foreground is that terminal's
	// foreground process group, 0 for none.
	Session    int `json:"session,omitempty"`
	Foreground int `json:"foreground,omitempty"`
	// SlaveDev is the device of the master's slave (its devpts
	// instance), which the dump pairs slaves by.
	SlaveDev uint64 `json:"-"`
}

// --- end of pseudo-terminals
