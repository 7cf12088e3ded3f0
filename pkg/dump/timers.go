// Timers and clocks: POSIX timers and the clocks a time namespace
// offsets.

package dump

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// collectTimers reads the process's POSIX timers as /proc shows them;
// processCalls asks the process when each expires next.
func (c *collector) collectTimers() error {
	ts, err := procfs.PosixTimers(c.pid)
	if err != nil {
		return err
	}
	if p := checkTimers(ts); len(p) > 0 {
		return p.err(c.pid)
	}
	for _, t := range ts {
		pt := format.PosixTimer{ID: t.ID, Clock: t.Clock, Notify: t.Notify, Signo: t.Signo, Value: t.Value}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 {
			if !slices.Contains(c.f.tids, t.Target) {
				return fmt.Errorf("POSIX timer %d signals thread %d, not one of the process's", t.ID, t.Target)
			}
			pt.Target = t.Target
		}
		c.p.Timers = append(c.p.Timers, pt)
	}
	return nil
}

// timerValue decodes struct itimerval (perSec 1e6: timevals) or struct
// itimerspec (1e9: timespecs) into its interval and value in 1/perSec
// seconds.
func timerValue(b []byte, perSec int64) (interval, value int64) {
	var it linux.Itimer
	it.Decode(b)
	return it.Join(perSec)
}

// clocksOf reads CLOCK_MONOTONIC and CLOCK_BOOTTIME as process pid sees
// them: ours, plus the offsets of its time namespace.
func clocksOf(pid int) *format.Clocks {
	var mono, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		return nil
	}
	m, b := procfs.TimeOffsets(pid)
	return &format.Clocks{Monotonic: mono.Nano() + m, Boottime: boot.Nano() + b}
}
