package tests

// A chroot is given back to a process without root only in a folder
// that root alone can fill.

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// chrootDropPy chroots into its argument, drops to uid and gid 65534 and
// counts.
const chrootDropPy = `import os, sys, time
os.chroot(sys.argv[1]); os.chdir('/')
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
n = 0
while True:
    n += 1
    print('tick %d' % n, flush=True)
    time.sleep(0.02)
`

// TestChrootNonRoot: a process that chrooted and then dropped root comes
// back chrooted when its folder and every folder above it are root's and
// closed to others (as sshd asks of a ChrootDirectory); in a folder under
// /tmp, which anyone may write, procs-load refuses it, naming why.
func TestChrootNonRoot(t *testing.T) {
	needTools(t)
	// Debian's: uid 65534 may read it (a pyenv under /root it may not,
	// and procs-load opens the mappings as the process).
	py, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skipf("no /usr/bin/python3: %v", err)
	}
	for _, tc := range []struct {
		name string
		jail func(t *testing.T) string
		ok   bool
	}{
		{"root-owned", func(t *testing.T) string {
			dir := fmt.Sprintf("/run/procs-jail-%d-%d", os.Getpid(), time.Now().UnixNano())
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Skipf("no folder of root's to jail into: %v", err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}, true},
		{"under-tmp", func(t *testing.T) string { return t.TempDir() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeftovers(t)
			dir := tc.jail(t)
			p := start(t, []string{py, "-c", chrootDropPy, dir}, t.TempDir())
			expect(t, p.out, "tick 3", 0)
			comm := procComm(p.pid())
			img, _ := dumpKilled(t, p)
			if !tc.ok {
				refused(t, loadCmd(img), comm, "chroot", dir, "/tmp", "written by others")
				return
			}
			// Its stderr is a file in a folder of root's: procs-load's
			// stands in for it.
			ld := startLoad(t, img, "--stdio=inherit")
			pid := ld.find(t, comm, 10*time.Second)
			expect(t, ld.out, "tick ", 0)
			if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err != nil || root != dir {
				t.Errorf("restored process's root = %q, %v; want %s", root, err, dir)
			}
			if got := procStatus(pid)["Uid"]; got != "65534\t65534\t65534\t65534" {
				t.Errorf("restored Uid = %q; want 65534", got)
			}
		})
	}
}
