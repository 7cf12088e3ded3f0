package dump

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
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

// zombieTries and zombieWait bound how long freezeTree waits for a parent
// to reap a child that has just exited (a shell's command that ends as
// the dump starts): the zombie is gone a moment later.
const (
	zombieTries = 50
	zombieWait  = 10 * time.Millisecond
)

// freezeTree freezes root and its descendants. Precondition: the OS thread
// is the tracer's.
func freezeTree(root int) (*frozenTree, error) {
	for try := 0; ; try++ {
		t, err := freezeTreeOnce(root)
		var z *zombieError
		if errors.As(err, &z) && try < zombieTries {
			time.Sleep(zombieWait)
			continue
		}
		if errors.As(err, &z) {
			return nil, &refusal{z.Error()}
		}
		return t, err
	}
}

// zombieError is a process of the tree that has exited and that its
// parent has not reaped.
type zombieError struct{ pid, parent int }

func (z *zombieError) Error() string {
	return fmt.Sprintf("process %d is a zombie: it has exited, and its parent %d has not collected its status; procs cannot carry zombies yet", z.pid, z.parent)
}

func freezeTreeOnce(root int) (*frozenTree, error) {
	t := &frozenTree{}
	f, err := freeze(root)
	if err != nil {
		return nil, err
	}
	t.procs = append(t.procs, f)
	for {
		fresh := false
		for i := 0; i < len(t.procs); i++ {
			kids, err := procfs.ChildrenOf(t.procs[i].pid)
			if err != nil {
				t.release()
				return nil, err
			}
			for _, k := range kids {
				if t.find(k) != nil {
					continue
				}
				if err := checkMember(k, t.procs[i].pid); err != nil {
					t.release()
					return nil, err
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
	return t, nil
}

// checkMember refuses a member of the tree that procs cannot carry, before
// it is touched: a zombie (freezeTree tries again), a stopped process.
func checkMember(pid, parent int) error {
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return &zombieError{pid, parent} // gone: its parent reaps it
	}
	switch {
	case strings.HasPrefix(st.State, "Z") || strings.HasPrefix(st.State, "X"):
		return &zombieError{pid, parent}
	case strings.HasPrefix(st.State, "T") || strings.HasPrefix(st.State, "t"):
		return &refusal{fmt.Sprintf("process %d (child of %d) is stopped or traced (state %s): procs cannot carry stopped processes yet", pid, parent, st.State)}
	}
	return nil
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
