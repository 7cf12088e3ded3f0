package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// timerfd is a timerfd: its clock, its period, the time left to its next
// expiry and the expirations no read took yet travel; the process makes
// it again (timerfd_create), arms it and gives it back those expirations
// (TFD_IOC_SET_TICKS), so that its first read returns them. One in
// flight in a unix socket's queue that no process holds the loader makes
// so, once every process is built (MakeLate).
//
// A deadline set with TFD_TIMER_ABSTIME stays where it was on its clock:
// on CLOCK_REALTIME the same wall time (the expirations due while the
// process was away are counted, as across a suspend); on CLOCK_MONOTONIC
// and CLOCK_BOOTTIME the same time of the process's clocks, which its
// time namespace carries on from the dump (see restore's timeNamespace),
// so that it comes after the time left, as every relative timer does;
// relative timers on those clocks are kept at their deadline too.
// Without a time namespace (procs-load not root) they are armed with the
// time left, relative. Alarm clocks, which need
// CAP_WAKE_ALARM, are refused (Classify).
type timerfd struct{}

func (timerfd) Name() string { return format.FileTimerfd }

// Match takes the timerfds of the clocks carried; Classify refuses the
// others by name.
func (timerfd) Match(fd *procfs.FD, _ Terminals) bool {
	clock, err := strconv.Atoi(fd.Info["clockid"])
	return fd.Target == "anon_inode:[timerfd]" && err == nil && timerfdClocks[clock]
}

func (timerfd) Traits() Traits { return Traits{} }

// timerfdClocks are the clocks procs carries a timerfd of.
var timerfdClocks = map[int]bool{unix.CLOCK_REALTIME: true, unix.CLOCK_MONOTONIC: true, unix.CLOCK_BOOTTIME: true}

// Dump reads the timer through a copy of the fd (pidfd_getfd):
// timerfd_gettime gives the time left, and counts the expirations of a
// periodic timer since its last read, as the process's own next read or
// timerfd_gettime would; fdinfo, read after it, gives the clock, those
// expirations and the flags.
func (timerfd) Dump(src Source, fd *procfs.FD, idx int) error {
	clock, _ := strconv.Atoi(fd.Info["clockid"]) // Match read it
	c, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(c)
	var its unix.ItimerSpec
	var now unix.Timespec
	if err := unix.TimerfdGettime(c, &its); err != nil {
		return fmt.Errorf("fd %d: timerfd_gettime: %w", fd.Num, err)
	}
	if err := unix.ClockGettime(int32(clock), &now); err != nil {
		return fmt.Errorf("fd %d: clock_gettime(%d): %w", fd.Num, clock, err)
	}
	again, err := procfs.FDInfo(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	info := again.Info
	ticks, err1 := strconv.ParseUint(info["ticks"], 10, 64)
	flags, err2 := strconv.ParseUint(info["settime flags"], 8, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("fd %d: cannot read timerfd ticks %q and flags %q", fd.Num, info["ticks"], info["settime flags"])
	}
	t := &format.Timerfd{Clock: clock, Flags: int(flags), Ticks: ticks,
		Interval: its.Interval.Nano(), Value: its.Value.Nano()}
	if t.Value > 0 && (t.Flags&format.TimerAbstime != 0 || clock != unix.CLOCK_REALTIME) {
		// The deadline on the clock as the process reads it (the one
		// whose queue holds it, for a timer in flight).
		mono, boot := procfs.TimeOffsets(src.Keeper())
		t.Deadline = now.Nano() + t.Value
		switch clock {
		case unix.CLOCK_MONOTONIC:
			t.Deadline += mono
		case unix.CLOCK_BOOTTIME:
			t.Deadline += boot
		}
	}
	src.File(idx).Timerfd = t
	return nil
}

// tickMargin is how soon before its next expiry a timer with expirations
// to give back counts that expiry as one of them: the timer must not
// expire between timerfd_settime and TFD_IOC_SET_TICKS, which sets the
// count rather than adding to it.
const tickMargin = 20e6

func (timerfd) Make(t Target, fd format.FD, f *format.File, cloexec int) (uint64, error) {
	tf := f.Timerfd
	n, err := t.Syscall("timerfd_create", unix.SYS_TIMERFD_CREATE, uint64(tf.Clock), uint64(fd.Flags&unix.O_NONBLOCK|cloexec))
	if err != nil {
		return 0, err
	}
	if err := armTimerfd(remoteTimer{t, n}, tf); err != nil {
		t.Syscall("close", unix.SYS_CLOSE, n)
		return 0, err
	}
	return n, nil
}

// MakeLate makes a timerfd in flight that no process holds, in the
// loader, once every process is built (their clocks known:
// Loader.ClockShift),
// armed as one a process makes.
func (timerfd) MakeLate(l Loader, fd format.FD, f *format.File) (*os.File, error) {
	tf := f.Timerfd
	n, err := unix.TimerfdCreate(tf.Clock, fd.Flags&unix.O_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	lf := os.NewFile(uintptr(n), "timerfd")
	if err := armTimerfd(loaderTimer{l, n, tf.Clock}, tf); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// timerArmer is a timerfd made again, in the process or in the loader.
type timerArmer interface {
	// Now is the clock as the process reads it (Target.Now).
	Now(clock int) (ns int64, goesOn bool)
	// Settime is timerfd_settime, value on the process's clock.
	Settime(flags int, interval, value int64) error
	// SetTicks is TFD_IOC_SET_TICKS.
	SetTicks(ticks uint64) error
}

// remoteTimer is timerfd n of the process being built.
type remoteTimer struct {
	t Target
	n uint64
}

func (r remoteTimer) Now(clock int) (int64, bool) { return r.t.Now(clock) }

func (r remoteTimer) Settime(flags int, interval, value int64) error {
	arg, err := r.t.Arg(linux.MakeItimer(interval, value, 1e9).Encode())
	if err != nil {
		return err
	}
	_, err = r.t.Syscall("timerfd_settime", unix.SYS_TIMERFD_SETTIME, r.n, uint64(flags), arg, 0)
	return err
}

func (r remoteTimer) SetTicks(ticks uint64) error {
	arg, err := r.t.Arg(binary.LittleEndian.AppendUint64(nil, ticks))
	if err != nil {
		return err
	}
	_, err = r.t.Syscall("ioctl(TFD_IOC_SET_TICKS)", unix.SYS_IOCTL, r.n, linux.TFD_IOC_SET_TICKS, arg)
	return err
}

// loaderTimer is timerfd n of the loader's, on clock, for the tree's
// processes, whose clocks may be shifted from the loader's (a time
// namespace: Loader.ClockShift).
type loaderTimer struct {
	l     Loader
	n     int
	clock int
}

func (r loaderTimer) Now(clock int) (int64, bool) { return ShiftedNow(clock, r.l.ClockShift) }

// ShiftedNow is clock as a process reads it whose clocks are shift's
// more than procs-load's, and whether that clock goes on from the dump.
func ShiftedNow(clock int, shift func(clock int) (int64, bool)) (int64, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(int32(clock), &ts) != nil {
		return 0, false
	}
	d, goesOn := shift(clock)
	return ts.Nano() + d, goesOn
}

// Settime arms the timer; a deadline on the process's clock
// (TFD_TIMER_ABSTIME) is on the loader's less the clocks' shift.
func (r loaderTimer) Settime(flags int, interval, value int64) error {
	if flags&format.TimerAbstime != 0 {
		shift, _ := r.l.ClockShift(r.clock)
		value -= shift
	}
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(interval), Value: unix.NsecToTimespec(value)}
	return os.NewSyscallError("timerfd_settime", unix.TimerfdSettime(r.n, flags, &spec, nil))
}

func (r loaderTimer) SetTicks(ticks uint64) error { return linux.SetTimerfdTicks(r.n, ticks) }

// armTimerfd arms timerfd n, made again, as tf says, and gives it back
// its expirations.
//
// A timer whose clock goes on from the dump is armed at its deadline,
// absolute, so that the time the restore takes shifts nothing: with
// TFD_TIMER_ABSTIME as it was, and a relative one on CLOCK_MONOTONIC or
// CLOCK_BOOTTIME too (its fdinfo then shows the flag, which nothing a
// program calls tells). Any other is armed with the time it had left.
// A timer with expirations to give back (TFD_IOC_SET_TICKS sets them,
// after timerfd_settime, and must not race with an expiry) whose next
// expiry is due within tickMargin is let fall due first, when it is armed
// at a deadline, and that expiry counted among them; without a deadline
// (or with a period under the margin) it is counted a little early.
// Without expirations to give back, the kernel counts those due.
func armTimerfd(t timerArmer, tf *format.Timerfd) error {
	ticks := tf.Ticks
	now, goesOn := t.Now(tf.Clock)
	abs := tf.Deadline != 0 && goesOn
	flags := tf.Flags
	if !abs {
		flags = 0
	}
	armed := tf.Value > 0
	next := tf.Value // to its next expiry, from now
	if abs {
		next = tf.Deadline - now
		flags |= format.TimerAbstime
	}
	if armed && ticks > 0 && abs && next < tickMargin {
		if next >= 0 {
			// Let it fall due rather than count it early.
			time.Sleep(time.Duration(next) + time.Millisecond)
			now, _ = t.Now(tf.Clock)
			next = tf.Deadline - now
		}
		k := int64(1) // the expirations due
		if tf.Interval > 0 {
			k = -next/tf.Interval + 1
		}
		ticks, next = ticks+uint64(k), next+k*tf.Interval
		armed = tf.Interval > 0
	}
	if armed && ticks > 0 && next < tickMargin {
		// Due within the margin (a period under it, or no clock to
		// wait on): counted, a little early.
		if tf.Interval == 0 {
			ticks++
			armed = false
		} else {
			k := (tickMargin-next)/tf.Interval + 1
			ticks += uint64(k)
			next += k * tf.Interval
		}
	}
	if armed {
		value := next
		if abs {
			value = now + next
		}
		if err := t.Settime(flags, tf.Interval, value); err != nil {
			return err
		}
	}
	if ticks == 0 {
		return nil
	}
	return t.SetTicks(ticks)
}

// maxTimerNs bounds the times of a timerfd in an image (146 years), far
// from where adding two of them overflows.
const maxTimerNs = 1 << 62

// Validate: a clock procs makes timerfds of, flags of timerfd_settime,
// times a timer holds, a deadline only on an armed timer, and on
// CLOCK_REALTIME only with TFD_TIMER_ABSTIME.
func (timerfd) Validate(fs []format.File, i int, _ []format.Process) error {
	t := fs[i].Timerfd
	switch {
	case t == nil:
		return fmt.Errorf("image file %d, a timerfd, has no timerfd state", i)
	case !timerfdClocks[t.Clock]:
		return fmt.Errorf("image file %d: timerfd clock %d is not one procs makes timerfds of (0, 1, 7)", i, t.Clock)
	case t.Flags&^(format.TimerAbstime|format.TimerCancelOnSet) != 0:
		return fmt.Errorf("image file %d: timerfd flags %#x are not timerfd_settime's", i, t.Flags)
	case t.Interval < 0 || t.Interval > maxTimerNs || t.Value < 0 || t.Value > maxTimerNs:
		return fmt.Errorf("image file %d: timerfd interval %d ns or time left %d ns is out of range (0 to 2^62)", i, t.Interval, t.Value)
	case t.Deadline < 0 || t.Deadline > maxTimerNs || t.Deadline != 0 && (t.Value == 0 || t.Clock == unix.CLOCK_REALTIME && t.Flags&format.TimerAbstime == 0):
		return fmt.Errorf("image file %d: timerfd deadline %d ns is out of range, or on a disarmed timer or a relative CLOCK_REALTIME one", i, t.Deadline)
	}
	return nil
}
