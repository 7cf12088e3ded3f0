package tests

// Process trees: a process and its descendants dumped as one image and
// restored with their links, sessions, groups, PIDs and the pipes between
// them, each checked from the programs' own output.

import (
	"encoding/json"
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

	"procs/pkg/show"
)

// startTree starts argv with stdin /dev/null and stdout and stderr on the
// file log in dir, and when t ends kills it and every process below it
// (by PID, checked against its start time).
func startTree(t *testing.T, dir, log string, argv ...string) int {
	t.Helper()
	out, err := os.OpenFile(filepath.Join(dir, log), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { killTree(t, pid) })
	return pid
}

// startPyTree starts python script as a tree (startTree) in a folder of
// its own, its output to "log" there, checking that the test leaves no
// process behind: the folder and the root.
func startPyTree(t *testing.T, script string) (string, int) {
	t.Helper()
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	return dir, startTree(t, dir, "log", py, "-c", script)
}

// treeOf lists pid and the processes below it, pid first.
func treeOf(pid int) []pinfo {
	root, ok := procInfo(pid)
	if !ok {
		return nil
	}
	ps := allProcs()
	out := []pinfo{root}
	for i := 0; i < len(out); i++ {
		for _, p := range ps {
			if p.ppid == out[i].pid {
				out = append(out, p)
			}
		}
	}
	return out
}

// killTree kills pid and every process below it.
func killTree(t *testing.T, pid int) {
	for _, p := range treeOf(pid) {
		killChecked(t, p.pid, p.start)
	}
}

// lineNumbers reads file, whose lines each start with a number, and
// checks they are 1, 2, 3... with no gap or repeat; it returns how many.
func lineNumbers(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != strconv.Itoa(i+1) {
			t.Fatalf("%s: line %d is %q, want number %d (lines %v)", file, i+1, l, i+1, around(lines, i))
		}
	}
	return len(lines)
}

func around(lines []string, i int) []string {
	return lines[max(0, i-3):min(len(lines), i+3)]
}

// waitLines waits until file has at least n numbered lines.
func waitLines(t *testing.T, file string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), "\n") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines after %v; want %d", file, strings.Count(string(b), "\n"), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// showImage is procs show --json of an image.
func showImage(t *testing.T, img string) show.Image {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "procs"), "show", "--json", img).Output()
	if err != nil {
		t.Fatalf("procs show %s: %v", img, err)
	}
	var s show.Image
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTreeShellLoop: a bash script that runs an external command every
// 100 ms, appending a counter to a file, moved (dumped, killed, restored):
// the counter goes on with no gap and no repeat.
func TestTreeShellLoop(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "count")
	script := `i=0; while :; do i=$((i+1)); /bin/echo "$i" >> count; sleep 0.1; done`
	pid := startTree(t, dir, "log", "/bin/bash", "-c", script)
	waitLines(t, out, 5, 10*time.Second)
	img := dump(t, pid, false)
	s := showImage(t, img)
	if len(s.Processes) < 2 || s.Processes[0].PID != pid {
		t.Fatalf("image of %d processes, root %d; want bash and its command", len(s.Processes), s.Processes[0].PID)
	}
	waitImageGone(t, img)
	before := lineNumbers(t, out)
	ld := startLoad(t, img)
	if got := ld.find(t, "bash", 10*time.Second); got != pid {
		t.Fatalf("restored bash is %d; want its PID %d", got, pid)
	}
	t.Cleanup(func() { killTree(t, pid) })
	waitLines(t, out, before+10, 10*time.Second)
	if n := lineNumbers(t, out); n < before+10 {
		t.Fatalf("%d lines", n)
	}
}

// waitGone waits until the processes of tree are no more, collecting
// those that are zombies of ours (this test process is a subreaper): a
// killed tree's PIDs are then free.
func waitGone(t *testing.T, tree []pinfo) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, q := range tree {
		for {
			p, ok := procInfo(q.pid)
			if !ok || q.start != 0 && p.start != q.start {
				break
			}
			if p.state == 'Z' && p.ppid == os.Getpid() {
				var ws syscall.WaitStatus
				syscall.Wait4(q.pid, &ws, syscall.WNOHANG, nil)
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still there", q.pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitImageGone is waitGone of the processes of the image img, killed by
// its dump (a listing taken before the dump would miss the commands a
// shell forked meanwhile).
func waitImageGone(t *testing.T, img string) {
	t.Helper()
	var tree []pinfo
	for _, p := range showImage(t, img).Processes {
		tree = append(tree, pinfo{pid: p.PID})
	}
	waitGone(t, tree)
}

// producerPy writes numbered lines of 1000 bytes as fast as it may.
const producerPy = `
import sys
i = 0
while True:
    i += 1
    sys.stdout.write("%d %s\n" % (i, "x" * 990))
    sys.stdout.flush()
`

// consumerPy writes each line it reads to the file it is given, slowly.
const consumerPy = `
import sys, time
with open(sys.argv[1], "a") as f:
    for line in sys.stdin:
        f.write(line); f.flush()
        time.sleep(0.002)
`

// TestTreePipeline: `producer | filter | consumer` under sh, with both
// pipes full at the dump, moved: every line arrives once, in order, the
// ones in flight too.
func TestTreePipeline(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.WriteFile(filepath.Join(dir, "producer.py"), []byte(producerPy), 0o644)
	os.WriteFile(filepath.Join(dir, "consumer.py"), []byte(consumerPy), 0o644)
	script := fmt.Sprintf("%s producer.py | grep --line-buffered x | %s consumer.py %s", py, py, out)
	pid := startTree(t, dir, "log", "/bin/sh", "-c", script)
	waitLines(t, out, 100, 10*time.Second)
	for _, keep := range []bool{true, false} {
		img := dump(t, pid, keep)
		if keep {
			// The original goes on, unharmed: more lines come.
			n := lineNumbers(t, out)
			waitLines(t, out, n+50, 10*time.Second)
		}
		s := showImage(t, img)
		var unread []int
		for _, p := range s.Processes {
			for _, fd := range p.Files {
				if fd.Kind == "pipe" && fd.Unread > 0 && !slices.Contains(unread, fd.Unread) {
					unread = append(unread, fd.Unread)
				}
			}
		}
		if len(s.Processes) != 4 || len(unread) != 2 {
			t.Fatalf("image of %d processes, pipes with %v bytes unread; want 4 processes and 2 pipes with bytes in flight", len(s.Processes), unread)
		}
		if keep {
			continue
		}
		waitImageGone(t, img)
		before := lineNumbers(t, out)
		startLoad(t, img)
		t.Cleanup(func() { killTree(t, pid) })
		// Past what was in the pipes (about 130 lines of 1000 bytes).
		waitLines(t, out, before+300, 20*time.Second)
		lineNumbers(t, out)
	}
}

// sessionPy reports, four times a second, the ids of a parent, of its
// child that made a session of its own and of that child's child.
const sessionPy = `
import os, sys, time
def report(tag):
    while True:
        with open(tag + ".tmp", "w") as f:
            f.write("%d %d %d %d\n" % (os.getpid(), os.getppid(), os.getpgid(0), os.getsid(0)))
        os.rename(tag + ".tmp", tag)
        time.sleep(0.25)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        report("grandchild")
    report("child")
report("parent")
`

// TestTreeSession: a process whose child made a session of its own
// (setsid) and forked again: after a move, each has its PID, its parent,
// its group and its session.
func TestTreeSession(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", sessionPy)
	ids := func(tag string) string {
		b, _ := os.ReadFile(filepath.Join(dir, tag))
		return strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(10 * time.Second)
	for ids("grandchild") == "" || ids("child") == "" || ids("parent") == "" {
		if time.Now().After(deadline) {
			t.Fatal("the three processes did not report")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]string{"child": ids("child"), "grandchild": ids("grandchild")}
	// A copy beside the original with its PIDs in this namespace: they
	// are taken (a PID namespace makes copies: TestTreePIDNamespace).
	imgK := dump(t, pid, true)
	refused(t, loadCmd(imgK, "--pid=keep"), "python3", "in use", strconv.Itoa(pid))
	img := dump(t, pid, false)
	waitImageGone(t, img)
	for _, tag := range []string{"child", "grandchild", "parent"} {
		os.Remove(filepath.Join(dir, tag))
	}
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	deadline = time.Now().Add(10 * time.Second)
	for ids("grandchild") == "" || ids("child") == "" || ids("parent") == "" {
		if time.Now().After(deadline) {
			t.Fatal("the restored processes did not report")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for tag, w := range want {
		if got := ids(tag); got != w {
			t.Errorf("%s: pid ppid pgid sid %q; want %q", tag, got, w)
		}
	}
	if f := strings.Fields(ids("parent")); f[0] != strconv.Itoa(pid) || f[1] != strconv.Itoa(ld.pid()) {
		t.Errorf("parent: pid ppid pgid sid %q; want pid %d, child of procs-load %d", ids("parent"), pid, ld.pid())
	}
}

// TestTreeRefusals: what procs cannot carry in a tree is refused by name,
// and the tree runs on unharmed: a pipe whose other end a process outside
// the tree holds.
func TestTreeRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	// The outside process reads the pipe; the tree's child writes it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "while :; do echo x >&3; sleep 0.05; done & wait")
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { killTree(t, pid); r.Close() })
	time.Sleep(200 * time.Millisecond)
	refusedDump(t, pid, "outside the tree", strconv.Itoa(os.Getpid()))
	// Unharmed: still writing.
	buf := make([]byte, 64)
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(buf); err != nil || n == 0 {
		t.Fatalf("the tree stopped writing after the refused dump: %v", err)
	}
	for _, p := range treeOf(pid) {
		if !untraced(p.pid) {
			t.Errorf("process %d is still traced", p.pid)
		}
	}
}

// preforkPy is a pre-fork server: the parent fills 200 MiB, then forks
// four workers that each write one page of it and report, five times a
// second, a count and a checksum of the whole.
const preforkPy = `
import os, sys, time
data = bytearray(os.urandom(1 << 20) * 200)
for w in range(4):
    if os.fork() == 0:
        data[w * 4096] = w + 1
        n = 0
        while True:
            n += 1
            s = sum(data[i] for i in range(0, len(data), 4096))
            with open("w%d.tmp" % w, "w") as f:
                f.write("%d %d\n" % (n, s))
            os.rename("w%d.tmp" % w, "w%d" % w)
            time.sleep(0.2)
while True:
    time.sleep(1)
`

// treePSS is the summed proportional set size of the tree at pid, in KiB.
func treePSS(t *testing.T, pid int) int {
	t.Helper()
	total := 0
	for _, p := range treeOf(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				n, _ := strconv.Atoi(f[1])
				total += n
			}
		}
	}
	return total
}

// TestTreeCopyOnWrite: a pre-fork python server (a parent and four
// workers sharing 200 MiB copy-on-write) comes back as small as it was:
// the image holds the shared pages once, the restored tree's summed PSS
// is within 1.1x of the original's, and each worker still sees its data.
func TestTreeCopyOnWrite(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", preforkPy)
	report := func(w int) []string {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("w%d", w)))
		return strings.Fields(string(b))
	}
	deadline := time.Now().Add(30 * time.Second)
	for w := 0; w < 4; w++ {
		for len(report(w)) != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("worker %d did not report", w)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sums := make([]string, 4)
	for w := range sums {
		sums[w] = report(w)[1]
	}
	before := treePSS(t, pid)
	// A dump reads the pages where they are: the shared ones stay shared.
	dump(t, pid, true)
	if kept := treePSS(t, pid); float64(kept) > 1.01*float64(before) {
		t.Errorf("summed PSS %d KiB after a dump, %d KiB before; want the tree unchanged", kept, before)
	}
	img := dump(t, pid, false)
	if st, _ := os.Stat(img); st.Size() > 260<<20 {
		t.Errorf("image of %d MiB; want the 200 MiB shared stored once", st.Size()>>20)
	}
	waitImageGone(t, img)
	for w := range sums {
		os.Remove(filepath.Join(dir, fmt.Sprintf("w%d", w)))
	}
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	deadline = time.Now().Add(30 * time.Second)
	for w := range sums {
		for len(report(w)) != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("restored worker %d did not report", w)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := report(w)[1]; got != sums[w] {
			t.Errorf("worker %d: checksum %s after the restore; want %s", w, got, sums[w])
		}
	}
	after := treePSS(t, pid)
	t.Logf("summed PSS: %d KiB before, %d KiB after", before, after)
	if float64(after) > 1.1*float64(before) {
		t.Errorf("summed PSS %d KiB after the restore; want within 1.1x of %d KiB", after, before)
	}
}

// TestTreeNamedPipe: a script whose writer (a subshell) and reader (the
// script itself, a loop reading with `< fifo`) talk through a named pipe,
// faster than the reader reads: after a move, the bytes that were in the
// named pipe arrive, every line once, in order.
func TestTreeNamedPipe(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := syscall.Mkfifo(filepath.Join(dir, "q"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `( i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.01; done > q ) &
while read l; do echo "$l" >> out; sleep 0.03; done < q`
	pid := startTree(t, dir, "log", "/bin/bash", "-c", script)
	waitLines(t, out, 20, 10*time.Second)
	img := dump(t, pid, false)
	s := showImage(t, img)
	unread := 0
	for _, p := range s.Processes {
		for _, fd := range p.Files {
			if fd.Kind == "fifo" {
				unread = max(unread, fd.Unread)
			}
		}
	}
	if unread == 0 {
		t.Errorf("no bytes in the named pipe at the dump")
	}
	waitImageGone(t, img)
	before := lineNumbers(t, out)
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	waitLines(t, out, before+40, 20*time.Second)
	lineNumbers(t, out)
}

// sharedPy: a child counts in shared anonymous memory (MAP_SHARED, made
// before the fork) that its parent reads and writes out.
const sharedPy = `
import mmap, os, struct, time
m = mmap.mmap(-1, 4096)
if os.fork() == 0:
    n = 0
    while True:
        n += 1
        m[0:8] = struct.pack("q", n)
        time.sleep(0.02)
while True:
    with open("seen", "a") as f:
        f.write("%d\n" % struct.unpack("q", m[0:8])[0])
    time.sleep(0.05)
`

// TestTreeSharedMemory: shared anonymous memory a parent and its child
// share since a fork is one object after a move: what the restored child
// writes, the restored parent reads, going on from where it was.
func TestTreeSharedMemory(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	seen := filepath.Join(dir, "seen")
	pid := startTree(t, dir, "log", py, "-c", sharedPy)
	last := func() int {
		b, _ := os.ReadFile(seen)
		l := strings.Split(strings.TrimSpace(string(b)), "\n")
		n, _ := strconv.Atoi(l[len(l)-1])
		return n
	}
	waitLines(t, seen, 10, 10*time.Second)
	img := dump(t, pid, false)
	waitImageGone(t, img)
	before := last()
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	deadline := time.Now().Add(10 * time.Second)
	for last() < before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("the parent sees the counter at %d after the restore, %d before; want it to go on (procs-load: %s)", last(), before, ld.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
