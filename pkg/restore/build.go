package restore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
	"procs/pkg/vdso"
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
	created    []string           // files created at their path (removed on failure)
	madeDirs   []string           // deleted folders made again, removed once the processes hold them

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
	main *ptrace.Remote
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

// reap waits until thread tid, killed, is gone.
func reap(tid int) {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil && err != unix.EINTR {
			return
		} else if err == nil && (ws.Exited() || ws.Signaled()) {
			return
		}
	}
}

// stubName is argv[0] of the stub. The stub stops at its exec, under
// PTRACE_TRACEME, and never runs: should it ever run, detached from a
// loader that died before it could kill it, it exits at once instead of
// acting as the command it is a copy of.
const stubName = "procs-load-stub"

func init() {
	if len(os.Args) > 0 && os.Args[0] == stubName {
		os.Exit(125)
	}
}

// stubSocket is the fd of the stub, and so of every process cloned from
// it, that is the other end of the loader's socket, on which the
// process receives the files procs-load opened for it (SCM_RIGHTS:
// pidfd_getfd would not take them from procs-load in a user namespace
// of the process's own).
const stubSocket = 3

// offFD is where giveFD has its buffers in the scratch area.
const offFD = 0xf000

// spawn starts the stub, checks this machine against the image, and
// clones from the stub the process to build.
func (b *builder) spawn() error {
	sock, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	b.tree.loaderSock = os.NewFile(uintptr(sock[0]), "procs-load's end of the socket")
	defer unix.Close(sock[1])
	attr := &syscall.ProcAttr{
		Env:   []string{},
		Files: []uintptr{b.opts.Stdin.Fd(), b.opts.Stdout.Fd(), b.opts.Stderr.Fd(), uintptr(sock[1])},
		// Until the first stop lets us set PTRACE_O_EXITKILL, only this
		// takes the stub with us if we die (it is killed once the
		// process is cloned from it, long before this thread ends).
		Sys: &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{stubName}, attr)
	if err != nil {
		return fmt.Errorf("starting the process: %w", err)
	}
	b.helper = pid
	ws, err := ptrace.Wait(pid)
	if err != nil {
		return err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return &ptrace.StopError{TID: pid, Status: ws}
	}
	if err := ptrace.SetOptions(pid, ptrace.Options|unix.PTRACE_O_EXITKILL); err != nil {
		return err
	}
	xs, err := ptrace.GetXState(pid)
	if err != nil {
		return err
	}
	b.xlen, b.xcr0 = len(xs), ptrace.XFeatures(xs)
	for _, p := range b.imgs {
		for _, t := range p.Threads {
			if missing := t.XCR0 &^ b.xcr0; missing != 0 {
				return fmt.Errorf("this CPU lacks features the process used (XCR0 bits %#x: %s)", missing, xfeatureNames(missing))
			}
		}
	}
	maps, err := procfs.Maps(pid)
	if err != nil {
		return err
	}
	var kv *procfs.Mapping
	for i := range maps {
		if maps[i].Path == "[vdso]" {
			kv = &maps[i]
		}
	}
	if kv == nil {
		return errors.New("this kernel gives processes no [vdso]")
	}
	code := make([]byte, kv.End-kv.Start)
	if err := ptrace.ReadMem(pid, kv.Start, code); err != nil {
		return err
	}
	if len(b.img.Vdso) > 0 && (b.opts.VdsoProxy || !bytes.Equal(code, b.img.Vdso)) {
		// Checked now, before anything is built; the jumps are
		// written once the vDSO has its place.
		if _, err := vdso.Proxy(b.img.Vdso, code, 0, 0); err != nil {
			return fmt.Errorf("the image was made on another kernel build, and its vDSO cannot be served by this kernel's: %w", err)
		}
		if err := threadsOutOfVdso(b.img); err != nil {
			return err
		}
		b.proxy, b.kvdso = true, code
		b.logf("vDSO: calls go through jumps to this kernel's")
	}
	insn := bytes.Index(code, []byte{0x0f, 0x05})
	b.vdsoInsn = uint64(insn)
	if insn < 0 {
		return errors.New("no syscall instruction in [vdso]")
	}
	var busy [][2]uint64
	for _, m := range maps {
		busy = append(busy, [2]uint64{m.Start, m.End})
	}
	for _, p := range b.imgs {
		for _, m := range p.Maps {
			busy = append(busy, [2]uint64{m.Start, m.End})
		}
	}
	b.scratch = findHole(busy, scratchSize, 0x100000000)
	if b.scratch == 0 {
		return errors.New("no room for the loader's scratch page")
	}
	hr, err := ptrace.NewRemote(pid, kv.Start+uint64(insn))
	if err != nil {
		return err
	}
	if _, err := hr.Syscall("mmap", unix.SYS_MMAP, b.scratch, scratchSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return err
	}
	if err := ptrace.WriteMem(pid, b.scratch, []byte{0x0f, 0x05, 0xcc}); err != nil {
		return err
	}
	hr.Insn = b.scratch

	b.timeNamespace(hr, pid)
	// clone3(CLONE_PARENT) makes the process a child of the loader, with
	// the original PID when asked (exit signal: the stub's, SIGCHLD); in
	// a PID namespace, a child of its first process, the init to be.
	parent, parentPID, flags, exitSignal := hr, pid, uint64(unix.CLONE_PARENT), uint64(0)
	if b.ns != nil {
		if err := b.startNamespace(hr, pid); err != nil {
			return err
		}
		parent, parentPID, flags, exitSignal = b.ns.remote, b.ns.pid, 0, uint64(unix.SIGCHLD)
	}
	child, err := b.clone3(parent, parentPID, flags, exitSignal, b.img.PID, b.mode)
	if err != nil {
		return err
	}
	b.mem = &ptrace.ProcMem{PID: child, Write: true}
	if b.ns != nil {
		if err := b.becomeInit(b.img.PID); err != nil {
			return err
		}
	}
	unix.Kill(pid, unix.SIGKILL)
	for {
		ws, err := ptrace.Wait(pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			break
		}
	}
	b.helper = 0
	if b.main, err = ptrace.NewRemote(child, b.scratch); err != nil {
		return err
	}
	b.main.Forget()
	b.tids = []int{child}
	b.sock = stubSocket
	return nil
}

// clone3 clones the process (or, with CLONE_THREAD, a thread of it) in
// r's thread, with id want when mode asks for it: with mode auto, a
// taken id falls back to a new one.
func (b *builder) clone3(r *ptrace.Remote, memPID int, flags, exitSignal uint64, want int, mode PIDMode) (int, error) {
	if mode == PIDNew {
		want = 0
	}
	child, err := b.cloneIn(r, memPID, linux.CloneArgs{Flags: flags, ExitSignal: exitSignal}, want)
	if child > 0 {
		// collected by abort from now on
		if flags&unix.CLONE_THREAD != 0 {
			b.tids = append(b.tids, child)
		} else {
			b.pid = child
		}
	}
	if want > 0 && (errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EPERM)) {
		if mode == PIDKeep {
			tree := len(b.procs) > 1
			switch {
			case errors.Is(err, unix.EPERM):
				return 0, fmt.Errorf("choosing id %d needs root (CAP_CHECKPOINT_RESTORE)", want)
			case tree:
				return 0, fmt.Errorf("the original PID %d was taken by another process as the restore began, and a tree comes back with the PIDs its processes know each other by (--pid=ns runs it in a PID namespace of its own)", want)
			}
			return 0, fmt.Errorf("--pid=keep: the original id %d (of the process or one of its threads) was taken by another process as the restore began; --pid=auto or --pid=new take another", want)
		}
		return b.clone3(r, memPID, flags, exitSignal, 0, PIDNew)
	}
	if err != nil {
		return 0, err
	}
	return child, nil
}

// cloneIn runs clone3 with ca in r's thread, of process memPID, asking
// for id setTID (0: any), and waits for the new task's first stop. It
// returns the new task's id as procs-load sees it (clone3 returns the
// one its caller sees, another in a PID namespace), whenever one was
// made.
func (t *tree) cloneIn(r *ptrace.Remote, memPID int, ca linux.CloneArgs, setTID int) (int, error) {
	if setTID > 0 {
		// set_tid: an array of one pid_t, right after the struct.
		ca.SetTID, ca.SetTIDSize = t.scratch+offArgs+linux.CLONE_ARGS_SIZE_VER2, 1
	}
	args := ca.Encode()
	if setTID > 0 {
		args = binary.LittleEndian.AppendUint32(args, uint32(setTID))
	}
	if err := ptrace.WriteMem(memPID, t.scratch+offArgs, args); err != nil {
		return 0, err
	}
	r.NewTIDs = nil
	res, err := r.Syscall("clone3", unix.SYS_CLONE3, t.scratch+offArgs, linux.CLONE_ARGS_SIZE_VER2)
	if err != nil {
		return 0, err
	}
	if res == 0 || res > maxPID || len(r.NewTIDs) != 1 {
		return 0, fmt.Errorf("clone3 in target returned %d, and reported %d new tasks", res, len(r.NewTIDs))
	}
	child := r.NewTIDs[0]
	ws, err := ptrace.Wait(child)
	if err != nil {
		return child, err
	}
	if !ws.Stopped() {
		return child, &ptrace.StopError{TID: child, Status: ws}
	}
	return child, nil
}

// zombieWait bounds how long a restore waits for zombies holding ids it
// wants to be collected (freedIDs).
const zombieWait = 2 * time.Second

// isZombie says whether id is a task that has exited and waits to be
// collected (or is gone already).
func isZombie(id int) bool {
	st, err := procfs.ReadStat(id)
	return err != nil || st.State == 'Z' || st.State == 'X'
}

// findHole returns the lowest page-aligned address >= from with size free
// bytes, or 0.
func findHole(busy [][2]uint64, size, from uint64) uint64 {
	sort.Slice(busy, func(i, j int) bool { return busy[i][0] < busy[j][0] })
	cand := from
	for _, r := range busy {
		if r[1] <= cand {
			continue
		}
		if r[0] >= cand+size {
			break
		}
		cand = (r[1] + 0xfff) &^ 0xfff
	}
	if cand+size > 0x7ffffffff000 {
		return 0
	}
	return cand
}

func xfeatureNames(m uint64) string { return fmt.Sprint(ptrace.XFeatureNames(m)) }

// clearLayout unmaps what the stub (or, for a child, its parent) had,
// but the scratch area and the memory a child inherits (Mapping.Inherit),
// and moves the vDSO group to where the image had it.
func (b *builder) clearLayout() error {
	maps, err := procfs.Maps(b.pid)
	if err != nil {
		return err
	}
	cur := map[string]procfs.Mapping{}
	var keep, parts [][2]uint64 // what a child keeps of its parent's memory
	for _, m := range b.img.Maps {
		if len(m.Inherit) > 0 {
			keep = append(keep, [2]uint64{m.Start, m.End})
		}
	}
	for _, m := range maps {
		switch {
		case m.Path == "[vdso]" || m.Path == "[vvar]" || m.Path == "[vvar_vclock]":
			cur[m.Path] = m
		case m.Path == "[vsyscall]" || m.Start == b.scratch:
		default:
			parts = format.Outside(parts[:0], m.Start, m.End, keep)
			for _, p := range parts {
				if _, err := b.main.Syscall("munmap", unix.SYS_MUNMAP, p[0], p[1]-p[0]); err != nil {
					return err
				}
			}
		}
	}
	if b.proxy {
		return b.placeVdso(cur)
	}
	want := map[string]format.Mapping{}
	for _, m := range b.img.Maps {
		if m.Kind == format.MapVdso {
			want[m.Name] = m
		}
	}
	if len(want) != len(cur) {
		return fmt.Errorf("the image's vDSO layout (%d mappings) differs from this kernel's (%d)", len(want), len(cur))
	}
	base := func(ms map[string]uint64) uint64 { return ms["[vdso]"] }
	cs, ws := map[string]uint64{}, map[string]uint64{}
	var lo, hi uint64 = ^uint64(0), 0
	for name, m := range cur {
		w, ok := want[name]
		if !ok || w.End-w.Start != m.End-m.Start {
			return fmt.Errorf("the image's %s differs from this kernel's", name)
		}
		cs[name], ws[name] = m.Start, w.Start
		lo, hi = min(lo, m.Start), max(hi, m.End)
	}
	for name := range cur {
		if cs[name]-base(cs) != ws[name]-base(ws) {
			return fmt.Errorf("the image's vDSO layout differs from this kernel's (%s)", name)
		}
	}
	b.kvdsoAt = base(ws)
	if base(cs) == base(ws) {
		return nil
	}
	// Move the group out of the way first, then to its place.
	tmp := findHole(b.busy(lo, hi), hi-lo, 0x200000000)
	if tmp == 0 {
		return errors.New("no room to move the vDSO")
	}
	for _, step := range []func(string) uint64{
		func(n string) uint64 { return tmp + (cs[n] - lo) },
		func(n string) uint64 { return ws[n] },
	} {
		for name, m := range cur {
			size := m.End - m.Start
			to := step(name)
			if _, err := b.main.Syscall("mremap "+name, unix.SYS_MREMAP, cs[name], size, size,
				unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to); err != nil {
				return err
			}
			cs[name] = to
		}
	}
	return nil
}

// threadsOutOfVdso fails if a thread of img was stopped in the middle of
// its vDSO's code, which a process calling another kernel's vDSO cannot
// go on running (procs-dump lets such threads run out first).
func threadsOutOfVdso(img *format.Process) error {
	for _, m := range img.Maps {
		if m.Name != "[vdso]" {
			continue
		}
		for _, t := range img.Threads {
			if rip, nr := t.Regs[linux.RIP], int64(t.Regs[linux.ORIG_RAX]); rip >= m.Start && rip < m.End && nr < 0 {
				return fmt.Errorf("the image was made on another kernel build, and thread %d was stopped inside its vDSO (at %#x): dump it again with this version of procs-dump", t.TID, rip)
			}
		}
	}
	return nil
}

// placeVdso moves this kernel's vDSO group, cur, next to where the
// image's was, within reach of the jumps that will lead to it (see
// mapMemory), out of the way of every mapping of the image.
func (b *builder) placeVdso(cur map[string]procfs.Mapping) error {
	var lo, hi uint64 = ^uint64(0), 0
	for _, m := range cur {
		lo, hi = min(lo, m.Start), max(hi, m.End)
	}
	var old uint64
	for _, m := range b.img.Maps {
		if m.Name == "[vdso]" {
			old = m.Start
		}
	}
	busy := b.busy(lo, hi)
	size := hi - lo
	to := uint64(0)
	for _, from := range []uint64{old - min(old, 16*size), old - min(old, 1<<30), old} {
		if to = findHole(busy, size, max(from, 1<<20)&^0xfff); to != 0 {
			if d := int64(to - old); d <= vdso.MaxDistance-int64(size) && d >= -vdso.MaxDistance {
				break
			}
			to = 0
		}
	}
	if to == 0 {
		return fmt.Errorf("no room for this kernel's vDSO near the image's at %#x", old)
	}
	for name, m := range cur {
		if _, err := b.main.Syscall("mremap "+name, unix.SYS_MREMAP, m.Start, m.End-m.Start, m.End-m.Start,
			unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to+(m.Start-lo)); err != nil {
			return err
		}
		if name == "[vdso]" {
			b.kvdsoAt = to + (m.Start - lo)
		}
	}
	if b.kvdsoAt == 0 {
		return errors.New("this kernel gives processes no [vdso]")
	}
	return nil
}

// busy lists the address ranges a moved vDSO group must keep off: the
// image's mappings, the group's place now, [lo, hi), and the scratch area.
func (b *builder) busy(lo, hi uint64) [][2]uint64 {
	busy := [][2]uint64{{lo, hi}, {b.scratch, b.scratch + scratchSize}}
	for _, m := range b.img.Maps {
		busy = append(busy, [2]uint64{m.Start, m.End})
	}
	return busy
}

// readContents reads every record after PROCESS: file contents into the
// loader's files, pages into the process. The image is verified to its
// END record.
//
// Past the first few MiB, pages are put in the process by writers (see
// pageWriters) while this goroutine reads and checks the next records.
// Every writer is done before readContents returns.
func (t *tree) readContents() (err error) {
	pw := newPageWriters()
	defer func() {
		if werr := pw.close(); err == nil {
			err = werr
		}
	}()
	var done int64
	for {
		if err := pw.err(); err != nil {
			return err
		}
		var h format.Header
		if t.next != nil {
			h, t.next = *t.next, nil
		} else if h, err = t.r.Next(); err == io.EOF {
			return t.makeUpTo(len(t.procs)-1, pw)
		} else if err != nil {
			return err
		}
		switch h.Type {
		case format.TypePages:
			buf, err := pw.buffer()
			if err != nil {
				return err
			}
			task, addr, data, err := t.r.ReadPages(buf)
			if err != nil {
				pw.giveBack(buf)
				return err
			}
			// Its process, and those before it, exist once the pages of
			// the processes before them are in: a process is forked
			// from its parent's memory (copy-on-write, see layout).
			if err := t.makeUpTo(int(task), pw); err != nil {
				pw.giveBack(buf)
				return err
			}
			b := t.procs[task] // the reader checked it
			if !b.inMemory(addr, uint64(len(data))) {
				// Anywhere else is the loader's: its scratch code, run
				// with the loader's credentials, or the vDSO.
				pw.giveBack(buf)
				return fmt.Errorf("corrupt image at byte %d (record %d): pages at %#x-%#x, outside the memory of process %d", h.Offset, h.Index, addr, addr+uint64(len(data)), b.img.PID)
			}
			// Here: the first few MiB (writers would cost a small process
			// more than they save), and pages that go through
			// /proc/PID/mem, which the kernel may let only the tracer's
			// own thread write into read-only memory.
			if done < inlineBytes || !b.writable(addr, uint64(len(data))) {
				err := b.writePages(addr, data)
				pw.giveBack(buf)
				if err != nil {
					return fmt.Errorf("image record %d: pages at %#x: %w", h.Index, addr, err)
				}
			} else {
				pw.submit(pageJob{b: b, index: h.Index, addr: addr, data: data, buf: buf})
			}
			done += int64(len(data))
			if t.opts.Progress != nil {
				t.opts.Progress(done, 0)
			}
		case format.TypeFileData:
			buf, err := pw.buffer()
			if err != nil {
				return err
			}
			err = t.fillFile(h, buf)
			pw.giveBack(buf)
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("corrupt image at byte %d (record %d): unexpected %v record", h.Offset, h.Index, h.Type)
		}
	}
}

// pageWriters put pages in the process being built from goroutines of
// their own, one per CPU (up to four), started with the first job: the
// first touch of the process's fresh memory in process_vm_writev is most
// of a restore's work, and it goes as fast on each CPU. They share the
// reader's buffers (PageBufSize each, writers+2 of them).
type pageWriters struct {
	writers int
	bufs    [][]byte    // every buffer made
	free    chan []byte // buffers not in use
	jobs    chan pageJob
	wg      sync.WaitGroup
	started bool

	mu     sync.Mutex
	failed error // the writers' first error

	inflight sync.WaitGroup // jobs submitted and not yet written
}

// pageJob is a PAGES record for a writer: data, in buf, goes at addr.
type pageJob struct {
	b         *builder // whose pages
	index     int      // of the record, for errors
	addr      uint64
	data, buf []byte
}

func newPageWriters() *pageWriters {
	n := max(1, min(runtime.GOMAXPROCS(0), 4))
	return &pageWriters{writers: n, free: make(chan []byte, n+2), jobs: make(chan pageJob, n+2)}
}

// buffer returns a free buffer, a new one while there are fewer than
// cap(free), or else waits for one to be given back.
func (pw *pageWriters) buffer() ([]byte, error) {
	select {
	case buf := <-pw.free:
		return buf, nil
	default:
	}
	if len(pw.bufs) < cap(pw.free) {
		buf, err := pagebuf.New(format.PageBufSize)
		if err != nil {
			return nil, err
		}
		pw.bufs = append(pw.bufs, buf)
		return buf, nil
	}
	return <-pw.free, nil
}

// giveBack returns a buffer from buffer that holds nothing to write.
func (pw *pageWriters) giveBack(buf []byte) { pw.free <- buf }

// submit has a writer put j's pages in, and give its buffer back.
func (pw *pageWriters) submit(j pageJob) {
	if !pw.started {
		pw.started = true
		for range pw.writers {
			pw.wg.Add(1)
			go pw.run()
		}
	}
	pw.inflight.Add(1)
	pw.jobs <- j
}

// drain waits until every job submitted is written, and returns the
// writers' first error.
func (pw *pageWriters) drain() error {
	pw.inflight.Wait()
	return pw.err()
}

func (pw *pageWriters) run() {
	defer pw.wg.Done()
	for j := range pw.jobs {
		if pw.err() == nil {
			if err := j.b.writePages(j.addr, j.data); err != nil {
				pw.mu.Lock()
				if pw.failed == nil {
					pw.failed = fmt.Errorf("image record %d: pages at %#x: %w", j.index, j.addr, err)
				}
				pw.mu.Unlock()
			}
		}
		pw.free <- j.buf
		pw.inflight.Done()
	}
}

// err is the writers' first error.
func (pw *pageWriters) err() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.failed
}

// close waits for the writers to be done, frees the buffers and returns
// the writers' first error.
func (pw *pageWriters) close() error {
	close(pw.jobs)
	pw.wg.Wait()
	for _, buf := range pw.bufs {
		pagebuf.Free(buf)
	}
	return pw.err()
}

// inlineBytes is how much memory readContents writes itself before it
// hands pages to writers.
const inlineBytes = 8 << 20

// inMemory tells whether [addr, addr+n) lies in mappings of the image
// that hold pages (not the vDSO's, not vsyscall), without a gap.
func (b *builder) inMemory(addr, n uint64) bool {
	maps := b.img.Maps
	end := addr + n
	if end < addr {
		return false
	}
	for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr }); i < len(maps) && addr < end; i++ {
		m := maps[i]
		if m.Start > addr || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall {
			return false
		}
		addr = m.End
	}
	return addr >= end
}

// writable tells whether [addr, addr+n) lies in one mapping that is
// writable while it is filled (procs-dump's PAGES records never span two;
// others take the slow way).
func (b *builder) writable(addr, n uint64) bool {
	maps := b.img.Maps
	i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr })
	return i < len(maps) && maps[i].Start <= addr && addr+n <= maps[i].End &&
		writableWhileFilled(maps[i])
}

// fillFile reads the current record, FILEDATA, into buf and writes its
// contents into the loader's file.
func (t *tree) fillFile(h format.Header, buf []byte) error {
	b := t
	idx, off, data, err := b.r.ReadFileData(buf)
	if err != nil {
		return err
	}
	f, ok := b.fill[int(idx)]
	if !ok {
		if int(idx) < len(b.files) && b.local[int(idx)] != nil {
			return nil // the file at its path was still the same
		}
		return fmt.Errorf("corrupt image at byte %d (record %d): contents for file %d, which carries none", h.Offset, h.Index, idx)
	}
	if size := uint64(b.files[idx].Size); off > size || uint64(len(data)) > size-off {
		return fmt.Errorf("corrupt image at byte %d (record %d): contents of file %d at %d-%d, past its size %d", h.Offset, h.Index, idx, off, off+uint64(len(data)), size)
	}
	if ext := b.files[idx].Extents; ext != nil {
		r := [2]int64{int64(off), int64(off) + int64(len(data))}
		if !inExtent(*ext, r) {
			return fmt.Errorf("corrupt image at byte %d (record %d): contents of file %d at %d-%d, in none of its data extents", h.Offset, h.Index, idx, r[0], r[1])
		}
		b.covered[int(idx)] = append(b.covered[int(idx)], r)
	}
	_, err = f.WriteAt(data, int64(off))
	return err
}

// inExtent tells whether r lies within one of ext, which are in order.
func inExtent(ext [][2]int64, r [2]int64) bool {
	i := sort.Search(len(ext), func(i int) bool { return ext[i][1] >= r[1] })
	return i < len(ext) && ext[i][0] <= r[0]
}

// writePages puts data at addr in the process. Mappings have their final
// protection already (so that the kernel splits and merges them as it
// did in the original), but for those writableWhileFilled; pages of
// read-only ones go through /proc/PID/mem, which writes them as a
// debugger does.
func (b *builder) writePages(addr uint64, data []byte) error {
	err := ptrace.WriteMem(b.pid, addr, data)
	if !errors.Is(err, unix.EFAULT) {
		return err
	}
	return b.mem.WriteAt(data, addr)
}

// timeNamespace makes the process cloned from the stub start in a time
// namespace of its own whose CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from
// where they were at the dump: absolute deadlines on those clocks (sleeps,
// runtime timers) keep their meaning, here or on another machine. The
// stub unshares it (its children enter it), and the offsets are written
// before any process is in it. It needs root; without it, or on any
// error, the process gets this machine's clocks and procs-load says so.
func (b *builder) timeNamespace(stub *ptrace.Remote, pid int) {
	c := b.img.Clocks
	if c == nil || !hasCheckpointRestore() {
		return
	}
	var mono, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		return
	}
	if _, err := stub.Syscall("unshare(CLONE_NEWTIME)", unix.SYS_UNSHARE, unix.CLONE_NEWTIME); err != nil {
		b.warnf("no time namespace (%v): the process's monotonic clock jumps to this machine's", err)
		return
	}
	offsets := timensOffset("monotonic", c.Monotonic-mono.Nano()) + timensOffset("boottime", c.Boottime-boot.Nano())
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/timens_offsets", pid), []byte(offsets), 0); err != nil {
		b.warnf("cannot set the time namespace's offsets (%v): the process's monotonic clock jumps to this machine's", err)
	}
}

// timensOffset is one line of timens_offsets: seconds, and nanoseconds in
// [0, 1e9).
func timensOffset(clock string, ns int64) string {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return fmt.Sprintf("%s %d %d\n", clock, sec, nsec)
}
