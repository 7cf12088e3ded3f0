// Lazy restores (Options.Lazy, procs-load --lazy): the processes run
// once everything but their private anonymous memory is in place, and
// the pages of that memory keep coming behind them. The loader has each
// process make a userfaultfd while it is built (an injected call, as a
// live dump does), takes it and closes the process's fd, and registers
// the process's lazy mappings on it (MODE_MISSING), each served by a
// pager of its own (uffd.Pager: its process, and what that forks once
// it runs); then a goroutine of the loader reads the rest of the image,
// each record checked before its pages go in (UFFDIO_COPY) by the pager
// of the process the record names, and a thread that touches a page
// not come yet waits for it. What comes before the processes run:
//
//   - the FILES and PROCESS records and the file contents, all checked;
//   - the pages of every mapping that is not lazy (private file mappings,
//     read-only and mlocked memory...), and those a process shares
//     copy-on-write with its children (their Mapping.Inherit): a child
//     is forked from its parent once they are in, and keeps them (its
//     own pages of such a mapping are lazy). PAGES records hold them
//     process after process, each in address order: the stream is read
//     up to the end of the last of them; lazy pages met on the way are
//     staged (a memfd per process, as page passes are) and served from
//     there;
//   - page passes (procs-dump --live), staged whole before FILES as
//     always: their lazy pages are served from the staging too.
//
// A process with no lazy memory (a zombie; one whose every lazy page
// its children share) is restored whole, as without --lazy.
//
// A failure of the rest of the image (a bad record, a bad END, the input
// cut) kills the process, which must not run on with holes, and says so;
// so does the death of the loader itself, through its guard (guard.go).

package restore

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/uffd"
)

// lazyLoad is the lazy part of a restore.
type lazyLoad struct {
	// tasks: per process of the image, its lazy part.
	tasks []*lazyTask
	// last is the last process with memory that must be in before the
	// tree runs (tasks[last].eagerEnd), or -1: the stream is read up to
	// there.
	last    int
	pidfd   int    // the root's, for Kill
	forks   *forks // the processes of the tree, and what they fork
	guard   *guard
	mu      sync.Mutex
	open    int // pagers not closed yet
	done    chan struct{}
	started bool
	// first is the first PAGES record past the eager memory, read
	// before the processes run (its data in a buffer of its own), or
	// nil when the image had none.
	first *pagesRecord
}

// lazyTask is the lazy part of one process.
type lazyTask struct {
	// eagerEnd is the end of the last of its pages that must be in
	// before the tree runs.
	eagerEnd uint64
	// shared: the ranges its children share copy-on-write (their
	// Mapping.Inherit), sorted and apart: written before they are
	// forked.
	shared [][2]uint64
	// pager serves its lazy memory once made (startLazy); nil for a
	// process restored whole.
	pager *uffd.Pager
}

// pagesRecord is a PAGES record read: its pages, in buf.
type pagesRecord struct {
	h    format.Header
	task uint32
	addr uint64
	data []byte
	buf  []byte
}

// errStartLazy is lazyRecord's way of saying that the process's eager
// memory is all in: the rest comes once it runs.
var errStartLazy = errors.New("the lazy pages start")

// lazyRecord handles a PAGES record of process b read before the tree
// runs: in front of the last eager memory, its pages are written or
// staged; past it, it is kept for the pager, and errStartLazy returned.
func (t *tree) lazyRecord(b *builder, h format.Header, addr uint64, data []byte) error {
	if l := t.lazy; b.task < l.last || b.task == l.last && addr < l.tasks[b.task].eagerEnd {
		if err := b.lazyPages(addr, data); err != nil {
			return fmt.Errorf("image record %d: pages at %#x: %w", h.Index, addr, err)
		}
		return nil
	}
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return err
	}
	t.lazy.first = &pagesRecord{h: h, task: uint32(b.task), addr: addr, data: buf[:copy(buf, data)], buf: buf}
	return errStartLazy
}

// lazyMapping tells whether the pages of m may come after the process
// runs: private anonymous memory that is writable while filled (heap,
// stacks, mmap'd buffers), not locked in memory and not droppable. In a
// child, the pages it shares with its parent (Inherit) are in at its
// fork: its own are lazy.
func lazyMapping(m format.Mapping) bool {
	return m.Kind == format.MapAnon && !m.Shared && writableWhileFilled(m) &&
		!hasAdvice(m, "lo") && !hasAdvice(m, "lf") && !hasAdvice(m, "dp")
}

// newLazy readies a lazy restore of the image: what of each process
// must be in before the tree runs. An image none of whose processes has
// lazy memory is restored whole (t.lazy stays nil), from a stream.
func (t *tree) newLazy() error {
	l := &lazyLoad{done: make(chan struct{}), pidfd: -1, last: -1, tasks: make([]*lazyTask, len(t.procs))}
	some := false
	for i, b := range t.procs {
		lt := &lazyTask{}
		l.tasks[i] = lt
		for _, c := range t.procs[i+1:] {
			if t.byPID(c.img.PPID) == b {
				for _, m := range c.img.Maps {
					lt.shared = append(lt.shared, m.Inherit...)
				}
			}
		}
		lt.shared = mergeRanges(lt.shared)
		if n := len(lt.shared); n > 0 {
			lt.eagerEnd = lt.shared[n-1][1]
		}
		for _, m := range b.img.Maps {
			if !m.Shared && m.Kind != format.MapVdso && m.Kind != format.MapVsyscall && !lazyMapping(m) {
				lt.eagerEnd = max(lt.eagerEnd, m.End)
			}
		}
		if lt.eagerEnd > 0 {
			l.last = i
		}
		some = some || b.lazyMemory(lt.shared)
	}
	switch {
	case some:
		t.lazy = l
	case t.remote != nil:
		return errors.New("--lazy: no process of the image has memory that can come once it runs: restore it without --lazy")
	default:
		t.logf("--lazy: no process has memory that can come once it runs: the image is restored whole")
	}
	return nil
}

// lazyMemory tells whether the process has pages that may come once it
// runs: a lazy mapping not all shared with its children (shared).
func (b *builder) lazyMemory(shared [][2]uint64) bool {
	if b.img.Zombie != nil {
		return false
	}
	for _, m := range b.img.Maps {
		if own, _ := format.Outside(nil, m.Start, m.End, shared); lazyMapping(m) && len(own) > 0 {
			return true
		}
	}
	return false
}

// ownLazy is the parts of [lo, hi), in a lazy mapping, that the
// process's children do not share: the lazy ones.
func (b *builder) ownLazy(lo, hi uint64) [][2]uint64 {
	out, _ := format.Outside(nil, lo, hi, b.lazy.tasks[b.task].shared)
	return out
}

// sharedIn is the parts of [lo, hi) that the process's children share:
// written before they are forked.
func (b *builder) sharedIn(lo, hi uint64) [][2]uint64 {
	var out [][2]uint64
	for _, r := range b.lazy.tasks[b.task].shared {
		if a, z := max(lo, r[0]), min(hi, r[1]); a < z {
			out = append(out, [2]uint64{a, z})
		}
	}
	return out
}

// mergeRanges sorts rs and merges those that overlap or touch.
func mergeRanges(rs [][2]uint64) [][2]uint64 {
	slices.SortFunc(rs, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]uint64
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// lazyPages handles, before the tree runs, a PAGES record of the
// process at addr: its lazy pages are staged, the others (and those its
// children share) written.
func (b *builder) lazyPages(addr uint64, data []byte) error {
	maps := b.img.Maps
	for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr }); i < len(maps) && len(data) > 0; i++ {
		m := maps[i]
		end := addr + min(uint64(len(data)), m.End-addr)
		var own [][2]uint64
		if lazyMapping(m) {
			own = b.ownLazy(addr, end)
		}
		at := addr
		for _, r := range append(own, [2]uint64{end, end}) {
			if at < r[0] {
				if err := b.writePages(at, data[at-addr:r[0]-addr]); err != nil {
					return err
				}
			}
			if r[0] < r[1] {
				if err := b.stage(r[0], data[r[0]-addr:r[1]-addr]); err != nil {
					return err
				}
			}
			at = r[1]
		}
		addr, data = end, data[end-addr:]
	}
	return nil
}

// stage keeps pages for the pager to serve.
func (b *builder) stage(addr uint64, data []byte) error {
	if b.staged == nil {
		b.staged = &staging{tasks: map[uint32]*os.File{}}
	}
	return b.staged.write(uint32(b.task), addr, data)
}

// startLazy, the eager memory of every process in place and the image
// read up to its first lazy record (l.first) or its end, gives the lazy
// memory of each process to a pager of its own, and reads the rest of
// the image into them from a goroutine of its own.
func (t *tree) startLazy() error {
	if t.remote != nil {
		// Before the lazy memory is registered: a piece written there
		// now would wait for a pager not there yet.
		if err := t.fillEager(t.remote); err != nil {
			return err
		}
	}
	l, root := t.lazy, t.procs[0]
	var err error
	if l.pidfd, err = unix.PidfdOpen(root.pid, 0); err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	// Before a pager reads a fork: the guard holds every userfaultfd.
	if l.guard, err = startGuard(root.pid, l.pidfd); err != nil {
		return err
	}
	top := root.pid
	if t.ns != nil {
		top = t.ns.pid
	}
	l.forks = newForks(top, root.pid, l.guard)
	for _, b := range t.procs {
		if err := b.startPager(); err != nil {
			none := l.open == 0
			l.fail(err)
			if none {
				l.released()
			}
			return b.wrap(err)
		}
	}
	l.forks.scan() // the guard knows them all
	t.logf("--lazy: %d of %d processes get their memory as they run", l.open, len(t.procs))
	if rm := t.remote; rm != nil {
		l.started = true
		for range fetchers {
			go t.fetchWanted(rm)
		}
		for _, b := range t.procs {
			if l.tasks[b.task].pager != nil {
				b.askSmall(rm)
			}
		}
		// The stream starts once the processes are built: its copies
		// would slow the building (the faults meanwhile are asked for
		// by range).
		t.atRun = append(t.atRun, func() error { go t.streamLazy(); return nil })
		return nil
	}
	// The processes before the first lazy record's have all their
	// pages here; that one, those below its address.
	for i, lt := range l.tasks {
		pos := ^uint64(0)
		if f := l.first; f != nil && i >= int(f.task) {
			pos = 0
			if i == int(f.task) {
				pos = f.addr
			}
		}
		if lt.pager != nil {
			if err := lt.pager.Advance(pos); err != nil {
				l.fail(err)
				return err
			}
		}
	}
	l.started = true
	go t.streamLazy()
	return nil
}

// startPager gives the process's lazy memory to a pager, or says why it
// has none.
func (b *builder) startPager() error {
	l := b.lazy
	if !b.lazyMemory(l.tasks[b.task].shared) {
		if b.img.Zombie == nil {
			b.logf("--lazy: process %d comes whole before the tree runs: it has no memory that can come later, or its children share all of it", b.img.PID)
		}
		return nil
	}
	fd, err := b.makeUserfaultfd()
	if err != nil {
		return fmt.Errorf("--lazy: %w", err)
	}
	for _, m := range b.img.Maps {
		if lazyMapping(m) {
			if err := fd.Register(m.Start, m.End-m.Start, linux.UFFDIO_REGISTER_MODE_MISSING); err != nil {
				fd.Close()
				return fmt.Errorf("--lazy: mapping %x-%x: %w", m.Start, m.End, err)
			}
		}
	}
	l.guard.hold(fd.File())
	p := uffd.NewPager(fd)
	p.Kill = l.kill
	p.Forked = func(f *os.File) {
		l.guard.hold(f)
		l.forks.fork()
	}
	p.Release = l.released
	if f := b.stagedFile(); f != nil {
		p.Staged = func(addr uint64, page []byte) bool {
			if at, err := unix.Seek(int(f.Fd()), int64(addr), unix.SEEK_DATA); err != nil || at != int64(addr) {
				return false
			}
			_, err := f.ReadAt(page, int64(addr))
			return err == nil
		}
	}
	if rm := b.tree.remote; rm != nil {
		task := uint32(b.task)
		p.Hole = func(addr uint64) bool { _, ok := rm.final.at(task, addr); return !ok }
		p.Want = func(addr uint64) { rm.ask(task, addr) }
	}
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	l.tasks[b.task].pager = p
	return nil
}

// kill kills every process of the tree and what they forked, for a
// pager that fails (uffd.Pager.Kill).
func (l *lazyLoad) kill() {
	killLazy(l.forks.root, l.pidfd)
	l.forks.kill()
}

// released is told that a pager closed (uffd.Pager.Release): once they
// all are, the guard has nothing left to guard.
func (l *lazyLoad) released() {
	l.mu.Lock()
	l.open--
	last := l.open <= 0
	l.mu.Unlock()
	if last {
		l.forks.stop()
		l.guard.release()
	}
}

// pagers are the pagers of the processes that have one.
func (l *lazyLoad) pagers() []*uffd.Pager {
	var ps []*uffd.Pager
	for _, lt := range l.tasks {
		if lt.pager != nil {
			ps = append(ps, lt.pager)
		}
	}
	return ps
}

// fail stops every pager with err: the processes are killed.
func (l *lazyLoad) fail(err error) {
	for _, p := range l.pagers() {
		p.Fail(err)
	}
}

// pager is the pager of process task, or nil.
func (l *lazyLoad) pager(task uint32) *uffd.Pager {
	if int64(task) >= int64(len(l.tasks)) {
		return nil
	}
	return l.tasks[task].pager
}

// live tells whether a process a pager serves is still there.
func (l *lazyLoad) live() bool {
	return slices.ContainsFunc(l.pagers(), (*uffd.Pager).Live)
}

// stagedFile is the staging memfd of the process, or nil.
func (b *builder) stagedFile() *os.File {
	if b.staged == nil {
		return nil
	}
	return b.staged.tasks[uint32(b.task)]
}

// makeUserfaultfd has the process make a userfaultfd for its own memory,
// takes it, and closes the process's fd. Faults of the kernel are
// served too (a read(2) into memory not come yet waits for it), which
// takes a process with the loader's privileges (it has them until
// finish).
func (b *builder) makeUserfaultfd() (*uffd.FD, error) {
	n, err := b.main.Syscall("userfaultfd", unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(b.pid, 0)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	local, gerr := unix.PidfdGetfd(pidfd, int(n), 0)
	unix.Close(pidfd)
	if _, err := b.main.Syscall("close", unix.SYS_CLOSE, n); err != nil {
		if gerr == nil {
			unix.Close(local)
		}
		return nil, err
	}
	if gerr != nil {
		return nil, os.NewSyscallError("pidfd_getfd", gerr)
	}
	return uffd.Take(local, uffd.Features)
}

// killLazy kills process pid (pidfd) and what it forked, and waits
// until it has ended: no thread of it may go on once its missing pages
// read as zeros.
func killLazy(pid, pidfd int) {
	var kill func(int)
	kill = func(pid int) {
		kids, _ := procfs.ChildrenOf(pid)
		for _, k := range kids {
			kill(k)
			unix.Kill(k, unix.SIGKILL)
		}
	}
	kill(pid)
	unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if n, err := unix.Poll(fds, 1000); n > 0 || err != nil && err != unix.EINTR {
			return
		}
	}
}

// streamLazy reads the rest of the image into the pagers: each PAGES
// record, checked, into its process; at the END record (checked), the
// staged pages left; then the processes' memory is their own. A failure
// kills the processes.
func (t *tree) streamLazy() {
	l := t.lazy
	defer close(l.done)
	// The staging is closed last: a fault may be served from it until
	// the pagers are done.
	defer t.staged.close()
	var err error
	if t.remote != nil {
		err = t.streamRemote(t.remote, t.whole)
	} else if err = t.readLazy(); err == nil {
		err = t.fillStaged()
	}
	if err != nil {
		l.fail(err)
		return
	}
	for _, p := range l.pagers() {
		p.Done()
	}
}

// readLazy reads the PAGES records left, to the END record: a process's
// pager is told that all of its pages came once the stream is past them.
func (t *tree) readLazy() error {
	l := t.lazy
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return err
	}
	defer pagebuf.Free(buf)
	whole := 0 // the processes before it have all their pages
	past := func(task uint32) error {
		for ; whole < min(int(task), len(l.tasks)); whole++ {
			if p := l.tasks[whole].pager; p != nil {
				if err := p.Advance(^uint64(0)); err != nil {
					return t.procs[whole].wrap(err)
				}
			}
		}
		return nil
	}
	for l.live() {
		var h format.Header
		var task uint32
		var addr uint64
		var data []byte
		if r := l.first; r != nil {
			h, task, addr, data = r.h, r.task, r.addr, r.data
			l.first = nil
			defer pagebuf.Free(r.buf)
		} else if h, err = t.r.Next(); err == io.EOF {
			return past(uint32(len(l.tasks)))
		} else if err != nil {
			return err
		} else if h.Type != format.TypePages {
			return fmt.Errorf("corrupt image at byte %d (record %d): unexpected %v record", h.Offset, h.Index, h.Type)
		} else if task, addr, data, err = t.r.ReadPages(buf); err != nil {
			return err
		}
		b, p := t.procs[task], l.pager(task) // the reader checked task
		if p == nil || !b.lazyRange(addr, uint64(len(data))) {
			return fmt.Errorf("corrupt image at byte %d (record %d): pages at %#x-%#x, outside the lazy memory of process %d", h.Offset, h.Index, addr, addr+uint64(len(data)), b.img.PID)
		}
		if err := past(task); err != nil {
			return err
		}
		if err := p.Fill(addr, data); err != nil {
			return err
		}
		if err := p.Advance(addr + uint64(len(data))); err != nil {
			return err
		}
	}
	return nil
}

// lazyRange tells whether [addr, addr+n) lies in lazy mappings, without
// a gap: where the pages of the image come once the process runs.
func (b *builder) lazyRange(addr, n uint64) bool {
	if !b.inMemory(addr, n) {
		return false
	}
	maps := b.img.Maps
	for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr }); i < len(maps) && maps[i].Start < addr+n; i++ {
		if !lazyMapping(maps[i]) {
			return false
		}
	}
	return true
}

// fillStaged gives the pagers the staged pages of lazy mappings that no
// fault took yet, freeing the staging as it goes.
func (t *tree) fillStaged() error {
	buf := make([]byte, 1<<20)
	for _, b := range t.procs {
		f, p := b.stagedFile(), t.lazy.pager(uint32(b.task))
		if f == nil || p == nil {
			continue
		}
		fd := int(f.Fd())
		for _, m := range b.img.Maps {
			if !lazyMapping(m) {
				continue
			}
			err := stagedRuns(fd, m.Start, m.End, func(data, hole int64) error {
				for a := data; a < hole && p.Live(); a += int64(len(buf)) {
					chunk := buf[:min(hole-a, int64(len(buf)))]
					if _, err := f.ReadAt(chunk, a); err != nil {
						return err
					}
					if err := p.Fill(uint64(a), chunk); err != nil {
						return err
					}
					if err := t.staged.drop(uint32(b.task), uint64(a), uint64(len(chunk))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return b.wrap(err)
			}
		}
	}
	return nil
}

// LazyError is a lazy restore's failure once the processes ran: they
// were killed.
type LazyError struct {
	PID  int // the root's
	Tree bool
	Err  error
}

func (e *LazyError) Error() string {
	if e.Tree {
		return fmt.Sprintf("the tree of process %d was killed: its memory could not come whole (%v)", e.PID, e.Err)
	}
	return fmt.Sprintf("process %d was killed: its memory could not come whole (%v)", e.PID, e.Err)
}

func (e *LazyError) Unwrap() error { return e.Err }

// err is the failure of the lazy restore, once it ended, or nil.
func (l *lazyLoad) err(pid int) error {
	for _, p := range l.pagers() {
		if err := p.Err(); err != nil {
			return &LazyError{PID: pid, Tree: len(l.tasks) > 1, Err: err}
		}
	}
	return nil
}

// closeIfGone closes the pagers when no process they serve is left, and
// tells whether it did.
func (l *lazyLoad) closeIfGone() bool {
	if l.live() {
		return false
	}
	for _, p := range l.pagers() {
		p.CloseIfGone()
	}
	return true
}

// PagesDone waits until every page of a lazy restore is in every
// process that shares them (the process and what it forked meanwhile,
// which may outlive it), or none of them is left; or the restore
// failed, and they were killed (a LazyError). At once for a restore
// that is not lazy. A loader that exits before has them killed by its
// guard: procs-load waits, with -d and once the process has ended.
func (p *Process) PagesDone() error {
	if p.lazy == nil {
		return nil
	}
	return p.lazy.wait(p.Pid)
}

// wait is PagesDone: the stream's end, or, looked at every goneCheck,
// no process left to serve.
func (l *lazyLoad) wait(pid int) error {
	tick := time.NewTicker(goneCheck)
	defer tick.Stop()
	for {
		select {
		case <-l.done:
			return l.err(pid)
		default:
		}
		if l.closeIfGone() {
			return l.err(pid)
		}
		select {
		case <-l.done:
			return l.err(pid)
		case <-tick.C:
		}
	}
}

// goneCheck is how often PagesDone looks whether the processes it
// waits for are gone.
const goneCheck = 100 * time.Millisecond
