package restore

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// TestValidateExact: every member of the exact section out of its range
// is refused, naming it, before anything starts.
func TestValidateExact(t *testing.T) {
	own := func() format.Creds {
		r, e, s := unix.Getresuid()
		gr, ge, gs := unix.Getresgid()
		groups, _ := unix.Getgroups()
		return format.Creds{UID: [4]int{r, e, s, e}, GID: [4]int{gr, ge, gs, ge}, Groups: groups}
	}
	base := func() *format.Process {
		return &format.Process{Root: "/", Creds: own(), Threads: []format.Thread{{TID: 1, Regs: make([]uint64, linux.NumUserRegs)}}}
	}
	ptr := func(v int) *int { return &v }
	prog := make([]byte, 8)
	tests := []struct {
		name string
		edit func(p *format.Process)
		want string // "" for accepted
	}{
		{"plain", func(*format.Process) {}, ""},
		{"oom-low", func(p *format.Process) { p.OomScoreAdj = ptr(-1001) }, "oom_score_adj -1001"},
		{"oom-high", func(p *format.Process) { p.OomScoreAdj = ptr(1001) }, "oom_score_adj 1001"},
		{"oom-ok", func(p *format.Process) { p.OomScoreAdj = ptr(-1000) }, ""},
		{"thp", func(p *format.Process) { p.THPDisable = ptr(2) }, "thp_disable 2"},
		{"thp-ok", func(p *format.Process) { p.THPDisable = ptr(3) }, ""},
		{"membarrier", func(p *format.Process) { p.Membarrier = 1 << 3 }, "membarrier"},
		{"advice", func(p *format.Process) {
			p.Maps = []format.Mapping{{Start: 0x1000, End: 0x2000, Kind: format.MapAnon, File: -1, Advice: []string{"zz\x1b[2J"}}}
		}, `flag "zz`},
		{"droppable-shared", func(p *format.Process) {
			p.Maps = []format.Mapping{{Start: 0x1000, End: 0x2000, Kind: format.MapShmem, Shared: true, File: -1, Advice: []string{"dp"}}}
		}, "droppable"},
		{"policy", func(p *format.Process) { p.Threads[0].Policy = 6 }, "scheduling policy 6"},
		{"fifo-prio", func(p *format.Process) { p.Threads[0].Policy = 1; p.Threads[0].Priority = 100 }, "SCHED_FIFO priority 100"},
		{"other-prio", func(p *format.Process) { p.Threads[0].Priority = 5 }, "SCHED_OTHER priority 5"},
		{"nice", func(p *format.Process) { p.Threads[0].Nice = 20 }, "nice 20"},
		{"sched-flags", func(p *format.Process) { p.Threads[0].SchedFlags = 2 }, "scheduling flags"},
		{"rr-ok", func(p *format.Process) {
			p.Threads[0].Policy = 2
			p.Threads[0].Priority = 99
			p.Threads[0].SchedFlags = 1
		}, ""},
		{"thread-uid", func(p *format.Process) { c := own(); c.UID[0] = -1; p.Threads[0].Creds = &c }, "out of range"},
		{"nnp-lost", func(p *format.Process) { p.Creds.NoNewPrivs = true; p.Threads[0].Creds = ptrCreds(own()) }, "no_new_privs"},
		{"seccomp-mode", func(p *format.Process) { p.Threads[0].Seccomp = &format.Seccomp{Mode: 3} }, "seccomp mode 3"},
		{"strict-filters", func(p *format.Process) {
			p.Threads[0].Seccomp = &format.Seccomp{Mode: 1, Filters: []format.SeccompFilter{{Prog: prog}}}
		}, "seccomp mode 1 with 1 filters"},
		{"filter-odd", func(p *format.Process) {
			p.Threads[0].Seccomp = &format.Seccomp{Mode: 2, Filters: []format.SeccompFilter{{Prog: make([]byte, 9)}}}
		}, "9 bytes"},
		{"filter-long", func(p *format.Process) {
			p.Threads[0].Seccomp = &format.Seccomp{Mode: 2, Filters: []format.SeccompFilter{{Prog: make([]byte, 8*4097)}}}
		}, "32776 bytes"},
		{"filter-flags", func(p *format.Process) {
			p.Threads[0].Seccomp = &format.Seccomp{Mode: 2, Filters: []format.SeccompFilter{{Prog: prog, Flags: 1}}}
		}, "flags 0x1"},
		{"filters-total", func(p *format.Process) {
			fs := make([]format.SeccompFilter, 9)
			for i := range fs {
				fs[i].Prog = make([]byte, 8*4000)
			}
			p.Threads[0].Seccomp = &format.Seccomp{Mode: 2, Filters: fs}
		}, "more than the kernel takes"},
		{"root-relative", func(p *format.Process) { p.Root = "jail" }, "not a clean absolute path"},
		{"root-unclean", func(p *format.Process) { p.Root = "/tmp/../etc" }, "not a clean absolute path"},
		{"root-missing", func(p *format.Process) { p.Root = "/no/such/jail" }, "missing here"},
		{"root-file", func(p *format.Process) { p.Root = "/proc/self/status" }, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(p)
			err := validateExact(p)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validateExact = %v; want accepted", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validateExact = %v; want an error holding %q", err, tc.want)
			}
		})
	}
	if os.Geteuid() == 0 {
		p := base()
		p.Threads[0].Seccomp = &format.Seccomp{Mode: 2, Filters: []format.SeccompFilter{{Prog: prog, Flags: 2}}}
		if err := validateExact(p); err != nil {
			t.Errorf("validateExact of a LOG filter, as root = %v; want accepted", err)
		}
	}
}

func ptrCreds(c format.Creds) *format.Creds { return &c }
