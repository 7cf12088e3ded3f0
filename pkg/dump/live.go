// Live dumps (Options.Live): the memory of the process is written in
// passes while it runs, then it is frozen for the last pass and the rest
// of its state. Its writes are tracked from outside with a userfaultfd
// (KERNEL-NOTES, "Memory"): made in the process by an injected call, taken
// with pidfd_getfd, closed in the process again at once; then its private
// anonymous mappings are registered for asynchronous write-protection, and
// PAGEMAP_SCAN protects the pages that exist, and tells which were written
// since the last pass (and protects them again). Only procs-dump holds the userfaultfd: when it ends, by
// any way, the kernel lifts every protection it put.

package dump

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
	"procs/pkg/uffd"
)

// LiveOptions say when the passes of a live dump stop and the process
// is frozen: after a pass of at most SmallPass bytes, a pass no smaller
// than the one before, MaxPasses passes, or MaxTime.
type LiveOptions struct {
	MaxPasses int
	SmallPass int64
	MaxTime   time.Duration
}

// Defaults of LiveOptions, for fields left zero.
const (
	DefaultPasses    = 8
	DefaultSmallPass = 4 << 20
	DefaultPassTime  = 60 * time.Second
)

func (o LiveOptions) withDefaults() LiveOptions {
	if o.MaxPasses <= 0 {
		o.MaxPasses = DefaultPasses
	}
	if o.SmallPass <= 0 {
		o.SmallPass = DefaultSmallPass
	}
	if o.MaxTime <= 0 {
		o.MaxTime = DefaultPassTime
	}
	return o
}

// tracker follows the writes of one process of the tree to its private
// anonymous memory. A tracker without uffd tracks nothing (a zombie, or
// a process whose tracking could not start): its pages all go in the
// last pass.
type tracker struct {
	id   identity
	ppid int
	uffd *uffd.FD
	pm   *procfs.Pagemap
	// parent is its parent's tracker, when the parent is tracked: the
	// pages it shares with it copy-on-write are left out (pending).
	parent *tracker
	// maps are its mappings at its last pass (with smaps figures in a
	// tree of several processes, where pages may be shared).
	maps []procfs.Mapping
	// sent are the pages in the image (sorted ranges): those that go
	// (dropped, unmapped, remapped) must be voided by a DROP.
	sent [][2]uint64
	// pending are the pages left out as shared with the parent (sorted
	// ranges): not in the image, sent once they are no longer shared.
	pending [][2]uint64
	// whole: the image holds nothing of it at its index, and its next
	// pass sends every page.
	whole bool
	// gone: it exited during a pass.
	gone bool
	regs []procfs.PageRegion
}

// identity is a process, not another that got its PID since.
type identity struct {
	pid   int
	start uint64 // start time
}

// usesUserfaultfd tells whether the process holds a userfaultfd of its
// own, which the tracking would conflict with.
func usesUserfaultfd(pid int) bool {
	fds, err := procfs.FDs(pid)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(fds, func(fd procfs.FD) bool { return fd.Target == "anon_inode:[userfaultfd]" })
}

// startTracker makes the userfaultfd of process id: the process is
// stopped for the few injected calls, through the trampoline (a
// procs-dump that dies meanwhile leaves it where it was).
func startTracker(id identity) (*tracker, error) {
	var file *os.File
	err := ptrace.Run(func() error {
		f, err := freeze(id.pid)
		if err != nil {
			return err
		}
		defer f.release()
		file, err = injectUserfaultfd(f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("starting the tracking of writes: %w", err)
	}
	t := &tracker{id: id, uffd: uffd.New(file), whole: true}
	if err := t.uffd.API(linux.UFFD_FEATURE_WP_ASYNC | linux.UFFD_FEATURE_WP_UNPOPULATED); err != nil {
		t.close()
		return nil, fmt.Errorf("this kernel cannot track writes from outside: %w", err)
	}
	if t.pm, err = procfs.OpenPagemap(id.pid); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// injectUserfaultfd has the frozen process make a userfaultfd, takes it,
// and closes the process's fd again.
func injectUserfaultfd(f *frozen) (*os.File, error) {
	maps, err := procfs.Maps(f.pid)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(maps, func(m procfs.Mapping) bool { return m.Path == "[vdso]" })
	if i < 0 {
		return nil, errors.New("the process has no [vdso] to inject calls through")
	}
	start := maps[i].Start
	vdso := make([]byte, maps[i].End-start)
	if err := ptrace.ReadMem(f.pid, start, vdso); err != nil {
		return nil, err
	}
	pad := vdsoContentEnd(vdso)
	clear(vdso[pad:]) // what a procs-dump that died left there
	if err := f.leaveVdso(start+uint64(pad), start+uint64(pad), start+uint64(len(vdso))); err != nil {
		return nil, err
	}
	tr, err := inject.InstallTrampoline(f.pid, start, vdso)
	if err != nil {
		return nil, err
	}
	defer tr.Uninstall()
	r, err := inject.NewSafeRemote(f.tids[0], tr)
	if err != nil {
		return nil, err
	}
	defer func() {
		r.Restore()
		f.held[r.TID] = append(f.held[r.TID], r.Signals...)
	}()
	open := inject.Call{Nr: unix.SYS_USERFAULTFD, Args: [6]uint64{unix.O_CLOEXEC | unix.O_NONBLOCK | linux.UFFD_USER_MODE_ONLY}}
	if tr.Batch == 0 {
		// No room for batches: two calls, and a procs-dump that dies
		// between them leaves the process the fd.
		fd, err := r.Syscall("userfaultfd", open.Nr, open.Args[0])
		if err != nil {
			return nil, err
		}
		file, gerr := takeFD(f.pid, int(fd))
		if _, err := r.Syscall("close", unix.SYS_CLOSE, fd); err != nil && gerr == nil {
			file.Close()
			return nil, err
		}
		return file, gerr
	}
	// One batch: userfaultfd, then close of the fd it made, which the
	// thread makes even if procs-dump dies: the fd is taken in between.
	// The close is given the fd userfaultfd will return, the lowest free
	// one of the frozen process, and corrected if it returned another
	// (a process sharing the fd table opened one meanwhile): only then,
	// in the instant of the correction, does a dying procs-dump leave
	// the fd (or close another).
	table, restore, err := batchArea(f)
	if err != nil {
		return nil, err
	}
	defer restore()
	next, err := lowestFreeFD(f.pid)
	if err != nil {
		return nil, err
	}
	var file *os.File
	closeFD := inject.Call{Nr: unix.SYS_CLOSE, Args: [6]uint64{uint64(next)}}
	rets, err := r.BatchChained(table, []inject.Call{open, closeFD}, func(fd uint64) ([]inject.Call, error) {
		if e := int64(fd); e < 0 {
			return nil, &inject.SyscallError{Name: "userfaultfd", Errno: unix.Errno(-e)}
		}
		closeFD.Args[0] = fd
		var err error
		file, err = takeFD(f.pid, int(fd))
		return []inject.Call{closeFD}, err
	})
	if err != nil {
		if file != nil {
			file.Close()
		}
		return nil, err
	}
	if e := int64(rets[1]); e < 0 {
		file.Close()
		return nil, &inject.SyscallError{Name: "close", Errno: unix.Errno(-e)}
	}
	return file, nil
}

// lowestFreeFD is the lowest fd number process pid has not open: the one
// its next open gets.
func lowestFreeFD(pid int) (int, error) {
	fds, err := procfs.FDs(pid)
	if err != nil {
		return 0, err
	}
	open := map[int]bool{}
	for _, fd := range fds {
		open[fd.Num] = true
	}
	n := 0
	for open[n] {
		n++
	}
	return n, nil
}

// batchArea picks where a batch's table goes in the frozen process: the
// first bytes of its main stack mapping, below every thread's stack
// pointer, as the collector's injected calls do (see resultArea). It
// returns what puts their contents back.
func batchArea(f *frozen) (uint64, func(), error) {
	maps, err := procfs.Maps(f.pid)
	if err != nil {
		return 0, nil, err
	}
	i := slices.IndexFunc(maps, func(m procfs.Mapping) bool { return m.Path == "[stack]" })
	if i < 0 {
		return 0, nil, errors.New("process has no [stack] mapping")
	}
	area := maps[i].Start
	for _, tid := range f.tids {
		regs, err := ptrace.GetRegs(tid)
		if err != nil {
			return 0, nil, err
		}
		if regs.Rsp >= area && regs.Rsp < area+scratchSize {
			return 0, nil, fmt.Errorf("thread %d runs deep in the main stack (sp %#x): no room to work", tid, regs.Rsp)
		}
	}
	orig := make([]byte, inject.BatchSize(2))
	if err := ptrace.ReadMem(f.pid, area, orig); err != nil {
		return 0, nil, err
	}
	return area, func() { ptrace.WriteMem(f.pid, area, orig) }, nil
}

// takeFD copies fd of process pid into this one.
func takeFD(pid, fd int) (*os.File, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	n, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_getfd", err)
	}
	return os.NewFile(uintptr(n), "userfaultfd"), nil
}

// close ends the tracking: the kernel lifts the protection.
func (t *tracker) close() {
	if t == nil || t.uffd == nil {
		return
	}
	if t.pm != nil {
		t.pm.Close()
	}
	t.uffd.Close()
}

// reset forgets what the image held of the process: its next pass sends
// every page.
func (t *tracker) reset() {
	t.sent, t.pending, t.whole = nil, nil, true
}

// tracked tells whether the tracking covers mapping m: private anonymous
// memory (heap, stacks, mmap). Private file mappings, whose own pages are
// few, are written whole while the process is frozen.
func tracked(m *procfs.Mapping) bool {
	kind, _ := mapKind(m)
	return kind == format.MapAnon && !m.Shared
}

// passChunk is the most bytes of a run scan makes (copyRuns splits them
// again to its buffers).
const passChunk = 8 << 20

// passWork is what one pass writes: ranges to drop, then runs to read.
type passWork struct {
	drops [][2]uint64
	runs  []run
	bytes int64 // of the runs
}

// scan finds what a pass writes of the tracked mappings in maps: in a
// mapping tracked since the last pass, the pages written since, and the
// pages sent before that are gone since (MADV_DONTNEED); in one not yet
// tracked, all of its pages, after it is registered (register false:
// not registered, as in the last pass, made while the process is
// frozen); with t.whole, all pages of every mapping. untracked collects
// the mappings not tracked.
//
// Of a child whose parent is tracked, the pages it shares with it are
// left out (pending), until they are not shared any more; in the last
// pass, skip (the frozen tree's Mapping.Inherit, cow.go) decides which
// those are, and what was sent of them is voided.
//
// Only pages that exist are ever write-protected (PAGEMAP_SCAN's
// WP_MATCHING on what it reports): never the empty parts of a mapping,
// whose protection would make page tables for all of it (256 GiB of
// reserved address space took 512 MiB of them, and seconds). A write
// there makes a page that is not protected: it is seen as written.
func (t *tracker) scan(maps []procfs.Mapping, register bool, chunk uint64, skip [][2]uint64) (passWork, []procfs.Mapping, error) {
	var pw passWork
	var untracked []procfs.Mapping
	var holes, read [][2]uint64 // this pass's, sorted
	var kept [][2]uint64        // the mappings tracked in this pass, sorted
	// Pages that exist and were written since protected. An empty page
	// is not protected, so it counts as written too: left out here.
	written := procfs.ScanArgs{Flags: procfs.PMScanWPMatching | procfs.PMScanCheckWPAsync,
		Mask: procfs.PageIsWritten, AnyOf: procfs.PageIsPresent | procfs.PageIsSwapped,
		Return: procfs.PageIsPresent | procfs.PageIsSwapped | procfs.PageIsPFNZero}
	// Pages neither present nor swapped (nor a marker of protection,
	// seen as swapped): dropped, or never touched.
	empty := procfs.ScanArgs{Flags: procfs.PMScanCheckWPAsync,
		Inverted: procfs.PageIsPresent | procfs.PageIsSwapped, Mask: procfs.PageIsPresent | procfs.PageIsSwapped}
	// Every page that exists, protected as it is reported.
	existing := procfs.ScanArgs{Flags: procfs.PMScanWPMatching | procfs.PMScanCheckWPAsync,
		AnyOf: procfs.PageIsPresent | procfs.PageIsSwapped, Return: procfs.PageIsPresent | procfs.PageIsSwapped | procfs.PageIsPFNZero}
	// pages sorts the regions of t.regs: to read, or (the zero page)
	// to drop.
	pages := func() {
		for _, r := range t.regs {
			if r.Categories&procfs.PageIsSwapped != 0 || r.Categories&procfs.PageIsPresent != 0 && r.Categories&procfs.PageIsPFNZero == 0 {
				read = append(read, [2]uint64{r.Start, r.End})
			} else {
				pw.drops = append(pw.drops, [2]uint64{r.Start, r.End})
			}
		}
	}
	if t.whole {
		written = existing
	}
	// Frozen (the last pass), the empty pages are found on another
	// thread meanwhile: each walk of the page tables takes about as
	// long as the other (1-2 ms a GiB), and the process's CPU is free.
	var frozenHoles <-chan holesFound
	if !register {
		frozenHoles = t.emptyPages(maps, empty)
	}
	for i := range maps {
		m := &maps[i]
		if !tracked(m) {
			untracked = append(untracked, *m)
			continue
		}
		var err error
		if t.regs, err = t.pm.ScanWith(t.regs[:0], m.Start, m.End, written); err == nil {
			pages()
			if frozenHoles != nil {
				kept = append(kept, [2]uint64{m.Start, m.End})
				continue
			}
			if t.regs, err = t.pm.ScanWith(t.regs[:0], m.Start, m.End, empty); err == nil {
				for _, r := range t.regs {
					holes = append(holes, [2]uint64{r.Start, r.End})
				}
				kept = append(kept, [2]uint64{m.Start, m.End})
				continue
			}
		}
		if !errors.Is(err, unix.EPERM) {
			return pw, nil, fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
		}
		// Not registered (new, or moved by mremap, which drops the
		// registration).
		if !register {
			untracked = append(untracked, *m)
			continue
		}
		if err := t.uffd.Register(m.Start, m.Len(), linux.UFFDIO_REGISTER_MODE_WP); err != nil {
			continue // changed meanwhile: the next pass sees it again
		}
		// What was sent of an earlier mapping here is void.
		whole := [][2]uint64{{m.Start, m.End}}
		pw.drops = append(pw.drops, intersect(t.sent, whole)...)
		t.sent = subtract(t.sent, whole)
		t.pending = subtract(t.pending, whole)
		if t.regs, err = t.pm.ScanWith(t.regs[:0], m.Start, m.End, existing); err != nil {
			return pw, nil, fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
		}
		pages()
		kept = append(kept, [2]uint64{m.Start, m.End})
	}
	if frozenHoles != nil {
		e := <-frozenHoles
		if e.err != nil {
			return pw, nil, e.err
		}
		holes = intersect(e.holes, kept)
	}
	// Of the empty pages, those sent before were dropped since; and
	// pages sent of memory no longer tracked (unmapped, or not
	// registered now) are void: the loader need not keep them.
	pw.drops = append(pw.drops, intersect(t.sent, holes)...)
	pw.drops = append(pw.drops, subtract(t.sent, kept)...)
	t.sent = subtract(intersect(t.sent, kept), holes)
	// The pages left out as shared before, that still exist, are read
	// now unless they are shared still.
	read = union(read, subtract(intersect(t.pending, kept), holes))
	t.pending = nil
	switch {
	case skip != nil:
		pw.drops = append(pw.drops, intersect(t.sent, skip)...)
		t.sent = subtract(t.sent, skip)
		read = subtract(read, skip)
	case t.parent != nil && !t.parent.gone:
		shared, err := t.sharedWithParent(maps, read)
		if err != nil {
			return pw, nil, err
		}
		t.pending = shared
		read = subtract(read, shared)
	}
	t.sent = union(t.sent, read)
	pw.runsOf(read, maps, chunk)
	t.whole = false
	return pw, untracked, nil
}

// holesFound is what emptyPages finds: the empty pages of the tracked
// mappings (sorted ranges).
type holesFound struct {
	holes [][2]uint64
	err   error
}

// emptyPages finds, on another goroutine, the pages empty (as args
// says) of the mappings of maps that are tracked and registered.
func (t *tracker) emptyPages(maps []procfs.Mapping, args procfs.ScanArgs) <-chan holesFound {
	out := make(chan holesFound, 1)
	go func() {
		pm, err := procfs.OpenPagemap(t.id.pid)
		if err != nil {
			out <- holesFound{err: err}
			return
		}
		defer pm.Close()
		var e holesFound
		var regs []procfs.PageRegion
		for i := range maps {
			m := &maps[i]
			if !tracked(m) {
				continue
			}
			if regs, err = pm.ScanWith(regs[:0], m.Start, m.End, args); errors.Is(err, unix.EPERM) {
				continue // not registered: not tracked
			} else if err != nil {
				e.err = fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
				break
			}
			for _, r := range regs {
				e.holes = append(e.holes, [2]uint64{r.Start, r.End})
			}
		}
		out <- e
	}()
	return out
}

// sharedWithParent returns the pages of ranges (sorted, in maps) that
// the process shares copy-on-write with its parent (the same frame, in
// a mapping both have since a fork), as shareWith finds them.
func (t *tracker) sharedWithParent(maps []procfs.Mapping, ranges [][2]uint64) ([][2]uint64, error) {
	var shared [][2]uint64
	var mine, theirs []uint64
	var err error
	for i := range maps {
		m := &maps[i]
		if !forkedFrom(t.parent.maps, m) {
			continue
		}
		for _, r := range intersect(ranges, [][2]uint64{{m.Start, m.End}}) {
			for lo := r[0]; lo < r[1]; lo += scanWindow {
				if shared, err = sameFrames(shared, t.pm, t.parent.pm, lo, min(r[1], lo+scanWindow), &mine, &theirs); err != nil {
					return nil, fmt.Errorf("pages shared with the parent at %x-%x: %w", lo, r[1], err)
				}
			}
		}
	}
	return shared, nil
}

// forkedFrom says whether the parent's mappings (sorted) have one like
// m, private, as a fork leaves it (see format.ForkedFrom).
func forkedFrom(parent []procfs.Mapping, m *procfs.Mapping) bool {
	i, ok := slices.BinarySearchFunc(parent, m.Start, func(p procfs.Mapping, a uint64) int { return cmp.Compare(p.Start, a) })
	if !ok || m.Shared {
		return false
	}
	p := &parent[i]
	return p.End == m.End && !p.Shared && p.Inode == m.Inode && p.Dev == m.Dev && p.Offset == m.Offset && p.Path == m.Path
}

// runsOf adds the runs of read (sorted ranges within maps), each read as
// its mapping asks (memory shared with another process, or without
// PROT_READ, through /proc/PID/mem: see batch.read).
func (pw *passWork) runsOf(read [][2]uint64, maps []procfs.Mapping, chunk uint64) {
	for i := range maps {
		if len(read) == 0 {
			return
		}
		m := &maps[i]
		k := 0
		for k < len(read) && read[k][0] < m.End {
			k++
		}
		via := !m.Read || m.SharedPages > 0 && m.Anonymous > 0
		for _, r := range intersect(read[:k], [][2]uint64{{m.Start, m.End}}) {
			pw.add(r[0], r[1], chunk, via)
		}
		if k > 0 && read[k-1][1] > m.End {
			k-- // goes on in the next mapping
		}
		read = read[k:]
	}
}

// add appends the runs of [start, end) of at most chunk bytes.
func (pw *passWork) add(start, end, chunk uint64, viaMem bool) {
	for a := start; a < end; a += chunk {
		pw.runs = append(pw.runs, run{addr: a, size: min(chunk, end-a), viaMem: viaMem})
	}
	pw.bytes += int64(end - start)
}

// Sets of address ranges: sorted, apart, each [start, end).

// union is the ranges of a or of b.
func union(a, b [][2]uint64) [][2]uint64 {
	var out [][2]uint64
	for len(a) > 0 || len(b) > 0 {
		var r [2]uint64
		if len(b) == 0 || len(a) > 0 && a[0][0] <= b[0][0] {
			r, a = a[0], a[1:]
		} else {
			r, b = b[0], b[1:]
		}
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
		} else {
			out = append(out, r)
		}
	}
	return out
}

// intersect is the ranges of both a and b.
func intersect(a, b [][2]uint64) [][2]uint64 {
	var out [][2]uint64
	for len(a) > 0 && len(b) > 0 {
		if lo, hi := max(a[0][0], b[0][0]), min(a[0][1], b[0][1]); lo < hi {
			out = append(out, [2]uint64{lo, hi})
		}
		if a[0][1] < b[0][1] {
			a = a[1:]
		} else {
			b = b[1:]
		}
	}
	return out
}

// subtract is the ranges of a outside b.
func subtract(a, b [][2]uint64) [][2]uint64 {
	var out, parts [][2]uint64
	for _, r := range a {
		parts, b = format.Outside(parts[:0], r[0], r[1], b)
		out = append(out, parts...)
	}
	return out
}

// writePass writes a pass's work as DROP and PASS records of the
// process numbered task.
func (t *tracker) writePass(w *format.Writer, task uint32, pw passWork, bufs *[][]byte) (int64, error) {
	for _, d := range pw.drops {
		if err := w.WriteDrop(task, d[0], d[1]-d[0]); err != nil {
			return 0, err
		}
	}
	runs := pw.runs
	return copyRuns(task, t.id.pid, func(chunk uint64, yield func(run) bool) error {
		for _, r := range runs {
			for a := r.addr; a < r.addr+r.size; a += chunk {
				if !yield(run{addr: a, size: min(chunk, r.addr+r.size-a), viaMem: r.viaMem}) {
					return nil
				}
			}
		}
		return nil
	}, w, nil, pw.bytes, bufs, true)
}

// finalPass writes, the process frozen, its last pass as process task
// (c its collector): the tracked memory written since the last pass, and
// all of the memory of mappings the tracking did not cover (private
// file mappings, mappings made since the last pass), after the DROP of
// what was sent where they are (scan); of a child, but the pages it
// shares with its parent (c.skip).
func (t *tracker) finalPass(w *format.Writer, task uint32, c *collector, bufs *[][]byte) (int64, error) {
	skip := c.skip
	if skip == nil {
		skip = [][2]uint64{}
	}
	pw, untracked, err := t.scan(c.maps, false, passChunk, skip)
	if err != nil {
		return 0, err
	}
	stored, err := t.writePass(w, task, pw, bufs)
	if err != nil {
		return stored, err
	}
	n, err := copyRuns(task, t.id.pid, func(chunk uint64, yield func(run) bool) error {
		return scanRuns(t.id.pid, untracked, c.skip, chunk, yield)
	}, w, nil, residentBytes(untracked), bufs, true)
	return stored + n, err
}

// readSmaps returns the process's mappings with their smaps figures:
// c.smaps when set and /proc/PID/maps lists the same mappings now (the
// frozen process then has these; advice given, or pages touched, in the
// instant between the two reads are the ones not seen: the figures only
// guide how pages are read, the pages themselves are scanned frozen),
// else /proc/PID/smaps read now.
func (c *collector) readSmaps() ([]procfs.Mapping, error) {
	if c.smaps != nil {
		maps, err := procfs.Maps(c.pid)
		if err != nil {
			return nil, err
		}
		if slices.EqualFunc(maps, c.smaps, sameMapping) {
			return c.smaps, nil
		}
	}
	return procfs.Smaps(c.pid)
}

// sameMapping tells whether a and b are the same line of maps.
func sameMapping(a, b procfs.Mapping) bool {
	return a.Start == b.Start && a.End == b.End && a.Perms == b.Perms && a.Offset == b.Offset &&
		a.Dev == b.Dev && a.Inode == b.Inode && a.Path == b.Path && a.Deleted == b.Deleted
}
