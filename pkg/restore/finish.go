package restore

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

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
	if err := b.fdOwners(); err != nil {
		return err
	}
	// Last of all that touches fds: a close would drop POSIX locks.
	if err := b.takeLocks(); err != nil {
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

// target is what the kinds see of the process being built (files.Target).
type target struct{ b *builder }

func (t target) Syscall(name string, nr uintptr, args ...uint64) (uint64, error) {
	return t.b.main.Syscall(name, nr, args...)
}

func (t target) Arg(p []byte) (uint64, error) {
	return t.b.scratch + offArgs, t.b.write(offArgs, p)
}

// PID is the restored PID of the image's process pid as the process
// being made sees it: every process of a tree is in the same PID
// namespace, so in one of the tree's own its image's PID (a zombie of
// the tree has no threads to ask innerTID).
func (t target) PID(pid int) (int, bool) {
	if b := t.b.byPID(pid); b != nil {
		if b.ns != nil {
			return b.img.PID, true
		}
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

// atFDCWD is AT_FDCWD (-100) as a register value.
const atFDCWD = ^uint64(99)

// hasCheckpointRestore tells whether this process has CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE in its effective set.
func hasCheckpointRestore() bool {
	return hasCap(unix.CAP_SYS_ADMIN) || hasCap(unix.CAP_CHECKPOINT_RESTORE)
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
