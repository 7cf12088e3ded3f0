package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// sysvShm is a System V shared memory segment that members attach
// (shmat) or that the tree's IPC namespace holds. No fd has one: the
// dump engine finds segments in the mappings and in /proc/sysvipc, and
// the restore engine makes them again with their id and key before any
// process exists (pkg/restore/sysv.go); mappings of it are attached
// again with shmat at their address. Its contents always travel.
type sysvShm struct{}

func (sysvShm) Name() string { return format.FileSysvShm }

func (sysvShm) Match(*procfs.FD, Terminals) bool { return false }

func (sysvShm) Traits() Traits {
	return Traits{Mode: unix.S_IFREG, Contents: ContentsAlways, Mappable: true}
}

// MaxShmSize caps a segment's size in an image, whatever the restoring
// kernel's shmmax (which is about 2^64 by default): 64 GiB.
const MaxShmSize = 64 << 30

// Validate: the segment's perm is one the tree may own, its size in
// range, its contents carried, a segment marked for removal has no key,
// and no fd names it.
func (sysvShm) Validate(fs []format.File, i int, procs []format.Process) error {
	f := &fs[i]
	s := f.Shm
	if s == nil {
		return fmt.Errorf("image file %d, a System V shared memory segment, has no sysvshm state", i)
	}
	what := fmt.Sprintf("image file %d, System V shared memory segment %d", i, s.ID)
	if err := ValidateIPCPerm(what, s.IPCPerm, procs); err != nil {
		return err
	}
	if f.Size <= 0 || f.Size > MaxShmSize || !f.Carried || f.Extents != nil {
		return fmt.Errorf("%s has size %d (1 byte to %d) or contents not carried", what, f.Size, int64(MaxShmSize))
	}
	if s.Removed && s.Key != 0 {
		return fmt.Errorf("%s is marked for removal, and has key %#x", what, uint32(s.Key))
	}
	if p, fd := Holder(procs, i); p != nil {
		return fmt.Errorf("%s is fd %d of process %d: no fd has a segment", what, fd.Num, p.PID)
	}
	return nil
}

// ValidateIPCPerm checks the perm of a System V IPC object of an image,
// what: an id the kernel may give (below 2^31), a mode of permission
// bits only, and owner and creator among the credentials of the
// image's processes (any of their user ids; any of their group ids and
// supplementary groups). A restorer gives a process only ids it has
// (pkg/restore, creds): an image may not make objects in another user's
// name (a segment of root's at a key a root daemon uses).
func ValidateIPCPerm(what string, p format.IPCPerm, procs []format.Process) error {
	if p.ID < 0 || p.ID > 1<<31-1 || p.Mode&^0o777 != 0 {
		return fmt.Errorf("%s has id %d or mode %#o out of range", what, p.ID, p.Mode)
	}
	uids, gids := map[int]bool{}, map[int]bool{}
	add := func(c *format.Creds) {
		for k := range 4 {
			uids[c.UID[k]], gids[c.GID[k]] = true, true
		}
		for _, g := range c.Groups {
			gids[g] = true
		}
	}
	for k := range procs {
		add(&procs[k].Creds)
		for t := range procs[k].Threads {
			if c := procs[k].Threads[t].Creds; c != nil {
				add(c)
			}
		}
	}
	if !uids[p.UID] || !uids[p.CUID] || !gids[p.GID] || !gids[p.CGID] {
		return fmt.Errorf("%s is owned by %d:%d, made by %d:%d: ids none of the image's processes has", what, p.UID, p.GID, p.CUID, p.CGID)
	}
	return nil
}

// Attachments finds the attachments of segments in maps, a process's
// mappings in order, whose files are fs: the index of each one's first
// mapping. An attachment is one segment's mappings, one after the other
// from offset 0, to its size in whole pages (parts that mprotect split
// off). A mapping of a segment that is not in such a run is returned as
// bad, and the rest is not looked at.
func Attachments(maps []format.Mapping, fs []format.File) (starts []int, bad *format.Mapping) {
	for k := 0; k < len(maps); {
		m := &maps[k]
		if m.Kind != format.MapSysV {
			k++
			continue
		}
		if m.File < 0 || m.File >= len(fs) || fs[m.File].Kind != format.FileSysvShm || m.Offset != 0 {
			return starts, m
		}
		end := m.Start + (uint64(fs[m.File].Size)+format.PageSize-1)&^(format.PageSize-1)
		starts = append(starts, k)
		at := m.Start
		for k < len(maps) && maps[k].Kind == format.MapSysV && maps[k].File == m.File && maps[k].Start == at &&
			maps[k].Offset == at-m.Start && at < end {
			at = maps[k].End
			k++
		}
		if at != end {
			return starts, m
		}
	}
	return starts, nil
}
