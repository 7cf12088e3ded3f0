// Lazy restores (Options.Lazy, procs-load --lazy): the process runs once
// everything but its private anonymous memory is in place, and the pages
// of that memory keep coming behind it. The loader has the process make
// a userfaultfd while it is built (an injected call, as a live dump does),
// takes it and closes the process's fd, and registers the process's lazy
// mappings on it (MODE_MISSING); then a goroutine of the loader reads the
// rest of the image, each record checked before its pages go in
// (UFFDIO_COPY), and a thread that touches a page not come yet waits for
// it (uffd.Pager). What comes before the process runs:
//
//   - the FILES and PROCESS records and the file contents, all checked;
//   - the pages of every mapping that is not lazy (private file mappings,
//     read-only and mlocked memory...), which PAGES records hold in
//     address order: the stream is read up to the end of the last of
//     them; lazy pages met on the way are staged (a memfd, as page
//     passes are) and served from there;
//   - page passes (procs-dump --live), staged whole before FILES as
//     always: their lazy pages are served from the staging too.
//
// A failure of the rest of the image (a bad record, a bad END, the input
// cut) kills the process, which must not run on with holes, and says so;
// so does the death of the loader itself, through its guard (guard.go).

package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
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
	// eagerEnd is the end of the last mapping whose pages must be in
	// before the process runs: the stream is read up to there.
	eagerEnd uint64
	pager    *uffd.Pager
	pidfd    int // the root's, for Kill
	done     chan struct{}
	started  bool
	// first is the first PAGES record after eagerEnd, read before the
	// process runs (its data in a buffer of its own), or nil when the
	// image had none.
	first *pagesRecord
}

// pagesRecord is a PAGES record read: its pages, in buf.
type pagesRecord struct {
	h    format.Header
	addr uint64
	data []byte
	buf  []byte
}

// errStartLazy is lazyRecord's way of saying that the process's eager
// memory is all in: the rest comes once it runs.
var errStartLazy = errors.New("the lazy pages start")

// lazyRecord handles a PAGES record of the process read before it runs:
// below eagerEnd, its pages are written or staged; past it, it is kept
// for the pager, and errStartLazy returned.
func (t *tree) lazyRecord(b *builder, h format.Header, addr uint64, data []byte) error {
	if addr < t.lazy.eagerEnd {
		if err := b.lazyPages(addr, data); err != nil {
			return fmt.Errorf("image record %d: pages at %#x: %w", h.Index, addr, err)
		}
		return nil
	}
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return err
	}
	t.lazy.first = &pagesRecord{h: h, addr: addr, data: buf[:copy(buf, data)], buf: buf}
	return errStartLazy
}

// lazyMapping tells whether the pages of m may come after the process
// runs: private anonymous memory that is writable while filled (heap,
// stacks, mmap'd buffers), not locked in memory, not droppable, and not
// shared with a parent.
func lazyMapping(m format.Mapping) bool {
	return m.Kind == format.MapAnon && !m.Shared && len(m.Inherit) == 0 && writableWhileFilled(m) &&
		!hasAdvice(m, "lo") && !hasAdvice(m, "lf") && !hasAdvice(m, "dp")
}

// newLazy readies a lazy restore of the image, or says why it cannot be.
func (t *tree) newLazy() error {
	if len(t.procs) > 1 {
		return fmt.Errorf("--lazy restores a single process for now, and the image holds a tree of %d processes: restore it without --lazy", len(t.procs))
	}
	l := &lazyLoad{done: make(chan struct{}), pidfd: -1}
	for _, m := range t.imgs[0].Maps {
		if !m.Shared && m.Kind != format.MapVdso && m.Kind != format.MapVsyscall && !lazyMapping(m) {
			l.eagerEnd = max(l.eagerEnd, m.End)
		}
	}
	t.lazy = l
	return nil
}

// lazyPages handles, before the process runs, a PAGES record of it at
// addr: pages of lazy mappings are staged, the others written.
func (b *builder) lazyPages(addr uint64, data []byte) error {
	maps := b.img.Maps
	for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr }); i < len(maps) && len(data) > 0; i++ {
		m := maps[i]
		n := min(uint64(len(data)), m.End-addr)
		var err error
		if lazyMapping(m) {
			err = b.stage(addr, data[:n])
		} else {
			err = b.writePages(addr, data[:n])
		}
		if err != nil {
			return err
		}
		addr, data = addr+n, data[n:]
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

// startLazy, the process's eager memory in place and the image read up
// to its first lazy record (t.next) or its end, gives the process's lazy
// memory to a pager, and reads the rest of the image into it from a
// goroutine of its own.
func (t *tree) startLazy() error {
	b := t.procs[0]
	if t.remote != nil {
		// Before the lazy memory is registered: a piece written there
		// now would wait for a pager not there yet.
		if err := t.fillEager(t.remote); err != nil {
			return err
		}
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
	l := t.lazy
	if l.pidfd, err = unix.PidfdOpen(b.pid, 0); err != nil {
		fd.Close()
		return os.NewSyscallError("pidfd_open", err)
	}
	// Before the pager reads a fork: the guard holds every userfaultfd.
	g, err := startGuard(b.pid, l.pidfd, fd)
	if err != nil {
		fd.Close()
		return err
	}
	p := uffd.NewPager(fd)
	p.Kill = func() { killLazy(b.pid, l.pidfd) }
	p.Forked, p.Release = g.hold, g.release
	if f := t.stagedFile(); f != nil {
		p.Staged = func(addr uint64, page []byte) bool {
			if at, err := unix.Seek(int(f.Fd()), int64(addr), unix.SEEK_DATA); err != nil || at != int64(addr) {
				return false
			}
			_, err := f.ReadAt(page, int64(addr))
			return err == nil
		}
	}
	l.pager = p
	if rm := t.remote; rm != nil {
		p.Hole = func(addr uint64) bool { _, ok := rm.final.at(addr); return !ok }
		p.Want = rm.ask
		l.started = true
		for range fetchers {
			go t.fetchWanted(rm)
		}
		rm.askSmall(b.img.Maps)
		// The stream starts once the process is built: its copies would
		// slow the building (the faults meanwhile are asked for by
		// range).
		t.atRun = append(t.atRun, func() error { go t.streamLazy(); return nil })
		return nil
	}
	pos := ^uint64(0)
	if l.first != nil {
		pos = l.first.addr
	}
	if err := p.Advance(pos); err != nil {
		p.Fail(err)
		return err
	}
	l.started = true
	go t.streamLazy()
	return nil
}

// stagedFile is the staging memfd of the root, or nil.
func (t *tree) stagedFile() *os.File {
	if t.staged == nil {
		return nil
	}
	return t.staged.tasks[0]
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

// streamLazy reads the rest of the image into the pager: each PAGES
// record, checked, into the process; at the END record (checked), the
// staged pages left; then the process's memory is its own. A failure
// kills the process.
func (t *tree) streamLazy() {
	l := t.lazy
	defer close(l.done)
	// The staging is closed last: a fault may be served from it until
	// the pager is done.
	defer t.staged.close()
	var err error
	if t.remote != nil {
		err = t.streamRemote(t.remote, t.whole)
	} else if err = t.readLazy(); err == nil {
		err = t.fillStaged()
	}
	if err != nil {
		l.pager.Fail(err)
		return
	}
	l.pager.Done()
}

// readLazy reads the PAGES records left, to the END record.
func (t *tree) readLazy() error {
	l, b := t.lazy, t.procs[0]
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return err
	}
	defer pagebuf.Free(buf)
	for l.pager.Live() {
		var h format.Header
		var addr uint64
		var data []byte
		if r := l.first; r != nil {
			h, addr, data = r.h, r.addr, r.data
			l.first = nil
			defer pagebuf.Free(r.buf)
		} else if h, err = t.r.Next(); err == io.EOF {
			return l.pager.Advance(^uint64(0))
		} else if err != nil {
			return err
		} else if h.Type != format.TypePages {
			return fmt.Errorf("corrupt image at byte %d (record %d): unexpected %v record", h.Offset, h.Index, h.Type)
		} else if _, addr, data, err = t.r.ReadPages(buf); err != nil {
			return err
		}
		if !b.lazyRange(addr, uint64(len(data))) {
			return fmt.Errorf("corrupt image at byte %d (record %d): pages at %#x-%#x, outside the lazy memory of process %d", h.Offset, h.Index, addr, addr+uint64(len(data)), b.img.PID)
		}
		if err := l.pager.Fill(addr, data); err != nil {
			return err
		}
		if err := l.pager.Advance(addr + uint64(len(data))); err != nil {
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

// fillStaged gives the pager the staged pages of lazy mappings that no
// fault took yet, freeing the staging as it goes.
func (t *tree) fillStaged() error {
	f := t.stagedFile()
	if f == nil {
		return nil
	}
	fd := int(f.Fd())
	buf := make([]byte, 1<<20)
	for _, m := range t.imgs[0].Maps {
		if !lazyMapping(m) {
			continue
		}
		err := stagedRuns(fd, m, func(data, hole int64) error {
			for a := data; a < hole && t.lazy.pager.Live(); a += int64(len(buf)) {
				chunk := buf[:min(hole-a, int64(len(buf)))]
				if _, err := f.ReadAt(chunk, a); err != nil {
					return err
				}
				if err := t.lazy.pager.Fill(uint64(a), chunk); err != nil {
					return err
				}
				if err := t.staged.drop(0, uint64(a), uint64(len(chunk))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// LazyError is a lazy restore's failure once the process ran: the
// process was killed.
type LazyError struct {
	PID int
	Err error
}

func (e *LazyError) Error() string {
	return fmt.Sprintf("process %d was killed: its memory could not come whole (%v)", e.PID, e.Err)
}

func (e *LazyError) Unwrap() error { return e.Err }

// lazyErr is the failure of the lazy restore, once it ended, or nil.
func (l *lazyLoad) err(pid int) error {
	if err := l.pager.Err(); err != nil {
		return &LazyError{PID: pid, Err: err}
	}
	return nil
}

// PagesDone waits until every page of a lazy restore is in the process
// (or the restore failed, and the process was killed: a LazyError); at
// once for a restore that is not lazy. A loader that exits before has
// the process killed by its guard: procs-load -d waits.
func (p *Process) PagesDone() error {
	if p.lazy == nil {
		return nil
	}
	<-p.lazy.done
	return p.lazy.err(p.Pid)
}

// PagesFailed tells, once the process has ended, whether a lazy
// restore killed it (a LazyError), or nil.
func (p *Process) PagesFailed() error {
	if p.lazy == nil {
		return nil
	}
	return p.lazy.err(p.Pid)
}
