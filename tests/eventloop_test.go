package tests

// The event-loop kinds of pkg/files (timerfd, signalfd, inotify), the
// owners and signals of open files (F_SETOWN, F_SETSIG, O_ASYNC) and the
// /proc files of the tree's processes, each checked from the programs'
// own output after a kill, a -K clone and a -d round trip.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loopTrip dumps p as how says (see dumpAs), restores it and returns the
// load and the restored process (named comm).
func loopTrip(t *testing.T, p *proc, how, comm string) (*load, int) {
	t.Helper()
	ld := startLoadAs(t, dumpAs(t, p, how), how)
	var not []int
	if how == "keep" {
		not = append(not, p.pid())
	}
	return ld, ld.find(t, comm, 10*time.Second, not...)
}

// dumpAs dumps p as how says: "kill" (procs-dump), "keep" (procs-dump
// -K) or "detach" (procs-dump, to restore with procs-load -d), and
// returns the image.
func dumpAs(t *testing.T, p *proc, how string) string {
	t.Helper()
	if how == "keep" {
		return dump(t, p.pid(), true)
	}
	img, _ := dumpKilled(t, p)
	return img
}

// startLoadAs restores img as how says (see dumpAs): with "detach",
// procs-load -d, which must leave at once with status 0.
func startLoadAs(t *testing.T, img, how string) *load {
	t.Helper()
	if how != "detach" {
		return startLoad(t, img)
	}
	ld := startLoad(t, img, "-d")
	if !ld.exited(30 * time.Second) {
		t.Fatalf("procs-load -d did not leave")
	}
	if ld.exitCode() != 0 {
		t.Fatalf("procs-load -d: exit %d: %s", ld.exitCode(), ld.stderrText())
	}
	return ld
}

// eventLoop is what the eventloop victim says when it is ready: its PID,
// its two watch descriptors and its O_ASYNC pipe's read end.
type eventLoop struct{ pid, wfile, wdir, sigio int }

// startEventLoop starts the eventloop victim in a folder of its own and
// waits for its first read of its lazy timer.
func startEventLoop(t *testing.T) (*proc, string, eventLoop) {
	t.Helper()
	argv := victimArgv(t, "eventloop")
	dir := t.TempDir()
	p := start(t, append(argv, dir), dir)
	var el eventLoop
	ready := expect(t, p.out, "ready ", 0)
	if _, err := fmt.Sscanf(ready, "ready pid=%d wd file=%d dir=%d sigio fd=%d", &el.pid, &el.wfile, &el.wdir, &el.sigio); err != nil {
		t.Fatalf("%q: %v", ready, err)
	}
	expect(t, p.out, "lazy 1 ", 0)
	return p, dir, el
}

// noFailedCheck fails t if a line of the eventloop victim reports a
// failed check or an error.
func noFailedCheck(t *testing.T, who string, all []string) {
	t.Helper()
	for _, l := range all {
		if strings.Contains(l, "ok=0") || strings.HasPrefix(l, "error") {
			t.Errorf("%s: %q", who, l)
		}
	}
}

// TestEventLoop: a C event loop on an epoll with timerfds (relative,
// absolute on CLOCK_MONOTONIC and CLOCK_REALTIME, one it reads late, a
// one-shot on CLOCK_BOOTTIME), a signalfd, an eventfd, an inotify with
// watch descriptors 3 and 7 and an O_ASYNC pipe that signals it through
// the signalfd. After a move every timer has fired as often as its clock
// says, no more and no fewer (the expirations of the wall-clock timer
// while the process was away are counted, as the kernel does across a
// suspend); a signal reaches it through the signalfd; a line appended
// to the watched file and a file created in the watched folder are
// reported under the same watch descriptors; and the pipe still signals.
func TestEventLoop(t *testing.T) {
	for _, how := range tripModes {
		t.Run(how, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			p, dir, el := startEventLoop(t)
			if el.wfile != 3 || el.wdir != 7 {
				t.Fatalf("watch descriptors %d and %d; want 3 and 7", el.wfile, el.wdir)
			}
			sigio := el.sigio
			expect(t, p.out, "sigio ", 0, fmt.Sprintf("fd=%d", sigio))
			ld, pid := loopTrip(t, p, how, "eventloop")

			// Three seconds of every timer, as the process sees them.
			expect(t, ld.out, "rel ", 0)
			skip := len(mustLines(ld.out))
			for _, name := range []string{"abs", "wall", "once", "lazy"} {
				expect(t, ld.out, name+" ", skip)
			}
			expect(t, ld.out, "sigio ", skip, fmt.Sprintf("fd=%d", sigio))
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			expect(t, ld.out, "sig 10 ", skip)
			f, err := os.OpenFile(filepath.Join(dir, "watched"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("more\n")
			f.Close()
			expect(t, ld.out, "ino ", skip, "wd=3 ", "mask=2 ")
			if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			expect(t, ld.out, "ino ", skip, "wd=7 ", "mask=100 ", "name=new")
			noFailedCheck(t, "restored", mustLines(ld.out))
			if how == "keep" {
				// The original went on as it was.
				n := len(mustLines(p.out))
				expect(t, p.out, "wall ", n)
				expect(t, p.out, "sigio ", n)
				noFailedCheck(t, "original", mustLines(p.out))
			}
		})
	}
}

// TestTailFollow: tail -f (Debian's coreutils tail follows with inotify)
// keeps following its file: lines appended after the restore come out.
func TestTailFollow(t *testing.T) {
	for _, how := range tripModes {
		t.Run(how, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			tail, err := exec.LookPath("tail")
			if err != nil {
				t.Skip("no tail")
			}
			dir := t.TempDir()
			log := filepath.Join(dir, "log")
			if err := os.WriteFile(log, []byte("line 1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			appendLine := func(s string) {
				f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				f.WriteString(s + "\n")
			}
			p := start(t, []string{tail, "-f", log}, dir)
			expect(t, p.out, "line 1", 0)
			appendLine("line 2")
			expect(t, p.out, "line 2", 0)
			if !holdsInotify(p.pid()) {
				t.Fatalf("tail -f (pid %d) holds no inotify: it does not follow with it", p.pid())
			}
			ld, pid := loopTrip(t, p, how, "tail")
			if !holdsInotify(pid) {
				t.Errorf("restored tail (pid %d) holds no inotify", pid)
			}
			for i := 3; i <= 5; i++ {
				appendLine(fmt.Sprintf("line %d", i))
				expect(t, ld.out, fmt.Sprintf("line %d", i), 0)
			}
		})
	}
}

// holdsInotify says whether process pid has an inotify fd.
func holdsInotify(pid int) bool {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == "anon_inode:inotify" {
			return true
		}
	}
	return false
}

// procPeersPy: a parent and its child each hold the other's
// /proc/PID/status and report the name it shows; SIGUSR1 renames each.
const procPeersPy = `
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None)
def rename(name):
    signal.signal(signal.SIGUSR1, lambda *a: libc.prctl(15, name, 0, 0, 0))
def watch(who, pid):
    f = open("/proc/%d/status" % pid)
    while True:
        f.seek(0)
        name = [l.split()[1] for l in f.read().splitlines() if l.startswith("Name:")][0]
        os.write(1, b"%s sees %s\n" % (who, name.encode()))
        time.sleep(0.05)
parent = os.getpid()
child = os.fork()
if child == 0:
    rename(b"kid2")
    watch(b"child", parent)
rename(b"dad2")
watch(b"parent", child)
`

// TestProcPeers: a /proc/PID file of another process of the tree is
// opened again in that process's new folder: after a move each process
// sees the other's new name, not the original's (which, after -K, runs
// on unrenamed).
func TestProcPeers(t *testing.T) {
	for _, how := range tripModes {
		t.Run(how, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			py := victimArgv(t, "python")[0]
			p := start(t, []string{py, "-c", procPeersPy}, t.TempDir())
			t.Cleanup(func() { killTree(t, p.pid()) })
			expect(t, p.out, "parent sees ", 0)
			expect(t, p.out, "child sees ", 0)
			comm := procComm(p.pid())
			orig := treeOf(p.pid())
			ld := startLoadAs(t, dumpAs(t, p, how), how)
			root := restoredRoot(t, comm, orig)
			t.Cleanup(func() { killTree(t, root) })
			tree := treeOf(root)
			if len(tree) != 2 {
				t.Fatalf("restored tree %v; want 2 processes", tree)
			}
			for _, m := range tree {
				if err := syscall.Kill(m.pid, syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
			}
			expect(t, ld.out, "parent sees kid2", 0)
			expect(t, ld.out, "child sees dad2", 0)
		})
	}
}

// restoredRoot finds the root of a restored tree: the descendant of the
// test named comm whose parent is not, other than the processes of
// orig.
func restoredRoot(t *testing.T, comm string, orig []pinfo) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds := descendants()
		var roots []int
		for _, d := range ds {
			if d.comm != comm || d.state == 'Z' || slices.ContainsFunc(orig, func(o pinfo) bool { return o.pid == d.pid }) {
				continue
			}
			if !slices.ContainsFunc(ds, func(o pinfo) bool { return o.pid == d.ppid && o.comm == comm }) {
				roots = append(roots, d.pid)
			}
		}
		if len(roots) == 1 && len(treeOf(roots[0])) > 1 {
			return roots[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored tree of %q: roots %v among %v", comm, roots, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fanotifyPy holds a fanotify group.
const fanotifyPy = `
import ctypes, time
fd = ctypes.CDLL(None).fanotify_init(0, 0)
print("fanotify", fd, flush=True)
while True: time.sleep(0.05)
`

// TestEventLoopRefusals: what procs does not carry is refused by name,
// and the process runs on: a fanotify group; a /proc file of a process
// outside the tree.
func TestEventLoopRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	p := start(t, []string{py, "-c", fanotifyPy}, t.TempDir())
	if l := expect(t, p.out, "fanotify ", 0); strings.HasSuffix(l, " -1") {
		t.Fatalf("fanotify_init failed: %q", l)
	}
	refusedDump(t, p.pid(), "fanotify")

	outside := `
import time
f = open("/proc/1/status")
print("open", flush=True)
while True: time.sleep(0.05)
`
	q := start(t, []string{py, "-c", outside}, t.TempDir())
	expect(t, q.out, "open", 0)
	refusedDump(t, q.pid(), "a /proc file of process 1, outside the tree")
}
