package tests

// Exact single processes: attributes of a process and of each of its
// threads that a round trip must give back exactly (or that procs-dump
// refuses by name). Each test runs a mode of tests/victims/exact.c,
// which checks its own view of the attribute, and compares what /proc
// shows before and after, through the three ways back: a killed process
// restored, a -K image restored once the original is gone, and a
// restore with procs-load -d.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tripModes are the round trips every exact test makes.
var tripModes = []string{"kill", "keep", "detach"}

// trip is one round trip of an exact victim.
type trip struct {
	orig   *proc
	start  rec      // its "start 0" line
	before []string // lines before the dump
	pid    int      // the restored process
	load   *load
}

// exactTrip starts the exact victim (argv after the victim) in dir,
// waits for 2 good lines of stream, calls view on it, dumps it the way
// mode says (kill: procs-dump; keep: procs-dump -K, the original going on
// unharmed until the test kills it; detach: procs-dump, then procs-load
// -d), restores it and waits for 3 good lines of stream. view is called
// again on the restored process; both views must be the same.
func exactTrip(t *testing.T, mode, dir string, args []string, stream string, view func(t *testing.T, pid int, st rec) string) *trip {
	t.Helper()
	return exactTripFed(t, mode, dir, append(victimArgv(t, "exact"), args...), "exact", stream, view, false)
}

// exactTripFed is exactTrip for the victim argv, named comm; with feed, a
// line is written to the victim's standard input every 50 ms, before and
// after the restore.
func exactTripFed(t *testing.T, mode, dir string, argv []string, comm, stream string, view func(t *testing.T, pid int, st rec) string, feed bool) *trip {
	t.Helper()
	tr := &trip{}
	tr.orig = start(t, argv, dir)
	if feed {
		feedLines(t, tr.orig.stdin)
	}
	tr.start = parseStart(t, expect(t, tr.orig.out, "start 0", 0))
	reports(t, tr.orig.out, stream, 2, 0)
	want := view(t, tr.orig.pid(), tr.start)
	var img string
	var loadArgs []string
	switch mode {
	case "kill", "detach":
		img, tr.before = dumpKilled(t, tr.orig)
		if mode == "detach" {
			loadArgs = append(loadArgs, "-d")
		}
	case "keep":
		img = dump(t, tr.orig.pid(), true)
		n := len(mustLines(tr.orig.out))
		reports(t, tr.orig.out, stream, 2, n)
		if got := view(t, tr.orig.pid(), tr.start); got != want {
			t.Errorf("original after procs-dump -K:\n%s\nwant\n%s", got, want)
		}
		tr.orig.cmd.Process.Kill()
		if !tr.orig.exited(10 * time.Second) {
			t.Fatal("original did not die")
		}
		tr.before, _ = tr.orig.out.waitEOF(5 * time.Second)
	default:
		t.Fatalf("mode %q", mode)
	}
	tr.load = startLoad(t, img, loadArgs...)
	if feed {
		feedLines(t, tr.load.stdin)
	}
	after, ok := tr.load.out.wait(lineWait, haveLines([]string{stream}, 3, 0))
	if !ok {
		t.Fatalf("restored: want 3 lines %q; got:\n%s\nprocs-load stderr: %s", stream, tail(after, 10), tr.load.stderrText())
	}
	if bad := badFlags(perStream(parseAll(after))[stream]); len(bad) > 0 {
		t.Errorf("restored process's own checks failed:\n%s", strings.Join(bad, "\n"))
	}
	tr.pid = tr.load.find(t, comm, 5*time.Second)
	if got := view(t, tr.pid, tr.start); got != want {
		t.Errorf("restored process (-%s):\n%s\nwant, as before the dump:\n%s", mode, got, want)
	}
	return tr
}

// parseStart parses a "start 0 key=value..." line.
func parseStart(t *testing.T, line string) rec {
	t.Helper()
	r, ok := parse(line)
	if !ok {
		t.Fatalf("start line %q", line)
	}
	return r
}

// statusOf returns the lines of /proc/PID[/task/TID]/status named keys.
func statusOf(t *testing.T, path string, keys ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		k, _, _ := strings.Cut(l, ":")
		if slices.Contains(keys, k) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// threadsView applies f to every thread of pid, in tid order but the
// main thread first, and joins the results (thread ids themselves left
// out: they change with the PID).
func threadsView(t *testing.T, pid int, f func(task string) string) string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []string
	for _, e := range ents {
		tids = append(tids, e.Name())
	}
	slices.SortFunc(tids, func(a, b string) int {
		if (a == fmt.Sprint(pid)) != (b == fmt.Sprint(pid)) {
			if a == fmt.Sprint(pid) {
				return -1
			}
			return 1
		}
		return len(a)*1000000 - len(b)*1000000 + strings.Compare(a, b)
	})
	var out []string
	for i, tid := range tids {
		out = append(out, fmt.Sprintf("thread %d:\n%s", i, f(fmt.Sprintf("/proc/%d/task/%s", pid, tid))))
	}
	return strings.Join(out, "\n")
}

// TestExactCreds: supplementary groups and oom_score_adj come back.
func TestExactCreds(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"creds"}, "creds", func(t *testing.T, pid int, st rec) string {
				oom, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
				if err != nil {
					t.Fatal(err)
				}
				return statusOf(t, fmt.Sprintf("/proc/%d/status", pid), "Uid", "Gid", "Groups") +
					"\noom_score_adj: " + string(bytes.TrimSpace(oom))
			})
		})
	}
}

// smapsFlags returns the VmFlags of the mapping of pid starting at addr
// (0x...).
func smapsFlags(t *testing.T, pid int, addr string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimPrefix(addr, "0x") + "-"
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			in = true
		}
		if v, ok := strings.CutPrefix(l, "VmFlags:"); ok && in {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no mapping at %s in /proc/%d/smaps", addr, pid)
	return ""
}

// TestExactAdvice: every mapping flag set with madvise, mlock or mmap
// (MAP_DROPPABLE) reads back the same in smaps VmFlags.
func TestExactAdvice(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"madv"}, "madv", func(t *testing.T, pid int, st rec) string {
				var out []string
				for _, name := range []string{"dc", "wf", "hg", "nh", "mg", "dd", "lo", "dp"} {
					out = append(out, name+": "+smapsFlags(t, pid, st.kv[name]))
				}
				return strings.Join(out, "\n")
			})
		})
	}
}

// TestExactThreadCreds: a thread that changed its own ids and groups
// with the raw system calls keeps them, and the main thread its own.
func TestExactThreadCreds(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"thcreds"}, "thcreds", func(t *testing.T, pid int, _ rec) string {
				return threadsView(t, pid, func(task string) string {
					return statusOf(t, task+"/status", "Uid", "Gid", "Groups", "NoNewPrivs")
				})
			})
		})
	}
}

// schedView is each thread's policy, real-time priority and nice (stat
// fields 41, 40 and 19) and the THP line of status. (Not stat's field
// 18, priority: for a SCHED_IDLE thread it keeps the nice passed to the
// sched_setattr that set the policy, which schedules nothing and which
// nothing reads back.)
func schedView(t *testing.T, pid int, _ rec) string {
	t.Helper()
	return threadsView(t, pid, func(task string) string {
		b, err := os.ReadFile(task + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		return fmt.Sprintf("policy %s rt_priority %s nice %s", f[38], f[37], f[16])
	}) + "\n" + statusOf(t, fmt.Sprintf("/proc/%d/status", pid), "THP_enabled")
}

// TestExactSched: every thread's scheduling policy, priority, nice and
// reset-on-fork flag, PR_SET_THP_DISABLE and a membarrier registration
// come back.
func TestExactSched(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"sched"}, "sched", schedView)
		})
	}
}

// feedLines writes "hello" lines to w every 50 ms until a write fails or
// t ends.
func feedLines(t *testing.T, w *os.File) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := w.Write([]byte("hello\n")); err != nil {
				return
			}
		}
	}()
}

// seccompView is each thread's seccomp lines of status.
func seccompView(t *testing.T, pid int, _ rec) string {
	t.Helper()
	return threadsView(t, pid, func(task string) string {
		return statusOf(t, task+"/status", "NoNewPrivs", "Seccomp", "Seccomp_filters")
	})
}

// TestExactSeccomp: seccomp filters travel, one of the whole process and
// one of a thread only, and go on filtering; filters the threads share
// are shared again (the program adds filters with TSYNC after the
// restore); and strict mode, in which the program can only read, write
// and exit, travels too.
func TestExactSeccomp(t *testing.T) {
	for _, mode := range tripModes {
		t.Run("filter/"+mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"seccomp"}, "seccomp", seccompView)
		})
	}
	for _, mode := range tripModes {
		t.Run("tsync/"+mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTrip(t, mode, t.TempDir(), []string{"tsync"}, "tsync", func(t *testing.T, pid int, _ rec) string {
				// Not the number of filters, which grows.
				return threadsView(t, pid, func(task string) string {
					return statusOf(t, task+"/status", "NoNewPrivs", "Seccomp")
				})
			})
		})
	}
	for _, mode := range tripModes {
		t.Run("strict/"+mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			exactTripFed(t, mode, t.TempDir(), append(victimArgv(t, "exact"), "strict"), "exact", "strict", seccompView, true)
		})
	}
}

// TestExactSeccompUnprivileged: without CAP_SYS_ADMIN, procs-dump
// refuses a process under seccomp by name, untouched, and procs-load
// refuses an image of one.
func TestExactSeccompUnprivileged(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	bin := publicCopy(t, victimArgv(t, "exact")[0])
	p := startAs(t, []string{bin, "seccomp"}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
	expect(t, p.out, "start 0", 0)
	reports(t, p.out, "seccomp", 2, 0)
	pd := publicCopy(t, filepath.Join(binDir, "procs-dump"))
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(pd, strconv.Itoa(p.pid()))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	runTimeout(cmd, 30*time.Second)
	msg := strings.TrimSpace(stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(msg, "seccomp") || !strings.Contains(msg, "CAP_SYS_ADMIN") {
		t.Errorf("procs-dump as uid 65534 of a process under seccomp: exit %d, %q; want 3 and a message naming seccomp and CAP_SYS_ADMIN", cmd.ProcessState.ExitCode(), msg)
	}
	n := len(mustLines(p.out))
	reports(t, p.out, "seccomp", 2, n) // untouched, going on

	img, _ := dumpKilled(t, p)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd = exec.Command(publicCopy(t, filepath.Join(binDir, "procs-load")))
	cmd.Stdin = f
	cmd.Dir = "/tmp"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	refused(t, cmd, "exact", "seccomp", "CAP_SYS_ADMIN")
}

// jail makes a folder for the chroot mode: a marker file and a sub
// folder.
func jail(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "jail")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("here"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rootView is where /proc says the process's root and cwd are.
func rootView(t *testing.T, pid int, _ rec) string {
	t.Helper()
	root, err1 := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	cwd, err2 := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return "root " + root + "\ncwd " + cwd
}

// TestExactChroot: a process chrooted into a folder is chrooted into it
// again, its working directory inside; restoring it where the folder is
// missing is refused, naming the folder.
func TestExactChroot(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			dir := jail(t)
			exactTrip(t, mode, t.TempDir(), []string{"chroot", dir}, "chroot", rootView)
		})
	}
	t.Run("missing", func(t *testing.T) {
		needTools(t)
		noLeftovers(t)
		dir := jail(t)
		p := start(t, append(victimArgv(t, "exact"), "chroot", dir), t.TempDir())
		expect(t, p.out, "start 0", 0)
		reports(t, p.out, "chroot", 2, 0)
		img, _ := dumpKilled(t, p)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		refused(t, loadCmd(img), "exact", "chroot", dir)
	})
}

// pyAttrs is a python program that sets its groups, oom_score_adj,
// SCHED_BATCH with nice 4 and PR_SET_THP_DISABLE, and checks them every
// 100 ms.
const pyAttrs = `import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
os.setgroups([4242, 4243])
open('/proc/self/oom_score_adj', 'w').write('123')
os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
os.nice(4)
libc.prctl(41, 1, 0, 0, 0)
print('start 0 pid=%d' % os.getpid(), flush=True)
n = 0
while True:
    n += 1
    g = sorted(os.getgroups()) == [4242, 4243]
    o = open('/proc/self/oom_score_adj').read().strip() == '123'
    s = os.sched_getscheduler(0) == os.SCHED_BATCH and os.getpriority(os.PRIO_PROCESS, 0) == 4
    h = libc.prctl(42, 0, 0, 0, 0) == 1
    print('py %d groupsok=%d oomok=%d schedok=%d thpok=%d' % (n, g, o, s, h), flush=True)
    time.sleep(0.1)
`

// TestExactPython: a real program's groups, oom_score_adj, scheduling
// and THP disabling come back.
func TestExactPython(t *testing.T) {
	for _, mode := range tripModes {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			py := victimArgv(t, "python")[0]
			exactTripFed(t, mode, t.TempDir(), []string{py, "-c", pyAttrs}, "python3", "py", func(t *testing.T, pid int, st rec) string {
				oom, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
				if err != nil {
					t.Fatal(err)
				}
				return schedView(t, pid, st) + "\n" + statusOf(t, fmt.Sprintf("/proc/%d/status", pid), "Groups") +
					"\noom_score_adj " + string(bytes.TrimSpace(oom))
			}, false)
		})
	}
}

// TestExactThreadsUnprivileged: a process of uid 65534 with nine
// threads, restored by root: every thread runs as 65534 again (each
// thread sets its own credentials; the restorer's, root's, were once
// left to all but the main thread).
func TestExactThreadsUnprivileged(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	bin := publicCopy(t, victimArgv(t, "threads")[0])
	p := startAs(t, []string{bin}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
	reports(t, p.out, "t7", 1, 0)
	view := func(t *testing.T, pid int) string {
		return threadsView(t, pid, func(task string) string {
			return statusOf(t, task+"/status", "Uid", "Gid", "Groups", "CapEff")
		})
	}
	want := view(t, p.pid())
	if !strings.Contains(want, "65534\t65534\t65534\t65534") || strings.Count(want, "thread ") != 9 {
		t.Fatalf("victim's threads:\n%s\nwant 9 threads (main and 8) of uid 65534", want)
	}
	img, _ := dumpKilled(t, p)
	// Its stderr is a file in a folder of root's, which uid 65534 cannot
	// open again: procs-load's stands in.
	ld := startLoad(t, img, "--stdio=inherit")
	if _, ok := ld.out.wait(lineWait, haveLines([]string{"t7"}, 1, 0)); !ok {
		t.Fatalf("restored: no line; procs-load stderr: %s", ld.stderrText())
	}
	pid := ld.find(t, "threads", 5*time.Second)
	if got := view(t, pid); got != want {
		t.Errorf("restored threads:\n%s\nwant\n%s", got, want)
	}
}
