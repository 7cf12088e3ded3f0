// Memory: the address space cleared and laid out again (vDSO placement,
// mappings, mm fields) and the page writers that fill it from the image.

package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
	"procs/pkg/vdso"
)

// clearLayout unmaps what the stub (or, for a child, its parent) had,
// but the scratch area and the memory a child inherits (Mapping.Inherit),
// and moves the vDSO group to where the image had it.
func (b *builder) clearLayout() error {
	maps, err := procfs.Maps(b.pid)
	if err != nil {
		return err
	}
	cur := map[string]procfs.Mapping{}
	var keep, parts [][2]uint64 // what a child keeps of its parent's memory
	for _, m := range b.img.Maps {
		if len(m.Inherit) > 0 {
			keep = append(keep, [2]uint64{m.Start, m.End})
		}
	}
	for _, m := range maps {
		switch {
		case m.Path == "[vdso]" || m.Path == "[vvar]" || m.Path == "[vvar_vclock]":
			cur[m.Path] = m
		case m.Path == "[vsyscall]" || m.Start == b.scratch:
		default:
			parts, keep = format.Outside(parts[:0], m.Start, m.End, keep)
			for _, p := range parts {
				if _, err := b.main.Syscall("munmap", unix.SYS_MUNMAP, p[0], p[1]-p[0]); err != nil {
					return err
				}
			}
		}
	}
	if b.proxy {
		return b.placeVdso(cur)
	}
	want := map[string]format.Mapping{}
	for _, m := range b.img.Maps {
		if m.Kind == format.MapVdso {
			want[m.Name] = m
		}
	}
	if len(want) != len(cur) {
		return fmt.Errorf("the image's vDSO layout (%d mappings) differs from this kernel's (%d)", len(want), len(cur))
	}
	base := func(ms map[string]uint64) uint64 { return ms["[vdso]"] }
	cs, ws := map[string]uint64{}, map[string]uint64{}
	var lo, hi uint64 = ^uint64(0), 0
	for name, m := range cur {
		w, ok := want[name]
		if !ok || w.End-w.Start != m.End-m.Start {
			return fmt.Errorf("the image's %s differs from this kernel's", name)
		}
		cs[name], ws[name] = m.Start, w.Start
		lo, hi = min(lo, m.Start), max(hi, m.End)
	}
	for name := range cur {
		if cs[name]-base(cs) != ws[name]-base(ws) {
			return fmt.Errorf("the image's vDSO layout differs from this kernel's (%s)", name)
		}
	}
	b.kvdsoAt = base(ws)
	if base(cs) == base(ws) {
		return nil
	}
	// Move the group out of the way first, then to its place.
	tmp := findHole(b.busy(lo, hi), hi-lo, 0x200000000)
	if tmp == 0 {
		return errors.New("no room to move the vDSO")
	}
	for _, step := range []func(string) uint64{
		func(n string) uint64 { return tmp + (cs[n] - lo) },
		func(n string) uint64 { return ws[n] },
	} {
		for name, m := range cur {
			size := m.End - m.Start
			to := step(name)
			if _, err := b.main.Syscall("mremap "+name, unix.SYS_MREMAP, cs[name], size, size,
				unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to); err != nil {
				return err
			}
			cs[name] = to
		}
	}
	return nil
}

// threadsOutOfVdso fails if a thread of img was stopped in the middle of
// its vDSO's code, which a process calling another kernel's vDSO cannot
// go on running (procs-dump lets such threads run out first).
func threadsOutOfVdso(img *format.Process) error {
	for _, m := range img.Maps {
		if m.Name != "[vdso]" {
			continue
		}
		for _, t := range img.Threads {
			if rip, nr := t.Regs[linux.RIP], int64(t.Regs[linux.ORIG_RAX]); rip >= m.Start && rip < m.End && nr < 0 {
				return fmt.Errorf("the image was made on another kernel build, and thread %d was stopped inside its vDSO (at %#x): dump it again with this version of procs-dump", t.TID, rip)
			}
		}
	}
	return nil
}

// placeVdso moves this kernel's vDSO group, cur, next to where the
// image's was, within reach of the jumps that will lead to it (see
// mapMemory), out of the way of every mapping of the image.
func (b *builder) placeVdso(cur map[string]procfs.Mapping) error {
	var lo, hi uint64 = ^uint64(0), 0
	for _, m := range cur {
		lo, hi = min(lo, m.Start), max(hi, m.End)
	}
	var old uint64
	for _, m := range b.img.Maps {
		if m.Name == "[vdso]" {
			old = m.Start
		}
	}
	busy := b.busy(lo, hi)
	size := hi - lo
	to := uint64(0)
	for _, from := range []uint64{old - min(old, 16*size), old - min(old, 1<<30), old} {
		if to = findHole(busy, size, max(from, 1<<20)&^0xfff); to != 0 {
			if d := int64(to - old); d <= vdso.MaxDistance-int64(size) && d >= -vdso.MaxDistance {
				break
			}
			to = 0
		}
	}
	if to == 0 {
		return fmt.Errorf("no room for this kernel's vDSO near the image's at %#x", old)
	}
	for name, m := range cur {
		if _, err := b.main.Syscall("mremap "+name, unix.SYS_MREMAP, m.Start, m.End-m.Start, m.End-m.Start,
			unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to+(m.Start-lo)); err != nil {
			return err
		}
		if name == "[vdso]" {
			b.kvdsoAt = to + (m.Start - lo)
		}
	}
	if b.kvdsoAt == 0 {
		return errors.New("this kernel gives processes no [vdso]")
	}
	return nil
}

// busy lists the address ranges a moved vDSO group must keep off: the
// image's mappings, the group's place now, [lo, hi), and the scratch area.
func (b *builder) busy(lo, hi uint64) [][2]uint64 {
	busy := [][2]uint64{{lo, hi}, {b.scratch, b.scratch + scratchSize}}
	for _, m := range b.img.Maps {
		busy = append(busy, [2]uint64{m.Start, m.End})
	}
	return busy
}

// readContents reads every record after PROCESS: file contents into the
// loader's files, pages into the process. The image is verified to its
// END record.
//
// Past the first few MiB, pages are put in the process by writers (see
// pageWriters) while this goroutine reads and checks the next records.
// Every writer is done before readContents returns.
func (t *tree) readContents() (err error) {
	pw := newPageWriters(true)
	defer func() {
		if werr := pw.close(); err == nil {
			err = werr
		}
	}()
	var done int64
	for {
		if err := pw.err(); err != nil {
			return err
		}
		var h format.Header
		if t.next != nil {
			h, t.next = *t.next, nil
		} else if h, err = t.r.Next(); err == io.EOF {
			return t.makeUpTo(len(t.procs)-1, pw)
		} else if t.remote != nil && errors.Is(err, errDescEnd) {
			return nil // the pages come by parts (remote.go)
		} else if err != nil {
			return err
		}
		switch h.Type {
		case format.TypePages:
			buf, err := pw.buffer()
			if err != nil {
				return err
			}
			task, addr, data, err := t.r.ReadPages(buf)
			if err != nil {
				pw.giveBack(buf)
				return err
			}
			// Its process, and those before it, exist once the pages of
			// the processes before them are in: a process is forked
			// from its parent's memory (copy-on-write, see layout).
			if err := t.makeUpTo(int(task), pw); err != nil {
				pw.giveBack(buf)
				return err
			}
			b := t.procs[task] // the reader checked it
			if !b.inMemory(addr, uint64(len(data))) {
				// Anywhere else is the loader's: its scratch code, run
				// with the loader's credentials, or the vDSO.
				pw.giveBack(buf)
				return fmt.Errorf("corrupt image at byte %d (record %d): pages at %#x-%#x, outside the memory of process %d", h.Offset, h.Index, addr, addr+uint64(len(data)), b.img.PID)
			}
			if t.lazy != nil {
				err := t.lazyRecord(b, h, addr, data)
				pw.giveBack(buf)
				if err == errStartLazy {
					// The processes not made yet have no page before
					// there: each is forked from its parent as it is.
					return t.makeUpTo(len(t.procs)-1, pw)
				}
				if err != nil {
					return err
				}
				continue
			}
			// Here: the first few MiB (writers would cost a small process
			// more than they save), and pages that go through
			// /proc/PID/mem, which the kernel may let only the tracer's
			// own thread write into read-only memory.
			if done < inlineBytes || !b.writable(addr, uint64(len(data))) {
				err := b.writePages(addr, data)
				pw.giveBack(buf)
				if err != nil {
					return fmt.Errorf("image record %d: pages at %#x: %w", h.Index, addr, err)
				}
			} else {
				index := h.Index
				pw.submit(buf, func() error {
					if err := b.writePages(addr, data); err != nil {
						return fmt.Errorf("image record %d: pages at %#x: %w", index, addr, err)
					}
					return nil
				})
			}
			done += int64(len(data))
			if t.opts.Progress != nil {
				t.opts.Progress(done, 0)
			}
		case format.TypeFileData:
			buf, err := pw.buffer()
			if err != nil {
				return err
			}
			err = t.fillFile(h, buf)
			pw.giveBack(buf)
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("corrupt image at byte %d (record %d): unexpected %v record", h.Offset, h.Index, h.Type)
		}
	}
}

// pageWriters put pages in the process being built from goroutines of
// their own, one per CPU (up to four), started with the first job: the
// first touch of the process's fresh memory in process_vm_writev is most
// of a restore's work, and it goes as fast on each CPU (so does the first
// touch of the staging of page passes, see passes.go). With buffers, they
// share the reader's buffers (PageBufSize each, writers+2 of them), which
// a job gives back when done.
type pageWriters struct {
	writers int
	bufs    [][]byte    // every buffer made
	free    chan []byte // buffers not in use
	jobs    chan pageJob
	wg      sync.WaitGroup
	started bool
	closed  bool

	mu     sync.Mutex
	failed error // the writers' first error

	inflight sync.WaitGroup // jobs submitted and not yet done
}

// pageJob is work for a writer: do, then give buf back (if not nil).
type pageJob struct {
	buf []byte
	do  func() error
}

func newPageWriters(buffers bool) *pageWriters {
	n := max(1, min(runtime.GOMAXPROCS(0), 4))
	pw := &pageWriters{writers: n, jobs: make(chan pageJob, n+2)}
	if buffers {
		pw.free = make(chan []byte, n+2)
	}
	return pw
}

// buffer returns a free buffer, a new one while there are fewer than
// cap(free), or else waits for one to be given back.
func (pw *pageWriters) buffer() ([]byte, error) {
	select {
	case buf := <-pw.free:
		return buf, nil
	default:
	}
	if len(pw.bufs) < cap(pw.free) {
		buf, err := pagebuf.New(format.PageBufSize)
		if err != nil {
			return nil, err
		}
		pw.bufs = append(pw.bufs, buf)
		return buf, nil
	}
	return <-pw.free, nil
}

// giveBack returns a buffer from buffer that holds nothing to write.
func (pw *pageWriters) giveBack(buf []byte) { pw.free <- buf }

// submit has a writer run do, and give buf back.
func (pw *pageWriters) submit(buf []byte, do func() error) {
	if !pw.started {
		pw.started = true
		for range pw.writers {
			pw.wg.Add(1)
			go pw.run()
		}
	}
	pw.inflight.Add(1)
	pw.jobs <- pageJob{buf: buf, do: do}
}

// drain waits until every job submitted is done, and returns the
// writers' first error.
func (pw *pageWriters) drain() error {
	pw.inflight.Wait()
	return pw.err()
}

func (pw *pageWriters) run() {
	defer pw.wg.Done()
	for j := range pw.jobs {
		if pw.err() == nil {
			if err := j.do(); err != nil {
				pw.mu.Lock()
				if pw.failed == nil {
					pw.failed = err
				}
				pw.mu.Unlock()
			}
		}
		if j.buf != nil {
			pw.free <- j.buf
		}
		pw.inflight.Done()
	}
}

// err is the writers' first error.
func (pw *pageWriters) err() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.failed
}

// close waits for the writers to be done, frees the buffers and returns
// the writers' first error; again, it returns that error.
func (pw *pageWriters) close() error {
	if !pw.closed {
		pw.closed = true
		close(pw.jobs)
		pw.wg.Wait()
		for _, buf := range pw.bufs {
			pagebuf.Free(buf)
		}
	}
	return pw.err()
}

// inlineBytes is how much memory readContents writes itself before it
// hands pages to writers.
const inlineBytes = 8 << 20

// inMemory tells whether [addr, addr+n) lies in mappings of the image
// that hold pages (not the vDSO's, not vsyscall), without a gap.
func (b *builder) inMemory(addr, n uint64) bool {
	maps := b.img.Maps
	end := addr + n
	if end < addr {
		return false
	}
	for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr }); i < len(maps) && addr < end; i++ {
		m := maps[i]
		if m.Start > addr || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall {
			return false
		}
		addr = m.End
	}
	return addr >= end
}

// writable tells whether [addr, addr+n) lies in one mapping that is
// writable while it is filled (procs-dump's PAGES records never span two;
// others take the slow way).
func (b *builder) writable(addr, n uint64) bool {
	maps := b.img.Maps
	i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr })
	return i < len(maps) && maps[i].Start <= addr && addr+n <= maps[i].End &&
		writableWhileFilled(maps[i])
}

// writePages puts data at addr in the process. Mappings have their final
// protection already (so that the kernel splits and merges them as it
// did in the original), but for those writableWhileFilled; pages of
// read-only ones go through /proc/PID/mem, which writes them as a
// debugger does.
func (b *builder) writePages(addr uint64, data []byte) error {
	err := ptrace.WriteMem(b.pid, addr, data)
	if !errors.Is(err, unix.EFAULT) {
		return err
	}
	return b.mem.WriteAt(data, addr)
}

// mapMemory makes every mapping of the image at its address, with its
// final protection, and takes the flocks held through them.
func (b *builder) mapMemory() error {
	fds := map[mapKey]uint64{}
	defer func() {
		for _, fd := range fds {
			b.main.Syscall("close", unix.SYS_CLOSE, fd)
		}
	}()
	for _, m := range b.img.Maps {
		if m.Kind == format.MapVdso && b.proxy {
			if err := b.mapOldVdso(m); err != nil {
				return err
			}
			continue
		}
		if m.Kind == format.MapVdso || m.Kind == format.MapVsyscall || len(m.Inherit) > 0 {
			continue // the kernel's, or the parent's (see layout)
		}
		if m.Kind == format.MapSysV {
			if err := b.attachShm(m); err != nil {
				return err
			}
			continue
		}
		prot := m.Prot
		flags := unix.MAP_FIXED
		if m.Shared {
			flags |= unix.MAP_SHARED
		} else if hasAdvice(m, "dp") {
			flags |= unix.MAP_DROPPABLE
		} else {
			flags |= unix.MAP_PRIVATE
			if writableWhileFilled(m) {
				prot |= unix.PROT_WRITE
			}
			if !hasAdvice(m, "ac") && m.Prot&unix.PROT_WRITE != 0 {
				flags |= unix.MAP_NORESERVE
			}
		}
		for _, a := range m.Advice {
			if a == "gd" {
				flags |= unix.MAP_GROWSDOWN
			}
		}
		fd, off := ^uint64(0), uint64(0)
		if m.File >= 0 {
			k := mapKey{m.File, mapMode(m)}
			var ok bool
			if fd, ok = fds[k]; !ok {
				var err error
				if fd, err = b.takeFD(b.mapFiles[k]); err != nil {
					return err
				}
				fds[k] = fd
			}
			off = m.Offset
		} else {
			flags |= unix.MAP_ANONYMOUS
		}
		if _, err := b.main.Syscall(fmt.Sprintf("mmap %x-%x %s", m.Start, m.End, safetext.Quote(m.Name)), unix.SYS_MMAP,
			m.Start, m.End-m.Start, uint64(prot), uint64(flags), fd, off); err != nil {
			return err
		}
	}
	return b.takeMappedLocks(fds)
}

// mapOldVdso makes, for an image whose vDSO this kernel's serves
// through jumps, m, one of the image's vDSO mappings: the vDSO itself as
// a private copy of the image's, every function starting with a jump to
// this kernel's; its data pages ([vvar]...) as inaccessible memory, which
// no code reads any more but keeps other mappings off.
func (b *builder) mapOldVdso(m format.Mapping) error {
	prot, flags := uint64(unix.PROT_NONE), uint64(unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if m.Name == "[vdso]" {
		prot = unix.PROT_READ | unix.PROT_WRITE
	}
	name := fmt.Sprintf("mmap %x-%x %s", m.Start, m.End, safetext.Quote(m.Name))
	if _, err := b.main.Syscall(name, unix.SYS_MMAP, m.Start, m.End-m.Start, prot, flags, ^uint64(0), 0); err != nil {
		return err
	}
	if m.Name != "[vdso]" {
		return nil
	}
	code, err := vdso.Proxy(b.img.Vdso, b.kvdso, m.Start, b.kvdsoAt)
	if err != nil {
		return err
	}
	if uint64(len(code)) != m.End-m.Start {
		return fmt.Errorf("the image's [vdso] holds %d bytes, its mapping %d", len(code), m.End-m.Start)
	}
	if err := ptrace.WriteMem(b.pid, m.Start, code); err != nil {
		return err
	}
	_, err = b.main.Syscall("mprotect [vdso]", unix.SYS_MPROTECT, m.Start, m.End-m.Start, uint64(m.Prot))
	return err
}

var advice = map[string]uint64{
	"dc": unix.MADV_DONTFORK, "dd": unix.MADV_DONTDUMP, "hg": unix.MADV_HUGEPAGE,
	"nh": unix.MADV_NOHUGEPAGE, "wf": unix.MADV_WIPEONFORK, "mg": unix.MADV_MERGEABLE,
}

func (b *builder) setMM() error {
	mm := b.img.MM
	// Setting the exe link needs CAP_CHECKPOINT_RESTORE; without it the
	// link keeps naming the loader, and nothing else changes.
	exe := ^uint64(0)
	if b.exeFile != nil {
		var err error
		if exe, err = b.takeFD(b.exeFile); err != nil {
			return err
		}
		defer b.main.Syscall("close", unix.SYS_CLOSE, exe)
	} else {
		b.warnf("not privileged: /proc/%d/exe will name the loader, not %s", b.pid, safetext.Quote(b.files[b.img.Exe].Path))
	}
	// struct prctl_mm_map, then the auxiliary vector.
	buf := linux.PrctlMMMap{StartCode: mm.StartCode, EndCode: mm.EndCode, StartData: mm.StartData,
		EndData: mm.EndData, StartBrk: mm.StartBrk, Brk: mm.Brk, StartStack: mm.StartStack,
		ArgStart: mm.ArgStart, ArgEnd: mm.ArgEnd, EnvStart: mm.EnvStart, EnvEnd: mm.EnvEnd,
		Auxv: b.scratch + offBig + linux.SizeofPrctlMMMap, AuxvSize: uint32(8 * len(mm.Auxv)),
		ExeFD: uint32(exe)}.Encode()
	for _, v := range mm.Auxv {
		buf = binary.LittleEndian.AppendUint64(buf, v)
	}
	if err := b.write(offBig, buf); err != nil {
		return err
	}
	if _, err := b.main.Syscall("prctl(PR_SET_MM_MAP)", unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, b.scratch+offBig, linux.SizeofPrctlMMMap, 0); err != nil {
		return err
	}
	return nil
}

func hasAdvice(m format.Mapping, flag string) bool { return slices.Contains(m.Advice, flag) }

// writableWhileFilled tells whether mapMemory maps m writable until
// finish gives it its protection: a private mapping that is writable, or
// that was writable once (accounted, "ac", and so never merged with a
// neighbour that was not: it is made as it was, and protected at the
// end).
func writableWhileFilled(m format.Mapping) bool {
	return !m.Shared && (m.Prot&unix.PROT_WRITE != 0 || hasAdvice(m, "ac"))
}
