package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"procs/pkg/linux"
)

// vdsoAt returns where process pid's [vdso] is mapped.
func vdsoAt(t *testing.T, pid int) uint64 {
	t.Helper()
	for _, l := range mapsOf(t, pid) {
		if strings.HasSuffix(l, "[vdso]") {
			var start uint64
			fmt.Sscanf(l, "%x-", &start)
			return start
		}
	}
	t.Fatalf("no [vdso] in /proc/%d/maps", pid)
	return 0
}

// TestVdsoLeave dumps, again and again, a process whose two threads
// spend nearly all their time in vDSO calls: procs-dump must let each
// thread stopped inside the vDSO run on until it is out before saving it
// (without that, most dumps catch both inside). A clone restored to call
// this kernel's vDSO through jumps then goes on, its clocks never going
// back.
func TestVdsoLeave(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	s := specNamed("clockloop")
	orig, _ := startVictim(t, s)
	var img string
	for i := range 8 {
		img = dump(t, orig.pid(), true)
		p := decodeTree(t, img).Procs[0]
		for _, m := range p.Maps {
			if m.Name != "[vdso]" {
				continue
			}
			for _, th := range p.Threads {
				if rip := th.Regs[linux.RIP]; rip >= m.Start && rip < m.End && int64(th.Regs[linux.ORIG_RAX]) < 0 {
					t.Errorf("dump %d: thread %d saved inside the vDSO, at %#x", i, th.TID, rip)
				}
			}
		}
	}
	if err := healthy(orig.pid()); err != nil {
		t.Fatalf("original after 8 dumps: %v", err)
	}
	before := mustLines(orig.out)
	t.Setenv("PROCS_VDSO_PROXY", "1")
	ld := startLoad(t, img)
	pid := ld.find(t, s.comm, lineWait, orig.pid())
	n := len(mustLines(ld.out))
	all, ok := ld.out.wait(lineWait, haveLines(s.streams, 3, n))
	if !ok {
		t.Fatalf("restored clockloop did not report; stderr: %s\n%s", ld.stderrText(), tail(all, 10))
	}
	if bad := badFlags(parseAll(all)); len(bad) > 0 {
		t.Errorf("restored clockloop reports a failed check:\n%s", strings.Join(bad, "\n"))
	}
	if bad := badFlags(parseAll(before)); len(bad) > 0 {
		t.Errorf("original clockloop reports a failed check:\n%s", strings.Join(bad, "\n"))
	}
	if vdsoAt(t, pid) == vdsoAt(t, orig.pid()) {
		t.Errorf("the clone's [vdso] is where the original's is: not called through jumps")
	}
	time.Sleep(100 * time.Millisecond)
	if err := healthy(pid); err != nil {
		t.Errorf("restored clockloop: %v", err)
	}
}
