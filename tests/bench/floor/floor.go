// Package floor holds the bench's floors: the least work a dump and a
// restore of a process's memory must do, done with as many threads and
// buffers of the same sizes as procs-dump and procs-load use, so that a
// ratio to a floor measures procs and not a floor held back by fewer
// threads. The bench runs them in its own process, and through the
// bench-floor command (./bench-floor) as a process of their own, started
// as procs-dump and procs-load are.
package floor

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"procs/pkg/directio"
	"procs/pkg/pagebuf"
	"procs/pkg/ptrace"
)

// Readers is how many goroutines read memory at once in a dump, as
// procs-dump's readers (pkg/dump's readerCount): one per CPU this process
// may use, up to four.
func Readers() int { return max(1, min(runtime.GOMAXPROCS(0), 4)) }

// Writers is how many goroutines put pages in the new memory in a
// restore, as procs-load's page writers (pkg/restore's newPageWriters).
func Writers() int { return max(1, min(runtime.GOMAXPROCS(0), 4)) }

// inlineBytes is how much a restore copies itself before it hands pages
// to writers (pkg/restore's inlineBytes).
const inlineBytes = 8 << 20

// Chunk is how much memory one reader reads at a time for a process of
// total bytes, as procs-dump's chunkSize: 1 MiB for a large process, for
// a small one no more than a 128th of it (and at least 64 KiB).
func Chunk(total int64) int {
	c := 64 << 10
	for c < 1<<20 && int64(c) < total/128 {
		c *= 2
	}
	return c
}

// Range is Len bytes of process PID's memory at Addr. Shared is memory
// the process shares copy-on-write with others (after a fork), which is
// read through /proc/PID/mem: process_vm_readv pins the pages it reads,
// and a read-only pin of a page shared copy-on-write copies it first
// (Linux 5.19 on), which would cost the floor a copy and unshare the
// victim's memory; a read of /proc/PID/mem takes the page as it is.
type Range struct {
	PID    int
	Addr   uintptr
	Len    int
	Shared bool
}

// chunkOf is one chunk of a Range: n bytes at addr of the range's memory.
type chunkOf struct {
	r    *Range
	addr uintptr
	n    int
}

// split cuts ranges, in order, into chunks of at most chunk bytes.
func split(ranges []Range, chunk int) []chunkOf {
	var cs []chunkOf
	for i := range ranges {
		r := &ranges[i]
		for off := 0; off < r.Len; off += chunk {
			cs = append(cs, chunkOf{r, r.Addr + uintptr(off), min(chunk, r.Len-off)})
		}
	}
	return cs
}

// Dump copies the memory of ranges, one after the other (the processes
// of a tree in turn, as procs-dump reads them), into w in chunks of
// chunk bytes, with process_vm_readv (/proc/PID/mem for a Shared range):
// Readers() goroutines read them into 2*Readers() buffers, and this one
// writes them out in order. A pipe gets a 1 MiB buffer and a regular
// file is written around the page cache and fsynced, as procs-dump does
// with its stdout.
func Dump(ranges []Range, chunk int, w *os.File) error {
	readers := Readers()
	nbuf := 2 * readers
	cs := split(ranges, chunk)
	mems := map[int]*ptrace.ProcMem{}
	for _, r := range ranges {
		if r.Shared && mems[r.PID] == nil {
			m := &ptrace.ProcMem{PID: r.PID}
			defer m.Close()
			mems[r.PID] = m
		}
	}
	read := func(c chunkOf, buf []byte) error {
		if c.r.Shared {
			return mems[c.r.PID].ReadAt(buf, uint64(c.addr))
		}
		return ptrace.ReadMem(c.r.PID, uint64(c.addr), buf)
	}
	regular, direct := false, false
	if st, err := w.Stat(); err == nil {
		switch {
		case st.Mode()&fs.ModeNamedPipe != 0:
			unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		case st.Mode().IsRegular():
			regular = true
			direct = directio.SetDirect(w, true) == nil
			if direct {
				defer directio.SetDirect(w, false)
			}
		}
	}

	// Chunk i goes through buffer i%nbuf: a reader fills it once the
	// writer gave it back (free), and hands it on (full).
	bufs := make([][]byte, nbuf)
	free := make([]chan struct{}, nbuf)
	full := make([]chan error, nbuf)
	for i := range bufs {
		b, err := pagebuf.New(chunk)
		if err != nil {
			return err
		}
		defer pagebuf.Free(b)
		pagebuf.Prefault(b) // as procs-dump's, made while the process is frozen
		bufs[i] = b
		free[i] = make(chan struct{}, 1)
		free[i] <- struct{}{}
		full[i] = make(chan error, 1)
	}
	next := make(chan int)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	go func() {
		defer close(next)
		for i := range cs {
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				k := i % nbuf
				select {
				case <-free[k]:
				case <-stop:
					return
				}
				full[k] <- read(cs[i], bufs[k][:cs[i].n])
			}
		}()
	}
	for i, c := range cs {
		k := i % nbuf
		if err := <-full[k]; err != nil {
			return err
		}
		b := bufs[k][:c.n]
		if direct && len(b)%directio.Align != 0 {
			if err := directio.SetDirect(w, false); err != nil {
				return err
			}
			direct = false
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		free[k] <- struct{}{}
	}
	if regular {
		return w.Sync()
	}
	return nil
}

// Load reads the first size bytes of the file img into fresh anonymous
// memory in chunks of chunk bytes: this goroutine reads them into
// Writers()+2 buffers and copies the first 8 MiB itself, and Writers()
// goroutines copy the rest in, each first touch of the new memory on
// the writer's CPU, as procs-load's page writers do.
//
// The kernel makes a chunk's pages (MADV_POPULATE_WRITE) before it is
// copied, as process_vm_writev does for procs-load: a fault taken on
// each page by the copy costs about as much again as the copy itself.
func Load(img string, size int64, chunk int) (err error) {
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	defer f.Close()
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(mem)

	type job struct {
		off int
		buf []byte
	}
	writers := Writers()
	free := make(chan []byte, writers+2)
	for range cap(free) {
		b, err := pagebuf.New(chunk)
		if err != nil {
			return err
		}
		defer pagebuf.Free(b)
		free <- b
	}
	jobs := make(chan job, writers+2)
	var wg sync.WaitGroup
	started := false
	defer func() { close(jobs); wg.Wait() }()
	for off := 0; off < len(mem); {
		buf := <-free
		n, rerr := io.ReadFull(f, buf[:min(chunk, len(mem)-off)])
		if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && rerr != io.EOF {
			return rerr
		}
		if off < inlineBytes {
			fill(mem[off:off+n], buf[:n])
			free <- buf
		} else {
			if !started {
				started = true
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range jobs {
							fill(mem[j.off:j.off+len(j.buf)], j.buf)
							free <- j.buf[:cap(j.buf)]
						}
					}()
				}
			}
			jobs <- job{off, buf[:n]}
		}
		off += n
		if rerr != nil {
			break // the image is shorter than size
		}
	}
	return nil
}

// fill copies src into dst, fresh memory of the same length whose pages
// the kernel makes first.
func fill(dst, src []byte) {
	if len(dst) > 0 {
		unix.Madvise(dst, unix.MADV_POPULATE_WRITE) // else the copy faults them in
	}
	copy(dst, src)
}
