// Spawning: the stub every process is cloned from, clone3 into the
// wanted PIDs, and the free holes a scratch area goes into.

package restore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
	"procs/pkg/vdso"
)

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
	hr, err := inject.NewRemote(pid, kv.Start+uint64(insn))
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
	if b.main, err = inject.NewRemote(child, b.scratch); err != nil {
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
func (b *builder) clone3(r *inject.Remote, memPID int, flags, exitSignal uint64, want int, mode PIDMode) (int, error) {
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
func (t *tree) cloneIn(r *inject.Remote, memPID int, ca linux.CloneArgs, setTID int) (int, error) {
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
