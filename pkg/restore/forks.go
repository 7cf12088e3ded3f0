package restore

// The processes of a lazy restore: the root, and every process it forks
// while pages are missing. A child gets the pages its parent lacked
// (uffd.Pager, UFFD_EVENT_FORK) and may outlive it: procs-load serves it
// until every page is in, and kills it with the root when the pages
// cannot come. The kernel names no process in a fork event (the child
// is not yet in the process table when it is read), so they are found
// by their place: below the root (or, in a PID namespace, its init,
// which adopts the namespace's orphans), or adopted by procs-load, which
// is a child subreaper while pages come, so that an orphan of the tree
// stays below it rather than going to init. Each is given, with a pidfd,
// to the guard (guard.go), which kills them too if procs-load dies.

import (
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/procfs"
)

// forks are the processes of a lazy restore.
type forks struct {
	top, root int          // top: the root, or its PID namespace's init
	own       map[int]bool // procs-load's children not of the restore (the guard...)
	guard     *guard
	forked    chan struct{} // a fork was met
	stopped   chan struct{} // the pagers are closed
	mu        sync.Mutex
	done      bool        // stopped
	pidfds    map[int]int // pid -> pidfd, of every process found
	adopted   map[int]bool
}

// newForks follows the processes below top, procs-load a subreaper from
// now on; procs-load's children now but root are not the restore's.
func newForks(top, root int, g *guard) *forks {
	f := &forks{top: top, root: root, own: map[int]bool{}, guard: g, forked: make(chan struct{}, 1),
		stopped: make(chan struct{}), pidfds: map[int]int{}, adopted: map[int]bool{}}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	kids, _ := procfs.ChildrenOf(unix.Getpid())
	for _, k := range kids {
		if k != top {
			f.own[k] = true
		}
	}
	go f.follow()
	return f
}

// fork tells that a process forked (uffd.Pager.Forked): the child is
// looked for. It does not block.
func (f *forks) fork() {
	select {
	case f.forked <- struct{}{}:
	default:
	}
}

// follow looks for the children forked, a few times after each fork (the
// child is in the process table a moment after its fork's event is
// read), until stop.
func (f *forks) follow() {
	for {
		select {
		case <-f.forked:
		case <-f.stopped:
			return
		}
		for _, d := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
			select {
			case <-f.stopped:
				return
			case <-time.After(d):
			}
			f.scan()
		}
	}
}

// scan finds the processes below top and those procs-load adopted, with
// what is below them, gives the guard those it did not have, and
// collects the adopted that ended.
func (f *forks) scan() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	kids, _ := procfs.ChildrenOf(unix.Getpid())
	for _, k := range kids {
		if !f.own[k] && k != f.top {
			f.adopted[k] = true
		}
	}
	var walk func(int)
	walk = func(pid int) {
		if pid != f.top || f.top == f.root { // not the namespace's init
			f.found(pid)
		}
		below, _ := procfs.ChildrenOf(pid)
		for _, k := range below {
			walk(k)
		}
	}
	walk(f.top)
	for k := range f.adopted {
		walk(k)
		var ws unix.WaitStatus
		if n, _ := unix.Wait4(k, &ws, unix.WNOHANG, nil); n == k {
			delete(f.adopted, k)
		}
	}
}

// found takes a pidfd of pid, and gives both to the guard, unless it
// has one of that process already (not of an earlier one of that PID).
// Precondition: f.mu held.
func (f *forks) found(pid int) {
	if old, ok := f.pidfds[pid]; ok {
		if unix.PidfdSendSignal(old, 0, nil, 0) == nil {
			return
		}
		unix.Close(old)
		delete(f.pidfds, pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone
	}
	f.pidfds[pid] = fd
	f.guard.member(pid, fd)
}

// kill kills every process of the restore and what it forked, and waits
// until they have ended (see killLazy).
func (f *forks) kill() {
	f.scan()
	f.mu.Lock()
	pids := slices.Sorted(maps.Keys(f.pidfds))
	fds := make([]int, len(pids))
	for i, pid := range pids {
		fds[i] = f.pidfds[pid]
	}
	f.mu.Unlock()
	for i, pid := range pids {
		killLazy(pid, fds[i])
	}
}

// stop ends the following once the pagers are closed: procs-load is no
// longer a subreaper (what it adopted stays its child, and is collected
// as it ends by no one but init once procs-load exits).
func (f *forks) stop() {
	close(f.stopped)
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	for pid, fd := range f.pidfds {
		unix.Close(fd)
		delete(f.pidfds, pid)
	}
}
