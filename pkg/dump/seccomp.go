package dump

// seccomp: each thread's mode and filters travel (see format.Seccomp).
// Reading filters (PTRACE_SECCOMP_GET_FILTER) and running calls in a
// thread that a filter would stop (PTRACE_O_SUSPEND_SECCOMP) both need
// CAP_SYS_ADMIN: without it a process under seccomp is refused.

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

const (
	// A filter returning SECCOMP_RET_USER_NOTIF hands calls to a
	// supervisor through a listener fd, which does not travel.
	seccompRetUserNotif  = 0x7fc00000
	seccompRetActionFull = 0xffff0000
	bpfRetK              = 0x06 // BPF_RET | BPF_K
)

// checkSeccomp refuses, before the process is touched, one under seccomp
// when procs-dump may not read its filters or run calls in it.
func checkSeccomp(pid int) problems {
	tids, err := procfs.Tasks(pid)
	if err != nil {
		return nil // precheck reports the vanished process
	}
	for _, tid := range tids {
		st, err := procfs.ReadTaskStatus(pid, tid)
		if err != nil || st.Seccomp == 0 {
			continue
		}
		if !hasCapSysAdmin() {
			var p problems
			p.add("a seccomp filter or strict mode (thread %d), which procs-dump reads only with CAP_SYS_ADMIN (as root)", tid)
			return p
		}
	}
	return nil
}

// collectSeccomp reads every thread's seccomp mode and filters, and lets
// the calls procs-dump runs in the process through them.
func (c *collector) collectSeccomp() error {
	any := false
	for i := range c.p.Threads {
		t := &c.p.Threads[i]
		st, err := procfs.ReadTaskStatus(c.pid, t.TID)
		if err != nil {
			return err
		}
		switch st.Seccomp {
		case 0:
			continue
		case unix.SECCOMP_MODE_STRICT:
			t.Seccomp = &format.Seccomp{Mode: unix.SECCOMP_MODE_STRICT}
		case unix.SECCOMP_MODE_FILTER:
			s := &format.Seccomp{Mode: unix.SECCOMP_MODE_FILTER}
			for index := 0; ; index++ {
				prog, flags, err := ptrace.SeccompFilter(t.TID, index)
				if errors.Is(err, unix.ENOENT) {
					break
				}
				if err != nil {
					return fmt.Errorf("thread %d: seccomp filter %d: %w", t.TID, index, err)
				}
				if userNotif(prog) {
					return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: a seccomp filter (thread %d) that hands system calls to a supervisor (SECCOMP_RET_USER_NOTIF)", c.pid, t.TID)}
				}
				s.Filters = append(s.Filters, format.SeccompFilter{Flags: flags, Prog: prog})
			}
			if len(s.Filters) == 0 {
				return fmt.Errorf("thread %d is in seccomp filter mode, and has no filter", t.TID)
			}
			slices.Reverse(s.Filters) // the first installed first
			t.Seccomp = s
		default:
			return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: seccomp mode %d (thread %d)", c.pid, st.Seccomp, t.TID)}
		}
		any = true
	}
	if !any {
		return nil
	}
	for _, tid := range c.f.tids {
		if err := ptrace.SetOptions(tid, unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_SUSPEND_SECCOMP); err != nil {
			return fmt.Errorf("thread %d: suspending its seccomp filters while procs-dump reads it: %w", tid, err)
		}
	}
	return nil
}

// userNotif tells whether a filter may return SECCOMP_RET_USER_NOTIF.
func userNotif(prog []byte) bool {
	for _, f := range linux.SockFilters(prog) {
		if f.Code == bpfRetK && f.K&seccompRetActionFull == seccompRetUserNotif {
			return true
		}
	}
	return false
}

// hasCapSysAdmin tells whether this process has CAP_SYS_ADMIN in its
// effective set.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}
