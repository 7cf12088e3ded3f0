package restore

// Where the processes get their ids. In the caller's PID namespace with
// the image's ids (clone3 with set_tid) when they are all free here;
// else, for --pid=auto, and always for --pid=ns, in a new PID namespace
// where the image's ids are free: a copy of a tree beside its running
// original, or many copies of one image at once.
//
// How a namespace is made: the stub clones (CLONE_NEWPID, CLONE_NEWNS,
// CLONE_PARENT) the namespace's first process, its PID 1, a child of
// procs-load. Made to mount /proc afresh in its own mount namespace
// (MS_SLAVE first, so that its mount stays in it while mounts made
// outside still reach it), it clones the root with its PID, then execs
// procs-load as the namespace's init (nsinit.go), which reaps the
// namespace's orphans and tells procs-load when the root stops or ends.
// Every other process is cloned by its parent inside the namespace, as
// in the caller's, and the threads with their ids there. Every process
// then sees the image's ids (getpid, getppid, gettid, its children's)
// and finds them in /proc: /proc/self and /proc/PID are the same
// process. Its parent, the root's, is the init: PID 1.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// pidNS is the PID namespace a tree runs in.
type pidNS struct {
	// user: made without root, in a user namespace of its own that
	// maps the caller's uid and gid, each to itself, and nothing else.
	user   bool
	pid    int            // the namespace's init, as procs-load sees it
	remote *inject.Remote // in the init while it is still a copy of the stub
	ctl    *os.File       // the init's fd 0: a byte 'g' lets it start; EOF ends it
	status *os.File       // the init's fd 1: what becomes of the root (initReady...)
}

// placeIDs decides where the processes get their ids (t.ns) and how
// each clone asks for its id (t.mode), and refuses what --pid asks that
// cannot be had. The ids asked for are checked before anything starts.
func (t *tree) placeIDs() error {
	tree := len(t.procs) > 1
	if t.opts.PID == PIDNew {
		if tree {
			return fmt.Errorf("--pid=new is for a single process, and the image holds a tree of %d: its members know each other's PIDs (--pid=auto, keep or ns)", len(t.procs))
		}
		t.mode = PIDNew
		return nil
	}
	if big := aboveMax(t.imgs); big != "" {
		if t.opts.PID == PIDAuto && !tree {
			t.mode = PIDNew
			return nil
		}
		return errors.New(big)
	}
	if t.opts.PID == PIDNS {
		return t.useNamespace()
	}
	choose := hasCheckpointRestore()
	var taken []int
	if choose {
		taken = freedIDs(t.imgs)
	}
	switch {
	case t.opts.PID == PIDKeep && !choose:
		return errors.New("--pid=keep: choosing PIDs needs root (CAP_CHECKPOINT_RESTORE; use --pid=auto)")
	case t.opts.PID == PIDKeep && len(taken) > 0:
		return fmt.Errorf("--pid=keep: %s in use by other processes here (--pid=ns runs the image in a PID namespace of its own)", idList(taken))
	case t.opts.PID == PIDKeep:
		t.mode = PIDKeep
		return nil
	case choose && len(taken) == 0:
		// A single process whose id is taken meanwhile gets another;
		// a tree fails, naming it.
		t.mode = PIDAuto
		if tree {
			t.mode = PIDKeep
		}
		return nil
	case !tree && !hasCap(unix.CAP_SYS_ADMIN):
		// Without root, a single process stays in the caller's
		// namespaces: its original ids where it may have them, else
		// new ones.
		t.mode = PIDAuto
		return nil
	case !choose:
		t.logf("choosing PIDs needs root: the tree runs in a PID namespace of its own")
	default:
		t.logf("%s in use here: the image runs in a PID namespace of its own", idList(taken))
	}
	return t.useNamespace()
}

// useNamespace has the tree run in a new PID namespace: without root,
// in a new user namespace too.
func (t *tree) useNamespace() error {
	for _, p := range t.imgs {
		for _, th := range p.Threads {
			if th.TID == 1 {
				return fmt.Errorf("process %d has id 1, which in a new PID namespace is its init's: it can only come back in this one (--pid=keep)", p.PID)
			}
		}
	}
	t.ns = &pidNS{user: !hasCap(unix.CAP_SYS_ADMIN)}
	t.mode = PIDKeep
	return nil
}

// aboveMax says which id of the image no process can have here
// (kernel.pid_max), or "".
func aboveMax(imgs []format.Process) string {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return ""
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return ""
	}
	for _, p := range imgs {
		for _, th := range p.Threads {
			if th.TID >= max {
				return fmt.Sprintf("process %d has id %d, and ids here stop below %d (kernel.pid_max)", p.PID, th.TID, max)
			}
		}
	}
	return ""
}

// takenIDs lists, in order, the image's process and thread ids that are
// in use here: by a process or a thread, or as a process group's or a
// session's id (which keeps a PID from being given while the group
// lasts).
func takenIDs(imgs []format.Process) []int {
	groups := map[int]bool{}
	if pids, err := procfs.PIDs(); err == nil {
		for _, pid := range pids {
			if st, err := procfs.ReadStat(pid); err == nil {
				groups[st.PGRP], groups[st.Session] = true, true
			}
		}
	}
	var taken []int
	for _, p := range imgs {
		for _, th := range p.Threads {
			if _, err := os.Lstat("/proc/" + strconv.Itoa(th.TID)); err == nil || groups[th.TID] {
				taken = append(taken, th.TID)
			}
		}
	}
	slices.Sort(taken)
	return taken
}

// freedIDs is takenIDs, once the ids held only by zombies are free or
// zombieWait has passed: the original, killed by procs-dump a moment
// ago, is on its way out (procs-dump PID | procs-load), its processes
// waiting for their parents (or init) to collect them.
func freedIDs(imgs []format.Process) []int {
	for deadline := time.Now().Add(zombieWait); ; time.Sleep(5 * time.Millisecond) {
		taken := takenIDs(imgs)
		if len(taken) == 0 || time.Now().After(deadline) || slices.ContainsFunc(taken, func(id int) bool { return !isZombie(id) }) {
			return taken // free, or some taken for good
		}
	}
}

// idList names ids for a message: "PID 4242", "PIDs 4242, 4250 and
// 4251", at most 16 of them.
func idList(ids []int) string {
	const most = 16
	s := make([]string, 0, most)
	for _, id := range ids[:min(len(ids), most)] {
		s = append(s, strconv.Itoa(id))
	}
	switch {
	case len(ids) == 1:
		return "PID " + s[0] + " is"
	case len(ids) > most:
		return fmt.Sprintf("PIDs %s and %d more are", strings.Join(s, ", "), len(ids)-most)
	}
	return fmt.Sprintf("PIDs %s and %s are", strings.Join(s[:len(s)-1], ", "), s[len(s)-1])
}

// startNamespace clones from the stub the namespace's first process and
// has it mount /proc afresh. Precondition: tracer thread.
func (t *tree) startNamespace(stub *inject.Remote, stubPID int) error {
	flags := uint64(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_PARENT)
	if t.ns.user {
		flags |= unix.CLONE_NEWUSER
	}
	pid, err := t.cloneIn(stub, stubPID, linux.CloneArgs{Flags: flags}, 0)
	if pid > 0 {
		t.ns.pid = pid // collected by abort from now on
	}
	if err != nil && t.ns.user {
		return fmt.Errorf("making a PID namespace without root needs a user namespace, which this system refuses (%w)", err)
	}
	if err != nil {
		return fmt.Errorf("making a PID namespace: %w", err)
	}
	if t.ns.user {
		if err := mapOwnIDs(pid); err != nil {
			return err
		}
	}
	r, err := inject.NewRemote(pid, t.scratch)
	if err != nil {
		return err
	}
	r.Forget()
	t.ns.remote = r
	str, err := t.strings(pid, "/", "proc", "/proc")
	if err != nil {
		return err
	}
	if _, err := r.Syscall("mount(/, MS_SLAVE)", unix.SYS_MOUNT, 0, str[0], 0, unix.MS_REC|unix.MS_SLAVE, 0); err != nil {
		return fmt.Errorf("making a PID namespace: %w", err)
	}
	if _, err := r.Syscall("mount(/proc)", unix.SYS_MOUNT, str[1], str[2], str[1], unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, 0); err != nil {
		return fmt.Errorf("mounting /proc for a PID namespace: %w", err)
	}
	// The init keeps no folder of the caller's busy.
	if _, err := r.Syscall("chdir(/)", unix.SYS_CHDIR, str[0]); err != nil {
		return err
	}
	t.logf("PID namespace made: its init is process %d", pid)
	return t.mountPts(r, pid)
}

// mapOwnIDs maps, in the user namespace of process pid, procs-load's
// uid and gid each to itself, and nothing else (all an owner without
// root may map); setgroups(2) is refused there, which such a gid map
// needs.
func mapOwnIDs(pid int) error {
	for _, w := range []struct{ file, data string }{
		{"uid_map", fmt.Sprintf("%d %d 1\n", os.Geteuid(), os.Geteuid())},
		{"setgroups", "deny"},
		{"gid_map", fmt.Sprintf("%d %d 1\n", os.Getegid(), os.Getegid())},
	} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, w.file), []byte(w.data), 0); err != nil {
			return fmt.Errorf("making a user namespace: %w", err)
		}
	}
	return nil
}

// strings writes NUL-terminated strings into the scratch area of
// process pid (at offBig) and returns their addresses there.
func (t *tree) strings(pid int, ss ...string) ([]uint64, error) {
	var buf []byte
	var at []uint64
	for _, s := range ss {
		at = append(at, t.scratch+offBig+uint64(len(buf)))
		buf = append(append(buf, s...), 0)
	}
	return at, ptrace.WriteMem(pid, t.scratch+offBig, buf)
}

// becomeInit has the namespace's first process, once it has cloned the
// root (rootPID in the namespace), exec procs-load as the init (runInit)
// with fd 0 and 1 pipes to procs-load and fd 2 /dev/null, and waits
// until the init says it runs. Precondition: tracer thread.
func (t *tree) becomeInit(rootPID int) error {
	ns := t.ns
	r := ns.remote
	var ctl, status [2]int
	if err := unix.Pipe2(ctl[:], unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	ns.ctl = os.NewFile(uintptr(ctl[1]), "the init's fd 0")
	its := os.NewFile(uintptr(ctl[0]), "fd 0 of the init")
	defer its.Close()
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	unix.SetNonblock(status[0], true) // for a read deadline
	ns.status = os.NewFile(uintptr(status[0]), "the init's fd 1")
	its1 := os.NewFile(uintptr(status[1]), "fd 1 of the init")
	defer its1.Close()
	for num, f := range []*os.File{its, its1} {
		fd, err := t.giveFD(r, ns.pid, stubSocket, f)
		if err == nil && fd != uint64(num) {
			_, err = r.Syscall("dup3", unix.SYS_DUP3, fd, uint64(num), 0)
		} else if err == nil {
			_, err = r.Syscall("fcntl(F_SETFD)", unix.SYS_FCNTL, fd, unix.F_SETFD, 0)
		}
		if err != nil {
			return err
		}
	}
	str, err := t.strings(ns.pid, "/dev/null", "/proc/self/exe", initName, strconv.Itoa(rootPID))
	if err != nil {
		return err
	}
	null, err := r.Syscall("open(/dev/null)", unix.SYS_OPENAT, atFDCWD, str[0], unix.O_RDWR)
	if err != nil {
		return err
	}
	if _, err := r.Syscall("dup3", unix.SYS_DUP3, null, 2, 0); err != nil {
		return err
	}
	if _, err := r.Syscall("close_range", unix.SYS_CLOSE_RANGE, 3, ^uint64(0)>>33, 0); err != nil {
		return err
	}
	// argv, then envp: an empty one, the NULL that ends argv.
	var ptrs []byte
	for _, p := range []uint64{str[2], str[3], 0} {
		ptrs = binary.LittleEndian.AppendUint64(ptrs, p)
	}
	if err := ptrace.WriteMem(ns.pid, t.scratch+offArgs, ptrs); err != nil {
		return err
	}
	ns.remote = nil
	if err := r.DetachInto(0, unix.SYS_EXECVE, str[1], t.scratch+offArgs, t.scratch+offArgs+16); err != nil {
		return err
	}
	ns.status.SetReadDeadline(time.Now().Add(30 * time.Second))
	kind, _, err := ns.read()
	ns.status.SetReadDeadline(time.Time{})
	if err == nil && kind != initReady {
		err = fmt.Errorf("it said %d", kind)
	}
	if err != nil {
		return fmt.Errorf("the PID namespace's init did not start: %w", err)
	}
	return nil
}

// read reads one of the init's records: a kind and a wait status.
func (ns *pidNS) read() (int, unix.WaitStatus, error) {
	var rec [initRecord]byte
	if _, err := io.ReadFull(ns.status, rec[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errors.New("it ended")
		}
		return 0, 0, err
	}
	le := binary.LittleEndian
	return int(le.Uint32(rec[:])), unix.WaitStatus(le.Uint32(rec[4:])), nil
}

// start lets the init go on: it waits for its children from now on.
func (ns *pidNS) start() error {
	_, err := ns.ctl.Write([]byte{'g'})
	ns.ctl.Close()
	ns.ctl = nil
	if err != nil {
		return fmt.Errorf("the PID namespace's init is gone: %w", err)
	}
	return nil
}

// collect waits for the init to end, once it was killed (after the
// processes procs-load traces in the namespace are collected: an init
// ends only once every process of its namespace is gone) and closes
// the pipes. Precondition: tracer thread, while the init may still be
// traced. The init ends only once each task of its namespace is
// collected, and one procs-load traces waits for procs-load, whatever
// the abort knew of it: so anything procs-load may collect is, meanwhile.
func (ns *pidNS) collect() {
	for ns.pid > 0 {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		switch {
		case err == unix.EINTR:
		case err != nil:
			ns.pid = 0
		case wpid == ns.pid && (ws.Exited() || ws.Signaled()):
			ns.pid = 0
		}
	}
	ns.close()
}

// close closes procs-load's ends of the init's pipes.
func (ns *pidNS) close() {
	for _, f := range []*os.File{ns.ctl, ns.status} {
		if f != nil {
			f.Close()
		}
	}
	ns.ctl, ns.status = nil, nil
}

// next waits for the init to tell that the root stopped or ended. When
// the root ended and nothing else is left in the namespace, the init
// exits too, and next collects it.
func (ns *pidNS) next() (unix.WaitStatus, error) {
	kind, ws, err := ns.read()
	if err != nil {
		// Killed (SIGKILL from outside, the one signal it does not
		// catch), and so the root: the kernel kills every process of a
		// namespace whose init ends.
		var st unix.WaitStatus
		unix.Wait4(ns.pid, &st, 0, nil)
		return unix.WaitStatus(unix.SIGKILL), nil
	}
	switch kind {
	case initStopped, initEnded:
	case initLast:
		var st unix.WaitStatus
		for {
			if _, err := unix.Wait4(ns.pid, &st, 0, nil); err != unix.EINTR {
				break
			}
		}
	default:
		return 0, fmt.Errorf("the PID namespace's init said %d", kind)
	}
	return ws, nil
}

// innerTID is thread i's id as the process itself sees it: the image's
// in a PID namespace, else the one it got here.
func (b *builder) innerTID(i int) int {
	if b.ns != nil {
		return b.img.Threads[i].TID
	}
	return b.tids[i]
}

// cwdInNamespace moves the process from its working directory, which
// the loader opened (cwd, an fd of the process's), to the same folder
// of its own mount namespace: the loader's is not to be reached from
// the process's root, and getcwd would fail in it. The same folder by
// the same path: anything else leaves it where it is, with a warning.
func (b *builder) cwdInNamespace(cwd uint64) error {
	r := b.main
	p, err := b.writePath(b.img.Cwd)
	if err != nil {
		return err
	}
	var want, got unix.Stat_t
	if err := unix.Fstat(int(b.cwdFile.Fd()), &want); err != nil {
		return err
	}
	_, err = r.Syscall("chdir", unix.SYS_CHDIR, p)
	if err == nil {
		err = unix.Stat(fmt.Sprintf("/proc/%d/cwd", b.pid), &got)
	}
	if err == nil && (got.Dev != want.Dev || got.Ino != want.Ino) {
		err = errors.New("another folder there")
	}
	if err != nil {
		b.warnf("the working directory %s is not its path in the PID namespace's mounts (%v): getcwd will fail", b.img.Cwd, err)
		_, err = r.Syscall("fchdir", unix.SYS_FCHDIR, cwd)
	}
	return err
}

// dropCaps takes from thread i of a process in a user namespace of its
// own the capabilities it has there since it was made (it was cloned
// from the namespace's first process, which has them all): the process
// of the caller's it was had none.
func (b *builder) dropCaps(i int) error {
	if b.ns == nil || !b.ns.user {
		return nil
	}
	r, err := b.remote(i)
	if err != nil {
		return err
	}
	if err := b.write(offBig, linux.Capset{Version: unix.LINUX_CAPABILITY_VERSION_3}.Encode()); err != nil {
		return err
	}
	_, err = r.Syscall("capset", unix.SYS_CAPSET, b.scratch+offBig, b.scratch+offBig+linux.SizeofCapHeader)
	return err
}
