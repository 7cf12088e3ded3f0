package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"procs/format"
)

// Scheduling policies (sched(7)) a thread may have in an image, and the
// sched_attr flags it may carry.
var schedPolicies = map[int]string{0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}

const schedFlagResetOnFork = 1

// validateSched range-checks every thread's scheduling.
func validateSched(img *format.Process) error {
	for i, t := range img.Threads {
		name, ok := schedPolicies[t.Policy]
		switch {
		case !ok:
			return fmt.Errorf("image thread %d has scheduling policy %d, which this procs-load does not know", i, t.Policy)
		case t.SchedFlags&^schedFlagResetOnFork != 0:
			return fmt.Errorf("image thread %d has scheduling flags %#x this procs-load does not know", i, t.SchedFlags)
		case t.Nice < -20 || t.Nice > 19:
			return fmt.Errorf("image thread %d has nice %d, out of range [-20, 19]", i, t.Nice)
		case (t.Policy == 1 || t.Policy == 2) && (t.Priority < 1 || t.Priority > 99),
			t.Policy != 1 && t.Policy != 2 && t.Priority != 0:
			return fmt.Errorf("image thread %d has %s priority %d", i, name, t.Priority)
		}
	}
	return nil
}

// threadSched gives thread i its scheduling policy, priority, nice and
// flags, or fails: a thread that would run under another policy than it
// had is not restored.
func (b *builder) threadSched(i int) error {
	t := &b.img.Threads[i]
	// The nice first: sched_setattr sets it only with SCHED_OTHER and
	// SCHED_BATCH, but a thread of another policy has one all the same.
	if err := unix.Setpriority(unix.PRIO_PROCESS, b.tids[i], t.Nice); err != nil {
		return fmt.Errorf("thread %d: cannot give it nice %d: %w", t.TID, t.Nice, err)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(t.Policy), Flags: t.SchedFlags,
		Nice: int32(t.Nice), Priority: uint32(t.Priority)}
	if err := unix.SchedSetAttr(b.tids[i], &attr, 0); err != nil {
		return fmt.Errorf("thread %d: cannot give it its scheduling (%s priority %d nice %d): %w",
			t.TID, schedPolicies[t.Policy], t.Priority, t.Nice, err)
	}
	return nil
}
