package restore

import (
	"strings"
	"testing"

	"procs/format"
	"procs/pkg/linux"
)

func TestThreadsOutOfVdso(t *testing.T) {
	img := &format.Process{Maps: []format.Mapping{
		{Start: 0x7000, End: 0x9000, Name: "[vdso]"},
		{Start: 0x1000, End: 0x5000, Name: "[vvar]"},
	}}
	thread := func(tid int, rip, origRax uint64) format.Thread {
		regs := make([]uint64, linux.NumUserRegs)
		regs[linux.RIP], regs[linux.ORIG_RAX] = rip, origRax
		return format.Thread{TID: tid, Regs: regs}
	}
	const none = ^uint64(0) // orig_rax outside a system call
	for _, tc := range []struct {
		name    string
		threads []format.Thread
		bad     string
	}{
		{"outside", []format.Thread{thread(1, 0x6fff, none), thread(2, 0x9000, none)}, ""},
		{"in a system call", []format.Thread{thread(1, 0x7123, 228)}, ""},
		{"in [vvar]", []format.Thread{thread(1, 0x1000, none)}, ""},
		{"inside", []format.Thread{thread(1, 0x1, none), thread(2, 0x7000, none)}, "thread 2"},
		{"at the end", []format.Thread{thread(3, 0x8fff, none)}, "thread 3"},
	} {
		img.Threads = tc.threads
		err := threadsOutOfVdso(img)
		if (err != nil) != (tc.bad != "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%s: %v; want an error naming %q", tc.name, err, tc.bad)
		}
	}
}
