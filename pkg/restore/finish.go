package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
	"procs/pkg/vdso"
)

// takeFD gives the process being built a copy of lf, an open file of
// the loader's (the same open file description), and returns its number
// in the process; it is close-on-exec.
func (b *builder) takeFD(lf *os.File) (uint64, error) {
	if err := b.raiseSocket(); err != nil {
		return 0, err
	}
	return b.giveFD(b.main, b.pid, uint64(b.sock), lf)
}

// giveFD sends lf on the loader's socket and has r's thread, of process
// pid, receive it from the other end, its fd sock; it returns the fd's
// number there (close-on-exec).
func (t *tree) giveFD(r *ptrace.Remote, pid int, sock uint64, lf *os.File) (uint64, error) {
	fail := func(err error) (uint64, error) {
		return 0, fmt.Errorf("giving the process %s: %w", safetext.Quote(lf.Name()), err)
	}
	if err := unix.Sendmsg(int(t.loaderSock.Fd()), []byte{0}, unix.UnixRights(int(lf.Fd())), nil, 0); err != nil {
		return fail(os.NewSyscallError("sendmsg", err))
	}
	// struct msghdr, its one iovec, the byte, the control buffer.
	space := unix.CmsgSpace(4)
	msg := t.scratch + offFD
	iov := msg + linux.SizeofMsghdr
	data := iov + linux.SizeofIovec
	control := data + 8
	buf := linux.Msghdr{Iov: iov, Iovlen: 1, Control: control, Controllen: uint64(space)}.Encode()
	buf = append(buf, linux.Iovec{Base: data, Len: 1}.Encode()...)
	buf = append(buf, make([]byte, 8+space)...)
	if err := ptrace.WriteMem(pid, msg, buf); err != nil {
		return fail(err)
	}
	if _, err := r.Syscall("recvmsg", unix.SYS_RECVMSG, sock, msg, unix.MSG_CMSG_CLOEXEC); err != nil {
		return fail(err)
	}
	got := make([]byte, space)
	if err := ptrace.ReadMem(pid, control, got); err != nil {
		return fail(err)
	}
	var fds []int
	cms, err := unix.ParseSocketControlMessage(got)
	if err == nil && len(cms) == 1 {
		fds, err = unix.ParseUnixRights(&cms[0])
	}
	if err != nil || len(fds) != 1 {
		// The kernel drops an fd the process has no room for.
		return fail(errors.New("it received no fd (too many open files?)"))
	}
	return uint64(fds[0]), nil
}

// raiseSocket moves the process's end of the loader's socket above every
// fd of the image, out of the way of makeFDs, when it is not yet (a child
// forked from its parent has it where its parent had put it).
func (b *builder) raiseSocket() error {
	if b.sock < 0 {
		return errors.New("the process's end of the loader's socket is closed")
	}
	top := 2
	for _, f := range b.img.FDs {
		top = max(top, f.Num)
	}
	if b.sock > top {
		return nil
	}
	r := b.main
	high, err := r.Syscall("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, uint64(b.sock), unix.F_DUPFD_CLOEXEC, uint64(top+1))
	if err != nil {
		return err
	}
	old := b.sock
	b.sock = int(high)
	_, err = r.Syscall("close", unix.SYS_CLOSE, uint64(old))
	return err
}

// dropSocket closes the process's end of the loader's socket.
func (b *builder) dropSocket() error {
	if b.sock < 0 {
		return nil
	}
	fd := b.sock
	b.sock = -1
	_, err := b.main.Syscall("close", unix.SYS_CLOSE, uint64(fd))
	return err
}

// mapMemory makes every mapping of the image at its address, with its
// final protection.
func (b *builder) mapMemory() error {
	fds := map[mapKey]uint64{}
	defer func() {
		for _, fd := range fds {
			b.main.Syscall("close", unix.SYS_CLOSE, fd)
		}
	}()
	for _, m := range b.img.Maps {
		if m.Kind == format.MapVdso && b.proxy {
			if err := b.mapOldVdso(m); err != nil {
				return err
			}
			continue
		}
		if m.Kind == format.MapVdso || m.Kind == format.MapVsyscall || len(m.Inherit) > 0 {
			continue // the kernel's, or the parent's (see layout)
		}
		prot := m.Prot
		flags := unix.MAP_FIXED
		if m.Shared {
			flags |= unix.MAP_SHARED
		} else if hasAdvice(m, "dp") {
			flags |= unix.MAP_DROPPABLE
		} else {
			flags |= unix.MAP_PRIVATE
			if writableWhileFilled(m) {
				prot |= unix.PROT_WRITE
			}
			if !hasAdvice(m, "ac") && m.Prot&unix.PROT_WRITE != 0 {
				flags |= unix.MAP_NORESERVE
			}
		}
		for _, a := range m.Advice {
			if a == "gd" {
				flags |= unix.MAP_GROWSDOWN
			}
		}
		fd, off := ^uint64(0), uint64(0)
		if m.File >= 0 {
			k := mapKey{m.File, mapMode(m)}
			var ok bool
			if fd, ok = fds[k]; !ok {
				var err error
				if fd, err = b.takeFD(b.mapFiles[k]); err != nil {
					return err
				}
				fds[k] = fd
			}
			off = m.Offset
		} else {
			flags |= unix.MAP_ANONYMOUS
		}
		if _, err := b.main.Syscall(fmt.Sprintf("mmap %x-%x %s", m.Start, m.End, safetext.Quote(m.Name)), unix.SYS_MMAP,
			m.Start, m.End-m.Start, uint64(prot), uint64(flags), fd, off); err != nil {
			return err
		}
	}
	return nil
}

// mapOldVdso makes, for an image whose vDSO this kernel's serves
// through jumps, m, one of the image's vDSO mappings: the vDSO itself as
// a private copy of the image's, every function starting with a jump to
// this kernel's; its data pages ([vvar]...) as inaccessible memory, which
// no code reads any more but keeps other mappings off.
func (b *builder) mapOldVdso(m format.Mapping) error {
	prot, flags := uint64(unix.PROT_NONE), uint64(unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if m.Name == "[vdso]" {
		prot = unix.PROT_READ | unix.PROT_WRITE
	}
	name := fmt.Sprintf("mmap %x-%x %s", m.Start, m.End, safetext.Quote(m.Name))
	if _, err := b.main.Syscall(name, unix.SYS_MMAP, m.Start, m.End-m.Start, prot, flags, ^uint64(0), 0); err != nil {
		return err
	}
	if m.Name != "[vdso]" {
		return nil
	}
	code, err := vdso.Proxy(b.img.Vdso, b.kvdso, m.Start, b.kvdsoAt)
	if err != nil {
		return err
	}
	if uint64(len(code)) != m.End-m.Start {
		return fmt.Errorf("the image's [vdso] holds %d bytes, its mapping %d", len(code), m.End-m.Start)
	}
	if err := ptrace.WriteMem(b.pid, m.Start, code); err != nil {
		return err
	}
	_, err = b.main.Syscall("mprotect [vdso]", unix.SYS_MPROTECT, m.Start, m.End-m.Start, uint64(m.Prot))
	return err
}

var advice = map[string]uint64{
	"dc": unix.MADV_DONTFORK, "dd": unix.MADV_DONTDUMP, "hg": unix.MADV_HUGEPAGE,
	"nh": unix.MADV_NOHUGEPAGE, "wf": unix.MADV_WIPEONFORK, "mg": unix.MADV_MERGEABLE,
}

// finish puts every other piece of state in place and lets the process go.
func (b *builder) finish() error {
	img := b.img
	r := b.main
	for _, m := range img.Maps {
		if m.Kind == format.MapVdso || m.Kind == format.MapVsyscall {
			continue
		}
		if writableWhileFilled(m) && m.Prot&unix.PROT_WRITE == 0 {
			if _, err := r.Syscall("mprotect", unix.SYS_MPROTECT, m.Start, m.End-m.Start, uint64(m.Prot)); err != nil {
				return err
			}
		}
		for _, a := range m.Advice {
			if adv, ok := advice[a]; ok {
				if _, err := r.Syscall("madvise", unix.SYS_MADVISE, m.Start, m.End-m.Start, adv); err != nil {
					b.warnf("madvise(%s) on %x-%x: %v", a, m.Start, m.End, err)
				}
			}
		}
		if err := b.mapFlags(m); err != nil {
			return err
		}
	}
	if err := b.setMM(); err != nil {
		return err
	}
	if err := b.makeFDs(); err != nil {
		return err
	}
	if err := b.processState(); err != nil {
		return err
	}
	b.removeMadeDirs() // the process holds them now
	if err := b.makeThreads(); err != nil {
		return err
	}
	for i := range img.Threads {
		if err := b.threadState(i); err != nil {
			return err
		}
	}
	if err := b.posixTimers(); err != nil {
		return err
	}
	if err := b.signals(); err != nil {
		return err
	}
	if err := b.exactProcess(); err != nil {
		return err
	}
	if err := b.seccomp(); err != nil {
		return err
	}
	// Limits while the process still has our ids: prlimit on a
	// process of another user needs CAP_SYS_RESOURCE.
	for i, l := range img.Limits {
		lim := unix.Rlimit{Cur: l.Cur, Max: l.Max}
		if err := unix.Prlimit(b.pid, i, &lim, nil); err != nil {
			b.warnf("cannot set resource limit %d: %v", i, err)
		}
	}
	if err := b.creds(); err != nil {
		return err
	}
	if err := b.treeState(); err != nil {
		return err
	}
	if err := b.procSelfFDs(); err != nil {
		return err
	}
	// The scratch area goes last, unmapped from a syscall instruction
	// outside it: the vDSO's, at its new place.
	r.Insn = b.kvdsoAt + b.vdsoInsn
	if _, err := r.Syscall("munmap scratch", unix.SYS_MUNMAP, b.scratch, scratchSize); err != nil {
		return err
	}
	for i := range img.Threads {
		if err := b.finalRegs(i); err != nil {
			return err
		}
	}
	b.logf("state in place, %s", format.Threads(len(b.tids)))
	if b.task > 0 {
		return nil
	}
	if t := img.Terminal; b.opts.Terminal && t != nil {
		if f := b.opts.modesTerminal(img); f != nil {
			b.tty = takeTerminal(f, t)
		}
	}
	// A process that led its process group (a shell, or any job a shell
	// started) and has its PID back leads a group of that id again (see
	// spawn), in the terminal's foreground: a restored shell's job
	// control expects its group to be the one it left.
	if b.rootGroup {
		err := errors.New("no terminal")
		if b.tty != nil {
			err = b.tty.giveForeground(b.pid)
		}
		if err != nil && len(b.procs) == 1 && b.ns == nil {
			// Back in ours, which is in the foreground where we are.
			unix.Setpgid(b.pid, unix.Getpgrp())
			b.rootGroup = false
			if b.tty != nil {
				b.warnf("the process stays in procs-load's process group: %v", err)
			}
		} else if err != nil {
			b.warnf("the tree's process group %d is not the terminal's foreground: %v", b.pid, err)
		}
	}
	return nil
}

func (b *builder) setMM() error {
	mm := b.img.MM
	// Setting the exe link needs CAP_CHECKPOINT_RESTORE; without it the
	// link keeps naming the loader, and nothing else changes.
	exe := ^uint64(0)
	if b.exeFile != nil {
		var err error
		if exe, err = b.takeFD(b.exeFile); err != nil {
			return err
		}
		defer b.main.Syscall("close", unix.SYS_CLOSE, exe)
	} else {
		b.warnf("not privileged: /proc/%d/exe will name the loader, not %s", b.pid, safetext.Quote(b.files[b.img.Exe].Path))
	}
	// struct prctl_mm_map, then the auxiliary vector.
	buf := linux.PrctlMMMap{StartCode: mm.StartCode, EndCode: mm.EndCode, StartData: mm.StartData,
		EndData: mm.EndData, StartBrk: mm.StartBrk, Brk: mm.Brk, StartStack: mm.StartStack,
		ArgStart: mm.ArgStart, ArgEnd: mm.ArgEnd, EnvStart: mm.EnvStart, EnvEnd: mm.EnvEnd,
		Auxv: b.scratch + offBig + linux.SizeofPrctlMMMap, AuxvSize: uint32(8 * len(mm.Auxv)),
		ExeFD: uint32(exe)}.Encode()
	for _, v := range mm.Auxv {
		buf = binary.LittleEndian.AppendUint64(buf, v)
	}
	if err := b.write(offBig, buf); err != nil {
		return err
	}
	if _, err := b.main.Syscall("prctl(PR_SET_MM_MAP)", unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, b.scratch+offBig, linux.SizeofPrctlMMMap, 0); err != nil {
		return err
	}
	return nil
}

// makeFDs opens every fd at its number with its flags and offset.
func (b *builder) makeFDs() error {
	r := b.main
	// Close what the stub inherited from the loader beyond 0, 1 and 2,
	// but the loader's socket.
	if err := b.raiseSocket(); err != nil {
		return err
	}
	for _, rg := range [][2]uint64{{3, uint64(b.sock - 1)}, {uint64(b.sock + 1), ^uint64(0) >> 33}} {
		if rg[0] > rg[1] {
			continue // the socket is fd 3
		}
		if _, err := r.Syscall("close_range", unix.SYS_CLOSE_RANGE, rg[0], rg[1], 0); err != nil {
			return err
		}
	}
	if b.task == 0 {
		b.logStreams()
	}
	top, has := 2, map[int]bool{}
	for _, fd := range b.img.FDs {
		top, has[fd.Num] = max(top, fd.Num), true
	}
	// The restorer's streams that fds of other numbers are, kept out of
	// the way while the fds are made (fd 1 may be a pipe, and fd 5 the
	// restorer's stdout).
	var moved [3]uint64
	for _, fd := range b.img.FDs {
		if s, ok := b.streamOf(fd); ok && s != fd.Num && moved[s] == 0 {
			hi, err := r.Syscall("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, uint64(s), unix.F_DUPFD_CLOEXEC, uint64(top+1+s))
			if err != nil {
				return fmt.Errorf("fd %d: procs-load's stream %d: %w", fd.Num, s, err)
			}
			moved[s] = hi
		}
	}
	first := map[int]int{} // open id -> the fd of this process that has it first
	var made []format.FD
	for k, fd := range b.img.FDs {
		cloexec := fdCloexec(fd)
		if s, ok := b.streamOf(fd); ok {
			if s != fd.Num {
				if _, err := r.Syscall("dup3", unix.SYS_DUP3, moved[s], uint64(fd.Num), uint64(cloexec)); err != nil {
					return fmt.Errorf("fd %d: %w", fd.Num, err)
				}
			}
			continue // the loader's own standard streams stand in
		}
		f := b.files[fd.File]
		if f.Self != "" {
			continue // opened later by the process itself: procSelfFDs
		}
		if prev, ok := first[fd.Open]; ok {
			// Shares an earlier fd's open file: offset and flags come
			// with it.
			if _, err := r.Syscall("dup3", unix.SYS_DUP3, uint64(prev), uint64(fd.Num), uint64(cloexec)); err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
			continue
		}
		first[fd.Open] = fd.Num
		var tmp uint64
		var err error
		taken := false
		m, isMaker := files.Lookup(f.Kind).(files.Maker)
		switch {
		case b.fdFiles[k] != nil:
			// Opened, and put at its offset, by prepareFiles; it comes
			// close-on-exec.
			tmp, err = b.takeFD(b.fdFiles[k])
			taken = true
		case isMaker && b.descs[fd.Open] != nil:
			// Made by an earlier process of the tree.
			tmp, err = b.takeFD(b.descs[fd.Open])
			taken = true
		case isMaker:
			tmp, err = m.Make(target{b}, fd, &f, cloexec)
			made = append(made, fd)
		default:
			err = fmt.Errorf("no open file for it")
		}
		if err == nil {
			err = b.placeFD(tmp, fd.Num, cloexec, taken)
		}
		if err != nil {
			return fmt.Errorf("fd %d: %w", fd.Num, err)
		}
	}
	for _, hi := range moved {
		if hi != 0 {
			r.Syscall("close", unix.SYS_CLOSE, hi)
		}
	}
	if b.task > 0 {
		// A member without fd 0, 1 or 2 had closed it: it does not get
		// the one the stub had (procs-load's).
		for n := range 3 {
			if !has[n] {
				if _, err := r.Syscall("close", unix.SYS_CLOSE, uint64(n)); err != nil && !errors.Is(err, unix.EBADF) {
					return err
				}
			}
		}
	}
	// The second pass: links between the objects just made.
	for _, fd := range made {
		f := &b.files[fd.File]
		if l, ok := files.Lookup(f.Kind).(files.Linker); ok {
			if err := l.Link(target{b}, fd, f); err != nil {
				return err
			}
		}
		if b.sharedLater(fd.Open) {
			if err := b.shareMade(fd.Open, fd.Num); err != nil {
				return err
			}
		}
	}
	return nil
}

// target is what the kinds see of the process being built (files.Target).
type target struct{ b *builder }

func (t target) Syscall(name string, nr uintptr, args ...uint64) (uint64, error) {
	return t.b.main.Syscall(name, nr, args...)
}

func (t target) Arg(p []byte) (uint64, error) {
	return t.b.scratch + offArgs, t.b.write(offArgs, p)
}

// PID is the restored PID of the image's process pid.
func (t target) PID(pid int) (int, bool) {
	if b := t.b.byPID(pid); b != nil {
		return b.pid, true
	}
	return 0, false
}

// processState sets signal handlers, interval timers, umask, cwd and
// personality.
func (b *builder) processState() error {
	img := b.img
	r := b.main
	for i, sa := range img.Sigactions {
		sig := i + 1
		if sa == (format.Sigaction{}) || sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if err := b.write(offArgs, linux.SigAction(sa).Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall(fmt.Sprintf("rt_sigaction(%d)", sig), unix.SYS_RT_SIGACTION, uint64(sig), b.scratch+offArgs, 0, linux.SizeofSigset); err != nil {
			return err
		}
	}
	for which, it := range img.Itimers {
		if it.ValueUsec == 0 {
			continue
		}
		if err := b.write(offArgs, linux.MakeItimer(it.IntervalUsec, it.ValueUsec, 1e6).Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall("setitimer", unix.SYS_SETITIMER, uint64(which), b.scratch+offArgs, 0); err != nil {
			return err
		}
	}
	if _, err := r.Syscall("umask", unix.SYS_UMASK, uint64(img.Umask)); err != nil {
		return err
	}
	cwd, err := b.takeFD(b.cwdFile)
	if err != nil {
		return err
	}
	_, err = r.Syscall("fchdir", unix.SYS_FCHDIR, cwd)
	if err == nil && b.ns != nil {
		err = b.cwdInNamespace(cwd)
	}
	r.Syscall("close", unix.SYS_CLOSE, cwd)
	if err != nil {
		return fmt.Errorf("working directory %s: %w", safetext.Quote(img.Cwd), err)
	}
	if err := b.dropSocket(); err != nil {
		return err
	}
	if _, err := r.Syscall("personality", unix.SYS_PERSONALITY, uint64(img.Personality)); err != nil {
		return err
	}
	if img.Creds.NoNewPrivs {
		if _, err := r.Syscall("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// makeThreads clones every thread but the first from the main thread.
func (b *builder) makeThreads() error {
	const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	mode := b.mode
	if b.innerTID(0) != b.img.PID {
		mode = PIDNew // new PID, new thread ids
	}
	for _, t := range b.img.Threads[1:] {
		// clone3 adds the thread to b.tids.
		if _, err := b.clone3(b.main, b.pid, threadFlags, 0, t.TID, mode); err != nil {
			return fmt.Errorf("creating thread %d: %w", t.TID, err)
		}
	}
	return nil
}

// threadState sets thread i's alternate signal stack, clear_child_tid,
// robust list, rseq and name, from inside the thread.
func (b *builder) threadState(i int) error {
	t := &b.img.Threads[i]
	tid := b.tids[i]
	r := b.main
	if i > 0 {
		var err error
		if r, err = ptrace.NewRemote(tid, b.scratch); err != nil {
			return err
		}
		r.Forget()
	}
	if t.Altstack.Flags&linux.SS_DISABLE == 0 && t.Altstack.SP != 0 {
		ss := linux.StackT{SP: t.Altstack.SP, Flags: t.Altstack.Flags &^ linux.SS_ONSTACK, Size: t.Altstack.Size}
		if err := b.write(offArgs, ss.Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall("sigaltstack", unix.SYS_SIGALTSTACK, b.scratch+offArgs, 0); err != nil {
			return err
		}
	}
	if _, err := r.Syscall("set_tid_address", unix.SYS_SET_TID_ADDRESS, t.ClearTID); err != nil {
		return err
	}
	if t.Robust[0] != 0 {
		if _, err := r.Syscall("set_robust_list", unix.SYS_SET_ROBUST_LIST, t.Robust[0], t.Robust[1]); err != nil {
			return err
		}
	}
	if t.Rseq.Addr != 0 {
		if _, err := r.Syscall("rseq", unix.SYS_RSEQ, t.Rseq.Addr, uint64(t.Rseq.Size), 0, uint64(t.Rseq.Sig)); err != nil {
			return err
		}
	}
	p, err := b.writePath(t.Comm)
	if err != nil {
		return err
	}
	if _, err := r.Syscall("prctl(PR_SET_NAME)", unix.SYS_PRCTL, unix.PR_SET_NAME, p); err != nil {
		return err
	}
	return b.threadSched(i)
}

// signals queues the pending signals again, from the main thread.
func (b *builder) signals() error {
	queue := func(info []byte, tid int) error {
		if len(info) != linux.SizeofSiginfo {
			return fmt.Errorf("pending signal: siginfo of %d bytes", len(info))
		}
		if err := b.write(offBig, info); err != nil {
			return err
		}
		sig := uint64(linux.SiginfoSigno(info))
		var err error
		if tid == 0 {
			_, err = b.main.Syscall("rt_sigqueueinfo", unix.SYS_RT_SIGQUEUEINFO, uint64(b.innerTID(0)), sig, b.scratch+offBig)
		} else {
			_, err = b.main.Syscall("rt_tgsigqueueinfo", unix.SYS_RT_TGSIGQUEUEINFO, uint64(b.innerTID(0)), uint64(tid), sig, b.scratch+offBig)
		}
		return err
	}
	for _, info := range b.img.Pending {
		if err := queue(info, 0); err != nil {
			return err
		}
	}
	for i, t := range b.img.Threads {
		for _, info := range t.Pending {
			if err := queue(info, b.innerTID(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// procSelfFDs opens the fds of the process's own /proc files in the
// process itself, now that it has its credentials: /proc/PID/status of
// its new PID, not the original's (which may still run) nor procs-load's.
// The path stays within /proc/PID (validate) and crosses no magic link.
func (b *builder) procSelfFDs() error {
	r := b.main
	first := map[int]int{} // open id -> the fd that has it first
	for _, fd := range b.img.FDs {
		if fd.File < 0 || b.files[fd.File].Self == "" || b.ownStream(fd) {
			continue
		}
		var tmp uint64
		var err error
		if prev, ok := first[fd.Open]; ok {
			tmp, err = r.Syscall("dup", unix.SYS_FCNTL, uint64(prev), unix.F_DUPFD, 0)
		} else {
			first[fd.Open] = fd.Num
			self := b.files[fd.File].Self
			// The process's own ids, as its /proc shows them.
			if rest, ok := strings.CutPrefix(self, fmt.Sprintf("task/%d", b.img.PID)); ok {
				self = fmt.Sprintf("task/%d%s", b.innerTID(0), rest)
			}
			path := fmt.Sprintf("/proc/%d/%s", b.innerTID(0), self)
			how := unix.OpenHow{Flags: uint64(fd.Flags&openFlags | unix.O_CLOEXEC | unix.O_NOCTTY), Resolve: unix.RESOLVE_NO_MAGICLINKS}
			if err := b.write(offArgs, linux.EncodeOpenHow(how)); err != nil {
				return err
			}
			p, err := b.writePath(path)
			if err != nil {
				return err
			}
			tmp, err = r.Syscall("openat2", unix.SYS_OPENAT2, atFDCWD, p, b.scratch+offArgs, unix.SizeofOpenHow)
			if err == nil && fd.Pos != 0 {
				_, err = r.Syscall("lseek", unix.SYS_LSEEK, tmp, uint64(fd.Pos), 0)
			}
		}
		if err == nil {
			// F_DUPFD and openat2 (O_CLOEXEC) alike leave it
			// close-on-exec.
			err = b.placeFD(tmp, fd.Num, fdCloexec(fd), true)
		}
		if err != nil {
			return fmt.Errorf("fd %d: %s of the process's own /proc: %w", fd.Num, safetext.Quote(b.files[fd.File].Self), err)
		}
	}
	return nil
}

// fdCloexec is O_CLOEXEC when fd had it, else 0.
func fdCloexec(fd format.FD) int {
	if fd.Cloexec {
		return unix.O_CLOEXEC
	}
	return 0
}

// placeFD moves tmp, an fd the process holds, to num with the
// close-on-exec flag cloexec (O_CLOEXEC or 0); tmpCloexec says whether
// tmp has that flag set already.
func (b *builder) placeFD(tmp uint64, num, cloexec int, tmpCloexec bool) error {
	r := b.main
	if tmp != uint64(num) {
		_, err := r.Syscall("dup3", unix.SYS_DUP3, tmp, uint64(num), uint64(cloexec))
		r.Syscall("close", unix.SYS_CLOSE, tmp)
		return err
	}
	if tmpCloexec && cloexec == 0 {
		_, err := r.Syscall("fcntl(F_SETFD)", unix.SYS_FCNTL, tmp, unix.F_SETFD, 0)
		return err
	}
	return nil
}

// finalRegs gives thread i its registers, extended state and signal mask.
func (b *builder) finalRegs(i int) error {
	t := &b.img.Threads[i]
	tid := b.tids[i]
	regs, _ := ptrace.WordsToRegs(t.Regs)
	ptrace.FixRestart(&regs)
	if err := ptrace.SetRegs(tid, &regs); err != nil {
		return fmt.Errorf("thread %d: registers: %w", tid, err)
	}
	xs := make([]byte, b.xlen)
	copy(xs, t.XState)
	if len(t.XState) != b.xlen && b.xlen >= linux.XSAVE_HDR_OFFSET+8 {
		// Keep only the components both machines know: XSTATE_BV.
		bv := binary.LittleEndian.Uint64(xs[linux.XSAVE_HDR_OFFSET:]) & b.xcr0
		binary.LittleEndian.PutUint64(xs[linux.XSAVE_HDR_OFFSET:], bv)
	}
	if err := ptrace.SetXState(tid, xs); err != nil {
		return fmt.Errorf("thread %d: extended state: %w", tid, err)
	}
	return ptrace.SetSigmask(tid, t.Sigmask)
}

// atFDCWD is AT_FDCWD (-100) as a register value.
const atFDCWD = ^uint64(99)

// hasCheckpointRestore tells whether this process has CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE in its effective set.
func hasCheckpointRestore() bool {
	return hasCap(unix.CAP_SYS_ADMIN) || hasCap(unix.CAP_CHECKPOINT_RESTORE)
}

func hasAdvice(m format.Mapping, flag string) bool { return slices.Contains(m.Advice, flag) }

// writableWhileFilled tells whether mapMemory maps m writable until
// finish gives it its protection: a private mapping that is writable, or
// that was writable once (accounted, "ac", and so never merged with a
// neighbour that was not: it is made as it was, and protected at the
// end).
func writableWhileFilled(m format.Mapping) bool {
	return !m.Shared && (m.Prot&unix.PROT_WRITE != 0 || hasAdvice(m, "ac"))
}

// posixTimers makes the process's POSIX timers again under their ids
// (PR_TIMER_CREATE_RESTORE_IDS: the program holds them as timer_t) and
// arms each with what was left of its time at the dump. A timer that
// signals one thread signals that thread's new tid.
func (b *builder) posixTimers() error {
	img := b.img
	if len(img.Timers) == 0 {
		return nil
	}
	r := b.main
	le := binary.LittleEndian
	if _, err := r.Syscall("prctl(PR_TIMER_CREATE_RESTORE_IDS)", unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0); err != nil {
		return err // Restore checked that the kernel knows it
	}
	for _, t := range img.Timers {
		// struct sigevent, then the timer id to ask for.
		ev := linux.Sigevent{Value: t.Value, Signo: int32(t.Signo), Notify: int32(t.Notify)}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 {
			i := slices.IndexFunc(img.Threads, func(th format.Thread) bool { return th.TID == t.Target })
			if i < 0 {
				return fmt.Errorf("POSIX timer %d signals thread %d, which the image lacks", t.ID, t.Target)
			}
			ev.ThreadID = int32(b.innerTID(i))
		}
		if err := b.write(offArgs, le.AppendUint32(ev.Encode(), uint32(t.ID))); err != nil {
			return err
		}
		name := fmt.Sprintf("timer_create(%d)", t.ID)
		if _, err := r.Syscall(name, unix.SYS_TIMER_CREATE, uint64(t.Clock), b.scratch+offArgs, b.scratch+offArgs+linux.SizeofSigevent); err != nil {
			return err
		}
		got := make([]byte, 4)
		if err := ptrace.ReadMem(b.pid, b.scratch+offArgs+linux.SizeofSigevent, got); err != nil {
			return err
		}
		if id := int(int32(le.Uint32(got))); id != t.ID {
			return fmt.Errorf("POSIX timer %d came back as timer %d", t.ID, id)
		}
		if t.ValueNsec == 0 {
			continue // disarmed
		}
		if err := b.write(offArgs, linux.MakeItimer(t.IntervalNsec, t.ValueNsec, 1e9).Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall(fmt.Sprintf("timer_settime(%d)", t.ID), unix.SYS_TIMER_SETTIME, uint64(t.ID), 0, b.scratch+offArgs, 0); err != nil {
			return err
		}
	}
	_, err := r.Syscall("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0)
	return err
}

// untilSleeping waits, at most timeout, until thread pid sleeps in an
// interruptible wait (state S).
func untilSleeping(pid int, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		if st, err := procfs.ReadStat(pid); err != nil || st.State == 'S' {
			return
		}
	}
}
