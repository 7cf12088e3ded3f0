// Memory: the process's mappings and the files they map.

package dump

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

func (c *collector) collectMaps() error {
	for i := range c.maps {
		m := &c.maps[i]
		kind, _ := mapKind(m)
		fm := format.Mapping{Start: m.Start, End: m.End, Shared: m.Shared, Kind: kind,
			Name: m.Path, File: -1, Offset: m.Offset}
		if m.Read {
			fm.Prot |= unix.PROT_READ
		}
		if m.Write {
			fm.Prot |= unix.PROT_WRITE
		}
		if m.Exec {
			fm.Prot |= unix.PROT_EXEC
		}
		for _, a := range []string{"gd", "ac", "dc", "dd", "hg", "nh", "wf", "mg", "lo", "lf", "dp"} {
			if m.Flags[a] {
				fm.Advice = append(fm.Advice, a)
			}
		}
		switch kind {
		case format.MapFile, format.MapShmem:
			fkind := format.FileRegular
			if kind == format.MapShmem || strings.HasPrefix(m.Path, "/memfd:") {
				fkind = format.FileMemfd
			}
			path := fmt.Sprintf("/proc/%d/map_files/%x-%x", c.pid, m.Start, m.End)
			idx, err := c.fileAt(path, fkind)
			if errors.Is(err, unix.EPERM) {
				// Following map_files needs CAP_CHECKPOINT_RESTORE.
				if path, err = c.mappedFile(m); err == nil {
					idx, err = c.fileAt(path, fkind)
				}
			}
			if err != nil {
				var r *refusal
				if errors.As(err, &r) {
					return err
				}
				return fmt.Errorf("mapping %x-%x (%s): %w", m.Start, m.End, m.Path, err)
			}
			fm.File = idx
			if m.Shared {
				// The mode of a map_files link is the f_mode of the
				// file behind the mapping: S_IWUSR when open for writing.
				var st unix.Stat_t
				if err := unix.Lstat(path, &st); err != nil {
					return fmt.Errorf("mapping %x-%x (%s): %w", m.Start, m.End, m.Path, err)
				}
				fm.Access = format.AccessRead
				if st.Mode&unix.S_IWUSR != 0 {
					fm.Access = format.AccessReadWrite
				}
			}
			if kind == format.MapFile && c.t.files[idx].Deleted && !c.t.files[idx].Carried {
				if err := c.carryFile(idx, path); err != nil {
					return err
				}
			}
		case format.MapSysV:
			c.sysvMapping(&fm, m)
		case format.MapVdso:
			if m.Path == "[vdso]" {
				c.vdso = make([]byte, m.End-m.Start)
				if err := ptrace.ReadMem(c.pid, m.Start, c.vdso); err != nil {
					return fmt.Errorf("reading [vdso]: %w", err)
				}
				end := vdsoContentEnd(c.vdso)
				clear(c.vdso[end:])
				c.p.Vdso = c.vdso
				c.vdsoStart = m.Start
				c.vdsoPad = m.Start + uint64(end)
			}
		}
		c.p.Maps = append(c.p.Maps, fm)
	}
	if c.vdso == nil {
		return errors.New("process has no [vdso]")
	}
	return nil
}

// mappedFile returns a path that reaches the file mapping m maps, for a
// tracer that may not follow /proc/PID/map_files (which takes
// CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN; ptrace rights are enough to
// read the process's fd links and its maps): an fd of the process on the
// same file, else the file at m's path, opened and checked against the
// device and inode that maps shows. A deleted file or shared memory that
// no fd holds is out of reach: the error says which capability it takes.
func (c *collector) mappedFile(m *procfs.Mapping) (string, error) {
	want := [2]uint64{m.Dev, m.Inode}
	for _, fd := range c.fds {
		if fd.Path == m.Path && [2]uint64{fd.Dev, fd.Ino} == want {
			return fmt.Sprintf("/proc/%d/fd/%d", c.pid, fd.Num), nil
		}
	}
	const needCap = "reading it takes CAP_CHECKPOINT_RESTORE (or root)"
	switch {
	case !strings.HasPrefix(m.Path, "/") || strings.HasPrefix(m.Path, "/memfd:") || (m.Deleted && m.Path == "/dev/zero"):
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): shared memory that no fd of process %d holds: %s",
			m.Start, m.End, m.Path, c.pid, needCap)}
	case m.Deleted:
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): a deleted file that no fd of process %d holds: %s",
			m.Start, m.End, m.Path, c.pid, needCap)}
	}
	f, err := os.OpenFile(m.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("mapping %x-%x: %w", m.Start, m.End, err)
	}
	var s unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &s); err != nil || [2]uint64{s.Dev, s.Ino} != want {
		f.Close()
		return "", &refusal{fmt.Sprintf("mapping %x-%x (%s): the file at that path is not the one mapped: %s",
			m.Start, m.End, m.Path, needCap)}
	}
	c.held = append(c.held, f)
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}
