package restore

// Zombies, stopped processes, child subreapers and parent-death signals.
//
// Zombies and stops are made in the spawn phase, while every process is
// still a copy of the stub: the SIGCHLD a parent gets from a child's exit
// or stop, and the status its wait will report, come to the parent while
// it is held, before it gets the signals that were pending in the image.
// procs-load takes that SIGCHLD from it again (the image says whether one
// was pending), and a stop it had collected already.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
)

// validateZombie checks the record of a zombie: the members it has in
// range, and no other. A zombie is never the root (procs-load waits for
// the root to end) and never a parent (validateTree).
func validateZombie(img *format.Process, root bool) error {
	if root {
		return fmt.Errorf("image root process %d is a zombie: only another process of the image may have one as its child", img.PID)
	}
	if !inRange(img.PID, 1, maxPID) || !inRange(img.Pgid, 0, maxPID) {
		return fmt.Errorf("image zombie %d (process group %d) is out of range", img.PID, img.Pgid)
	}
	if len(img.Comm) > maxComm || strings.IndexByte(img.Comm, 0) >= 0 {
		return fmt.Errorf("image zombie %d has name %s, longer than %d bytes or with a NUL", img.PID, safetext.Quote(img.Comm), maxComm)
	}
	if why := linux.BadExitStatus(img.Zombie.Status); why != "" {
		return fmt.Errorf("image zombie %d: exit status %#x %s", img.PID, img.Zombie.Status, why)
	}
	c := img.Creds
	if len(c.Groups) > maxGroups {
		return fmt.Errorf("image zombie %d has %d supplementary groups (at most %d)", img.PID, len(c.Groups), maxGroups)
	}
	for _, id := range append(append(c.UID[:], c.GID[:]...), c.Groups...) {
		if !inRange(id, 0, maxID) {
			return fmt.Errorf("image zombie %d has a user or group id %d out of range", img.PID, id)
		}
	}
	if os.Geteuid() != 0 && (!callersCreds(c) || !sameGroups(c.Groups)) {
		return fmt.Errorf("image zombie %d ran as uid %d gid %d; restoring it as uid %d needs root (a restore never changes credentials otherwise)", img.PID, c.UID[1], c.GID[1], os.Geteuid())
	}
	// Nothing else: what a zombie has not, or an older procs-load would
	// be wrong to ignore, is refused.
	rest := *img
	rest.PID, rest.PPID, rest.Pgid, rest.Sid, rest.Comm, rest.Creds, rest.Zombie = 0, 0, 0, 0, "", format.Creds{}, nil
	emptyNil(&rest.Limits)
	emptyNil(&rest.MM.Auxv)
	emptyNil(&rest.Maps)
	emptyNil(&rest.FDs)
	emptyNil(&rest.Sigactions)
	emptyNil(&rest.Pending)
	emptyNil(&rest.Threads)
	emptyNil(&rest.Vdso)
	emptyNil(&rest.Timers)
	if !reflect.DeepEqual(rest, format.Process{}) {
		return fmt.Errorf("image zombie %d has members a zombie has not (threads, memory, files...)", img.PID)
	}
	return nil
}

// emptyNil makes an empty slice nil (JSON's [] and null alike).
func emptyNil[S ~[]E, E any](s *S) {
	if len(*s) == 0 {
		*s = nil
	}
}

// validateJob checks a living process's stop and its threads'
// parent-death signals.
func validateJob(img *format.Process) error {
	if s := img.Stopped; s != nil && !linux.StopSignals[s.Signal] {
		return fmt.Errorf("image process %d is stopped by signal %d, which stops no process", img.PID, s.Signal)
	}
	for _, t := range img.Threads {
		if !inRange(t.Pdeathsig, 0, maxSignals) {
			return fmt.Errorf("image thread %d has parent-death signal %d, out of range", t.TID, t.Pdeathsig)
		}
	}
	return nil
}

// settle ends the image's zombies and stops its stopped processes, then
// takes from each of their parents the SIGCHLD that sent it and the stops
// it had collected before the dump. The root's parent is procs-load,
// which waits for a stopped root as a shell waits for a stopped job.
func (t *tree) settle() error {
	told := map[*builder]bool{}
	for _, b := range t.procs {
		switch {
		case b.img.Zombie != nil:
			if err := b.becomeZombie(); err != nil {
				return b.wrap(err)
			}
		case b.img.Stopped != nil:
			if err := b.stopNow(); err != nil {
				return b.wrap(err)
			}
		default:
			continue
		}
		if b.task > 0 {
			told[t.byPID(b.img.PPID)] = true
		}
	}
	for _, b := range t.procs {
		if s := b.img.Stopped; s != nil && s.Waited && b.task > 0 {
			if err := t.byPID(b.img.PPID).collectStop(b.pid); err != nil {
				return b.wrap(err)
			}
		}
	}
	for _, b := range t.procs {
		if told[b] {
			if err := b.takeSIGCHLD(); err != nil {
				return b.wrap(err)
			}
		}
	}
	return nil
}

// becomeZombie ends the process as the image's zombie ended: with its
// name and credentials, by exit_group with its code or by its signal
// (without a core: the process is made not dumpable first), in its
// session and group (see spawn). procs-load then collects the tracer's
// notification of its end, and it stays a zombie for its parent, whose
// wait gets its status.
func (b *builder) becomeZombie() error {
	img := b.img
	r := b.main
	c := img.Creds
	if !callersCreds(c) || !sameGroups(c.Groups) {
		if err := b.setCreds(r, c); err != nil {
			return err
		}
	}
	if c.NoNewPrivs {
		if _, err := r.Syscall("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	p, err := b.writePath(img.Comm)
	if err != nil {
		return err
	}
	if _, err := r.Syscall("prctl(PR_SET_NAME)", unix.SYS_PRCTL, unix.PR_SET_NAME, p); err != nil {
		return err
	}
	st := img.Zombie.Status
	if err := b.endAs(b.pid, r, st); err != nil {
		return err
	}
	b.tids = nil
	if st&linux.WCOREFLAG != 0 {
		b.warnf("zombie %d comes back killed by %s, without the flag that says it dumped core (procs does not dump it again)", img.PID, unix.SignalName(unix.Signal(st&0x7f)))
	}
	return nil
}

// endAs ends process pid, a stopped copy of the stub traced by procs-load
// that r runs calls in, with wait status st: by exit_group of its code,
// or by its signal, with its default action and without a core (the
// process is made not dumpable first). procs-load collects the tracer's
// notification of its end: it stays a zombie for its parent.
func (b *builder) endAs(pid int, r *inject.Remote, st int) error {
	sig := unix.Signal(st & 0x7f)
	if sig == 0 {
		regs, err := ptrace.GetRegs(pid)
		if err != nil {
			return err
		}
		regs.Rip, regs.Rax, regs.Orig_rax, regs.Rdi = r.Insn, unix.SYS_EXIT_GROUP, ^uint64(0), uint64(st>>8)
		if err := ptrace.SetRegs(pid, &regs); err != nil {
			return err
		}
	} else {
		if _, err := r.Syscall("prctl(PR_SET_DUMPABLE)", unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return err
		}
		if err := b.defaultAction(pid, r, sig); err != nil {
			return err
		}
		if err := ptrace.SetSigmask(pid, 0); err != nil {
			return err
		}
		if err := unix.Tgkill(pid, pid, sig); err != nil {
			return os.NewSyscallError("tgkill", err)
		}
	}
	ws, err := runTo(pid, sig, func(ws unix.WaitStatus) bool { return ws.Exited() || ws.Signaled() })
	if err != nil {
		return err
	}
	if sig == 0 && (!ws.Exited() || ws.ExitStatus() != st>>8) || sig != 0 && (!ws.Signaled() || ws.Signal() != sig) {
		return fmt.Errorf("ending it with status %#x: it ended with %#x", st, uint32(ws))
	}
	return nil
}

// defaultAction gives sig its default action in process pid, which r runs
// calls in (a copy of the stub may have inherited it ignored).
func (b *builder) defaultAction(pid int, r *inject.Remote, sig unix.Signal) error {
	if sig == unix.SIGKILL || sig == unix.SIGSTOP {
		return nil
	}
	if err := ptrace.WriteMem(pid, b.scratch+offArgs, linux.SigAction{}.Encode()); err != nil {
		return err
	}
	_, err := r.Syscall(fmt.Sprintf("rt_sigaction(%d)", sig), unix.SYS_RT_SIGACTION, uint64(sig), b.scratch+offArgs, 0, linux.SizeofSigset)
	return err
}

// runTo lets traced process pid run until done says so of a wait status,
// delivering sig when it stops for it and no other signal.
func runTo(pid int, sig unix.Signal, done func(unix.WaitStatus) bool) (unix.WaitStatus, error) {
	deliver := 0
	for {
		// ESRCH: it is on its way out already (SIGKILL).
		if err := ptrace.Cont(pid, deliver); err != nil && !errors.Is(err, unix.ESRCH) {
			return 0, err
		}
		ws, err := ptrace.Wait(pid)
		if err != nil {
			return ws, err
		}
		if done(ws) {
			return ws, nil
		}
		if ws.Exited() || ws.Signaled() {
			return ws, &ptrace.StopError{TID: pid, Status: ws}
		}
		deliver = 0
		if ws.Stopped() && ws.StopSignal() == sig {
			deliver = int(sig)
		}
	}
}

// Reaped makes in the process a pidfd on a child of its that ended with
// status and that it reaped, as a pidfd that outlived its child: the
// child is cloned with exit signal 0 (no one is sent a SIGCHLD), ended
// (endAs), opened with pidfd_open while it is a zombie, then collected
// with wait4, which leaves its end in the pidfd. In a PID namespace the
// child has two ids: clone3 and the process's own calls use the inner
// one, procs-load's (ptrace, kill) the one it got from the clone event.
func (t target) Reaped(status int, flags uint64) (uint64, error) {
	b := t.b
	if err := b.write(offArgs, linux.CloneArgs{}.Encode()); err != nil {
		return 0, err
	}
	b.main.NewTIDs = nil
	res, err := b.main.Syscall("clone3", unix.SYS_CLONE3, b.scratch+offArgs, linux.CLONE_ARGS_SIZE_VER2)
	if err != nil {
		return 0, err
	}
	if len(b.main.NewTIDs) != 1 {
		return 0, fmt.Errorf("clone3 for a pidfd returned %d, and reported %d new tasks", res, len(b.main.NewTIDs))
	}
	inner, child := res, b.main.NewTIDs[0]
	reaped := false
	defer func() {
		if !reaped {
			unix.Kill(child, unix.SIGKILL)
			reap(child)
			b.main.Syscall("wait4", unix.SYS_WAIT4, inner, 0, unix.WALL|unix.WNOHANG, 0)
		}
	}()
	// Traced from its birth: its first stop.
	if ws, err := ptrace.Wait(child); err != nil || !ws.Stopped() {
		return 0, fmt.Errorf("child %d for a pidfd: %v (status %#x)", child, err, uint32(ws))
	}
	r, err := inject.NewRemote(child, b.main.Insn)
	if err != nil {
		return 0, err
	}
	r.Forget()
	if err := b.endAs(child, r, status); err != nil {
		return 0, fmt.Errorf("child %d for a pidfd: %w", child, err)
	}
	fd, err := b.main.Syscall("pidfd_open", unix.SYS_PIDFD_OPEN, inner, flags)
	if err != nil {
		return 0, err
	}
	if _, err := b.main.Syscall("wait4", unix.SYS_WAIT4, inner, 0, unix.WALL, 0); err != nil {
		b.main.Syscall("close", unix.SYS_CLOSE, fd)
		return 0, err
	}
	reaped = true
	return fd, nil
}

// stopNow stops the process as the image's was stopped: by its stop
// signal, in a group stop. Traced, it is built all the same (procs-load
// resumes it for each call it runs, and the threads made later join the
// stop); let go, it stays stopped until a SIGCONT. The kernel discards
// SIGTSTP, SIGTTIN and SIGTTOU in a process group that no process of
// another group of the session leads (an orphaned one): SIGSTOP stops it
// then.
func (b *builder) stopNow() error {
	sig := unix.Signal(b.img.Stopped.Signal)
	stopped, err := b.stopBy(sig)
	if err != nil || stopped {
		return err
	}
	b.warnf("process %d comes back stopped by SIGSTOP: its process group is orphaned here, where %s stops nothing", b.img.PID, unix.SignalName(sig))
	if stopped, err = b.stopBy(unix.SIGSTOP); err == nil && !stopped {
		err = errors.New("SIGSTOP did not stop it")
	}
	return err
}

// stopBy delivers sig to the process parked on a getpid, and says whether
// it stopped: a signal the kernel discards lets it run the getpid, and
// stop at the breakpoint after it.
func (b *builder) stopBy(sig unix.Signal) (bool, error) {
	if err := b.defaultAction(b.pid, b.main, sig); err != nil {
		return false, err
	}
	regs, err := ptrace.GetRegs(b.pid)
	if err != nil {
		return false, err
	}
	regs.Rip, regs.Rax, regs.Orig_rax = b.main.Insn, unix.SYS_GETPID, ^uint64(0)
	if err := ptrace.SetRegs(b.pid, &regs); err != nil {
		return false, err
	}
	// The Remote blocks every signal; this one must get through, and
	// is blocked again for the calls to come.
	if err := ptrace.SetSigmask(b.pid, ^uint64(0)&^(1<<(sig-1))); err != nil {
		return false, err
	}
	defer ptrace.SetSigmask(b.pid, ^uint64(0))
	if err := unix.Tgkill(b.pid, b.pid, sig); err != nil {
		return false, os.NewSyscallError("tgkill", err)
	}
	// Its delivery stop first, then, delivered, the group stop it makes.
	ws, err := runTo(b.pid, 0, func(ws unix.WaitStatus) bool { return ws.Stopped() && ws.StopSignal() == sig })
	if err != nil {
		return false, err
	}
	if err := ptrace.Cont(b.pid, int(sig)); err != nil {
		return false, err
	}
	if ws, err = ptrace.Wait(b.pid); err != nil {
		return false, err
	}
	switch {
	case ws.Stopped() && ws.StopSignal() == sig:
		return true, nil
	case ws.Stopped() && ws.StopSignal() == unix.SIGTRAP:
		return false, nil
	}
	return false, &ptrace.StopError{TID: b.pid, Status: ws}
}

// collectStop has the process collect the stop of its child pid (waitid),
// which it had collected before the dump.
func (b *builder) collectStop(pid int) error {
	_, err := b.main.Syscall(fmt.Sprintf("waitid(%d, WSTOPPED)", pid), unix.SYS_WAITID, unix.P_PID, uint64(pid), b.scratch+offBig, unix.WSTOPPED|unix.WNOHANG, 0)
	return err
}

// takeSIGCHLD takes from the process the SIGCHLD that its children's ends
// and stops sent it while it was built (rt_sigtimedwait with no wait: if
// it had SIGCHLD pending in the image, it gets it again with the others).
func (b *builder) takeSIGCHLD() error {
	var arg [24]byte // a sigset_t of SIGCHLD, then a timespec of 0
	binary.LittleEndian.PutUint64(arg[:], 1<<(unix.SIGCHLD-1))
	if err := b.write(offArgs, arg[:]); err != nil {
		return err
	}
	_, err := b.main.Syscall("rt_sigtimedwait(SIGCHLD)", unix.SYS_RT_SIGTIMEDWAIT, b.scratch+offArgs, 0, b.scratch+offArgs+8, linux.SizeofSigset)
	if errors.Is(err, unix.EAGAIN) {
		return nil
	}
	return err
}

// treeState makes the process a child subreaper again, and gives each of
// its threads its parent-death signal, which a change of credentials
// clears: so after creds. The root's threads get none: their parent was
// not in the image, and procs-load, which stands in for it, leaves at
// once with -d (and a thread of it that started the root ends before).
func (b *builder) treeState() error {
	if b.img.Subreaper {
		if _, err := b.main.Syscall("prctl(PR_SET_CHILD_SUBREAPER)", unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	if b.task == 0 {
		return nil
	}
	for i, t := range b.img.Threads {
		if t.Pdeathsig == 0 {
			continue
		}
		r, err := b.remote(i)
		if err != nil {
			return err
		}
		if _, err := r.Syscall("prctl(PR_SET_PDEATHSIG)", unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uint64(t.Pdeathsig), 0, 0, 0); err != nil {
			return fmt.Errorf("thread %d: %w", t.TID, err)
		}
	}
	return nil
}
