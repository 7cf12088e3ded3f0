// Timers and clocks: POSIX timers, and the time namespace's offsets.

package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

// posixTimers makes the process's POSIX timers again under their ids
// (PR_TIMER_CREATE_RESTORE_IDS: the program holds them as timer_t) and
// arms each with what was left of its time at the dump. A timer that
// signals one thread signals that thread's new tid.
func (b *builder) posixTimers() error {
	img := b.img
	if len(img.Timers) == 0 {
		return nil
	}
	r := b.main
	le := binary.LittleEndian
	if _, err := r.Syscall("prctl(PR_TIMER_CREATE_RESTORE_IDS)", unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0); err != nil {
		return err // Restore checked that the kernel knows it
	}
	for _, t := range img.Timers {
		// struct sigevent, then the timer id to ask for.
		ev := linux.Sigevent{Value: t.Value, Signo: int32(t.Signo), Notify: int32(t.Notify)}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 {
			i := slices.IndexFunc(img.Threads, func(th format.Thread) bool { return th.TID == t.Target })
			if i < 0 {
				return fmt.Errorf("POSIX timer %d signals thread %d, which the image lacks", t.ID, t.Target)
			}
			ev.ThreadID = int32(b.innerTID(i))
		}
		if err := b.write(offArgs, le.AppendUint32(ev.Encode(), uint32(t.ID))); err != nil {
			return err
		}
		name := fmt.Sprintf("timer_create(%d)", t.ID)
		if _, err := r.Syscall(name, unix.SYS_TIMER_CREATE, uint64(t.Clock), b.scratch+offArgs, b.scratch+offArgs+linux.SizeofSigevent); err != nil {
			return err
		}
		got := make([]byte, 4)
		if err := ptrace.ReadMem(b.pid, b.scratch+offArgs+linux.SizeofSigevent, got); err != nil {
			return err
		}
		if id := int(int32(le.Uint32(got))); id != t.ID {
			return fmt.Errorf("POSIX timer %d came back as timer %d", t.ID, id)
		}
		if t.ValueNsec == 0 {
			continue // disarmed
		}
		if err := b.write(offArgs, linux.MakeItimer(t.IntervalNsec, t.ValueNsec, 1e9).Encode()); err != nil {
			return err
		}
		if _, err := r.Syscall(fmt.Sprintf("timer_settime(%d)", t.ID), unix.SYS_TIMER_SETTIME, uint64(t.ID), 0, b.scratch+offArgs, 0); err != nil {
			return err
		}
	}
	_, err := r.Syscall("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0)
	return err
}

// timeNamespace makes the process cloned from the stub start in a time
// namespace of its own whose CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from
// where they were at the dump: absolute deadlines on those clocks (sleeps,
// runtime timers) keep their meaning, here or on another machine. The
// stub unshares it (its children enter it), and the offsets are written
// before any process is in it. It needs root; without it, or on any
// error, the process gets this machine's clocks and procs-load says so.
func (b *builder) timeNamespace(stub *inject.Remote, pid int) {
	c := b.img.Clocks
	if c == nil || !hasCheckpointRestore() {
		return
	}
	var mono, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		return
	}
	if _, err := stub.Syscall("unshare(CLONE_NEWTIME)", unix.SYS_UNSHARE, unix.CLONE_NEWTIME); err != nil {
		b.warnf("no time namespace (%v): the process's monotonic clock jumps to this machine's", err)
		return
	}
	shift := [2]int64{c.Monotonic - mono.Nano(), c.Boottime - boot.Nano()}
	offsets := timensOffset("monotonic", shift[0]) + timensOffset("boottime", shift[1])
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/timens_offsets", pid), []byte(offsets), 0); err != nil {
		b.warnf("cannot set the time namespace's offsets (%v): the process's monotonic clock jumps to this machine's", err)
		return
	}
	b.clockShift = &shift
}

// Now is clock as the process being built reads it (files.Target).
func (t target) Now(clock int) (int64, bool) { return files.ShiftedNow(clock, t.b.clockShiftOf) }

// clockShiftOf is what the process reads on clock more than procs-load
// does, and whether that clock goes on from where it was at the dump:
// REALTIME always; MONOTONIC and BOOTTIME when the process has a time
// namespace that carries the image's clocks.
func (b *builder) clockShiftOf(clock int) (int64, bool) {
	shift := b.clockShift
	switch {
	case clock == unix.CLOCK_REALTIME:
		return 0, true
	case shift == nil:
		return 0, false
	case clock == unix.CLOCK_MONOTONIC:
		return shift[0], true
	case clock == unix.CLOCK_BOOTTIME:
		return shift[1], true
	}
	return 0, false
}

// timensOffset is one line of timens_offsets: seconds, and nanoseconds in
// [0, 1e9).
func timensOffset(clock string, ns int64) string {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return fmt.Sprintf("%s %d %d\n", clock, sec, nsec)
}
