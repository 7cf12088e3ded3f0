// Page passes: memory an image carries in PASS and DROP records, sent
// while the processes still ran (procs-dump --live), before the FILES and
// PROCESS records say where the processes' mappings are. It is staged
// until then, and moved into each process once its mappings exist.

package restore

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"procs/format"
)

// staging holds the passes of an image: per process, a memfd whose
// offsets are the process's addresses. It is sparse: a later copy of a
// page is written over the earlier one, a DROP punches a hole, and pages
// outside the final mappings are never read. The memfd's pages are
// the loader's until they move into the process, then freed: the staged
// and the restored memory together stay about the size of the process.
type staging struct {
	tasks map[uint32]*os.File
	mu    sync.Mutex // tasks and written, for the writers of readPasses
	// written is the bytes written since the size was last checked.
	written int64
}

// stageCheck is how many bytes of PASS records come between two checks
// of what the staging holds.
const stageCheck = 64 << 20

// readPasses reads the PASS and DROP records at the start of the image
// into t.staged, and returns the header of the first record after them.
func (t *tree) readPasses(h format.Header) (format.Header, error) {
	if h.Type != format.TypePass && h.Type != format.TypeDrop {
		return h, nil
	}
	t.staged = &staging{tasks: map[uint32]*os.File{}}
	pool := newPageWriters(true)
	var err error
	var passes, drops int
	var bytes int64
	// ends: per process, the end of the highest range given to the pool
	// since it was last drained. A range below it may overlap one still
	// being written: the pool is drained first, so that a later copy of
	// a page lands after an earlier one.
	ends := map[uint32]uint64{}
	ordered := func(task uint32, addr, end uint64) error {
		if addr < ends[task] {
			if err := pool.drain(); err != nil {
				return err
			}
			clear(ends)
		}
		ends[task] = max(ends[task], end)
		return nil
	}
	for ; h.Type == format.TypePass || h.Type == format.TypeDrop; h, err = t.r.Next() {
		if err != nil {
			break
		}
		if h.Type == format.TypePass {
			passes++
			buf, err := pool.buffer()
			if err != nil {
				return h, errors.Join(err, pool.close())
			}
			task, addr, data, err := t.r.ReadPass(buf)
			if err == nil {
				bytes += int64(len(data))
				err = ordered(task, addr, addr+uint64(len(data)))
			}
			if err != nil {
				pool.giveBack(buf)
				return h, errors.Join(err, pool.close())
			}
			index := h.Index
			pool.submit(buf, func() error {
				if err := t.staged.write(task, addr, data); err != nil {
					return fmt.Errorf("image record %d: staging pages at %#x: %w", index, addr, err)
				}
				return nil
			})
			continue
		}
		drops++
		task, addr, n, err := t.r.ReadDrop()
		if err == nil && len(ends) > 0 {
			err = pool.drain() // after every write before it
			clear(ends)
		}
		if err == nil {
			err = t.staged.drop(task, addr, n)
		}
		if err != nil {
			return h, errors.Join(fmt.Errorf("image record %d: dropping pages at %#x: %w", h.Index, addr, err), pool.close())
		}
	}
	if cerr := pool.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return h, err
	}
	t.logf("page passes: %d MiB in %d PASS records, %d DROP records", bytes>>20, passes, drops)
	return h, nil
}

// file is the memfd of process task, made on first use.
func (s *staging) file(task uint32) (*os.File, error) {
	if f := s.tasks[task]; f != nil {
		return f, nil
	}
	fd, err := unix.MemfdCreate("procs-load passes", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "procs-load passes")
	s.tasks[task] = f
	return f, nil
}

// write stages data, pages of process task at addr (the reader checked
// the range), and checks now and then that the staging does not outgrow
// the machine. Writers of several goroutines may call it at once.
func (s *staging) write(task uint32, addr uint64, data []byte) error {
	s.mu.Lock()
	f, err := s.file(task)
	check := false
	if s.written += int64(len(data)); s.written >= stageCheck {
		s.written, check = 0, true
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, int64(addr)); err != nil {
		return err
	}
	if check {
		return s.checkSize()
	}
	return nil
}

// checkSize fails when the staged pages take more than the machine's
// memory: an image can send a page any number of times, and pages its
// processes will not have.
func (s *staging) checkSize() error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return os.NewSyscallError("sysinfo", err)
	}
	limit := int64(si.Totalram) * int64(si.Unit)
	var held int64
	for _, f := range s.tasks {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return os.NewSyscallError("fstat", err)
		}
		held += st.Blocks * 512
	}
	if held > limit {
		return fmt.Errorf("the image's page passes hold more than this machine's %d MiB of memory", limit>>20)
	}
	return nil
}

// drop forgets what the staging holds of [addr, addr+n) of process task.
func (s *staging) drop(task uint32, addr, n uint64) error {
	s.mu.Lock()
	f := s.tasks[task]
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(addr), int64(n))
	return os.NewSyscallError("fallocate", err)
}

// discardBeyond frees the staged pages of processes numbered n and up:
// processes that exited during the passes (SPEC.md, "Page passes").
func (s *staging) discardBeyond(n int) {
	if s == nil {
		return
	}
	for task, f := range s.tasks {
		if int64(task) >= int64(n) {
			f.Close()
			delete(s.tasks, task)
		}
	}
}

// close frees what is left of the staging.
func (s *staging) close() {
	if s == nil {
		return
	}
	for task, f := range s.tasks {
		f.Close()
		delete(s.tasks, task)
	}
}

// stagedRuns calls yield with each run [data, hole) of staged pages
// (memfd fd) in [lo, hi).
func stagedRuns(fd int, lo, hi uint64, yield func(data, hole int64) error) error {
	end := int64(min(hi, format.MaxPassAddress))
	for off := int64(lo); off < end; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || err == nil && data >= end {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("lseek", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return os.NewSyscallError("lseek", err)
		}
		hole = min(hole, end)
		if err := yield(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// moveChunk is how much of the staging moveStaged maps at a time.
const moveChunk = 8 << 20

// moveStaged writes n bytes of the staging memfd fd at offset (and
// address) a into the process, from a mapping of the memfd: the pages are
// copied once, from the staging into the process.
func (b *builder) moveStaged(fd int, a, n int64) error {
	m, err := unix.Mmap(fd, a, int(n), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(m)
	if err := b.writePages(uint64(a), m); err != nil {
		return fmt.Errorf("pages at %#x from the passes: %w", a, err)
	}
	return nil
}

// fillFromPasses moves the staged pages of the process that lie in its
// private mappings into it, in chunks, freeing each from the staging once
// written; whatever else the staging held of it (pages of mappings it no
// longer had) is discarded. Precondition: the mappings exist (layout).
func (b *builder) fillFromPasses() error {
	s := b.staged
	if s == nil || s.tasks[uint32(b.task)] == nil {
		return nil
	}
	f := s.tasks[uint32(b.task)]
	if b.lazy == nil { // else the pager serves what is left (lazy.go)
		defer func() {
			f.Close()
			delete(s.tasks, uint32(b.task))
		}()
	}
	fd := int(f.Fd())
	pool := newPageWriters(false)
	defer pool.close()
	var moved int64
	for _, m := range b.img.Maps {
		if m.Shared || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall {
			continue // the restorer's or the kernel's: no pages of the image
		}
		ranges := [][2]uint64{{m.Start, m.End}}
		if b.lazy != nil && lazyMapping(m) {
			// Served once the process runs, but for the pages its
			// children share, which they are forked with.
			ranges = b.sharedIn(m.Start, m.End)
		}
		for _, r := range ranges {
			if err := b.moveRuns(fd, pool, r[0], r[1], &moved); err != nil {
				return err
			}
		}
	}
	if err := pool.close(); err != nil {
		return err
	}
	b.tree.logf("moved %d MiB of pages from the passes into process %d", moved>>20, b.img.PID)
	return nil
}

// moveRuns moves the staged pages of the process in [lo, hi) (memfd
// fd) into it, by chunks given to pool, and adds their size to moved.
func (b *builder) moveRuns(fd int, pool *pageWriters, lo, hi uint64, moved *int64) error {
	s := b.staged
	return stagedRuns(fd, lo, hi, func(data, hole int64) error {
		for a := data; a < hole; a += moveChunk {
			n := min(moveChunk, hole-a)
			move := func() error {
				if err := b.moveStaged(fd, a, n); err != nil {
					return err
				}
				return s.drop(uint32(b.task), uint64(a), uint64(n))
			}
			// /proc/PID/mem, for read-only memory, from this thread
			// (see readContents).
			if !b.writable(uint64(a), uint64(n)) {
				if err := pool.drain(); err != nil {
					return err
				}
				if err := move(); err != nil {
					return err
				}
				continue
			}
			if err := pool.err(); err != nil {
				return err
			}
			pool.submit(nil, move)
		}
		*moved += hole - data
		return nil
	})
}
