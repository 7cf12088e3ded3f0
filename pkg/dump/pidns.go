package dump

import (
	"fmt"
	"os"
	"strconv"

	"procs/pkg/procfs"
)

// A tree that runs in a PID namespace of its own (a container, a copy
// procs-load ran with --pid=ns) knows itself by the ids of that
// namespace: bash keeps its $$, a pool its workers' PIDs, in memory.
// procs-dump works with the ids it sees (outside), and the image holds
// the programs' own, which a restore gives back: toInnerPIDs rewrites
// every id of the image (format's PIDRefs) once the tree is read.
//
// Every member must be in the root's namespace: a member that runs in a
// namespace of its own inside the tree's is refused (a restore makes
// one namespace, not a nest of them).

// toInnerPIDs rewrites the ids of s's processes and files to those of
// the root's PID namespace, when it is not procs-dump's.
func (s *snapshot) toInnerPIDs() error {
	if len(s.procs) == 0 {
		return nil
	}
	root := s.procs[0].PID
	mine, err1 := os.Readlink("/proc/self/ns/pid")
	theirs, err2 := os.Readlink("/proc/" + strconv.Itoa(root) + "/ns/pid")
	if err1 != nil || err2 != nil || mine == theirs {
		return nil
	}
	inner := map[int]int{}
	depth := 0
	for i := range s.procs {
		p := &s.procs[i]
		st, err := procfs.ReadStatus(p.PID)
		if err != nil {
			return err
		}
		if i == 0 {
			depth = len(st.NSpid)
		}
		if len(st.NSpid) != depth || len(st.NSpgid) != depth || len(st.NSsid) != depth {
			return &refusal{fmt.Sprintf("process %d runs in a PID namespace of its own inside the tree's: procs cannot make that again", p.PID)}
		}
		// The group and session as the tree sees them: their leader
		// may be outside the tree but inside the namespace (its init).
		p.Pgid, p.Sid = st.NSpgid[depth-1], st.NSsid[depth-1]
		for _, t := range p.Threads {
			ts, err := procfs.ReadTaskStatus(p.PID, t.TID)
			if err != nil {
				return err
			}
			if len(ts.NSpid) != depth {
				return fmt.Errorf("thread %d of process %d: NSpid %v", t.TID, p.PID, ts.NSpid)
			}
			inner[t.TID] = ts.NSpid[depth-1]
		}
		inner[p.PID] = st.NSpid[depth-1]
	}
	// The root's parent is outside the tree: the namespace's init, or a
	// process of procs-dump's namespace (0 there, as getppid says).
	if ps, err := procfs.ReadStatus(s.procs[0].PPID); err == nil && len(ps.NSpid) == depth {
		inner[s.procs[0].PPID] = ps.NSpid[depth-1]
	} else {
		inner[s.procs[0].PPID] = 0
	}
	rewrite := func(refs []*int) {
		for _, r := range refs {
			if v, ok := inner[*r]; ok {
				*r = v
			}
		}
	}
	for i := range s.procs {
		p := &s.procs[i]
		pgid, sid := p.Pgid, p.Sid
		rewrite(p.PIDRefs())
		p.Pgid, p.Sid = pgid, sid
	}
	for i := range s.table.files {
		rewrite(s.table.files[i].PIDRefs())
	}
	return nil
}
