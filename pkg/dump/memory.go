package dump

import (
	"bytes"
	"fmt"
	"os"

	"procs/format"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// run is a range of pages to store.
type run struct {
	addr, size uint64
	readable   bool // readable by process_vm_readv (else /proc/PID/mem)
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
// that are neither the shared zero page nor still backed by their file.
// It stops early when yield returns false.
func scanRuns(pid int, maps []procfs.Mapping, chunk uint64, yield func(run) bool) error {
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return err
	}
	defer pm.Close()
	for i := range maps {
		m := &maps[i]
		if !storable(m) {
			continue
		}
		regs, err := pm.Scan(m.Start, m.End, procfs.PageIsPresent|procfs.PageIsSwapped,
			procfs.PageIsPFNZero|procfs.PageIsFile)
		if err != nil {
			return fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
		}
		for _, r := range regs {
			for a := r.Start; a < r.End; a += chunk {
				if !yield(run{addr: a, size: min(r.End-a, chunk), readable: m.Read}) {
					return nil
				}
			}
		}
	}
	return nil
}

// chunkSize is how much memory is read at a time: small enough that the
// buffer stays in the CPU's cache while its pages are checked for zeros
// and written out, large enough for process_vm_readv to run at speed
// (2 MiB), and for a small process no larger than an eighth of it: the
// first touch of a fresh buffer costs as much as copying into it.
func chunkSize(total int64) uint64 {
	c := uint64(256 << 10)
	for c < 2<<20 && int64(c) < total/8 {
		c *= 2
	}
	return c
}

// batch is one buffer of read pages with the parts worth storing.
type batch struct {
	buf  []byte
	addr uint64
	keep [][2]int // [from, to) byte offsets in buf of non-zero pages
	err  error
}

var zeroPage [format.PageSize]byte

// writePages scans the process's pages and writes them to w as PAGES
// records: one goroutine scans and reads the next chunk while this one
// writes the last. Pages that are all zero are left out.
func writePages(pid int, maps []procfs.Mapping, w *format.Writer, progress func(done, total int64)) (stored int64, err error) {
	// Buffers are made as needed; a page of one is touched only when
	// memory is read into it.
	const nbuf = 3
	total := residentBytes(maps)
	chunk := chunkSize(total)
	free := make(chan []byte, nbuf)
	made := 0
	var bufs [][]byte // freed once the reader is done with them
	readerDone := make(chan struct{})
	defer func() {
		<-readerDone
		for _, b := range bufs {
			pagebuf.Free(b)
		}
	}()
	full := make(chan batch, nbuf)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(readerDone)
		defer close(full)
		var mem *os.File
		defer func() {
			if mem != nil {
				mem.Close()
			}
		}()
		fail := func(err error) {
			select {
			case full <- batch{err: err}:
			case <-stop:
			}
		}
		err := scanRuns(pid, maps, chunk, func(r run) bool {
			var buf []byte
			if made < nbuf && len(free) == 0 {
				var err error
				if buf, err = pagebuf.New(int(chunk)); err != nil {
					fail(err)
					return false
				}
				bufs = append(bufs, buf)
				made++
			} else {
				select {
				case buf = <-free:
				case <-stop:
					return false
				}
			}
			b := batch{buf: buf[:r.size], addr: r.addr}
			if r.readable {
				b.err = ptrace.ReadMem(pid, r.addr, b.buf)
			} else {
				if mem == nil {
					mem, b.err = os.Open(fmt.Sprintf("/proc/%d/mem", pid))
				}
				if b.err == nil {
					_, b.err = mem.ReadAt(b.buf, int64(r.addr))
				}
			}
			if b.err != nil {
				b.err = fmt.Errorf("reading memory at %#x: %w", r.addr, b.err)
			} else {
				b.keep = nonZero(b.buf)
			}
			select {
			case full <- b:
			case <-stop:
				return false
			}
			return b.err == nil
		})
		if err != nil {
			fail(err)
		}
	}()
	var done int64
	for b := range full {
		if b.err != nil {
			return stored, b.err
		}
		for _, k := range b.keep {
			if err := w.WritePages(b.addr+uint64(k[0]), b.buf[k[0]:k[1]]); err != nil {
				return stored, err
			}
			stored += int64(k[1] - k[0])
		}
		done += int64(len(b.buf))
		if progress != nil {
			progress(done, max(total, done))
		}
		free <- b.buf[:cap(b.buf)]
	}
	return stored, nil
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
