package restore

import (
	"fmt"
	"io"
	"os"
	"time"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
)

// tree is one restore: the image's files, which the loader opens and
// makes once for every process that holds them, and the processes.
type tree struct {
	opts  Options
	r     *format.Reader
	start time.Time
	files []format.File    // the image's, by id
	imgs  []format.Process // the image's processes, the root first
	procs []*builder       // builds imgs[i]
	// next is a record header read after the PROCESS records and not
	// handled yet (by readContents), or nil.
	next *format.Header
	// staged: the pages of the image's passes (PASS and DROP records),
	// until each process's mappings exist; nil for an image without.
	staged *staging
	// lazy: the process runs before all of its memory is in (lazy.go),
	// or nil; remote, its image on a server (remote.go), which whole
	// streams, or nil.
	lazy   *lazyLoad
	remote *remote
	whole  io.Reader

	op       *opener             // opens files as the process will be
	local    map[int]*os.File    // file id -> the loader's open file (O_PATH, or made by it)
	own      map[int]bool        // file id -> made by the loader, or the loader's terminal
	fill     map[int]*os.File    // file id -> where its FILEDATA goes
	mapFiles map[mapKey]*os.File // a mapped file, opened as its mappings need
	// descs: open id -> the loader's open file description of it, for
	// the fds of every process that have it.
	descs map[int]*os.File
	// memfdGiven: file id -> memfd_create's description is an fd's.
	memfdGiven map[int]bool
	modes      map[int]uint32     // file id -> the mode setOwner gave it
	covered    map[int][][2]int64 // file id -> ranges FILEDATA filled
	kept       []*os.File         // more files the loader holds (a pipe's other end)
	later      []func() error     // kinds' work once every process's files are ready (Loader.Later)
	atRun      []func() error     // run once every process is built (files.Loader.AtRun)
	created    []string           // files created at their path (removed on failure)
	madeDirs   []string           // deleted folders made again, removed once the processes hold them
	// System V IPC (sysv.go): the image's sets and queues, the tree's
	// own IPC namespace or nil, the objects made in procs-load's.
	ipc     *format.IPC
	ipcNS   *os.File
	ipcMade []ipcMade
	shmKept [][]byte // segments procs-load attached (detachShm)

	helper     int      // the exec'd stub the processes are cloned from
	loaderSock *os.File // the loader's end of the socket the processes take files from (giveFD)
	xlen       int      // this machine's xstate size
	xcr0       uint64
	// vdsoInsn is the offset of a syscall instruction in the vDSO, to
	// unmap the scratch area from outside it.
	vdsoInsn uint64
	proxy    bool
	kvdso    []byte
	scratch  uint64 // where every process has the scratch area
	// rootGroup: the root leads a process group of its own again.
	rootGroup bool
	made      int // processes made so far (procs[:made])
	rootPidfd int // the root's pidfd, once it is let go
	// mode is how each clone asks for its id (placeIDs); ns is the PID
	// namespace the processes are made in, or nil for the caller's.
	mode PIDMode
	ns   *pidNS
	// taskLocks: process index -> the file locks it takes (locks.go).
	taskLocks map[int][]lockRef
	// newPts: the tree's pseudo-terminals are made in a devpts instance
	// of its own, pts (once made), mounted on /dev/pts of its mount
	// namespace (ctty.go).
	newPts bool
	pts    *os.File
	// clockShift is what the processes' time namespace adds to this
	// machine's CLOCK_MONOTONIC and CLOCK_BOOTTIME, or nil when they
	// have this machine's clocks (timeNamespace).
	clockShift *[2]int64
}

// builder builds one process of the tree.
type builder struct {
	*tree
	img  *format.Process
	task int // its number in the image (its PROCESS record's)

	fdFiles map[int]*os.File // index in FDs -> its open file description
	exeFile *os.File         // the executable, for PR_SET_MM_MAP
	cwdFile *os.File         // the working directory, for fchdir
	// sock is the process's end of the loader's socket (stubSocket at
	// first, then above the image's fds), or -1 once closed.
	sock int

	pid  int       // the process being built
	tty  *terminal // the terminal whose modes it was given
	main *inject.Remote
	tids []int // thread ids, in the image's order
	// kvdsoAt is where clearLayout put this kernel's [vdso]: where the
	// image had its own, or, with proxy, next to it, the process calling
	// it, kvdso, through a patched copy of its own (see procs/pkg/vdso).
	kvdsoAt uint64
	mem     *ptrace.ProcMem // for pages of read-only mappings
}

// Scratch area in the process being built: code, then data.
const (
	scratchSize = 64 << 10
	offArgs     = 0x100  // clone_args, sigaction, itimerval, stack_t...
	offPath     = 0x1000 // a NUL-terminated path
	offBig      = 0x2000 // prctl_mm_map and auxv, siginfo
)

func (b *builder) logf(format string, args ...any) {
	b.opts.Log("%v: "+format, append([]any{time.Since(b.start).Round(time.Microsecond)}, args...)...)
}

func (b *builder) warnf(format string, args ...any) {
	b.opts.Warn(format, args...)
}

// write puts bytes into the scratch area.
func (b *builder) write(off uint64, p []byte) error {
	return ptrace.WriteMem(b.pid, b.scratch+off, p)
}

func (b *builder) writePath(p string) (uint64, error) {
	if len(p) >= offBig-offPath {
		return 0, fmt.Errorf("path too long: %s", safetext.Quote(p))
	}
	return b.scratch + offPath, b.write(offPath, append([]byte(p), 0))
}
