package tests

// PIDs of a tree: copies of one tree beside its running original, each
// in a PID namespace of its own where every process has the PID, the
// parent and the thread ids it had, as the programs themselves see them
// (getpid, getppid, gettid, /proc); --pid=keep refused by PID; the root's
// exit status and the signals sent to procs-load passed on; nothing left
// behind, the namespace's init included.

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

// pidsPy forks a child; each of the two starts a thread and reports,
// ten times a second on stdout (a line in one write), what it knows of its ids: "TAG N
// key=value...". pid and ppid are getpid and getppid; self and bypid
// the pid and ppid fields of /proc/self/stat and /proc/PID/stat; tid
// what its thread last got from gettid; tasks the thread ids of
// /proc/self/task; uid is getuid. The parent reports its child's PID and whether
// kill(child, 0) finds it. The child ends when its parent is no longer
// its parent. The parent ends on SIGTERM with 42, on SIGUSR1 with 7,
// once it has stopped and collected its child.
const pidsPy = `
import os, signal, sys, threading, time

tid = [0]
def thread():
    while True:
        tid[0] = threading.get_native_id()
        time.sleep(0.02)

def ids():
    me = os.getpid()
    a = open("/proc/self/stat").read().split()
    b = open("/proc/%d/stat" % me).read().split()
    tasks = ",".join(sorted(os.listdir("/proc/self/task"), key=int))
    return "pid=%d ppid=%d self=%s/%s bypid=%s/%s tid=%d tasks=%s uid=%d" % (
        me, os.getppid(), a[0], a[3], b[0], b[3], tid[0], tasks, os.getuid())

def run(tag, more):
    threading.Thread(target=thread, daemon=True).start()
    n = 0
    while True:
        n += 1
        if tid[0]:
            os.write(1, ("%s %d %s %s\n" % (tag, n, ids(), more())).encode())
        time.sleep(0.1)

parent = os.getpid()
child = os.fork()
if child == 0:
    def orphan():
        if os.getppid() != parent:
            os._exit(0)
        return ""
    run("child", orphan)

def end(code):
    def handler(sig, frame):
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
        sys.exit(code)
    return handler
signal.signal(signal.SIGTERM, end(42))
signal.signal(signal.SIGUSR1, end(7))

def alive():
    try:
        os.kill(child, 0)
        return "child=%d alive=1" % child
    except OSError:
        return "child=%d alive=0" % child
run("parent", alive)
`

// report is one line of pidsPy or of the shell loop: its tag, its number
// and its fields.
type report struct {
	tag string
	n   int
	kv  map[string]string
}

// lastReport returns the last line of tag with a number above after,
// waiting up to timeout for one.
func lastReport(t *testing.T, l *lines, tag string, after int, timeout time.Duration, stderr func() string) report {
	t.Helper()
	var found report
	_, ok := l.wait(timeout, func(all []string, eof bool) bool {
		for i := len(all) - 1; i >= 0; i-- {
			f := strings.Fields(all[i])
			if len(f) < 2 || f[0] != tag {
				continue
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n <= after {
				return false
			}
			found = report{tag: tag, n: n, kv: map[string]string{}}
			for _, w := range f[2:] {
				k, v, _ := strings.Cut(w, "=")
				found.kv[k] = v
			}
			return true
		}
		return false
	})
	if !ok {
		all, _ := l.snapshot()
		t.Fatalf("no %q report past %d; output:\n%s\nstderr: %s", tag, after, tail(all, 10), stderr())
	}
	return found
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []pinfo {
	var out []pinfo
	for _, p := range allProcs() {
		if p.ppid == pid && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// nsTree finds below procs-load ld the PID namespace's init and the
// root it runs, as this process sees them, and checks them.
func nsTree(t *testing.T, ld *load) (init, root pinfo) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if kids := childrenOf(ld.pid()); len(kids) == 1 && kids[0].comm == "procs-load-init" {
			init = kids[0]
			if roots := childrenOf(init.pid); len(roots) == 1 {
				return init, roots[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("procs-load %d: want one child procs-load-init with one child; found %v", ld.pid(), descendants())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTreePIDNamespace: a python parent and child, each with a thread,
// copied four times beside the running original, three with --pid=ns and
// one with --pid=auto, all five running at once: in each copy, both
// processes and the threads have their original ids, the parent's parent
// is the namespace's init (1), and /proc says the same. --pid=keep is
// refused naming the PIDs taken. The copies end as their procs-load is
// sent SIGTERM (passed on to the root: exit 42), as the root ends on its
// own (exit 7), as the root is killed (137, the child then ends of
// itself), and as the namespace's init is killed (137: the kernel kills
// the namespace); nothing is left.
func TestTreePIDNamespace(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	orig := start(t, []string{py, "-c", pidsPy}, t.TempDir())
	t.Cleanup(func() { killTree(t, orig.pid()) })
	p0 := lastReport(t, orig.out, "parent", 0, lineWait, orig.stderrText)
	c0 := lastReport(t, orig.out, "child", 0, lineWait, orig.stderrText)
	pid, child := p0.kv["pid"], c0.kv["pid"]
	if p0.kv["child"] != child || c0.kv["ppid"] != pid || p0.kv["self"] != pid+"/"+strconv.Itoa(os.Getpid()) {
		t.Fatalf("original: parent %v, child %v", p0.kv, c0.kv)
	}
	img := dump(t, orig.pid(), true)

	t.Run("keep-taken", func(t *testing.T) {
		refused(t, loadCmd(img, "--pid=keep"), "python3", "--pid=keep", pid, child, "in use")
	})

	lds := []*load{startLoad(t, img, "--pid=ns"), startLoad(t, img, "--pid=ns"), startLoad(t, img), startLoad(t, img, "--pid=ns")}
	roots := map[int]bool{}
	for i, ld := range lds {
		p := lastReport(t, ld.out, "parent", 0, 10*time.Second, ld.stderrText)
		c := lastReport(t, ld.out, "child", 0, 10*time.Second, ld.stderrText)
		wantP := map[string]string{"pid": pid, "ppid": "1", "self": pid + "/1", "bypid": pid + "/1",
			"tid": p0.kv["tid"], "tasks": p0.kv["tasks"], "child": child, "alive": "1"}
		wantC := map[string]string{"pid": child, "ppid": pid, "self": child + "/" + pid, "bypid": child + "/" + pid,
			"tid": c0.kv["tid"], "tasks": c0.kv["tasks"]}
		for _, w := range []struct {
			got  report
			want map[string]string
		}{{p, wantP}, {c, wantC}} {
			for k, v := range w.want {
				if w.got.kv[k] != v {
					all, _ := ld.out.snapshot()
					t.Errorf("copy %d, %s: %s=%s; want %s (report %v)\n%s", i, w.got.tag, k, w.got.kv[k], v, w.got.kv, tail(all, 8))
				}
			}
		}
		init, root := nsTree(t, ld)
		if st := procStatus(root.pid); st["NSpid"] != fmt.Sprintf("%d\t%s", root.pid, pid) {
			t.Errorf("copy %d: root's NSpid %q; want %d and %s", i, st["NSpid"], root.pid, pid)
		}
		if st := procStatus(init.pid); st["NSpid"] != fmt.Sprintf("%d\t1", init.pid) {
			t.Errorf("copy %d: init's NSpid %q; want %d and 1", i, st["NSpid"], init.pid)
		}
		roots[root.pid] = true
		ld.restored, ld.start = root.pid, root.start
	}
	if len(roots) != len(lds) || roots[orig.pid()] {
		t.Fatalf("copies' roots %v, the original %d; want all apart", roots, orig.pid())
	}
	// The original is unharmed and goes on.
	lastReport(t, orig.out, "parent", p0.n+5, lineWait, orig.stderrText)

	ends := []struct {
		name string
		do   func(ld *load)
		code int
	}{
		{"SIGTERM to procs-load", func(ld *load) { ld.cmd.Process.Signal(syscall.SIGTERM) }, 42},
		{"SIGUSR1 to the root", func(ld *load) { syscall.Kill(ld.restored, syscall.SIGUSR1) }, 7},
		{"SIGKILL to the root", func(ld *load) { syscall.Kill(ld.restored, syscall.SIGKILL) }, 128 + 9},
		{"SIGKILL to the init", func(ld *load) {
			init, _ := nsTree(t, ld)
			syscall.Kill(init.pid, syscall.SIGKILL) // and so to every process of its namespace
		}, 128 + 9},
	}
	for i, e := range ends {
		ld := lds[i]
		init, _ := nsTree(t, ld)
		e.do(ld)
		if !ld.exited(10 * time.Second) {
			t.Fatalf("%s: procs-load still runs", e.name)
		}
		if code := ld.exitCode(); code != e.code {
			t.Errorf("%s: procs-load exit %d; want %d; stderr: %s", e.name, code, e.code, ld.stderrText())
		}
		waitGone(t, []pinfo{init})
	}
	// The original still runs.
	lastReport(t, orig.out, "child", c0.n+5, lineWait, orig.stderrText)
}

// TestTreePIDNamespaceShell: a bash loop that runs an external command
// every 100 ms, copied beside its running original with --pid=auto: in
// the copy, $$, $BASHPID and the command's $PPID are the original's PID.
// SIGTERM sent to procs-load ends bash (exit 143); the namespace's init
// ends once the command it ran is over.
func TestTreePIDNamespaceShell(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	script := `while :; do echo "bash $BASHPID $$ $(/bin/sh -c 'echo $PPID')"; /bin/sleep 0.1; done`
	orig := start(t, []string{"/bin/bash", "-c", script}, t.TempDir())
	t.Cleanup(func() { killTree(t, orig.pid()) })
	want := strconv.Itoa(orig.pid())
	waitShell := func(l *lines, stderr func() string) {
		t.Helper()
		got, ok := l.wait(lineWait, func(all []string, eof bool) bool { return len(all) >= 3 })
		if !ok {
			t.Fatalf("shell loop: %q; stderr %s", got, stderr())
		}
		for _, line := range got {
			if f := strings.Fields(line); len(f) != 4 || slices.ContainsFunc(f[1:], func(s string) bool { return s != want }) {
				t.Fatalf("shell loop: %q; want bash and PID %s three times", line, want)
			}
		}
	}
	waitShell(orig.out, orig.stderrText)
	img := dump(t, orig.pid(), true)
	ld := startLoad(t, img)
	waitShell(ld.out, ld.stderrText)
	init, root := nsTree(t, ld)
	ld.restored, ld.start = root.pid, root.start
	// A dump of the copy, which runs in a namespace, holds the ids its
	// programs see there, not procs-dump's: a copy of the copy has
	// them again (bash's $$, held in its memory, is still its PID).
	ld2 := startLoad(t, dump(t, root.pid, true))
	waitShell(ld2.out, ld2.stderrText)
	init2, root2 := nsTree(t, ld2)
	ld2.restored, ld2.start = root2.pid, root2.start
	ld2.kill(t)
	waitGone(t, []pinfo{init2, root2})
	ld.cmd.Process.Signal(syscall.SIGTERM)
	if !ld.exited(10 * time.Second) {
		t.Fatal("procs-load still runs after SIGTERM")
	}
	if code := ld.exitCode(); code != 128+15 {
		t.Errorf("procs-load exit %d; want 143 (bash killed by SIGTERM); stderr: %s", code, ld.stderrText())
	}
	waitGone(t, []pinfo{init, root})
	// The original goes on.
	n := len(mustLines(orig.out))
	if _, ok := orig.out.wait(lineWait, func(all []string, eof bool) bool { return len(all) > n+3 }); !ok {
		t.Error("the original stopped")
	}
}

// TestUnprivilegedTreeCopy: an ordinary user dumps its python parent and
// child with -K and restores the copy beside them, without root: the
// copy runs in a PID namespace in a user namespace of its own (which
// maps the user's ids to themselves), where both processes and their
// threads have their ids, as the user, with no capability.
func TestUnprivilegedTreeCopy(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := userPython(t)
	cred := testUser(t)
	attr := func() *syscall.SysProcAttr { return &syscall.SysProcAttr{Credential: cred} }
	dumpBin := publicCopy(t, filepath.Join(binDir, "procs-dump"))
	loadBin := publicCopy(t, filepath.Join(binDir, "procs-load"))
	dir := userDir(t, cred)
	orig := startAs(t, []string{py, "-c", pidsPy}, dir, attr())
	t.Cleanup(func() { killTree(t, orig.pid()) })
	p0 := lastReport(t, orig.out, "parent", 0, lineWait, orig.stderrText)
	c0 := lastReport(t, orig.out, "child", 0, lineWait, orig.stderrText)
	img := filepath.Join(dir, "img")
	var stderr bytes.Buffer
	cmd := exec.Command(dumpBin, "-K", "-o", img, strconv.Itoa(orig.pid()))
	cmd.Dir, cmd.Stderr, cmd.SysProcAttr = dir, &stderr, attr()
	if err := runTimeout(cmd, time.Minute); err != nil {
		t.Fatalf("procs-dump -K as uid %d: %v\n%s", cred.Uid, err, stderr.String())
	}
	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	ld.proc = startAs(t, []string{loadBin, "-v", "--stdio=inherit", img}, dir, attr())
	ended := false
	ld.out.wait(10*time.Second, func(all []string, eof bool) bool { ended = eof; return eof || len(all) > 0 })
	if ended && ld.exited(5*time.Second) && strings.Contains(ld.stderrText(), "this system refuses") {
		t.Skipf("no user namespaces for users here: %s", ld.stderrText())
	}
	p := lastReport(t, ld.out, "parent", 0, 10*time.Second, ld.stderrText)
	c := lastReport(t, ld.out, "child", 0, 10*time.Second, ld.stderrText)
	pid, child, uid := p0.kv["pid"], c0.kv["pid"], strconv.Itoa(int(cred.Uid))
	for _, w := range []struct {
		got  report
		want map[string]string
	}{
		{p, map[string]string{"pid": pid, "ppid": "1", "self": pid + "/1", "tid": p0.kv["tid"], "uid": uid, "alive": "1"}},
		{c, map[string]string{"pid": child, "ppid": pid, "bypid": child + "/" + pid, "tid": c0.kv["tid"], "uid": uid}},
	} {
		for k, v := range w.want {
			if w.got.kv[k] != v {
				t.Errorf("copy's %s: %s=%s; want %s (report %v)", w.got.tag, k, w.got.kv[k], v, w.got.kv)
			}
		}
	}
	if !strings.Contains(ld.stderrText(), "PID namespace") {
		t.Errorf("procs-load -v says nothing of a PID namespace: %s", ld.stderrText())
	}
	_, root := nsTree(t, ld)
	ld.restored, ld.start = root.pid, root.start
	st := procStatus(root.pid)
	if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" || !strings.HasPrefix(st["Uid"], uid+"\t") {
		t.Errorf("copy's root: Uid %q, CapPrm %q, CapEff %q; want uid %s and no capability", st["Uid"], st["CapPrm"], st["CapEff"], uid)
	}
	if m, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", root.pid)); strings.Join(strings.Fields(string(m)), " ") != uid+" "+uid+" 1" {
		t.Errorf("copy's uid_map %q; want %s mapped to itself alone", m, uid)
	}
	ld.cmd.Process.Signal(syscall.SIGTERM)
	if !ld.exited(10 * time.Second) {
		t.Fatal("procs-load still runs after SIGTERM")
	}
	if code := ld.exitCode(); code != 42 {
		t.Errorf("procs-load exit %d; want 42; stderr: %s", code, ld.stderrText())
	}
	lastReport(t, orig.out, "parent", p0.n+5, lineWait, orig.stderrText)
}
