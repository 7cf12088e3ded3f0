package uffd

import (
	"cmp"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// Pager serves the memory of a process that runs before all of it has
// come (a lazy restore): its missing pages are registered on a
// userfaultfd (MODE_MISSING), and a thread that touches one waits until
// the pager puts it there. Pages come in image order from a source (the
// stream of the image) through Fill, and Advance says that every page
// below an address of the image has come: a page below it that no Fill
// brought, and that Staged does not hold, is a hole of the image, given
// as zeros. A fault on a page not come yet waits for it; Want, if set,
// is told at once (to fetch it out of order).
//
// The pager follows what the process does to its memory meanwhile
// (non-cooperative events): pages it drops (MADV_DONTNEED) or unmaps are
// its own from then on and get no page of the image; memory it moves
// (mremap) gets its pages where it went; a child it forks gets a
// userfaultfd of its own, and the pages the parent lacked are served to
// both.
type Pager struct {
	mu      sync.Mutex
	targets []*target
	pos     uint64
	pending []fault
	// Staged reads the page of the image at addr into page, when it
	// came before the stream was handed over (staged by the loader).
	Staged func(addr uint64, page []byte) bool
	// Want is told the image address of a page a thread waits for; it
	// must not block.
	Want func(addr uint64)
	// Hole tells whether the image holds no page at addr (zeros) when
	// it is known before the stream reaches addr.
	Hole func(addr uint64) bool
	// Kill ends the processes, for Fail.
	Kill func()
	// Forked is given the userfaultfd of each child a process forks, as
	// the fork is met (before the child runs); it must not block.
	Forked func(f *os.File)
	// Release is called once, as the pager closes the userfaultfds
	// (every page came, or the processes were killed), before it does.
	Release func()
	failed  error
	closed  bool
	done    bool // Done: every page came
	readers sync.WaitGroup
	page    []byte
}

// target is one process the pager serves.
type target struct {
	fd *FD
	// removed: the process's own ranges (addresses of its own): dropped
	// or unmapped since it started.
	removed [][2]uint64
	remaps  []remap // in order
	dead    bool
}

// remap is an mremap of the process: n bytes from from to to.
type remap struct{ from, to, n uint64 }

// fault is a thread of t waiting for the page at addr (t's address).
type fault struct {
	t    *target
	addr uint64
}

// Features are the userfaultfd features a pager needs (UFFDIO_API).
const Features = linux.UFFD_FEATURE_EVENT_FORK | linux.UFFD_FEATURE_EVENT_REMAP |
	linux.UFFD_FEATURE_EVENT_REMOVE | linux.UFFD_FEATURE_EVENT_UNMAP

// NewPager serves the process whose userfaultfd is fd (API done with
// Features, ranges registered). It reads its events at once.
func NewPager(fd *FD) *Pager {
	p := &Pager{page: make([]byte, pageSize)}
	p.add(&target{fd: fd})
	return p
}

// add serves t too, and reads its events. Precondition: p.mu held, or
// no other goroutine uses p yet.
func (p *Pager) add(t *target) {
	p.targets = append(p.targets, t)
	p.readers.Add(1)
	go p.events(t)
}

// events reads t's events until its fd is closed.
func (p *Pager) events(t *target) {
	defer p.readers.Done()
	rc, err := t.fd.f.SyscallConn()
	if err != nil {
		go p.Fail(err) // which waits for this reader
		return
	}
	buf := make([]byte, 64*linux.SizeofUffdMsg)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			// Read under the lock: a drop or an unmap proceeds once its
			// event is read, and no Fill may put a page there after.
			p.mu.Lock()
			defer p.mu.Unlock()
			n, err := unix.Read(int(fd), buf)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				rerr = os.NewSyscallError("read userfaultfd", err)
				return true
			}
			for i := 0; i+linux.SizeofUffdMsg <= n; i += linux.SizeofUffdMsg {
				var m linux.UffdMsg
				m.Decode(buf[i:])
				if rerr = p.event(t, m); rerr != nil {
					break
				}
			}
			return true
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			go p.Fail(rerr)
			return
		}
	}
}

// event handles one event of t. Precondition: p.mu held.
func (p *Pager) event(t *target, m linux.UffdMsg) error {
	switch m.Event {
	case linux.UFFD_EVENT_PAGEFAULT:
		addr := m.Arg[1] &^ (pageSize - 1)
		err := p.serve(t, addr)
		if errors.Is(err, ErrChanging) {
			// Another thread forks, moves or drops memory, and its
			// event is next: served again once it is read.
			p.pending = append(p.pending, fault{t, addr})
			go func() {
				if err := p.answer(0, 0); err != nil {
					p.Fail(err)
				}
			}()
			return nil
		}
		return err
	case linux.UFFD_EVENT_FORK:
		child := &target{fd: New(os.NewFile(uintptr(uint32(m.Arg[0])), "userfaultfd")),
			removed: slices.Clone(t.removed), remaps: slices.Clone(t.remaps)}
		p.add(child)
		if p.Forked != nil {
			p.Forked(child.fd.File())
		}
	case linux.UFFD_EVENT_REMAP:
		from, to, n := m.Arg[0], m.Arg[1], m.Arg[2]
		t.remaps = append(t.remaps, remap{from, to, n})
		var moved [][2]uint64
		for _, r := range t.removed {
			if lo, hi := max(r[0], from), min(r[1], from+n); lo < hi {
				moved = append(moved, [2]uint64{lo - from + to, hi - from + to})
			}
		}
		t.removed = addRange(t.removed, from, from+n) // gone from there
		for _, r := range moved {
			t.removed = addRange(t.removed, r[0], r[1])
		}
	case linux.UFFD_EVENT_REMOVE, linux.UFFD_EVENT_UNMAP:
		t.removed = addRange(t.removed, m.Arg[0], m.Arg[1])
	}
	return nil
}

// serve answers a thread of t waiting for the page at addr: the page
// of the image if it came, zeros if the image has none or the process
// dropped it, or later (pending). Precondition: p.mu held.
func (p *Pager) serve(t *target, addr uint64) error {
	if t.dead || p.closed {
		return nil
	}
	img, ok := t.image(addr)
	if ok && p.Hole != nil && p.Hole(img) {
		ok = false // zeros
	}
	if ok && img >= p.pos {
		p.pending = append(p.pending, fault{t, addr})
		if p.Want != nil {
			p.Want(img)
		}
		return nil
	}
	var err error
	if ok && p.Staged != nil && p.Staged(img, p.page) {
		_, err = t.fd.Copy(addr, p.page)
	} else {
		err = t.fd.Zero(addr)
	}
	return p.result(t, err)
}

// result handles the error of a copy to t: none when t is gone.
func (p *Pager) result(t *target, err error) error {
	if errors.Is(err, ErrGone) {
		t.dead = true // its fd is closed with the others
		return nil
	}
	return err
}

// image is the address in the image of t's page at addr, and false if
// it holds no page of the image (the process dropped or moved it).
func (t *target) image(addr uint64) (uint64, bool) {
	if contains(t.removed, addr) {
		return 0, false
	}
	for i := len(t.remaps) - 1; i >= 0; i-- {
		r := t.remaps[i]
		if addr >= r.to && addr < r.to+r.n {
			addr = addr - r.to + r.from
		}
	}
	return addr, true
}

// where is t's address of the page of the image at img, and false if
// the process has dropped it.
func (t *target) where(img uint64) (uint64, bool) {
	for _, r := range t.remaps {
		if img >= r.from && img < r.from+r.n {
			img = img - r.from + r.to
		}
	}
	return img, !contains(t.removed, img)
}

// fillChunk is how much Fill copies while it holds the lock: little, as
// a fault's event is read under it.
const fillChunk = 256 << 10

// Fill puts data, the image's pages at addr, in every process that
// lacks them, and answers the threads waiting for them: their own pages
// first, then the rest.
func (p *Pager) Fill(addr uint64, data []byte) error {
	if err := p.fillWaited(addr, data); err != nil {
		return err
	}
	for off := 0; off < len(data); off += fillChunk {
		chunk := data[off:min(off+fillChunk, len(data))]
		if err := p.fillChunk(addr+uint64(off), chunk); err != nil {
			return err
		}
	}
	return p.answer(addr, addr+uint64(len(data)))
}

// fillWaited copies, of data (the image's pages at addr), the pages
// that threads wait for, each alone: a thread waits for its page, not
// for the rest of a record. A page it cannot copy now (the process
// changes its mappings) is left to the rest of Fill.
func (p *Pager) fillWaited(addr uint64, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil || p.closed {
		return p.failed
	}
	end := addr + uint64(len(data))
	for _, f := range p.pending {
		img, ok := f.t.image(f.addr)
		if !ok || img < addr || img >= end || f.t.dead {
			continue
		}
		_, err := f.t.fd.Copy(f.addr, data[img-addr:img-addr+pageSize])
		if err = p.result(f.t, err); err != nil && !errors.Is(err, ErrChanging) {
			return err
		}
	}
	return nil
}

// fillChunk copies data to every target, in runs of pages that lie
// together there, again after the events of a changing process.
func (p *Pager) fillChunk(addr uint64, data []byte) error {
	for try := 0; ; try++ {
		err := p.tryFill(addr, data)
		if !errors.Is(err, ErrChanging) {
			return err
		}
		time.Sleep(time.Duration(min(try, 100)) * 10 * time.Microsecond) // the events are read meanwhile
	}
}

func (p *Pager) tryFill(addr uint64, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	if p.closed {
		return nil // done: a late copy is one more
	}
	for _, t := range p.targets {
		for off := 0; off < len(data) && !t.dead; {
			to, ok := t.where(addr + uint64(off))
			n := pageSize
			for ok && off+n < len(data) {
				next, nok := t.where(addr + uint64(off+n))
				if !nok || next != to+uint64(n) {
					break
				}
				n += pageSize
			}
			if ok {
				if _, err := t.fd.Copy(to, data[off:off+n]); err != nil {
					if err = p.result(t, err); err != nil {
						return err // ErrChanging: copied again, kept
					}
				}
			}
			off += n
		}
	}
	return nil
}

// Advance says that every page of the image below addr has come.
func (p *Pager) Advance(addr uint64) error {
	p.mu.Lock()
	p.pos = max(p.pos, addr)
	p.mu.Unlock()
	return p.answer(0, 0)
}

// answer serves again the waiting threads whose page lies in [lo, hi)
// or below the position.
func (p *Pager) answer(lo, hi uint64) error {
	for try := 0; ; try++ {
		err := p.tryAnswer(lo, hi)
		if !errors.Is(err, ErrChanging) {
			return err
		}
		time.Sleep(time.Duration(min(try, 100)) * 10 * time.Microsecond)
	}
}

func (p *Pager) tryAnswer(lo, hi uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	waiting := p.pending
	p.pending = nil
	for i, f := range waiting {
		img, ok := f.t.image(f.addr)
		if ok && img >= lo && img < hi {
			continue // its page was copied there, which woke it
		}
		if ok && img >= p.pos {
			p.pending = append(p.pending, f)
			continue
		}
		if err := p.serve(f.t, f.addr); err != nil {
			p.pending = append(p.pending, waiting[i:]...)
			return err
		}
	}
	return nil
}

// Done says every page has come (the image is verified to its end):
// the waiting threads are answered, and the processes let go, their
// memory their own (a page the image did not hold is zeros, as for any
// anonymous memory). It returns the first error of the pager.
func (p *Pager) Done() error {
	if err := p.Advance(^uint64(0)); err != nil {
		p.Fail(err)
		return err
	}
	p.mu.Lock()
	p.done = p.failed == nil
	p.mu.Unlock()
	p.close()
	return p.Err()
}

// Fail stops the pager with err: kill (set by the caller before) has
// ended the processes, which must not go on with holes; then the
// userfaultfds are closed.
func (p *Pager) Fail(err error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return // too late to matter: every page is in
	}
	if p.failed == nil {
		p.failed = err
	}
	p.mu.Unlock()
	if p.Kill != nil {
		p.Kill()
	}
	p.close()
}

// close closes the userfaultfds: the kernel lets the processes' faults
// go as for any memory.
func (p *Pager) close() {
	p.mu.Lock()
	var fds []*FD
	release := false
	if !p.closed {
		p.closed, release = true, p.Release != nil
		for _, t := range p.targets {
			fds = append(fds, t.fd)
		}
	}
	p.mu.Unlock()
	if release {
		p.Release()
	}
	// Without the lock: a reader may wait for it to read its last
	// events, and Close waits for the reader.
	for _, fd := range fds {
		fd.Close()
	}
	p.readers.Wait()
}

// Err is the error the pager failed with, or nil.
func (p *Pager) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Live tells whether a process the pager serves is still there: each
// one not known gone is asked (FD.Gone). A closed pager serves none.
func (p *Pager) Live() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, t := range p.targets {
		if !t.dead && t.fd.Gone() {
			t.dead = true
		}
	}
	return slices.ContainsFunc(p.targets, func(t *target) bool { return !t.dead })
}

// CloseIfGone closes the pager when no process it serves is left (the
// stream that feeds it may wait on its input for long), and tells
// whether it did.
func (p *Pager) CloseIfGone() bool {
	if p.Live() {
		return false
	}
	p.close()
	return true
}

// addRange adds [lo, hi) to the sorted, apart ranges rs.
func addRange(rs [][2]uint64, lo, hi uint64) [][2]uint64 {
	var out [][2]uint64
	for _, r := range rs {
		if r[1] < lo || r[0] > hi {
			out = append(out, r)
			continue
		}
		lo, hi = min(lo, r[0]), max(hi, r[1])
	}
	out = append(out, [2]uint64{lo, hi})
	slices.SortFunc(out, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	return out
}

// contains tells whether addr lies in one of rs.
func contains(rs [][2]uint64, addr uint64) bool {
	return slices.ContainsFunc(rs, func(r [2]uint64) bool { return addr >= r[0] && addr < r[1] })
}
