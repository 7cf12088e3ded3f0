package restore

// seccomp: every thread gets its seccomp mode and filters back, each
// installed by the thread itself with an injected seccomp(2), in the
// order they were installed first.
//
// When: after every other piece of the process's state that needs a
// system call in a thread, but while the threads still have the
// restorer's privileges (CAP_SYS_ADMIN: a filter needs it or
// no_new_privs), just before they take the process's credentials. The
// calls made after that (credentials, limits, unmapping the scratch
// area) must not meet the filters, which might forbid them (strict mode
// forbids all but read, write, exit and sigreturn): every thread is
// traced with PTRACE_O_SUSPEND_SECCOMP from then on, until it is let go.
// Suspending seccomp needs CAP_SYS_ADMIN too: without it an image with
// seccomp state is refused.
//
// Filters shared by all threads (installed before the threads were
// made, or with SECCOMP_FILTER_FLAG_TSYNC) are installed once by the
// main thread with TSYNC, so that the threads share them again, as a
// later TSYNC of the program expects. Otherwise each thread gets copies
// of its own: they filter the same, but a later TSYNC by the program
// fails (the threads' filter trees differ).

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

const (
	bpfMaxInsns = 4096
	// maxInsnsPerPath is the kernel's cap on the instructions of all a
	// thread's filters, each counting 4 more.
	maxInsnsPerPath = 32768
)

// validateSeccomp range-checks every thread's seccomp state, and refuses
// it when this restorer cannot suspend filters.
func validateSeccomp(img *format.Process) error {
	any := false
	for i, t := range img.Threads {
		s := t.Seccomp
		if s == nil {
			continue
		}
		any = true
		switch {
		case s.Mode == unix.SECCOMP_MODE_STRICT && len(s.Filters) == 0:
		case s.Mode == unix.SECCOMP_MODE_FILTER && len(s.Filters) > 0:
		default:
			return fmt.Errorf("image thread %d has seccomp mode %d with %d filters", i, s.Mode, len(s.Filters))
		}
		total := 0
		for j, f := range s.Filters {
			n := len(f.Prog) / 8
			if len(f.Prog)%8 != 0 || n < 1 || n > bpfMaxInsns {
				return fmt.Errorf("image thread %d: seccomp filter %d is %d bytes: not 1 to %d instructions of 8", i, j, len(f.Prog), bpfMaxInsns)
			}
			if f.Flags&^unix.SECCOMP_FILTER_FLAG_LOG != 0 {
				return fmt.Errorf("image thread %d: seccomp filter %d has flags %#x this procs-load does not know", i, j, f.Flags)
			}
			total += n + 4
		}
		if total > maxInsnsPerPath {
			return fmt.Errorf("image thread %d: seccomp filters of %d instructions in all, more than the kernel takes", i, total)
		}
	}
	if any && !hasCap(unix.CAP_SYS_ADMIN) {
		return fmt.Errorf("the process ran under seccomp, and restoring it needs CAP_SYS_ADMIN (root)")
	}
	return nil
}

// seccomp suspends seccomp in every thread while they are traced, then
// installs each thread's mode and filters.
func (b *builder) seccomp() error {
	img := b.img
	if !slices.ContainsFunc(img.Threads, func(t format.Thread) bool { return t.Seccomp != nil }) {
		return nil
	}
	for _, tid := range b.tids {
		if err := ptrace.SetOptions(tid, ptrace.Options|unix.PTRACE_O_EXITKILL|unix.PTRACE_O_SUSPEND_SECCOMP); err != nil {
			return fmt.Errorf("thread %d: suspending seccomp while it is restored: %w", tid, err)
		}
	}
	if sharedFilters(img.Threads) {
		return b.installSeccomp(b.main, img.Threads[0].Seccomp, unix.SECCOMP_FILTER_FLAG_TSYNC)
	}
	for i, t := range img.Threads {
		if t.Seccomp == nil {
			continue
		}
		r, err := b.remote(i)
		if err != nil {
			return err
		}
		if err := b.installSeccomp(r, t.Seccomp, 0); err != nil {
			return fmt.Errorf("thread %d: %w", t.TID, err)
		}
	}
	return nil
}

// sharedFilters tells whether there are several threads, all with the
// same filters.
func sharedFilters(ts []format.Thread) bool {
	if len(ts) < 2 || ts[0].Seccomp == nil || ts[0].Seccomp.Mode != unix.SECCOMP_MODE_FILTER {
		return false
	}
	for _, t := range ts[1:] {
		if t.Seccomp == nil || !slices.EqualFunc(t.Seccomp.Filters, ts[0].Seccomp.Filters, func(a, b format.SeccompFilter) bool {
			return a.Flags == b.Flags && slices.Equal(a.Prog, b.Prog)
		}) {
			return false
		}
	}
	return true
}

// installSeccomp makes r's thread enter s's mode, installing its
// filters, the first installed first, each with its flags and extra.
func (b *builder) installSeccomp(r *inject.Remote, s *format.Seccomp, extra uint64) error {
	if s.Mode == unix.SECCOMP_MODE_STRICT {
		_, err := r.Syscall("seccomp(SECCOMP_SET_MODE_STRICT)", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_STRICT, 0, 0)
		return err
	}
	for j, f := range s.Filters {
		// struct sock_fprog, then the program.
		prog := linux.SockFprog{Len: uint16(len(f.Prog) / linux.SizeofSockFilter), Filter: b.scratch + offBig + linux.SizeofSockFprog}
		buf := append(prog.Encode(), f.Prog...)
		if err := b.write(offBig, buf); err != nil {
			return err
		}
		ret, err := r.Syscall(fmt.Sprintf("seccomp filter %d", j), unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.Flags|extra, b.scratch+offBig)
		if err != nil {
			return err
		}
		if ret != 0 {
			// TSYNC: the thread that could not take the filter.
			return fmt.Errorf("seccomp filter %d: thread %d could not share it", j, ret)
		}
	}
	return nil
}

// hasCap tells whether this process has capability c in its effective
// set.
func hasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return (uint64(data[0].Effective)|uint64(data[1].Effective)<<32)&(1<<c) != 0
}
