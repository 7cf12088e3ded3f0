package tests

// Zombies, stopped processes, child subreapers, parent-death signals and
// pidfds in a tree: each moved (dumped, killed, restored) and checked from
// the programs' own view.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// readIn returns the contents of file name in dir, trimmed ("" when
// there is none).
func readIn(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.TrimSpace(string(b))
}

// kidsOf waits for the file "kids" in dir, numbers the program wrote
// there, and returns them.
func kidsOf(t *testing.T, dir string, n int) []int {
	t.Helper()
	var ks []int
	waitFor(t, 10*time.Second, func() bool {
		f := strings.Fields(readIn(dir, "kids"))
		if len(f) != n {
			return false
		}
		ks = nil
		for _, s := range f {
			ks = append(ks, mustAtoi(s))
		}
		return true
	}, "the program's kids file")
	return ks
}

// restored waits until procs-load let the tree of root go: root is there,
// untraced.
func restored(t *testing.T, root int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		_, ok := procInfo(root)
		return ok && untraced(root)
	}, "process %d to be restored and let go", root)
}

// inState waits until process pid, child of parent, is in state (a letter
// of /proc/PID/stat).
func inState(t *testing.T, pid, parent int, state byte) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		p, ok := procInfo(pid)
		return ok && p.state == state && p.ppid == parent
	}, "process %d to be in state %c under %d", pid, state, parent)
}

// zombiesPy has three children: A leads a process group that B joins, and
// exits with 7 (a zombie leading a group a live process is in); C kills
// itself with SIGTERM. The parent counts the SIGCHLDs it gets; once the
// file "go" exists it waits for A and C and writes what wait said.
const zombiesPy = `
import os, signal, time
def count(*a):
    with open("sigchld", "a") as f: f.write("x\n")
signal.signal(signal.SIGCHLD, count)
r, w = os.pipe()
a = os.fork()
if a == 0:
    os.read(r, 1)
    os._exit(7)
os.setpgid(a, a)
b = os.fork()
if b == 0:
    while True:
        with open("b.tmp", "w") as f: f.write("%d\n" % os.getpgid(0))
        os.rename("b.tmp", "b")
        time.sleep(0.1)
os.setpgid(b, a)
c = os.fork()
if c == 0:
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(1)
os.write(w, b"x")
with open("kids", "w") as f: f.write("%d %d %d\n" % (a, b, c))
while not os.path.exists("go"):
    time.sleep(0.05)
out = []
for k in (a, c):
    pid, st = os.waitpid(k, 0)
    out.append("%d:%d" % (pid, st))
with open("result", "w") as f: f.write(" ".join(out) + "\n")
while True:
    time.sleep(1)
`

// TestTreeZombies: a parent holding two unreaped zombies, one of which
// leads the process group of a live child, moved: the zombies are back
// with their PIDs under their parent, the group is kept, the parent gets
// no SIGCHLD from their making, and its waits get their statuses.
func TestTreeZombies(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", zombiesPy)
	ks := kidsOf(t, dir, 3)
	a, c := ks[0], ks[2]
	inState(t, a, pid, 'Z')
	inState(t, c, pid, 'Z')
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "b") == strconv.Itoa(a) }, "B to join A's group")
	// Both SIGCHLDs handled (they may have come as one).
	time.Sleep(200 * time.Millisecond)
	sigchld := readIn(dir, "sigchld")
	if sigchld == "" {
		t.Fatal("the parent got no SIGCHLD")
	}
	tree := treeOf(pid)
	img := dump(t, pid, false)
	s := showImage(t, img)
	zombies := 0
	for _, p := range s.Processes {
		if p.Zombie != nil {
			zombies++
		}
	}
	if len(s.Processes) != 4 || zombies != 2 {
		t.Fatalf("image of %d processes, %d zombies; want 4 and 2", len(s.Processes), zombies)
	}
	waitGone(t, tree)
	os.Remove(filepath.Join(dir, "b"))
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	restored(t, pid)
	inState(t, a, pid, 'Z')
	inState(t, c, pid, 'Z')
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "b") == strconv.Itoa(a) }, "B to be back in A's group")
	if p, _ := procInfo(a); p.comm != "python3" && !strings.HasPrefix(p.comm, "python") {
		t.Errorf("zombie %d is named %q", a, p.comm)
	}
	time.Sleep(300 * time.Millisecond)
	if got := readIn(dir, "sigchld"); got != sigchld {
		t.Errorf("the parent got SIGCHLDs after the restore: %q, was %q", got, sigchld)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	want := fmt.Sprintf("%d:%d %d:%d", a, 7<<8, c, syscall.SIGTERM)
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "result") != "" }, "the parent's waits")
	if got := readIn(dir, "result"); got != want {
		t.Errorf("the parent's waits: %q; want %q", got, want)
	}
}

// stoppedPy has two workers that count in files (the second with a thread
// more, that sleeps); the parent collects
// (waitpid WUNTRACED) the stop of the first on SIGCHLD and logs each
// SIGCHLD and what it collected; once "go" exists it looks for stops to
// collect, of both.
const stoppedPy = `
import os, signal, threading, time
def worker(name):
    if name == "w2":
        # A group of its own, whose parent is in another: never orphaned,
        # or the kernel would discard its SIGTSTP.
        os.setpgid(0, 0)
        threading.Thread(target=time.sleep, args=(10**6,), daemon=True).start()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGCONT, lambda *a: open(name + ".cont", "a").write("cont\n"))
    i = 0
    while True:
        i += 1
        with open(name, "a") as f: f.write("%d\n" % i)
        time.sleep(0.05)
w1 = os.fork()
if w1 == 0:
    worker("w1")
w2 = os.fork()
if w2 == 0:
    worker("w2")
def chld(*a):
    pid, st = os.waitpid(w1, os.WUNTRACED | os.WNOHANG)
    with open("events", "a") as f: f.write("%d:%d\n" % (pid, st))
signal.signal(signal.SIGCHLD, chld)
with open("kids", "w") as f: f.write("%d %d\n" % (w1, w2))
while not os.path.exists("go"):
    time.sleep(0.05)
out = []
for w in (w1, w2):
    pid, st = os.waitpid(w, os.WUNTRACED | os.WNOHANG)
    out.append("%d:%d" % (pid, st))
with open("result", "w") as f: f.write(" ".join(out) + "\n")
while True:
    time.sleep(1)
`

// TestTreeStopped: two workers of a tree stopped by SIGSTOP and SIGTSTP
// (the second with two threads), one of whose stops the parent had
// collected, moved (after a -K dump, which leaves them stopped): they come
// back stopped, the parent's view is the same (no new SIGCHLD, the second
// stop still to collect), and SIGCONT resumes them where they were.
func TestTreeStopped(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", stoppedPy)
	ks := kidsOf(t, dir, 2)
	w1, w2 := ks[0], ks[1]
	waitLines(t, filepath.Join(dir, "w1"), 3, 10*time.Second)
	waitLines(t, filepath.Join(dir, "w2"), 3, 10*time.Second)
	unix.Kill(w1, unix.SIGSTOP)
	unix.Kill(w2, unix.SIGTSTP)
	inState(t, w1, pid, 'T')
	inState(t, w2, pid, 'T')
	stop1 := fmt.Sprintf("%d:%d", w1, int(unix.SIGSTOP)<<8|0x7f)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readIn(dir, "events"), stop1) }, "the parent to collect the stop")
	time.Sleep(200 * time.Millisecond)
	events := readIn(dir, "events")
	n1, n2 := lineNumbers(t, filepath.Join(dir, "w1")), lineNumbers(t, filepath.Join(dir, "w2"))

	dump(t, pid, true)
	time.Sleep(300 * time.Millisecond)
	for _, w := range []int{w1, w2} {
		if p, _ := procInfo(w); p.state != 'T' || !untraced(w) {
			t.Errorf("after a -K dump, worker %d is %c (threads %v); want stopped, untraced", w, p.state, threadStates(w))
		}
	}
	if got := readIn(dir, "events"); got != events {
		t.Errorf("after a -K dump the parent saw %q; want %q", got, events)
	}

	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	restored(t, pid)
	inState(t, w1, pid, 'T')
	inState(t, w2, pid, 'T')
	time.Sleep(300 * time.Millisecond)
	if a, b := lineNumbers(t, filepath.Join(dir, "w1")), lineNumbers(t, filepath.Join(dir, "w2")); a != n1 || b != n2 {
		t.Errorf("stopped workers counted on: %d, %d lines; were %d, %d", a, b, n1, n2)
	}
	if got := readIn(dir, "events"); got != events {
		t.Errorf("after the restore the parent saw %q; want %q", got, events)
	}
	// The first stop was collected; the second is still there to
	// collect, with its signal.
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "result") != "" }, "the parent to look for the stops")
	if got, want := readIn(dir, "result"), fmt.Sprintf("0:0 %d:%d", w2, int(unix.SIGTSTP)<<8|0x7f); got != want {
		t.Errorf("the parent's waits for stopped workers: %q; want %q", got, want)
	}
	for _, w := range []int{w1, w2} {
		unix.Kill(w, unix.SIGCONT)
	}
	for _, name := range []string{"w1", "w2"} {
		waitLines(t, filepath.Join(dir, name), n1+n2+10, 10*time.Second)
		lineNumbers(t, filepath.Join(dir, name))
		if got := readIn(dir, name+".cont"); got != "cont" {
			t.Errorf("%s's SIGCONT handler wrote %q", name, got)
		}
	}
	// The continue of the first reached the parent: a SIGCHLD, nothing
	// to collect (no WCONTINUED).
	if got, want := readIn(dir, "events"), events+"\n0:0"; !strings.HasPrefix(got, want) {
		t.Errorf("after SIGCONT the parent saw %q; want %q", got, want)
	}
}

// reaperPy is a child subreaper whose child has a parent-death signal;
// each writes what prctl says of it. Once "go" exists, the child forks a
// grandchild and exits: the grandchild, an orphan, writes its parent.
const reaperPy = `
import os, ctypes, signal, time
libc = ctypes.CDLL(None, use_errno=True)
def get(opt):
    v = ctypes.c_int(0)
    libc.prctl(opt, ctypes.byref(v), 0, 0, 0)
    return v.value
def report(name, value):
    with open(name + ".tmp", "w") as f: f.write("%d\n" % value)
    os.rename(name + ".tmp", name)
libc.prctl(36, 1, 0, 0, 0)            # PR_SET_CHILD_SUBREAPER
c = os.fork()
if c == 0:
    libc.prctl(1, signal.SIGUSR1, 0, 0, 0)   # PR_SET_PDEATHSIG
    while not os.path.exists("go"):
        report("c", get(2))           # PR_GET_PDEATHSIG
        time.sleep(0.1)
    if os.fork() == 0:
        time.sleep(0.3)
        report("g", os.getppid())
        while True:
            time.sleep(1)
    os._exit(0)
with open("kids", "w") as f: f.write("%d\n" % c)
while True:
    report("r", get(37))              # PR_GET_CHILD_SUBREAPER
    time.sleep(0.1)
`

// TestTreeReaper: a child subreaper and its child's parent-death signal,
// moved, read back the same from prctl, and an orphan made after the
// restore goes to the subreaper.
func TestTreeReaper(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", reaperPy)
	kidsOf(t, dir, 1)
	check := func(when string) {
		t.Helper()
		waitFor(t, 10*time.Second, func() bool {
			return readIn(dir, "r") == "1" && readIn(dir, "c") == strconv.Itoa(int(unix.SIGUSR1))
		}, "prctl to read back the subreaper and the parent-death signal %s", when)
	}
	check("before the dump")
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	for _, f := range []string{"r", "c"} {
		os.Remove(filepath.Join(dir, f))
	}
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	restored(t, pid)
	check("after the restore")
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "g") != "" }, "the orphan to report")
	if got := readIn(dir, "g"); got != strconv.Itoa(pid) {
		t.Errorf("the orphan's parent is %s; want the subreaper %d", got, pid)
	}
}

// pidfdsPy holds pidfds on a sleeping child S, on a child Z that exited
// (a zombie), on itself (PIDFD_NONBLOCK) and on a child R it reaped; its
// child T holds the one on S too (inherited: one open file) and checks it
// each 0.1 s. Once "go" exists, it polls them, kills S through its pidfd,
// waits for S and Z through theirs, signals itself through its own, and
// asks R's how R ended.
const pidfdsPy = `
import os, signal, time, select, errno, fcntl, struct
s = os.fork()
if s == 0:
    while True:
        time.sleep(1)
fs = os.pidfd_open(s)
z = os.fork()
if z == 0:
    os._exit(5)
fz = os.pidfd_open(z)
me = os.pidfd_open(os.getpid(), os.O_NONBLOCK)
r = os.fork()
if r == 0:
    os._exit(6)
fr = os.pidfd_open(r)
os.waitpid(r, 0)
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append("usr1"))
t = os.fork()
if t == 0:
    while True:
        try:
            signal.pidfd_send_signal(fs, 0)
            r = "ok"
        except OSError as e:
            r = e.strerror
        with open("t.tmp", "w") as f: f.write(r + "\n")
        os.rename("t.tmp", "t")
        time.sleep(0.1)
with open("kids", "w") as f: f.write("%d %d %d %d %d %d %d\n" % (s, z, t, fs, fz, me, fr))
while not os.path.exists("go"):
    time.sleep(0.05)
out = []
p = select.poll(); p.register(fz, select.POLLIN)
out.append("zombie-readable=%s" % bool(p.poll(0)))
p = select.poll(); p.register(fs, select.POLLIN)
out.append("sleeper-readable=%s" % bool(p.poll(0)))
signal.pidfd_send_signal(fs, signal.SIGTERM)
out.append("sleeper-ends=%s" % bool(p.poll(5000)))
i = os.waitid(os.P_PIDFD, fs, os.WEXITED)
out.append("sleeper=%d:%d" % (i.si_pid, i.si_status))
i = os.waitid(os.P_PIDFD, fz, os.WEXITED)
out.append("zombie=%d:%d" % (i.si_pid, i.si_status))
signal.pidfd_send_signal(me, signal.SIGUSR1)
time.sleep(0.1)
out.append("self=%s" % ",".join(got))
p = select.poll(); p.register(fr, select.POLLIN)
out.append("reaped-readable=%s" % bool(p.poll(0)))
try:
    signal.pidfd_send_signal(fr, 0)
    out.append("reaped-signal=ok")
except OSError as e:
    out.append("reaped-signal=%s" % errno.errorcode[e.errno])
info = bytearray(struct.pack("<Q", 8) + bytes(80))   # PIDFD_INFO_EXIT
fcntl.ioctl(fr, 0xc058ff0b, info)                     # PIDFD_GET_INFO
out.append("reaped-exit=%d" % struct.unpack_from("<i", info, 60)[0])
with open("result", "w") as f: f.write(" ".join(out) + "\n")
while True:
    time.sleep(1)
`

// startPidfds starts pidfdsPy in a folder of its own, once its zombie is
// one and T signals S: the folder, the root's PID, and what it wrote to
// "kids" (S, Z, T, then its pidfds' numbers).
func startPidfds(t *testing.T) (string, int, []int) {
	t.Helper()
	dir, pid := startPyTree(t, pidfdsPy)
	ks := kidsOf(t, dir, 7)
	inState(t, ks[1], pid, 'Z')
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "t") == "ok" }, "T to signal S through its pidfd")
	return dir, pid, ks
}

// TestTreePidfds: pidfds on a member, on a zombie member, on the holder
// itself and on a child already reaped, one shared by two processes,
// moved: each still refers to its process (polls, signals, waits), with
// its flags, and the reaped one still tells how its process ended.
func TestTreePidfds(t *testing.T) {
	dir, pid, ks := startPidfds(t)
	s, z, tk, fds := ks[0], ks[1], ks[2], ks[3:]
	fdinfo := func(p, fd int) (string, string) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", p, fd))
		var flags, target string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "Pid:"); ok {
				target = strings.TrimSpace(v)
			}
		}
		return flags, target
	}
	var before []string
	for _, fd := range fds {
		f, p := fdinfo(pid, fd)
		before = append(before, f+" "+p)
	}
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	os.Remove(filepath.Join(dir, "t"))
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	restored(t, pid)
	inState(t, z, pid, 'Z')
	for i, fd := range fds {
		f, p := fdinfo(pid, fd)
		if f+" "+p != before[i] {
			t.Errorf("fd %d: flags and Pid %q; were %q", fd, f+" "+p, before[i])
		}
	}
	if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", tk, fds[0])); l != "anon_inode:[pidfd]" {
		t.Errorf("T's fd %d is %q", fds[0], l)
	}
	pidfdsWork(t, dir, s, z)
}

// pidfdsWork checks pidfdsPy's tree, restored, from its own view: T
// signals S through its pidfd, and the holder's pidfds on S (pid s), Z
// (pid z), itself and R do what they did.
func pidfdsWork(t *testing.T, dir string, s, z int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "t") == "ok" }, "T to signal S through its pidfd after the restore")
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	waitFor(t, 10*time.Second, func() bool { return readIn(dir, "result") != "" }, "the holder to report")
	want := fmt.Sprintf("zombie-readable=True sleeper-readable=False sleeper-ends=True sleeper=%d:%d zombie=%d:5 self=usr1 reaped-readable=True reaped-signal=ESRCH reaped-exit=%d", s, syscall.SIGTERM, z, 6<<8)
	if got := readIn(dir, "result"); got != want {
		t.Errorf("through its pidfds the holder saw %q; want %q", got, want)
	}
}

// TestTreePidfdsPIDNamespace: the same tree restored in a PID namespace
// of its own (--pid=ns): each pidfd is opened again on the process of the
// tree's ids inside it, not on whatever has that id where procs-load runs.
func TestTreePidfdsPIDNamespace(t *testing.T) {
	dir, pid, ks := startPidfds(t)
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	os.Remove(filepath.Join(dir, "t"))
	ld := startLoad(t, img, "--pid=ns")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("procs-load: %s", ld.stderrText())
		}
	})
	_, root := nsTree(t, ld)
	ld.restored, ld.start = root.pid, root.start
	pidfdsWork(t, dir, ks[0], ks[1])
}

// TestTreePidfdRefusals: a pidfd on a process outside the tree is refused
// by name, and the process goes on.
func TestTreePidfdRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, tc := range []struct {
		name, prog, want string
	}{
		{"outside", `
import os, time
fd = os.pidfd_open(os.getppid())
while True:
    open("alive", "a").write("x\n"); time.sleep(0.05)
`, "outside the tree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pid := startTree(t, dir, "log", py, "-c", tc.prog)
			waitFor(t, 10*time.Second, func() bool { return readIn(dir, "alive") != "" }, "the program to start")
			d := dumpCmd(pid)
			out, err := d.CombinedOutput()
			if d.ProcessState == nil || d.ProcessState.ExitCode() != 3 || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "pidfd") {
				t.Fatalf("procs-dump of a pidfd %s: %v, %q; want exit 3 and a refusal naming it", tc.name, err, out)
			}
			n := len(readIn(dir, "alive"))
			waitFor(t, 10*time.Second, func() bool { return len(readIn(dir, "alive")) > n }, "the process to go on after the refused dump")
			if !untraced(pid) {
				t.Errorf("process %d is still traced", pid)
			}
		})
	}
}

// dumpCmd is procs-dump PID writing to /dev/null.
func dumpCmd(pid int) *exec.Cmd {
	return exec.Command(filepath.Join(binDir, "procs-dump"), "-o", os.DevNull, strconv.Itoa(pid))
}

// TestTreeJobsCraftedImages: the members of zombies, stops, parent-death
// signals and pidfds are untrusted input: each crafted out of range, in an
// image whose checksums hold, is refused by name, and nothing is started.
func TestTreeJobsCraftedImages(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	// A parent with a zombie, a stopped child, and a pidfd on it.
	pid := startTree(t, dir, "log", py, "-c", `
import os, time
z = os.fork()
if z == 0:
    os._exit(3)
s = os.fork()
if s == 0:
    while True: time.sleep(1)
fd = os.pidfd_open(s)
with open("kids", "w") as f: f.write("%d %d\n" % (z, s))
while True: time.sleep(1)
`)
	ks := kidsOf(t, dir, 2)
	zpid, spid := ks[0], ks[1]
	inState(t, zpid, pid, 'Z')
	unix.Kill(spid, unix.SIGSTOP)
	inState(t, spid, pid, 'T')
	img := dump(t, pid, true)
	find := func(ps []format.Process, pid int) *format.Process {
		for i := range ps {
			if ps[i].PID == pid {
				return &ps[i]
			}
		}
		t.Fatalf("no process %d in the image", pid)
		return nil
	}
	pidfdFile := func(fs []format.File) *format.File {
		for i := range fs {
			if fs[i].Kind == format.FilePidfd {
				return &fs[i]
			}
		}
		t.Fatal("no pidfd in the image")
		return nil
	}
	for _, tc := range []struct {
		name  string
		edit  func(ps *[]format.Process, fs *[]format.File)
		wants []string
	}{
		{"zombie-with-threads", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Threads = (*ps)[0].Threads
		}, []string{fmt.Sprintf("zombie %d", zpid), "members a zombie has not"}},
		{"zombie-with-cwd", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Cwd = "/"
		}, []string{fmt.Sprintf("zombie %d", zpid), "members a zombie has not"}},
		{"zombie-status-range", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Zombie.Status = 1 << 16
		}, []string{"exit status 0x10000", "out of range"}},
		{"zombie-status-not-fatal", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Zombie.Status = int(unix.SIGCHLD)
		}, []string{"signal 17", "no process dies"}},
		{"zombie-status-core", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Zombie.Status = int(unix.SIGTERM) | 0x80
		}, []string{"signal 15 dumped core"}},
		{"zombie-status-both", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Zombie.Status = 3<<8 | int(unix.SIGTERM)
		}, []string{"both a signal and an exit code"}},
		{"zombie-uid", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Creds.UID[1] = 1 << 33
		}, []string{fmt.Sprintf("zombie %d", zpid), "out of range"}},
		{"zombie-comm", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, zpid).Comm = strings.Repeat("z", 16)
		}, []string{fmt.Sprintf("zombie %d", zpid), "longer than 15 bytes"}},
		{"zombie-root", func(ps *[]format.Process, _ *[]format.File) {
			(*ps)[0].Zombie = &format.Exit{Status: 0}
		}, []string{"root process", "is a zombie"}},
		{"zombie-parent", func(ps *[]format.Process, _ *[]format.File) {
			z, s := find(*ps, zpid), find(*ps, spid)
			if zpid > spid {
				*z, *s = *s, *z // the zombie first
				z, s = s, z
			}
			s.PPID = zpid
		}, []string{fmt.Sprintf("parent %d, a zombie", zpid)}},
		{"stop-signal", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, spid).Stopped.Signal = int(unix.SIGKILL)
		}, []string{fmt.Sprintf("process %d is stopped by signal 9", spid)}},
		{"pdeathsig", func(ps *[]format.Process, _ *[]format.File) {
			find(*ps, spid).Threads[0].Pdeathsig = 65
		}, []string{"parent-death signal 65"}},
		{"pidfd-outside", func(_ *[]format.Process, fs *[]format.File) {
			pidfdFile(*fs).Pidfd.PID = 1
		}, []string{"pidfd", "refers to 1", "no process of the image"}},
		{"pidfd-reaped-status", func(_ *[]format.Process, fs *[]format.File) {
			*pidfdFile(*fs).Pidfd = format.Pidfd{Reaped: &format.Exit{Status: int(unix.SIGCONT)}}
		}, []string{"pidfd", "reaped process", "signal 18", "no process dies"}},
		{"pidfd-reaped-and-pid", func(_ *[]format.Process, fs *[]format.File) {
			pidfdFile(*fs).Pidfd.Reaped = &format.Exit{}
		}, []string{"pidfd", "and to a reaped one"}},
		{"pidfd-no-state", func(_ *[]format.Process, fs *[]format.File) {
			pidfdFile(*fs).Pidfd = nil
		}, []string{"a pidfd, has no pidfd state"}},
		{"pidfd-flags", func(ps *[]format.Process, fs *[]format.File) {
			for i, fd := range (*ps)[0].FDs {
				if fd.File >= 0 && (*fs)[fd.File].Kind == format.FilePidfd {
					(*ps)[0].FDs[i].Flags |= unix.O_APPEND
				}
			}
		}, []string{"a pidfd with open flags"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, loadCmd(editProcs(t, img, tc.edit)), "python3", tc.wants...)
		})
	}
}

// TestStoppedRoot: a process stopped by SIGSTOP, moved, comes back stopped,
// and procs-load, its parent now, stops with it as a shell's job does:
// continuing procs-load continues it, and procs-load exits with its
// status.
func TestStoppedRoot(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", `
import time
i = 0
while True:
    i += 1
    with open("count", "a") as f: f.write("%d\n" % i)
    time.sleep(0.05)
`)
	count := filepath.Join(dir, "count")
	waitLines(t, count, 3, 10*time.Second)
	unix.Kill(pid, unix.SIGSTOP)
	inState(t, pid, os.Getpid(), 'T')
	n := lineNumbers(t, count)
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	inState(t, pid, ld.pid(), 'T')
	inState(t, ld.pid(), os.Getpid(), 'T')
	time.Sleep(300 * time.Millisecond)
	if got := lineNumbers(t, count); got != n {
		t.Fatalf("the stopped process counted on: %d lines, was %d", got, n)
	}
	unix.Kill(ld.pid(), unix.SIGCONT)
	waitLines(t, count, n+5, 10*time.Second)
	lineNumbers(t, count)
	unix.Kill(pid, unix.SIGTERM)
	if !ld.exited(10*time.Second) || ld.exitCode() != 128+int(unix.SIGTERM) {
		t.Errorf("procs-load: exit %d; want %d, the process's status", ld.exitCode(), 128+int(unix.SIGTERM))
	}
}

// TestTreeShellStoppedJob: an interactive bash with a job stopped by
// Ctrl-Z (a cat reading the terminal), moved to another terminal: the job
// comes back stopped, the shell does not report it stopped again, and fg
// resumes it in the foreground, where it reads a typed line.
func TestTreeShellStoppedJob(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	bash, env := interactiveBash(t)
	ma, sa := openPty(t)
	orig, origDone := onTerminal(t, sa, env, bash...)
	sa.Close()
	outA := readLines(ma)
	ma.Write([]byte("X=5; echo set-$X\n"))
	expect(t, outA, "set-5", 0)
	ma.Write([]byte("cat\n"))
	time.Sleep(300 * time.Millisecond) // cat reads
	skip := len(mustLines(outA))
	ma.Write([]byte{0x1a}) // Ctrl-Z
	expect(t, outA, "[1]+", skip, "Stopped")
	var cat int
	for _, p := range treeOf(orig.Process.Pid)[1:] {
		if p.comm == "cat" && p.state == 'T' {
			cat = p.pid
		}
	}
	if cat == 0 {
		t.Fatalf("no stopped cat under the shell: %v", treeOf(orig.Process.Pid))
	}
	time.Sleep(100 * time.Millisecond) // back at its prompt, reading
	tree := treeOf(orig.Process.Pid)
	img := dump(t, orig.Process.Pid, false)
	<-origDone
	waitGone(t, tree)

	mb, sb := openPty(t)
	_, done := onTerminal(t, sb, env, filepath.Join(binDir, "procs-load"), img)
	outB := readLines(mb)
	restored(t, orig.Process.Pid)
	inState(t, cat, orig.Process.Pid, 'T')
	skip = len(mustLines(outB))
	mb.Write([]byte("jobs; echo jobs-$X\n"))
	expect(t, outB, "jobs-5", skip)
	mb.Write([]byte("fg\n"))
	time.Sleep(300 * time.Millisecond)
	mb.Write([]byte("hello-cat\n"))
	waitFor(t, 10*time.Second, func() bool {
		n := 0
		for _, l := range mustLines(outB) {
			n += strings.Count(l, "hello-cat")
		}
		return n >= 2 // echoed by the terminal, written by cat
	}, "cat to write the line typed after fg")
	// A shell told again of the stop would say so at its next prompt,
	// after the jobs.
	if got := strings.Count(strings.Join(mustLines(outB)[skip:], "\n"), "Stopped"); got != 1 {
		t.Errorf("the shell said its job stopped %d times after the restore; want once, for jobs:\n%s", got, tail(mustLines(outB), 10))
	}
	mb.Write([]byte{0x04}) // Ctrl-D: cat ends
	mb.Write([]byte("echo back-$X; exit 3\n"))
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Errorf("procs-load = %v; want the shell's exit 3; its terminal showed:\n%s", err, tail(mustLines(outB), 10))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the restored shell did not exit; its terminal showed:\n%s", tail(mustLines(outB), 10))
	}
}
