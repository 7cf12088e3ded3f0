package tests

// Pseudo-terminals whose both ends are in the tree: python's pty.fork
// driving a bash loop, script(1), tmux; each checked from the programs'
// own output after a move, a -K clone and a procs-load -d.

import (
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

	"procs/format"
)

// ptyForkPy: a parent drives a bash loop on a pseudo-terminal
// (pty.fork): it sends numbered commands faster than bash answers them
// and reads the answers only every third round; every 10 answers it
// says "hold N" and reads none for 1.5 s, while bytes pile up in both
// queues of the terminal; bash has set its terminal's modes (no echo: an echo would
// show up as a line the parent does not expect) and window size, and
// answers each command with its terminal's name, size and modes. The
// parent reports each answer, checking it is the next and that the
// terminal did not change: "pty N ok=1 ...".
const ptyForkPy = `
import os, pty, sys, time, select
CHILD = r'''
stty -echo -icrnl rows 33 cols 101
echo ready
i=0
while IFS= read -r line; do
  i=$((i+1))
  echo "ans $i $line tty=$(tty) size=$(stty size | tr ' ' x) modes=$(stty -a | grep -o -- '-icrnl' | head -1)"
  sleep 0.1
done
'''
pid, m = pty.fork()
if pid == 0:
    os.execv("/bin/bash", ["bash", "--norc", "--noprofile", "-c", CHILD])
buf = b""
while b"ready" not in buf:
    buf += os.read(m, 4096)
buf = b""
sent, want, rnd, first, hold, until = 0, 1, 0, None, 0, 0
while True:
    rnd += 1
    if sent - want < 8:
        sent += 1
        os.write(m, b"cmd%d\n" % sent)
    time.sleep(0.05)
    if rnd % 3 or rnd < until:
        continue
    if want > 10 * (hold + 1):
        hold += 1
        until = rnd + 30
        print("hold %d" % hold, flush=True)
        continue
    while select.select([m], [], [], 0)[0]:
        buf += os.read(m, 4096)
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        f = line.decode().strip().split()
        if len(f) != 6 or f[0] != "ans":
            print("pty %d ok=0 line=%r" % (want, line), flush=True)
            want += 1
            continue
        first = first or f[3:]
        ok = f[1] == str(want) and f[2] == "cmd%d" % want and f[3:] == first and f[4] == "size=33x101" and f[5] == "modes=-icrnl"
        print("pty %d ok=%d %s %s" % (want, int(ok), f[3], f[4]), flush=True)
        want += 1
`

// startPTYFork starts ptyForkPy and returns it once it reports 3
// answers, with the number of its pseudo-terminal.
func startPTYFork(t *testing.T) (*proc, string) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	p := start(t, []string{py, "-c", ptyForkPy}, t.TempDir())
	t.Cleanup(func() { killTree(t, p.pid()) })
	all, ok := p.out.wait(lineWait, haveLines([]string{"pty"}, 3, 0))
	if !ok {
		t.Fatalf("the pty.fork pair did not start: %s\n%s", p.stderrText(), tail(all, 5))
	}
	reportsRight(t, all)
	return p, perStream(parseAll(all))["pty"][0].kv["tty"]
}

// TestPTYFork: the pty.fork pair moved (killed and restored, cloned with
// -K beside its running original, restored with -d): the answers go on
// from where they were, none lost or repeated (the bytes that were
// waiting in both queues of the terminal came back), and bash sees the
// same terminal: its name, window size and modes.
func TestPTYFork(t *testing.T) {
	needTools(t)
	for _, mode := range []string{"kill", "detach", "clone"} {
		t.Run(mode, func(t *testing.T) {
			noLeftovers(t)
			p, tty := startPTYFork(t)
			// While the parent holds, bytes wait both ways.
			n := len(mustLines(p.out))
			if all, ok := p.out.wait(lineWait, haveLines([]string{"hold"}, 1, n)); !ok {
				t.Fatalf("the parent did not hold:\n%s", tail(all, 5))
			}
			time.Sleep(500 * time.Millisecond)
			var img string
			var before []string
			var args []string
			if mode == "clone" {
				img = dump(t, p.pid(), true)
			} else {
				img, before = dumpKilled(t, p)
			}
			if mode == "detach" {
				args = append(args, "-d")
			}
			s := showImage(t, img)
			var master *showFD
			for _, pr := range s.Processes {
				for _, f := range pr.Files {
					if f.Kind == "ptmx" {
						master = &showFD{f.PTY, f.Unread, f.Typed}
					}
				}
			}
			if master == nil || "/dev/pts/"+strconv.Itoa(master.pty) != tty {
				t.Fatalf("image's pseudo-terminal master: %+v; want that of %s", master, tty)
			}
			if master.unread == 0 || master.typed == 0 {
				t.Fatalf("queued at the dump: %d bytes unread by the parent, %d by bash; want some both ways", master.unread, master.typed)
			}
			ld := startLoad(t, img, args...)
			after, ok := ld.out.wait(lineWait, haveLines([]string{"pty"}, 12, 0))
			if !ok {
				t.Fatalf("restored: %s\n%s", ld.stderrText(), tail(after, 5))
			}
			reportsRight(t, append(before, after...))
			if mode == "clone" {
				// Beside the original, whose number it is: in a devpts
				// instance of its own, where it has it too.
				n := len(mustLines(p.out))
				if all, ok := p.out.wait(lineWait, haveLines([]string{"pty"}, 3, n)); !ok {
					t.Fatalf("the original stopped beside its clone:\n%s", tail(all, 5))
				}
				// The bytes procs-dump took from its queues were put back
				// as they were: it lost and repeated nothing either.
				reportsRight(t, mustLines(p.out))
			}
			for _, r := range perStream(parseAll(after))["pty"] {
				if r.kv["tty"] != tty {
					t.Fatalf("restored bash's terminal: %q; want %s", r.line, tty)
				}
			}
			pid := ld.find(t, "python3", 10*time.Second, p.pid())
			t.Cleanup(func() { killTree(t, pid) })
		})
	}
}

// showFD is what TestPTYFork reads of a master in procs show.
type showFD struct{ pty, unread, typed int }

// ownPairPy holds both ends of a pseudo-terminal (openpty) and passes
// numbered lines through it, reporting each: "pair N ok=1".
const ownPairPy = `
import os, time
m, s = os.openpty()
print("tty %s" % os.ttyname(s), flush=True)
i = 0
while True:
    i += 1
    os.write(m, b"%d\n" % i)
    got = os.read(s, 100).split()[0]
    print("pair %d ok=%d" % (i, int(got == b"%d" % i)), flush=True)
    time.sleep(0.05)
`

// TestPTYRefusals: what cannot travel is refused by name and the
// process runs on: a slave whose master a process outside the tree
// holds (that is not the process's own terminal), a master whose slave
// one outside holds; and a restore that must have a number in use here
// (--pid=new stays in this PID namespace, and so in this devpts), while
// --pid=auto gives a devpts instance of its own and works.
func TestPTYRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	m, s := openPty(t)
	for _, c := range []struct {
		give  *os.File
		wants []string
	}{
		{s, []string{"fd 3", "/dev/pts/", "whose master process " + strconv.Itoa(os.Getpid()) + ", outside the tree"}},
		{m, []string{"fd 3", "the master of the pseudo-terminal /dev/pts/", "process " + strconv.Itoa(os.Getpid()) + ", outside the tree"}},
	} {
		cmd := exec.Command("/bin/sleep", "60")
		cmd.ExtraFiles = []*os.File{c.give}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		go cmd.Wait()
		refusedDump(t, pid, c.wants...)
		killTree(t, pid)
	}

	py := victimArgv(t, "python")[0]
	p := start(t, []string{py, "-c", ownPairPy}, t.TempDir())
	t.Cleanup(func() { killTree(t, p.pid()) })
	all, ok := p.out.wait(lineWait, haveLines([]string{"pair"}, 3, 0))
	if !ok {
		t.Fatalf("the pair did not start: %s", p.stderrText())
	}
	tty := strings.Fields(all[0])[1]
	img := dump(t, p.pid(), true)
	refused(t, loadCmd(img, "--pid=new"), "python3", "--pid=new", "pseudo-terminal "+tty+" is in use here")
	ld := startLoad(t, img)
	after, ok := ld.out.wait(lineWait, haveLines([]string{"pair"}, 5, 0))
	if !ok {
		t.Fatalf("restored beside the original: %s\n%s", ld.stderrText(), tail(after, 5))
	}
	reportsRight(t, after)
	ld.find(t, "python3", 10*time.Second, p.pid())
}

// TestPTYCraftedImages: a pseudo-terminal's members are untrusted input:
// each crafted out of range, in an image whose checksums hold, is
// refused by name, and nothing is started.
func TestPTYCraftedImages(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p, _ := startPTYFork(t)
	// Gone before the crafted images are tried: its bash forks all the
	// time, and a process that appears then would seem left by them.
	tree := treeOf(p.pid())
	img, _ := dumpKilled(t, p)
	waitGone(t, tree)
	kind := func(fs []format.File, k string) *format.File {
		for i := range fs {
			if fs[i].Kind == k {
				return &fs[i]
			}
		}
		t.Fatalf("no %s in the image", k)
		return nil
	}
	master := func(fs []format.File) *format.PTY { return kind(fs, format.FilePTYMaster).PTY }
	slave := func(fs []format.File) *format.PTY { return kind(fs, format.FilePTYSlave).PTY }
	for _, tc := range []struct {
		name  string
		edit  func(ps *[]format.Process, fs []format.File)
		wants []string
	}{
		{"no-state", func(_ *[]format.Process, fs []format.File) { kind(fs, format.FilePTYMaster).PTY = nil },
			[]string{"a pseudo-terminal's master, has no pseudo-terminal state"}},
		{"slave-no-state", func(_ *[]format.Process, fs []format.File) { kind(fs, format.FilePTYSlave).PTY = nil },
			[]string{"a pseudo-terminal's slave, has no pseudo-terminal state"}},
		{"number", func(_ *[]format.Process, fs []format.File) { master(fs).Index = 1 << 20 },
			[]string{"number 1048576", "out of range"}},
		{"negative-number", func(_ *[]format.Process, fs []format.File) { master(fs).Index = -1 },
			[]string{"number -1", "out of range"}},
		{"master-of-master", func(_ *[]format.Process, fs []format.File) { master(fs).Master = 0 },
			[]string{"master 0", "out of range"}},
		{"control-characters", func(_ *[]format.Process, fs []format.File) { master(fs).Cc = []byte{1, 2} },
			[]string{"2 control characters", "out of range"}},
		{"input", func(_ *[]format.Process, fs []format.File) { master(fs).Input = make([]byte, 1<<20) },
			[]string{"1048576", "bytes queued", "out of range"}},
		{"output", func(_ *[]format.Process, fs []format.File) { master(fs).Output = make([]byte, 1<<20) },
			[]string{"1048576 bytes queued", "out of range"}},
		{"exclusive-master", func(_ *[]format.Process, fs []format.File) { master(fs).Exclusive = true },
			[]string{"a master in exclusive mode"}},
		{"slave-master", func(_ *[]format.Process, fs []format.File) { slave(fs).Master = 1 << 30 },
			[]string{"master 1073741824 is not its master"}},
		{"slave-number", func(_ *[]format.Process, fs []format.File) { slave(fs).Index++ },
			[]string{"is not its master"}},
		{"slave-with-queue", func(_ *[]format.Process, fs []format.File) { slave(fs).Input = []byte("rm -rf /\n") },
			[]string{"a slave with the state of a master"}},
		{"slave-with-session", func(ps *[]format.Process, fs []format.File) { slave(fs).Session = (*ps)[1].PID },
			[]string{"a slave with the state of a master"}},
		{"session-root", func(ps *[]format.Process, fs []format.File) { master(fs).Session = (*ps)[0].PID },
			[]string{fmt.Sprintf("controls session %d", p.pid()), "no live process of the image but the root leads"}},
		{"session-none", func(_ *[]format.Process, fs []format.File) { master(fs).Session = 4 << 20 },
			[]string{"controls session 4194304"}},
		{"foreground", func(_ *[]format.Process, fs []format.File) { master(fs).Foreground = 1 },
			[]string{"foreground group 1, not a group of session"}},
		{"foreground-no-session", func(_ *[]format.Process, fs []format.File) { master(fs).Session = 0 },
			[]string{"a foreground group and no session"}},
		{"two-controlling", func(_ *[]format.Process, fs []format.File) {
			mi := slices.IndexFunc(fs, func(f format.File) bool { return f.Kind == format.FilePTYMaster })
			other := fs[mi]
			st := *other.PTY
			st.Index++
			other.PTY = &st
			fs[slices.IndexFunc(fs, func(f format.File) bool { return f.Kind == format.FilePTYSlave })] = other
		}, []string{"both control session"}},
		{"two-descriptions", func(ps *[]format.Process, fs []format.File) {
			mi := slices.IndexFunc(fs, func(f format.File) bool { return f.Kind == format.FilePTYMaster })
			for _, fd := range (*ps)[0].FDs {
				if fd.File == mi {
					(*ps)[0].FDs = append((*ps)[0].FDs, format.FD{Num: 99, File: mi, Flags: fd.Flags, Open: 999})
					break
				}
			}
		}, []string{"fd 99", "one open file description"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, loadCmd(editProcs(t, img, func(ps *[]format.Process, fs *[]format.File) { tc.edit(ps, *fs) })), "python3", tc.wants...)
		})
	}
}

// dumpOrSkip dumps the tree of pid (procs-dump, killing it) and returns
// the image, or skips t when procs-dump refuses it for one of reasons,
// which another part of issue 11 makes travel: the test runs once both
// are merged. (Not a -K dump first: a process it interrupted in poll(2)
// goes on in restart_syscall, which no restore can carry, and the next
// dump would give its poll EINTR.)
func dumpOrSkip(t *testing.T, pid int, why string, reasons ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	var stderr strings.Builder
	d := exec.Command(filepath.Join(binDir, "procs-dump"), "-o", img, strconv.Itoa(pid))
	d.Stderr = &stderr
	if err := runTimeout(d, time.Minute); err == nil {
		return img
	}
	for _, r := range reasons {
		if strings.Contains(stderr.String(), r) {
			t.Skipf("%s (%s)", why, strings.TrimSpace(stderr.String()))
		}
	}
	t.Fatalf("procs-dump %d: %s", pid, stderr.String())
	return ""
}

// TestPTYScript: script(1) running a bash loop on its pseudo-terminal,
// moved: the loop goes on, its lines through script's stdout, none lost
// or repeated, on the same terminal with the window size it set.
func TestPTYScript(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	scr, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) here")
	}
	loop := `stty rows 40 cols 120; i=0; while :; do i=$((i+1)); echo "tick $i ok=1 size=$(stty size | tr ' ' x) tty=$(tty)"; sleep 0.1; done`
	p := start(t, []string{scr, "-q", "-c", loop, os.DevNull}, t.TempDir())
	t.Cleanup(func() { killTree(t, p.pid()) })
	all, ok := p.out.wait(lineWait, haveLines([]string{"tick"}, 3, 0))
	if !ok {
		t.Fatalf("script did not start: %s\n%s", p.stderrText(), tail(all, 5))
	}
	tty := strings.TrimSpace(perStream(parseAll(all))["tick"][0].kv["tty"])
	tree := treeOf(p.pid())
	img := dumpOrSkip(t, p.pid(), "script(1) holds a signalfd, which this branch does not carry yet: the lead enables this test once signalfd travels (issue 11)", "signalfd")
	waitGone(t, tree)
	before, _ := p.out.waitEOF(5 * time.Second)
	ld := startLoad(t, img)
	after, ok := ld.out.wait(lineWait, haveLines([]string{"tick"}, 10, 0))
	if !ok {
		ld.exited(time.Second)
		t.Fatalf("restored (procs-load exit %d): %s\n%s", ld.exitCode(), ld.stderrText(), tail(after, 5))
	}
	t.Cleanup(func() { killTree(t, ld.find(t, "script", 10*time.Second)) })
	reportsRight(t, append(before, after...))
	for _, r := range perStream(parseAll(after))["tick"] {
		if strings.TrimSpace(r.kv["tty"]) != tty || r.kv["size"] != "40x120" {
			t.Fatalf("restored loop: %q; want tty=%s size=40x120", r.line, tty)
		}
	}
}

// TestPTYTmux: a tmux server with two panes, each running a counting
// loop, moved: a client (capture-pane) sees both loops carry on after
// the restore, each pane's counts 1, 2, 3... with no gap or repeat, past
// where they were.
func TestPTYTmux(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("no tmux here")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TMUX=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	loop := func(name string) string {
		return `bash --norc --noprofile -c 'i=0; while :; do i=$((i+1)); echo "` + name + ` $i"; sleep 0.2; done'`
	}
	run("-f", os.DevNull, "new-session", "-d", "-x", "100", "-y", "30", loop("left"))
	server, err := strconv.Atoi(strings.TrimSpace(run("display-message", "-p", "#{pid}")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killTree(t, server) })
	run("split-window", "-d", "-h", loop("right"))
	// The count a pane shows last (0 for none), its history checked:
	// 1, 2, 3...
	count := func(pane, name string) int {
		n := 0
		for _, l := range strings.Split(run("capture-pane", "-p", "-S", "-", "-t", pane), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == name {
				if f[1] != strconv.Itoa(n+1) {
					t.Fatalf("pane %s: %q after %d; want %d", name, l, n, n+1)
				}
				n++
			}
		}
		return n
	}
	panes := map[string]string{"left": "%0", "right": "%1"}
	deadline := time.Now().Add(lineWait)
	for name, pane := range panes {
		for count(pane, name) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("pane %s of tmux does not count", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tree := treeOf(server)
	before := map[string]int{}
	for name, pane := range panes {
		before[name] = count(pane, name)
	}
	img := dumpOrSkip(t, server, "tmux's server listens on a unix socket bound to a path, which this branch does not carry yet: the lead enables this test after merging branch unixsock", "listening", "bound to")
	waitGone(t, tree)
	ld := startLoad(t, img)
	ld.find(t, "tmux: server", 10*time.Second)
	for name, pane := range panes {
		for count(pane, name) < before[name]+5 {
			if time.Now().After(deadline.Add(lineWait)) {
				t.Fatalf("restored: pane %s shows %d; want it past %d\n%s", name, count(pane, name), before[name], ld.stderrText())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
