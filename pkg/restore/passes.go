// Page passes: memory an image carries in PASS and DROP records, sent
// while the processes still ran (procs-dump --live), before the FILES and
// PROCESS records say where the processes' mappings are. It is staged
// until then, and moved into each process once its mappings exist.

package restore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/pagebuf"
)

// staging holds the passes of an image: per process, a memfd whose
// offsets are the process's addresses. It is sparse: a later copy of a
// page is written over the earlier one, a DROP punches a hole, and pages
// outside the final mappings are never read. The memfd's pages are
// the loader's until they move into the process, then freed: the staged
// and the restored memory together stay about the size of the process.
type staging struct {
	tasks map[uint32]*os.File
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
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return h, err
	}
	defer pagebuf.Free(buf)
	var passes, drops int
	var bytes int64
	for ; h.Type == format.TypePass || h.Type == format.TypeDrop; h, err = t.r.Next() {
		if err != nil {
			return h, err
		}
		if h.Type == format.TypePass {
			passes++
			task, addr, data, err := t.r.ReadPass(buf)
			if err != nil {
				return h, err
			}
			bytes += int64(len(data))
			if err := t.staged.write(task, addr, data); err != nil {
				return h, fmt.Errorf("image record %d: staging pages at %#x: %w", h.Index, addr, err)
			}
			continue
		}
		drops++
		task, addr, n, err := t.r.ReadDrop()
		if err != nil {
			return h, err
		}
		if err := t.staged.drop(task, addr, n); err != nil {
			return h, fmt.Errorf("image record %d: dropping pages at %#x: %w", h.Index, addr, err)
		}
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
// the machine.
func (s *staging) write(task uint32, addr uint64, data []byte) error {
	f, err := s.file(task)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, int64(addr)); err != nil {
		return err
	}
	if s.written += int64(len(data)); s.written >= stageCheck {
		s.written = 0
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
	f := s.tasks[task]
	if f == nil {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(addr), int64(n))
	return os.NewSyscallError("fallocate", err)
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
	defer func() {
		f.Close()
		delete(s.tasks, uint32(b.task))
	}()
	buf, err := pagebuf.New(format.MaxPageRun)
	if err != nil {
		return err
	}
	defer pagebuf.Free(buf)
	fd := int(f.Fd())
	var moved int64
	for _, m := range b.img.Maps {
		if m.Shared || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall {
			continue // the restorer's or the kernel's: no pages of the image
		}
		end := int64(min(m.End, format.MaxPassAddress))
		for off := int64(m.Start); off < end; {
			data, err := unix.Seek(fd, off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) || err == nil && data >= end {
				break
			}
			if err != nil {
				return os.NewSyscallError("lseek", err)
			}
			hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
			if err != nil {
				return os.NewSyscallError("lseek", err)
			}
			hole = min(hole, end)
			for a := data; a < hole; a += int64(len(buf)) {
				chunk := buf[:min(int64(len(buf)), hole-a)]
				if _, err := f.ReadAt(chunk, a); err != nil {
					return err
				}
				if err := b.writePages(uint64(a), chunk); err != nil {
					return fmt.Errorf("pages at %#x from the passes: %w", a, err)
				}
			}
			if err := s.drop(uint32(b.task), uint64(data), uint64(hole-data)); err != nil {
				return err
			}
			moved += hole - data
			off = hole
		}
	}
	b.tree.logf("moved %d MiB of pages from the passes into process %d", moved>>20, b.img.PID)
	return nil
}
