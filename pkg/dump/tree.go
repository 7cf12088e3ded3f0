package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/procfs"
)

// A dump takes a process and all its descendants (the tree), each with
// all its threads, frozen as one snapshot: every process is frozen before
// any is read, and the tree is listed again once all are, until no
// process has a child that is not frozen (one that forked while the
// others were being frozen is caught that way; a frozen process forks
// no more).

// frozenTree is the processes of a tree, each frozen, the root first and
// every parent before its children (children by PID).
type frozenTree struct {
	procs []*frozen
}

// A zombie of the tree (a member that has exited and that its parent has
// not waited for) is waited for a moment first, up to zombieTries times
// zombieWait: most are a shell's command that ended as the dump started,
// which the shell reaps at once, and a tree without them is simpler to
// restore. One still there then is carried, with its exit status, for
// its parent to collect after the restore (collectZombie): a zombie
// cannot change while its parent is frozen.
const (
	zombieTries = 5
	zombieWait  = 10 * time.Millisecond
	// exitTries bounds the tries of a tree some process of which exits
	// each time just as freezeTree reaches it.
	exitTries = 5
)

// freezeTree freezes root and its descendants. Precondition: the OS thread
// is the tracer's.
func freezeTree(root int) (*frozenTree, error) {
	for try := 0; ; try++ {
		t, err := freezeTreeOnce(root, try >= zombieTries)
		var z *zombieError
		if !errors.As(err, &z) {
			return t, err
		}
		if try >= zombieTries+exitTries {
			return nil, fmt.Errorf("process %d (child of %d) exited as it was being frozen, and so did one at each of %d tries: the tree changes too fast to be dumped now", z.pid, z.parent, try+1)
		}
		time.Sleep(zombieWait)
	}
}

// A connection a listener of the tree has completed and its program not
// yet accepted cannot travel (the kernel has no way to put one back in
// an accept queue), and killing the listener would reset it. The tree's
// listeners are held from the first freeze (files.HoldListeners: no new
// connection, handshakes under way complete), and a server that runs
// accepts what is queued within milliseconds: freezeAccepted lets the
// tree run a moment and freezes it again, up to acceptTries times, until
// no listener of the tree has a connection waiting. One that still has is
// refused by name (pkg/files, tcp.go), and the tree goes on. So is a unix
// listener with a connection queued that its client sent bytes on, which
// cannot be read without accepting it (files.UnixSentWaiting): its
// clients in the tree are frozen with it, so none queues another.
const (
	acceptWait  = 15 * time.Millisecond
	acceptTries = int(files.AcceptTime / acceptWait)
)

// freezeAccepted is freezeTree, tried again while a listener of the tree
// has connections not yet accepted. The tree's listeners are held until
// holds lets them go. Precondition: the OS thread is the tracer's.
func freezeAccepted(root int, holds *held, logf func(string, ...any)) (*frozenTree, error) {
	for try := 1; ; try++ {
		t, err := freezeTree(root)
		if err != nil {
			holds.letGo(true)
			return t, err
		}
		var pids []int
		for _, f := range t.procs {
			if !f.zombie {
				pids = append(pids, f.pid)
			}
		}
		fds := files.ListFDs(pids)
		waiting, err := files.HoldListeners(fds, func(release func(bool)) { *holds = append(*holds, release) })
		if err == nil && waiting == "" {
			waiting, err = files.UnixSentWaiting(fds)
		}
		if err != nil {
			holds.letGo(true)
			t.release()
			return nil, err
		}
		if waiting == "" || try == acceptTries {
			if try > 1 {
				logf("froze the tree %d times, for its programs to accept the connections queued on their listeners", try)
			}
			return t, nil
		}
		t.release()
		time.Sleep(acceptWait)
	}
}

// zombieError is a process of the tree that has exited, or is exiting,
// and that its parent has not reaped: freezeTree tries again.
type zombieError struct{ pid, parent int }

func (z *zombieError) Error() string {
	return fmt.Sprintf("process %d (child of %d) has exited", z.pid, z.parent)
}

// freezeTreeOnce freezes root and its descendants; a zombie among them is
// a zombieError, or with carry a member of the tree.
func freezeTreeOnce(root int, carry bool) (*frozenTree, error) {
	t := &frozenTree{}
	f, err := freeze(root)
	if err != nil {
		return nil, err
	}
	t.procs = append(t.procs, f)
	for {
		fresh := false
		for i := 0; i < len(t.procs); i++ {
			if t.procs[i].zombie {
				continue // it has no children: they went to a reaper
			}
			kids, err := procfs.ChildrenOf(t.procs[i].pid)
			if err != nil {
				t.release()
				return nil, err
			}
			for _, k := range kids {
				if t.find(k) != nil {
					continue
				}
				zombie, err := checkMember(k, t.procs[i].pid)
				if err == nil && zombie && !carry {
					err = &zombieError{k, t.procs[i].pid}
				}
				if err != nil {
					t.release()
					return nil, err
				}
				if zombie {
					t.procs = append(t.procs, &frozen{pid: k, zombie: true})
					continue
				}
				f, err := freeze(k)
				if err != nil {
					t.release()
					var gone *exitedError
					if errors.Is(err, unix.ESRCH) || errors.As(err, &gone) {
						// It exited as we came: a zombie now, which
						// the next try sees.
						return nil, &zombieError{k, t.procs[i].pid}
					}
					return nil, err
				}
				t.procs = append(t.procs, f)
				fresh = true
			}
		}
		if !fresh {
			break
		}
	}
	t.sort(root)
	for _, f := range t.procs {
		if f.children, err = procfs.ChildrenOf(f.pid); err != nil {
			t.release()
			return nil, err
		}
	}
	return t, nil
}

// checkMember looks at a member of the tree before it is touched: it
// says whether it is a zombie, and refuses what procs cannot carry.
func checkMember(pid, parent int) (zombie bool, err error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return false, &zombieError{pid, parent} // gone: its parent reaped it
	}
	switch {
	case st.State == 'X':
		return false, &zombieError{pid, parent} // being reaped
	case st.ExitSignal != int(unix.SIGCHLD):
		return false, &refusal{fmt.Sprintf("process %d (child of %d) tells its parent of its end with signal %d, not SIGCHLD (clone(2)): procs cannot make that again", pid, parent, st.ExitSignal)}
	case st.State == 'Z' && st.NumThreads > 1:
		return false, &refusal{fmt.Sprintf("process %d (child of %d) has exited but for some of its threads: procs cannot carry a process whose main thread is gone", pid, parent)}
	case st.State == 'Z':
		return true, nil
	case st.State == 't':
		return false, &refusal{fmt.Sprintf("process %d (child of %d) is traced by another process (a debugger): procs-dump cannot trace it too", pid, parent)}
	}
	return false, nil
}

func (t *frozenTree) find(pid int) *frozen {
	for _, f := range t.procs {
		if f.pid == pid {
			return f
		}
	}
	return nil
}

// sort orders the processes root first, each parent before its children,
// children by PID.
func (t *frozenTree) sort(root int) {
	parent := map[int]int{}
	for _, f := range t.procs {
		if st, err := procfs.ReadStat(f.pid); err == nil {
			parent[f.pid] = st.PPID
		}
	}
	for _, f := range t.procs {
		f.ppid = parent[f.pid]
	}
	var out []*frozen
	var walk func(pid int)
	walk = func(pid int) {
		out = append(out, t.find(pid))
		var kids []int
		for _, f := range t.procs {
			if f.pid != root && parent[f.pid] == pid {
				kids = append(kids, f.pid)
			}
		}
		slices.Sort(kids)
		for _, k := range kids {
			walk(k)
		}
	}
	walk(root)
	t.procs = out
}

// threads is the number of threads of the tree.
func (t *frozenTree) threads() int {
	n := 0
	for _, f := range t.procs {
		n += len(f.tids)
	}
	return n
}

// release lets every process go on as before, children first.
func (t *frozenTree) release() {
	for i := len(t.procs) - 1; i >= 0; i-- {
		t.procs[i].release()
	}
}

// kill kills every process of the tree and waits until all are gone.
func (t *frozenTree) kill() error {
	var first error
	for _, f := range t.procs {
		if err := f.kill(); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
			first = err
		}
	}
	return first
}

// checkTree refuses sessions and process groups that a restore could not
// make again by forking the tree in order (the rules of procs-load's
// validateTree): a process in a session that neither it nor its parent
// leads or is in (its parent called setsid after forking it), or in a
// group whose leader is not in the tree and is not the root's group (a
// pipeline whose first command has exited).
func checkTree(ps []format.Process) error {
	byPID := map[int]*format.Process{}
	for i := range ps {
		byPID[ps[i].PID] = &ps[i]
	}
	root := &ps[0]
	for _, p := range ps[1:] {
		if parent := byPID[p.PPID]; p.Sid != p.PID && parent != nil && p.Sid != parent.Sid {
			return &refusal{fmt.Sprintf("process %d is in session %d, which neither it nor its parent %d leads or is in: procs cannot make that again", p.PID, p.Sid, p.PPID)}
		}
		if p.Pgid == root.Pgid || p.Pgid == p.PID {
			continue
		}
		if l := byPID[p.Pgid]; l == nil || l.Pgid != l.PID || l.Sid != p.Sid {
			return &refusal{fmt.Sprintf("process %d is in process group %d, whose leader is gone or not in the tree: procs cannot make that group again", p.PID, p.Pgid)}
		}
	}
	return nil
}

// collectZombie records a zombie member: what it still has, its ids, name
// and credentials, and its exit status (field 52 of /proc/PID/stat, which
// the kernel shows only to a reader with ptrace rights over it).
func (c *collector) collectZombie() error {
	st, err := procfs.ReadStat(c.pid)
	if err != nil {
		return err
	}
	status, err := procfs.ReadStatus(c.pid)
	if err != nil {
		return err
	}
	if st.State != 'Z' {
		return fmt.Errorf("process %d is no longer a zombie (state %c)", c.pid, st.State)
	}
	if !mayReadExit(status) {
		return &refusal{fmt.Sprintf("process %d is a zombie of uid %d: procs-dump may read its exit status only as that user or as root", c.pid, status.Uid[1])}
	}
	c.p = format.Process{PID: c.pid, PPID: st.PPID, Pgid: st.PGRP, Sid: st.Session, Comm: st.Comm,
		Creds:  format.Creds{UID: status.Uid, GID: status.Gid, Groups: status.Groups, NoNewPrivs: status.NoNewPrivs},
		Zombie: &format.Exit{Status: st.ExitCode}}
	return nil
}

// mayReadExit tells whether the kernel shows procs-dump the exit status of
// a zombie of credentials st: to root, and to a user whose ids all its own
// are (a zombie has no memory, so no dumpable flag to check).
func mayReadExit(st procfs.Status) bool {
	if os.Geteuid() == 0 {
		return true
	}
	for i := range 3 {
		if st.Uid[i] != os.Geteuid() || st.Gid[i] != os.Getegid() {
			return false
		}
	}
	return true
}

// treeCalls read, in the process, whether it is a child subreaper, and for
// each of its stopped children whether it has collected the stop already
// (waitid with WNOWAIT, which leaves it to be collected).
func (c *collector) treeCalls() []call {
	le := binary.LittleEndian
	calls := []call{{name: "prctl(PR_GET_CHILD_SUBREAPER)", nr: unix.SYS_PRCTL, size: 4,
		args: func(slot uint64) [6]uint64 { return [6]uint64{unix.PR_GET_CHILD_SUBREAPER, slot} },
		done: func(_ uint64, b []byte) { c.p.Subreaper = le.Uint32(b) != 0 }}}
	for _, kid := range c.stoppedKids {
		// waitid writes the first 28 bytes of the siginfo: si_pid at
		// 16 is the child when its stop is still to be collected.
		calls = append(calls, call{name: fmt.Sprintf("waitid(%d, WNOWAIT)", kid), nr: unix.SYS_WAITID, size: 28,
			args: func(slot uint64) [6]uint64 {
				return [6]uint64{unix.P_PID, uint64(kid), slot, unix.WSTOPPED | unix.WNOHANG | unix.WNOWAIT}
			},
			done: func(_ uint64, b []byte) { c.waited[kid] = int(int32(le.Uint32(b[16:]))) != kid }})
	}
	return calls
}

// stoppedKids lists the stopped children of process pid in the tree.
func (t *frozenTree) stoppedKids(pid int) []int {
	var kids []int
	for _, f := range t.procs {
		if f.ppid == pid && f.stopped != 0 && f.pid != t.procs[0].pid {
			kids = append(kids, f.pid)
		}
	}
	return kids
}
