package dump

// Process and thread attributes that come back exactly: oom_score_adj,
// each thread's own credentials, THP disabling and membarrier
// registrations (read by calls injected in the process, see
// exactCalls).

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// collectExact reads oom_score_adj and the credentials of every thread
// that has its own.
func (c *collector) collectExact() error {
	oom, err := procfs.OomScoreAdj(c.pid)
	if err != nil {
		return err
	}
	c.p.OomScoreAdj = &oom
	for i := range c.p.Threads {
		t := &c.p.Threads[i]
		if t.TID == c.pid {
			continue
		}
		st, err := procfs.ReadTaskStatus(c.pid, t.TID)
		if err != nil {
			return err
		}
		cr := format.Creds{UID: st.Uid, GID: st.Gid, Groups: st.Groups, NoNewPrivs: st.NoNewPrivs}
		if !sameCreds(cr, c.p.Creds) {
			t.Creds = &cr
		}
	}
	return nil
}

func sameCreds(a, b format.Creds) bool {
	return a.UID == b.UID && a.GID == b.GID && a.NoNewPrivs == b.NoNewPrivs && slices.Equal(a.Groups, b.Groups)
}

// Scheduling: the policies procs carries, and the flags of sched_attr
// that belong to a thread.
const (
	schedDeadline        = 6
	schedFlagResetOnFork = 1
)

// checkSched refuses a thread whose scheduling procs cannot carry.
func checkSched(tid int, attr *unix.SchedAttr) error {
	if attr.Policy == schedDeadline {
		return &refusal{fmt.Sprintf("thread %d runs under SCHED_DEADLINE, which procs cannot carry", tid)}
	}
	return nil
}

// exactCalls read, in the process, PR_GET_THP_DISABLE and its membarrier
// registrations.
func (c *collector) exactCalls() []call {
	return []call{
		{name: "prctl(PR_GET_THP_DISABLE)", nr: unix.SYS_PRCTL,
			args: func(uint64) [6]uint64 { return [6]uint64{unix.PR_GET_THP_DISABLE} },
			done: func(ret uint64, _ []byte) { v := int(ret); c.p.THPDisable = &v }},
		{name: "membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)", nr: unix.SYS_MEMBARRIER,
			args: func(uint64) [6]uint64 { return [6]uint64{linux.MEMBARRIER_CMD_GET_REGISTRATIONS} },
			done: func(ret uint64, _ []byte) { c.p.Membarrier = uint32(ret) }},
	}
}
