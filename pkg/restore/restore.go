// Package restore builds the processes of an image in the procs image
// format (a process and its descendants) and lets them run. Nothing runs
// before the whole image has been read and verified and every piece of
// state of every process is in place.
//
// How: procs-load starts a child stopped right after exec (traced), clones
// from it the root of the tree (with the original PID when asked, in
// procs-load's PID namespace or in a new one), throws away every mapping
// the child had but the vDSO, moves the vDSO where the image had it, maps
// the image's memory and fills it from the page records; each other
// process is then cloned by its parent once the parent's memory is in
// (pages they share copy-on-write stay shared), and laid out and filled
// the same way. Then threads, files and every other piece of state are
// made by running system calls inside each process, and all are let go.
// The phases are in tree.go (build); the objects each have a file (mm.go,
// threads.go, signals.go, timers.go, fds.go, files.go, creds.go...).
package restore

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/ptrace"
)

// PIDMode says which PIDs the restored processes get (see pidns.go).
type PIDMode int

const (
	// PIDAuto: the image's PIDs and thread ids when they are all free
	// here (and may be chosen: root), else the same in a new PID
	// namespace (without root, inside a new user namespace); but a
	// single process restored without root gets new ids where its own
	// are not to be had.
	PIDAuto PIDMode = iota
	PIDKeep         // the image's ids in the caller's PID namespace, or fail
	PIDNew          // new ids, for a single process
	PIDNS           // the image's ids in a new PID namespace
)

// IPCMode says where the image's System V IPC objects are made (see
// sysv.go).
type IPCMode int

const (
	// IPCAuto: in the caller's IPC namespace when their ids and keys
	// are free there (and the tree had no IPC namespace of its own),
	// else in a new one.
	IPCAuto IPCMode = iota
	IPCHost         // in the caller's, or fail naming what is in use
	IPCNew          // in a new IPC namespace
)

// StdioMode says what the restored process's fds 0, 1 and 2 become.
type StdioMode int

const (
	// StdioAuto: a stream that was a file the restorer can open again
	// by path (a log file, /dev/null) is opened again, like any other
	// fd; one that was a terminal, a pipe, a socket or a deleted file is
	// the restorer's own stream of that number.
	StdioAuto StdioMode = iota
	// StdioInherit: all three are the restorer's own streams.
	StdioInherit
)

// Options control one restore.
type Options struct {
	PID PIDMode
	// IPC says where System V IPC objects go.
	IPC IPCMode
	// Stdin, Stdout, Stderr become the restored process's fds 0, 1 and
	// 2, those of them that Stdio leaves to the restorer.
	Stdin, Stdout, Stderr *os.File
	Stdio                 StdioMode
	Log                   func(format string, args ...any)
	// Warn says what went less well than it should while the restore
	// goes on; nil means Log. The commands pass their one writer of
	// stderr (pkg/cli), so that no line bypasses it.
	Warn     func(format string, args ...any)
	Progress func(done, total int64)
	// BeforeRun, if set, is called with the process's PID once it is
	// complete, just before it is let run: what it prints comes before
	// anything the process prints. An error from it fails the restore
	// (nothing is left running).
	BeforeRun func(pid int) error
	// VdsoProxy has the process call this kernel's vDSO through jumps
	// (see procs/pkg/vdso) even when the image's vDSO is this kernel's,
	// as it must when the image was made on another kernel build.
	VdsoProxy bool
	// Terminal gives the process, while it runs, the modes its terminal
	// had at the dump, when the caller's stream of that number is a
	// terminal in whose foreground the caller is; Wait puts the
	// caller's modes back. The process then gets a SIGWINCH: it is on
	// another terminal now, and a full-screen program redraws.
	Terminal bool
	// TCPClose: established connections come back reset, not in
	// repair mode (--tcp=close); listeners listen again.
	TCPClose bool
	// Lazy: the process runs before its private anonymous memory is
	// all in, which keeps coming from in behind it (lazy.go).
	Lazy bool
	// Remote, with Lazy, lets the restore ask for any record of the
	// image (remote.go); in is then the whole image from its start.
	Remote *Remote
}

// Process is a restored, running process: a child of the caller, or
// in a PID namespace, of the namespace's init, the caller's child.
type Process struct {
	Pid   int       // as the caller sees it
	tty   *terminal // modes to put back when it ends
	pidfd int       // for signals
	ns    *pidNS    // the PID namespace it runs in, or nil
	lazy  *lazyLoad // its memory still coming, or nil
}

// Restore reads an image from in, builds the process and starts it.
// When in is Stdin, Restore reads nothing past the end of the image.
func Restore(opts Options, in io.Reader) (*Process, error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.Warn == nil {
		opts.Warn = opts.Log
	}
	start := time.Now()
	var rm *remote
	whole := in
	if opts.Lazy && opts.Remote != nil {
		var err error
		if rm, in, err = newRemote(opts.Remote); err != nil {
			return nil, err
		}
	}
	r, err := format.NewReader(in)
	if err != nil {
		return nil, err
	}
	if m := r.Machine(); m != format.MachineX8664 {
		return nil, fmt.Errorf("the image is of a process of another architecture (ELF machine %d); this is x86-64", m)
	}
	t := &tree{opts: opts, r: r, start: start, remote: rm, whole: whole}
	defer func() {
		if t.lazy == nil || !t.lazy.started {
			t.staged.close()
		}
	}()
	if err := t.readMeta(); err != nil {
		return nil, err
	}
	if err := validate(t.files, t.imgs); err != nil {
		return nil, err
	}
	if err := validateIPC(t.files, t.ipc, t.imgs); err != nil {
		return nil, err
	}
	if rm != nil {
		if err := rm.checkTasks(len(t.imgs)); err != nil {
			return nil, err
		}
	}
	if opts.Lazy {
		if err := t.newLazy(); err != nil {
			return nil, err
		}
	}
	if err := t.placeIDs(); err != nil {
		return nil, err
	}
	if err := t.placePTYs(); err != nil {
		return nil, err
	}
	for _, b := range t.procs {
		if len(b.img.Timers) > 0 {
			// Asked of this process: the kernel knows the prctl or not.
			if err := unix.Prctl(unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0); err != nil {
				return nil, fmt.Errorf("the process has POSIX timers, and this kernel cannot give them their ids back (PR_TIMER_CREATE_RESTORE_IDS: %v)", err)
			}
			break
		}
	}
	defer t.closeLocal()
	defer func() {
		for _, b := range t.procs {
			if b.mem != nil {
				b.mem.Close()
			}
		}
	}()
	if err := t.prepareFiles(); err != nil {
		t.removeCreated()
		return nil, err
	}
	// A lazy restore's processes stay below procs-load until every page
	// is in (forks.go).
	undo := subreaper(len(t.procs) > 1)
	defer func() {
		if t.lazy == nil || !t.lazy.started {
			undo()
		}
	}()
	err = ptrace.Run(func() error {
		if err := t.build(); err != nil {
			if t.lazy != nil && t.lazy.started {
				// A pager's failure, if one had one, is why.
				t.lazy.fail(err)
				if lerr := t.lazy.err(0); lerr != nil {
					err = cmp.Or(errors.Unwrap(lerr), err)
				}
			}
			t.abort()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b := t.procs[0]
	opts.Log("restored pid %d in %v", b.pid, time.Since(start).Round(time.Microsecond))
	p := &Process{Pid: b.pid, tty: b.tty, pidfd: t.rootPidfd, ns: t.ns}
	if t.lazy != nil {
		p.lazy = t.lazy
	}
	return p, nil
}

// subreaper makes the caller a child subreaper (PR_SET_CHILD_SUBREAPER)
// when on, while it restores a tree, and returns what undoes it (the
// callers, procs-load and procs, are none otherwise): a member whose
// parent dies before it is collected (a failed restore kills them all)
// comes to the caller, which collects it (see abort), rather than to
// init or a subreaper above, as a zombie there.
func subreaper(on bool) func() {
	if !on || unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != nil {
		return func() {}
	}
	return func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }
}

// Signal sends sig to the process (through its pidfd: never to another
// process that got its PID once it is gone).
func (p *Process) Signal(sig unix.Signal) error {
	return unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
}

// next waits for the process to stop or end: as its parent, or as its
// PID namespace's init tells.
func (p *Process) next() (unix.WaitStatus, error) {
	if p.ns != nil {
		return p.ns.next()
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(p.Pid, &ws, unix.WUNTRACED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("wait4", err)
		}
		return ws, nil
	}
}

// Wait waits for the process to end and returns its exit status as a shell
// reports it: the exit code, or 128+N after death by signal N. When the
// process is stopped (Ctrl-Z), the caller stops too, and both go on when
// the caller is continued.
func (p *Process) Wait() (int, error) {
	for {
		ws, err := p.next()
		if err != nil {
			p.tty.reset()
			return 0, err
		}
		switch {
		case ws.Exited():
			p.tty.reset()
			return ws.ExitStatus(), nil
		case ws.Signaled():
			p.tty.reset()
			return 128 + int(ws.Signal()), nil
		case ws.Stopped():
			// Stopped for reading or writing the terminal while its
			// foreground is ours: our shell, continuing us with fg,
			// gave it to us again after we had passed it on. Pass it on
			// once more.
			if s := ws.StopSignal(); (s == unix.SIGTTIN || s == unix.SIGTTOU) && p.tty.giveBack() {
				p.Signal(unix.SIGCONT)
				continue
			}
			// As a shell's job: our shell gets the terminal back when
			// we stop, and gives it to us when we go on in the
			// foreground.
			p.tty.takeBack()
			// The terminal's SIGTSTP reached only the process's group
			// if it has its own: then the rest of our shell's job (a
			// pipeline's other commands) stops with us, so that the
			// shell sees the whole job stopped.
			stopSelf(p.tty.given())
			p.tty.giveBack()
			p.Signal(unix.SIGCONT)
		}
	}
}

// stopSelf stops this process (with group, its whole process group) and
// returns once it is continued. A SIGSTOP sent with kill(2) stops a
// multithreaded process a moment later, when each thread next leaves the
// kernel, and the sending goroutine could go on meanwhile: it waits for
// the SIGCONT.
func stopSelf(group bool) {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, unix.SIGCONT)
	defer signal.Stop(cont)
	target := os.Getpid()
	if group {
		target = 0
	}
	unix.Kill(target, unix.SIGSTOP)
	<-cont
}
