package tests

// A restored process may end as soon as its first thread runs: the
// restore did its work, and the process's own status tells.

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"procs/format"
)

// TestDiesAtOnce restores the threads victim with its real-time interval
// timer due in 1 us: SIGALRM kills it as soon as a thread runs, maybe
// before procs-load has let every thread go. procs-load must report the
// process's death by SIGALRM (142), not a failure of its own (125), and
// leave nothing behind; with -d it exits 0.
func TestDiesAtOnce(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	v := start(t, victimArgv(t, "threads"), t.TempDir())
	if _, ok := v.out.wait(lineWait, haveLines([]string{"t0", "t7"}, 1, 0)); !ok {
		t.Fatal("threads victim did not start")
	}
	img := dump(t, v.pid(), false)
	bad := editImage(t, img, func(p *imageEdit) {
		p.Itimers[0] = format.Itimerval{ValueUsec: 1}
	})
	for range 5 {
		cmd := exec.Command(filepath.Join(binDir, "procs-load"), "--pid=new", bad)
		err := runTimeout(cmd, 20*time.Second)
		if code := cmd.ProcessState.ExitCode(); code != 128+14 {
			t.Fatalf("procs-load of a process killed by its timer at once = exit %d (%v); want 142", code, err)
		}
	}
	for range 5 {
		cmd := exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--pid=new", bad)
		err := runTimeout(cmd, 20*time.Second)
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("procs-load -d of a process killed by its timer at once = exit %d (%v); want 0", code, err)
		}
	}
}
