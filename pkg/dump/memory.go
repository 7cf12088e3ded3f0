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

// pageRuns lists the pages that differ from what a restore gets for free:
// present or swapped pages of private mappings that are neither the
// shared zero page nor still backed by their file.
func pageRuns(pid int, maps []procfs.Mapping) ([]run, uint64, error) {
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return nil, 0, err
	}
	defer pm.Close()
	var runs []run
	var total uint64
	for i := range maps {
		m := &maps[i]
		kind, _ := mapKind(m)
		if m.Shared || (kind != format.MapAnon && kind != format.MapFile) {
			continue
		}
		regs, err := pm.Scan(m.Start, m.End, procfs.PageIsPresent|procfs.PageIsSwapped,
			procfs.PageIsPFNZero|procfs.PageIsFile)
		if err != nil {
			return nil, 0, fmt.Errorf("scanning pages of %x-%x: %w", m.Start, m.End, err)
		}
		for _, r := range regs {
			for a := r.Start; a < r.End; a += chunk {
				n := min(r.End-a, chunk)
				runs = append(runs, run{addr: a, size: n, readable: m.Read})
				total += n
			}
		}
	}
	return runs, total, nil
}

// chunk is how much memory is read at a time: small enough that the
// buffer stays in the CPU's cache while its pages are checked for zeros
// and written out, large enough for process_vm_readv to run at speed.
const chunk = 2 << 20

// batch is one buffer of read pages with the parts worth storing.
type batch struct {
	buf  []byte
	addr uint64
	keep [][2]int // [from, to) byte offsets in buf of non-zero pages
	err  error
}

var zeroPage [format.PageSize]byte

// writePages reads every run and writes it to w as PAGES records, reading
// the next buffer while the last one is written. Pages that are all zero
// are left out.
func writePages(pid int, runs []run, total uint64, w *format.Writer, progress func(done, total int64)) (stored int64, err error) {
	// Buffers are made as needed and no larger than the largest run:
	// fresh memory costs its first touch.
	const nbuf = 4
	var largest uint64
	for _, r := range runs {
		largest = max(largest, r.size)
	}
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
		for _, r := range runs {
			var buf []byte
			if made < nbuf && len(free) == 0 {
				var err error
				if buf, err = pagebuf.New(int(largest)); err != nil {
					select {
					case full <- batch{err: err}:
					case <-stop:
					}
					return
				}
				bufs = append(bufs, buf)
				made++
			} else {
				select {
				case buf = <-free:
				case <-stop:
					return
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
				return
			}
			if b.err != nil {
				return
			}
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
			progress(done, int64(total))
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
