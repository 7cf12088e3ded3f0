package dump

import (
	"fmt"

	"procs/format"
	"procs/pkg/procfs"
)

// shareWithParents finds, for every process of the tree but the root, the
// pages of its private mappings that it still shares copy-on-write with
// its parent since a fork (the same page frame at the same address of
// the same mapping), marks them in its image (Mapping.Inherit) and leaves
// them out of its pages: they are in the parent's. A restore forks the
// process from its parent once the parent's memory is in place, and the
// pages are shared again: a pre-fork server with eight workers does not
// come back eight times bigger. Frame numbers take CAP_SYS_ADMIN to see;
// without it nothing is shared and every page is stored.
func shareWithParents(cs []*collector) error {
	byPID := map[int]*collector{}
	for _, c := range cs {
		byPID[c.pid] = c
	}
	for _, c := range cs[1:] {
		parent := byPID[c.p.PPID]
		if parent == nil || c.p.Zombie != nil {
			continue // a zombie has no memory
		}
		if err := c.shareWith(parent); err != nil {
			return fmt.Errorf("process %d: pages shared with its parent %d: %w", c.pid, parent.pid, err)
		}
	}
	return nil
}

// shareWith marks the pages c shares with parent.
func (c *collector) shareWith(parent *collector) error {
	pm, err := procfs.OpenPagemap(c.pid)
	if err != nil {
		return err
	}
	defer pm.Close()
	ppm, err := procfs.OpenPagemap(parent.pid)
	if err != nil {
		return err
	}
	defer ppm.Close()
	var mine, theirs []uint64
	for k := range c.p.Maps {
		m := &c.p.Maps[k]
		if !inheritable(m) || !format.ForkedFrom(parent.p.Maps, m) {
			continue
		}
		var ranges [][2]uint64
		for lo := m.Start; lo < m.End; lo += scanWindow {
			if ranges, err = sameFrames(ranges, pm, ppm, lo, min(m.End, lo+scanWindow), &mine, &theirs); err != nil {
				return err
			}
		}
		if len(ranges) > 0 {
			m.Inherit = ranges
			c.skip = append(c.skip, ranges...)
		}
	}
	return nil
}

// inheritable says whether a mapping's pages may be a parent's: private
// memory, anonymous or copied from a file.
func inheritable(m *format.Mapping) bool {
	return !m.Shared && (m.Kind == format.MapAnon || m.Kind == format.MapFile)
}

// sameFrames appends to ranges those of [lo, hi) where pm and ppm, the
// pagemaps of a child and its parent, hold the same anonymous page frame:
// pages they share copy-on-write. mine and theirs are buffers.
func sameFrames(ranges [][2]uint64, pm, ppm *procfs.Pagemap, lo, hi uint64, mine, theirs *[]uint64) ([][2]uint64, error) {
	var err error
	if *mine, err = pm.AnonFrames((*mine)[:0], lo, hi); err != nil {
		return ranges, err
	}
	if *theirs, err = ppm.AnonFrames((*theirs)[:0], lo, hi); err != nil {
		return ranges, err
	}
	for j, f := range *mine {
		if f == 0 || f != (*theirs)[j] {
			continue
		}
		a := lo + uint64(j)*format.PageSize
		if n := len(ranges); n > 0 && ranges[n-1][1] == a {
			ranges[n-1][1] += format.PageSize
		} else {
			ranges = append(ranges, [2]uint64{a, a + format.PageSize})
		}
	}
	return ranges, nil
}
