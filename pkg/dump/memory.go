package dump

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"

	"procs/format"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// run is a range of pages to store.
type run struct {
	addr, size uint64
	// viaMem: read it through /proc/PID/mem (see batch.read), for its
	// mapping has pages shared with another process, or no PROT_READ.
	viaMem bool
}

// storable says whether a mapping's pages go in the image: private
// memory, anonymous or copied from a file.
func storable(m *procfs.Mapping) bool {
	kind, _ := mapKind(m)
	return !m.Shared && (kind == format.MapAnon || kind == format.MapFile)
}

// residentBytes estimates the bytes writePages will read (for progress).
func residentBytes(maps []procfs.Mapping) int64 {
	var n int64
	for i := range maps {
		if storable(&maps[i]) {
			n += int64(maps[i].Rss)
		}
	}
	return n
}

// scanRuns calls yield for every run of pages that differ from what a
// restore gets for free: present or swapped pages of private mappings
// that are neither the shared zero page nor still backed by their file,
// nor in skip (sorted: the pages the parent has, see cow.go). It stops
// early when yield returns false.
func scanRuns(pid int, maps []procfs.Mapping, skip [][2]uint64, chunk uint64, yield func(run) bool) error {
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return err
	}
	defer pm.Close()
	want := procfs.Masks(procfs.PageIsPresent|procfs.PageIsSwapped, procfs.PageIsPFNZero|procfs.PageIsFile)
	var regs []procfs.PageRegion
	var parts [][2]uint64
	for i := range maps {
		m := &maps[i]
		if !storable(m) {
			continue
		}
		// A window at a time, so that reading starts before the scan of
		// a large mapping ends (page tables scan at ~10 ms a GiB). A
		// mapping whose every page is present, anonymous and not the
		// zero page (smaps counted them) needs no scan.
		whole := m.Anonymous == m.Len()
		for start := m.Start; start < m.End; start += scanWindow {
			end := min(m.End, start+scanWindow)
			if whole {
				regs = append(regs[:0], procfs.PageRegion{Start: start, End: end})
			} else if regs, err = pm.ScanWith(regs[:0], start, end, want); err != nil {
				return fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
			}
			for _, r := range regs {
				parts, skip = format.Outside(parts[:0], r.Start, r.End, skip)
				for _, p := range parts {
					for a := p[0]; a < p[1]; a += chunk {
						if !yield(run{addr: a, size: min(p[1]-a, chunk), viaMem: !m.Read || m.SharedPages > 0 && m.Anonymous > 0}) {
							return nil
						}
					}
				}
			}
		}
	}
	return nil
}

// scanWindow is how much address space scanRuns scans at a time.
const scanWindow = 16 << 20

// chunkSize is how much memory one reader reads, and the writer then
// writes, at a time: 1 MiB for a large process (a pipe takes 1 MiB
// writes much better than 256 KiB ones here: 1 GiB through a pipe in
// ~350 ms against ~430), and for a small one no more than a 128th of it,
// as the first touch of a fresh buffer costs as much as copying into it.
func chunkSize(total int64) uint64 {
	c := uint64(64 << 10)
	for c < 1<<20 && int64(c) < total/128 {
		c *= 2
	}
	return c
}

// bufferCount is how many buffers a dump's readers and writer share.
func bufferCount() int { return 2 * readerCount() }

// prepareBuffers makes, on another thread, the buffers writePages will
// want for a process of about total resident bytes, and touches every
// page of them, while the process is frozen and its state read: then no
// copy into them pays for the first touch, which costs as much as the
// copy. The result comes on the channel once.
func prepareBuffers(total int64) <-chan [][]byte {
	out := make(chan [][]byte, 1)
	go func() {
		var bufs [][]byte
		chunk := int(chunkSize(total))
		for range bufferCount() {
			b, err := pagebuf.New(chunk)
			if err != nil {
				break // writePages makes what it lacks
			}
			pagebuf.Prefault(b)
			bufs = append(bufs, b)
		}
		out <- bufs
	}()
	return out
}

// readerCount is how many goroutines read memory at once: one per CPU
// this process may use, up to four. While the process is frozen its CPUs
// are free, and one reader alone is bound by the page-by-page work of
// process_vm_readv well below the machine's memory bandwidth.
func readerCount() int {
	return max(1, min(runtime.GOMAXPROCS(0), 4))
}

// batch is one chunk of memory: where it is, the buffer it is read into,
// and once read, its non-zero parts checksummed for the Writer.
type batch struct {
	seq  int
	r    run
	buf  []byte
	runs []format.PageRun
	err  error
	// pass: the runs are PASS records, and the pages of the chunk that
	// are all zero go in drops.
	pass  bool
	drops [][2]uint64
}

var zeroPage [format.PageSize]byte

// writePages scans the process's pages and writes them to w as PAGES
// records. Pages that are all zero are left out. One goroutine scans the
// page tables and hands out chunks in address order, each with a buffer;
// readers (readerCount) read them, find the zero pages and checksum the
// rest; this goroutine writes the chunks out in order and gives their
// buffers back. Buffers are handed out in order too, so the chunk written
// next always has one.
//
// *bufs are buffers made ahead (see prepareBuffers), all of one size,
// used first; writePages adds those it makes, and the caller frees them
// all.
func writePages(task uint32, pid int, maps []procfs.Mapping, skip [][2]uint64, w *format.Writer, progress func(done, total int64), bufs *[][]byte) (stored int64, err error) {
	return copyRuns(task, pid, func(chunk uint64, yield func(run) bool) error {
		return scanRuns(pid, maps, skip, chunk, yield)
	}, w, progress, residentBytes(maps), bufs, false)
}

// copyRuns is writePages for the runs scan yields (in chunks of at most
// chunk bytes, in address order), of about total bytes. With pass, they
// are written as PASS records, and their pages that are all zero as DROP
// records (an earlier pass may have sent them otherwise).
func copyRuns(task uint32, pid int, scan func(chunk uint64, yield func(run) bool) error, w *format.Writer, progress func(done, total int64), total int64, bufs *[][]byte, pass bool) (stored int64, err error) {
	pre := *bufs
	chunk := chunkSize(total)
	if len(pre) > 0 {
		chunk = uint64(len(pre[0]))
	}
	readers := readerCount()
	nbuf := max(bufferCount(), len(pre))

	stop := make(chan struct{})
	jobs := make(chan *batch, nbuf)
	results := make(chan *batch, nbuf)
	free := make(chan []byte, nbuf)
	for _, b := range pre {
		free <- b
	}
	mem := &ptrace.ProcMem{PID: pid}
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
		mem.Close()
	}()

	wg.Add(1)
	go func() { // the scanner
		defer wg.Done()
		defer close(jobs)
		seq := 0
		send := func(b *batch) bool {
			b.seq = seq
			seq++
			select {
			case jobs <- b:
				return true
			case <-stop:
				return false
			}
		}
		err := scan(chunk, func(r run) bool {
			var buf []byte
			select {
			case buf = <-free:
			default:
				if len(*bufs) < nbuf {
					var err error
					if buf, err = pagebuf.New(int(chunk)); err != nil {
						send(&batch{err: err})
						return false
					}
					*bufs = append(*bufs, buf)
					break
				}
				select {
				case buf = <-free:
				case <-stop:
					return false
				}
			}
			return send(&batch{r: r, buf: buf[:r.size], pass: pass})
		})
		if err != nil {
			send(&batch{err: err})
		}
	}()
	var readersWG sync.WaitGroup
	for range readers {
		wg.Add(1)
		readersWG.Add(1)
		go func() {
			defer wg.Done()
			defer readersWG.Done()
			for b := range jobs {
				if b.err == nil {
					b.read(task, pid, mem, w)
				}
				select {
				case results <- b:
				case <-stop:
					return
				}
			}
		}()
	}
	go func() {
		readersWG.Wait()
		close(results)
	}()

	var done int64
	next := 0
	waiting := map[int]*batch{}
	for b := range results {
		if b.err != nil {
			return stored, b.err
		}
		waiting[b.seq] = b
		for b := waiting[next]; b != nil; b = waiting[next] {
			delete(waiting, next)
			next++
			for _, d := range b.drops {
				if err := w.WriteDrop(task, d[0], d[1]-d[0]); err != nil {
					return stored, err
				}
			}
			for _, pr := range b.runs {
				if err := w.WritePageRun(pr); err != nil {
					return stored, err
				}
			}
			stored += b.stored()
			done += int64(len(b.buf))
			if progress != nil {
				progress(done, max(total, done))
			}
			free <- b.buf[:cap(b.buf)]
		}
	}
	return stored, nil
}

// read reads the batch's memory into its buffer and prepares its
// non-zero pages for w.
func (b *batch) read(task uint32, pid int, mem *ptrace.ProcMem, w *format.Writer) {
	// A mapping whose anonymous pages another process may share goes
	// through /proc/PID/mem, not process_vm_readv: that one pins the
	// pages it reads, and since Linux 5.19 a read-only pin of an
	// anonymous page shared copy-on-write copies it first (unsharing): a
	// dump would grow the process it reads, a pre-fork server's worker by
	// every page it shares with its parent. /proc/PID/mem reads them
	// where they are (and pages without PROT_READ), but a page at a
	// time: a third of process_vm_readv's speed here.
	if b.r.viaMem {
		b.err = mem.ReadAt(b.buf, b.r.addr)
	} else {
		b.err = ptrace.ReadMem(pid, b.r.addr, b.buf)
	}
	if b.err != nil {
		b.err = fmt.Errorf("reading memory at %#x: %w", b.r.addr, b.err)
		return
	}
	prepare, at := w.PreparePages, 0
	if b.pass {
		prepare = w.PreparePass
	}
	for _, k := range nonZero(b.buf) {
		if b.pass && k[0] > at {
			b.drops = append(b.drops, [2]uint64{b.r.addr + uint64(at), b.r.addr + uint64(k[0])})
		}
		b.runs = append(b.runs, prepare(task, b.r.addr+uint64(k[0]), b.buf[k[0]:k[1]]))
		at = k[1]
	}
	if b.pass && at < len(b.buf) {
		b.drops = append(b.drops, [2]uint64{b.r.addr + uint64(at), b.r.addr + uint64(len(b.buf))})
	}
}

// stored is the bytes of memory the batch writes.
func (b *batch) stored() int64 {
	var n int64
	for _, pr := range b.runs {
		n += int64(pr.Len())
	}
	return n
}

// nonZero returns the ranges of buf made of pages that are not all zero.
func nonZero(buf []byte) [][2]int {
	var out [][2]int
	start := -1
	for off := 0; off < len(buf); off += format.PageSize {
		zero := bytes.Equal(buf[off:off+format.PageSize], zeroPage[:])
		switch {
		case !zero && start < 0:
			start = off
		case zero && start >= 0:
			out = append(out, [2]int{start, off})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, [2]int{start, len(buf)})
	}
	return out
}
