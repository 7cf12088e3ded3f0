package tests

// Lazy restores (procs-load --lazy): the process runs before its
// private anonymous memory is all in; the victim (livemem) checks its
// own memory once it runs.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// feed writes image to ld's stdin, then closes it: all of it, or with
// hold >= 0 the first hold bytes, then, once the restored livemem runs,
// the bytes up to cut (to the end when cut is negative). With cut ==
// hold the rest never comes: stdin stays open, as a slow writer's.
func feed(t *testing.T, ld *load, image string, hold, cut int64) {
	t.Helper()
	if hold < 0 {
		holdFeed(t, ld, image, 0)(-1)
		return
	}
	rest := holdFeed(t, ld, image, hold)
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if pids := named("livemem"); len(pids) == 1 && untraced(pids[0]) {
				break
			}
		}
		if cut != hold {
			rest(cut)
		}
	}()
}

// holdFeed writes the first hold bytes of image to ld's stdin, and
// returns what writes the rest, up to cut (to the end when cut is
// negative), and closes stdin; neither waits for procs-load to read.
func holdFeed(t *testing.T, ld *load, image string, hold int64) func(cut int64) {
	t.Helper()
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	go func() {
		ld.stdin.Write(b[:hold])
		close(held)
	}()
	return func(cut int64) {
		if cut < 0 {
			cut = int64(len(b))
		}
		go func() {
			<-held
			ld.stdin.Write(b[hold:cut])
			ld.stdin.Close()
		}()
	}
}

// TestLazyPipe restores a plain image and a live one with --lazy from a
// pipe: the restored victim finds every page as it last wrote it.
func TestLazyPipe(t *testing.T) {
	needTools(t)
	for _, live := range []bool{false, true} {
		name := "plain"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) {
			noLeftovers(t)
			p := startLivemem(t, "48", "2", "0", "2")
			time.Sleep(300 * time.Millisecond)
			var img string
			if live {
				img, _ = liveDump(t, p.pid())
			} else {
				img = dump(t, p.pid(), false)
			}
			if !p.exited(10 * time.Second) {
				t.Fatal("the victim still runs after procs-dump")
			}
			ld := startLoad(t, "", "--lazy", "-v")
			feed(t, ld, img, -1, -1)
			pid := ld.find(t, "livemem", 20*time.Second)
			checkLines(t, pid, ld.out, 2, false)
			if !strings.Contains(ld.stderrText(), "the rest comes as the process runs") {
				t.Errorf("procs-load --lazy -v: %q; want the lazy start said", ld.stderrText())
			}
			// Every page in, the guard is gone, procs-load still there.
			if g := waitNone("procs-guard", 20*time.Second); len(g) > 0 {
				t.Errorf("procs-guard %v still runs once every page is in", g)
			}
		})
	}
}

// TestLazyLoaderKilled kills procs-load (SIGKILL) while the process it
// restores with --lazy from a pipe runs and most of its memory has not
// come (the writer holds the rest back), and, in "forked", once the
// process has forked a child that does not die with it: the guard kills
// them, which never run on zeros where their pages had not come
// (livemem, asked to check its memory, would say "bad"), and is gone.
func TestLazyLoaderKilled(t *testing.T) {
	needTools(t)
	img, at, _ := tailedLivemem(t)
	for _, fork := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "forked"}[fork], func(t *testing.T) {
			noLeftovers(t)
			ld := startLoad(t, "", "--lazy")
			// The process runs before the last record: its memory is
			// staged in procs-load, copied in as it faults, the rest
			// at END.
			feed(t, ld, img, at-20, at-20)
			pid := ld.find(t, "livemem", 20*time.Second)
			for deadline := time.Now().Add(20 * time.Second); !untraced(pid); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("livemem %d is not let go: %v", pid, threadStates(pid))
				}
			}
			// It names itself once it runs: it got its fds before the
			// process ran, either way.
			if g := waitNamed(t, "procs-guard"); len(g) != 1 {
				t.Errorf("procs-guard %v while the pages come; want one", g)
			}
			if fork {
				// To the other writer's thread, which forks: the main
				// thread may wait for a page of its stack, which this
				// stream holds back.
				unix.Tgkill(pid, otherThread(t, pid), unix.SIGUSR2)
				for deadline := time.Now().Add(20 * time.Second); len(named("livemem")) < 2; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("livemem did not fork: %v; procs-load: %s", descendants(), ld.stderrText())
					}
				}
			}
			time.Sleep(200 * time.Millisecond) // they write, and pages come as they fault
			ld.cmd.Process.Kill()              // by PID: the procs-load this test started
			if !ld.exited(10 * time.Second) {
				t.Fatal("procs-load still runs after SIGKILL")
			}
			if left := waitNone("livemem", 20*time.Second); len(left) > 0 {
				unix.Kill(pid, unix.SIGUSR1) // to show what they run on
				ld.out.wait(5*time.Second, func(all []string, _ bool) bool { return false })
				t.Errorf("livemem %v still runs after procs-load was killed", left)
			}
			all, _ := ld.out.snapshot()
			for _, l := range all {
				if strings.Contains(l, "bad") {
					t.Errorf("restored livemem: %q", l)
				}
			}
		})
	}
}

// tailedLivemem dumps a livemem of 64 MiB and two writers (which it
// ends), and returns its image with a record added at the stack
// (lazyTail), and the offset and length of that record's payload.
func tailedLivemem(t *testing.T) (string, int64, int64) {
	t.Helper()
	p := startLivemem(t, "64", "2", "0", "2")
	time.Sleep(300 * time.Millisecond)
	img := lazyTail(t, dump(t, p.pid(), false))
	if !p.exited(10 * time.Second) {
		t.Fatal("the victim still runs after procs-dump")
	}
	at, n := lastPages(t, img)
	return img, at, n
}

// TestLazyOrphan has the process restored with --lazy from a pipe fork,
// while most of its memory has not come (the writer holds the rest
// back), a child that does not die with it, and then ends (killed): the
// child, below no one procs-load waits for, still has pages missing.
// procs-load goes on serving it: once the rest comes, it exits with the
// process's status, and the child finds its memory whole ("pages"); the
// stream cut, procs-load kills the child and says so in one line
// ("cut"); procs-load killed, its guard kills the child ("loader-killed").
// What the guard cannot help, as procs-load(1) says: both killed at once,
// the child runs on, on zeros where its pages had not come ("both-killed").
func TestLazyOrphan(t *testing.T) {
	needTools(t)
	img, at, n := tailedLivemem(t)
	for _, end := range []string{"pages", "cut", "loader-killed", "both-killed"} {
		t.Run(end, func(t *testing.T) {
			noLeftovers(t)
			ld := startLoad(t, "", "--lazy")
			rest := holdFeed(t, ld, img, at-20)
			pid := ld.find(t, "livemem", 20*time.Second)
			for deadline := time.Now().Add(20 * time.Second); !untraced(pid); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("livemem %d is not let go: %v", pid, threadStates(pid))
				}
			}
			unix.Tgkill(pid, otherThread(t, pid), unix.SIGUSR2) // (see TestLazyLoaderKilled)
			var child int
			for deadline := time.Now().Add(20 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("livemem did not fork: %v; procs-load: %s", descendants(), ld.stderrText())
				}
				for _, c := range named("livemem") {
					if c != pid {
						child = c
					}
				}
			}
			cst := startTime(child)
			t.Cleanup(func() { killChecked(t, child, cst) })
			unix.Kill(pid, unix.SIGKILL) // the process ends at once
			time.Sleep(300 * time.Millisecond)
			if ld.exited(0) {
				t.Errorf("procs-load exited (%d) when its process ended, its child's pages still to come: %s", ld.exitCode(), ld.stderrText())
			}
			switch end {
			case "pages":
				rest(-1)
				if !ld.exited(30 * time.Second) {
					t.Fatalf("procs-load still runs once every page came: %s", ld.stderrText())
				}
				if code := ld.exitCode(); code != 128+int(unix.SIGKILL) {
					t.Errorf("procs-load exit %d; want %d, its process's (%s)", code, 128+int(unix.SIGKILL), ld.stderrText())
				}
				checkLines(t, child, ld.out, 1, false)
			case "cut":
				rest(at + n/2)
				if !ld.exited(30 * time.Second) {
					t.Fatalf("procs-load still runs once its stream was cut: %s", ld.stderrText())
				}
				msg := ld.stderrText()
				if code := ld.exitCode(); code != 125 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "was killed") {
					t.Errorf("procs-load, its stream cut: exit %d, %q; want 125 and one line saying the process killed", code, msg)
				}
			case "loader-killed", "both-killed":
				guard := waitNamed(t, "procs-guard")
				if end == "both-killed" {
					unix.Kill(guard[0], unix.SIGKILL) // the guard of the procs-load this test started
				}
				ld.cmd.Process.Kill() // by PID: the procs-load this test started
				if !ld.exited(10 * time.Second) {
					t.Fatal("procs-load still runs after SIGKILL")
				}
			}
			if end == "both-killed" {
				before, _ := ld.out.snapshot()
				unix.Kill(child, unix.SIGUSR1)
				check := func(all []string) string {
					for _, l := range all[len(before):] {
						if strings.HasPrefix(l, "check ") {
							return l
						}
					}
					return ""
				}
				all, _ := ld.out.wait(20*time.Second, func(all []string, _ bool) bool { return check(all) != "" })
				if l := check(all); !strings.HasPrefix(l, "check 1 bad") {
					t.Errorf("the child, procs-load and its guard killed: %q; want its check bad (zeros)", l)
				}
				return
			}
			if end != "pages" {
				if left := waitNone("livemem", 20*time.Second); len(left) > 0 {
					t.Errorf("livemem %v still runs; want the child killed", left)
				}
			}
			if g := waitNone("procs-guard", 20*time.Second); len(g) > 0 {
				t.Errorf("procs-guard %v still runs", g)
			}
			all, _ := ld.out.snapshot()
			for _, l := range all {
				if strings.Contains(l, "bad") {
					t.Errorf("restored livemem: %q", l)
				}
			}
		})
	}
}

// otherThread is the TID of a thread of pid other than its first.
func otherThread(t *testing.T, pid int) int {
	t.Helper()
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if tid := mustAtoi(e.Name()); tid != pid {
			return tid
		}
	}
	t.Fatalf("process %d has one thread", pid)
	return 0
}

// waitNone waits up to timeout until no live process below the test is
// named comm, and returns those still there.
func waitNone(comm string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		pids := named(comm)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastPages is the offset of the payload of the image's last PAGES
// record, and its length.
func lastPages(t *testing.T, path string) (int64, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var at, n int64 = -1, 0
	for off := int64(24); off+20 <= int64(len(b)); {
		typ := format.RecordType(binary.LittleEndian.Uint16(b[off:]))
		stored := int64(binary.LittleEndian.Uint32(b[off+4:]))
		if typ == format.TypePages {
			at, n = off+20, stored
		}
		if typ == format.TypeEnd {
			break
		}
		off += 20 + stored
	}
	if at < 0 {
		t.Fatal("the image has no PAGES record")
	}
	return at, n
}

// lazyTail copies image with a PAGES record of zeros added at the
// lowest page of the stack: a record that the process runs at, before
// the stack's own record, which a test can then damage or cut (the
// pages of livemem's memory lie below its libraries, and come before
// it runs from a pipe).
func lazyTail(t *testing.T, image string) string {
	return lazyTailOf(t, image, 0)
}

// lazyTailOf is lazyTail at the stack of the image's process task.
func lazyTailOf(t *testing.T, image string, task int) string {
	t.Helper()
	for _, m := range decodeTree(t, image).Procs[task].Maps {
		if m.Name == "[stack]" {
			return craftImage(t, image, imageRewrite{pages: []pageRun{{task: uint32(task), addr: m.Start, data: make([]byte, format.PageSize)}}})
		}
	}
	t.Fatal("the image has no [stack]")
	return ""
}

// TestLazyFails restores with --lazy an image whose last page record is
// damaged, and one whose stream is cut in its last page record: the
// process, once it ran, is killed; procs-load says so in one line and
// exits 125, and nothing is left.
func TestLazyFails(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "16", "1", "0", "2")
	time.Sleep(300 * time.Millisecond)
	img := lazyTail(t, dump(t, p.pid(), false))
	p.exited(10 * time.Second)
	at, n := lastPages(t, img)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[at+16+n/2] ^= 0xff // a byte of memory, its checksum not made right
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		image string
		cut   int64
	}{{"bad-page", bad, -1}, {"cut", img, at + n/2}} {
		// The process runs before the last record comes.
		t.Run(tc.name, func(t *testing.T) {
			noLeftovers(t)
			ld := startLoad(t, "", "--lazy")
			feed(t, ld, tc.image, at-20, tc.cut)
			if !ld.exited(30 * time.Second) {
				t.Fatal("procs-load --lazy still runs")
			}
			if code := ld.exitCode(); code != 125 {
				t.Errorf("procs-load --lazy exit %d; want 125", code)
			}
			msg := ld.stderrText()
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "procs-load: ") {
				t.Errorf("procs-load --lazy said %q; want one line", msg)
			}
			// The record is past the lazy start for this victim: the
			// process ran, and was killed.
			if !strings.Contains(msg, "was killed") {
				t.Errorf("procs-load --lazy said %q; want the process said killed", msg)
			}
			if pids := named("livemem"); len(pids) > 0 {
				t.Errorf("livemem %v still runs", pids)
			}
		})
	}
}

// TestLazyServe restores with procs receive --lazy from procs-serve on
// loopback, which the loader asks for the pages by range, a plain image
// and a live one (procs send --live: no page superseded later may be
// served) of a victim that maps, unmaps, drops pages and grows its heap
// as it runs: the restored victim finds its memory whole. Then, with a
// larger victim, the server is killed while the process is built: it
// is gone, procs receive says so in one line and exits 125.
func TestLazyServe(t *testing.T) {
	setup(t)
	noLeftovers(t)
	bin := serveBins(t)
	h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}}
	addr := freePort(t)
	srv := startServer(t, h, h, addr, filepath.Join(t.TempDir(), "state"))
	// send sends a new livemem of mib MiB (churning its memory with
	// churn "1"), and returns its id and PID.
	send := func(t *testing.T, mib, churn string, args ...string) (string, int) {
		p := startLivemem(t, mib, "2", churn, "2")
		time.Sleep(300 * time.Millisecond)
		id := strings.TrimSpace(h.must(t, "procs", append([]string{"send", strconv.Itoa(p.pid()), "-s", addr}, args...)...))
		if !p.exited(10 * time.Second) {
			t.Fatal("the victim still runs after procs send")
		}
		return id, p.pid()
	}
	receive := func(t *testing.T, id string) *proc {
		return start(t, []string{filepath.Join(bin, "procs"), "receive", id, "--lazy", "--stdio=inherit", "-s", addr}, t.TempDir())
	}
	for _, live := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "live"}[live]
		t.Run(name, func(t *testing.T) {
			// The live victim maps, unmaps, drops pages and grows its
			// heap all the time, as it runs lazily too.
			var args []string
			churn := "0"
			if live {
				args, churn = append(args, "--live"), "1"
			}
			id, _ := send(t, "48", churn, args...)
			r := receive(t, id)
			pids := waitNamed(t, "livemem")
			checkLines(t, pids[0], r.out, 2, live)
			unix.Kill(pids[0], unix.SIGKILL)
			if !r.exited(10 * time.Second) {
				t.Fatal("procs receive still runs after its process was killed")
			}
		})
	}
	t.Run("server-killed", func(t *testing.T) {
		id, pid := send(t, "256", "0")
		r := receive(t, id)
		// The process is back with its PID, as procs receive's child,
		// being built: the server is killed then, its 256 MiB far from
		// sent (the pages cut once the process runs are TestLazyFails's).
		killServerWhileBuilt(t, r, srv, pid)
		if _, ok := procInfo(pid); ok {
			t.Errorf("process %d still runs", pid)
		}
		if left := named("livemem"); len(left) > 0 {
			t.Errorf("livemem %v still runs", left)
		}
	})
}

// killServerWhileBuilt kills the server srv once the process pid is
// back as the child of r (procs receive --lazy), being built: r must
// exit 125 with one line.
func killServerWhileBuilt(t *testing.T, r *proc, srv *serverProc, pid int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if p, ok := procInfo(pid); ok && p.ppid == r.pid() {
			break
		}
	}
	srv.cmd.Process.Kill() // by PID: the server this test started
	if !r.exited(30 * time.Second) {
		t.Fatalf("procs receive --lazy still runs after the server was killed: %s", r.stderrText())
	}
	msg, _, _ := strings.Cut(r.stderrText(), "\nprocs: hint: ")
	if code := r.exitCode(); code != 125 || strings.Count(msg, "\n") != 0 {
		t.Errorf("procs receive --lazy, the server killed: exit %d, %q; want 125 and one line", code, r.stderrText())
	}
}

// waitNamed waits for the one live process named comm below the test.
func waitNamed(t *testing.T, comm string) []int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if pids := named(comm); len(pids) == 1 {
			return pids
		}
	}
	t.Fatalf("no process named %s: %v", comm, descendants())
	return nil
}

// lazyTreePy is a python tree: a parent that fills 8 MiB and forks three
// children, which share it copy-on-write; then each fills memory of its
// own (the %d MiB) and writes a page in eight of the shared, and reports the
// checksums of both, again and again, in the file named after itself
// (p, c0, c1, c2): "N OWN SHARED".
const lazyTreePy = `
import os, time, zlib
shared = bytearray(os.urandom(8 << 20))
name = "p"
for w in range(3):
    if os.fork() == 0:
        name = "c%%d" %% w
        break
own = bytearray(os.urandom(%d << 20))
for i in range(0, len(shared), 8 * 4096):
    shared[i] = (shared[i] + 1) %% 256
n = 0
while True:
    n += 1
    with open(name + ".tmp", "w") as f:
        f.write("%%d %%08x %%08x\n" %% (n, zlib.crc32(own), zlib.crc32(shared)))
    os.rename(name + ".tmp", name)
    time.sleep(0.1)
`

// lazyTreeNames are the files of lazyTreePy's processes, root first.
var lazyTreeNames = []string{"p", "c0", "c1", "c2"}

// treeSums waits for the report of each process named of lazyTreePy in
// dir, and returns their checksums ("OWN SHARED"), by name.
func treeSums(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		for {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if f := strings.Fields(string(b)); len(f) == 3 {
				sums[name] = f[1] + " " + f[2]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %s of the tree did not report: %v", name, descendants())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return sums
}

// startLazyTree starts lazyTreePy with own MiB of its own per process,
// waits for their reports, and returns its folder, its PID and their
// checksums; the reports are removed, for the restored tree to write.
func startLazyTree(t *testing.T, own int) (string, int, map[string]string) {
	t.Helper()
	dir, pid := startPyTree(t, fmt.Sprintf(lazyTreePy, own))
	sums := treeSums(t, dir, lazyTreeNames...)
	return dir, pid, sums
}

// forgetSums removes the reports of lazyTreePy's processes in dir.
func forgetSums(dir string) {
	for _, name := range lazyTreeNames {
		os.Remove(filepath.Join(dir, name))
	}
}

// sameSums fails t unless got holds the checksums of want.
func sameSums(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, sum := range want {
		if got[name] != sum {
			t.Errorf("process %s of the restored tree: checksums %q; want %q, as before", name, got[name], sum)
		}
	}
}

// TestLazyTree restores with --lazy a python tree whose parent and
// children share memory copy-on-write and each have memory of their own:
// from a pipe, the tree runs while the last process's last pages are
// held back (the others report), then every process finds its memory
// as it was, and what they shared stays shared ("pipe"), or, the stream
// cut then (the tree in a PID namespace of its own), every process is
// gone and procs-load says so in one line ("pipe-cut"), or, procs-load
// killed then, its guard kills them all ("pipe-loader-killed"); from a live image; from procs-serve (procs receive
// --lazy) too; and with the server killed while a larger tree is built,
// or once it runs, every process is gone and procs receive says so in
// one line.
func TestLazyTree(t *testing.T) {
	for _, end := range []string{"pipe", "pipe-cut", "pipe-loader-killed"} {
		t.Run(end, func(t *testing.T) {
			dir, pid, sums := startLazyTree(t, 16)
			pss := treePSS(t, pid)
			img := dump(t, pid, false)
			waitImageGone(t, img)
			forgetSums(dir)
			img = lazyTailOf(t, img, len(lazyTreeNames)-1)
			at, n := lastPages(t, img)
			args := []string{"--lazy", "-v"}
			if end == "pipe-cut" {
				args = append(args, "--pid=ns") // its init adopts the orphans
			}
			ld := startLoad(t, "", args...)
			rest := holdFeed(t, ld, img, at-20)
			t.Cleanup(func() { killTree(t, pid) })
			// The last process waits for its stack; the others run.
			sameSums(t, treeSums(t, dir, lazyTreeNames[:3]...), map[string]string{"p": sums["p"], "c0": sums["c0"], "c1": sums["c1"]})
			if g := named("procs-guard"); len(g) != 1 {
				t.Errorf("procs-guard %v while the pages come; want one", g)
			}
			if end == "pipe-loader-killed" {
				ld.cmd.Process.Kill() // by PID: the procs-load this test started
				if !ld.exited(10 * time.Second) {
					t.Fatal("procs-load still runs after SIGKILL")
				}
				if left := liveDescendants(20 * time.Second); len(left) > 0 {
					t.Errorf("processes still run after procs-load was killed: %v", left)
				}
				return
			}
			if end == "pipe-cut" {
				rest(at + n/2)
				if !ld.exited(30 * time.Second) {
					t.Fatalf("procs-load still runs once its stream was cut: %s", ld.stderrText())
				}
				msg := ld.stderrText()
				if i := strings.LastIndex(strings.TrimSuffix(msg, "\n"), "\n"); i >= 0 {
					msg = msg[i+1:] // past -v's lines
				}
				if code := ld.exitCode(); code != 125 || !strings.HasPrefix(msg, "procs-load: the tree of process") || !strings.Contains(msg, "was killed") {
					t.Errorf("procs-load, its stream cut: exit %d, %q; want 125 and a line saying the tree killed", code, msg)
				}
				if left := liveDescendants(10 * time.Second); len(left) > 0 {
					t.Errorf("processes still run: %v", left)
				}
				return
			}
			rest(-1)
			sameSums(t, treeSums(t, dir, lazyTreeNames...), sums)
			if g := waitNone("procs-guard", 20*time.Second); len(g) > 0 {
				t.Errorf("procs-guard %v still runs once every page is in", g)
			}
			// What the children share with their parent stays shared.
			if after := treePSS(t, pid); float64(after) > 1.1*float64(pss) {
				t.Errorf("summed PSS %d KiB after the restore; want within 1.1x of %d KiB", after, pss)
			}
			if msg := ld.stderrText(); strings.Contains(msg, "comes whole") || !strings.Contains(msg, "4 of 4 processes") {
				t.Errorf("procs-load --lazy -v said %q; want every process lazy", msg)
			}
		})
	}
	// A live image holds the memory first, in passes: the tree runs
	// once the description is read, every lazy page served from the
	// passes staged (the shared ones are in the parent before its
	// children are forked).
	t.Run("live", func(t *testing.T) {
		dir, pid, sums := startLazyTree(t, 16)
		img, _ := liveDump(t, pid)
		waitImageGone(t, img)
		forgetSums(dir)
		ld := startLoad(t, "", "--lazy", "-v")
		feed(t, ld, img, -1, -1)
		t.Cleanup(func() { killTree(t, pid) })
		sameSums(t, treeSums(t, dir, lazyTreeNames...), sums)
		if msg := ld.stderrText(); !strings.Contains(msg, "4 of 4 processes") {
			t.Errorf("procs-load --lazy -v said %q; want every process lazy", msg)
		}
	})
	// serve starts procs-serve, sends it a new tree of own MiB per
	// process (procs send), and starts procs receive --lazy of it: it
	// returns the tree's folder, PID and checksums, the receiver and
	// the server.
	serve := func(t *testing.T, own int) (string, int, map[string]string, *proc, *serverProc) {
		setup(t)
		// The tree first: its check for leftovers comes after the
		// server's end.
		dir, pid, sums := startLazyTree(t, own)
		bin := serveBins(t)
		h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}}
		addr := freePort(t)
		srv := startServer(t, h, h, addr, filepath.Join(t.TempDir(), "state"))
		tree := treeOf(pid)
		id := strings.TrimSpace(h.must(t, "procs", "send", strconv.Itoa(pid), "-s", addr))
		waitGone(t, tree)
		forgetSums(dir)
		r := start(t, []string{filepath.Join(bin, "procs"), "receive", id, "--lazy", "--stdio=inherit", "-s", addr}, t.TempDir())
		t.Cleanup(func() { killTree(t, pid) })
		return dir, pid, sums, r, srv
	}
	t.Run("serve", func(t *testing.T) {
		dir, _, sums, _, _ := serve(t, 16)
		sameSums(t, treeSums(t, dir, lazyTreeNames...), sums)
	})
	t.Run("server-killed", func(t *testing.T) {
		_, pid, _, r, srv := serve(t, 128)
		// The root is back, as procs receive's child, being built: the
		// server is killed then, most of the tree's memory far from
		// sent.
		killServerWhileBuilt(t, r, srv, pid)
		if left := liveDescendants(time.Second); len(left) > 0 {
			t.Errorf("processes still run: %v", left)
		}
	})
	// The tree runs (its 4 x 128 MiB stream behind it, from its start):
	// the server is killed then.
	t.Run("server-killed-running", func(t *testing.T) {
		_, pid, _, r, srv := serve(t, 128)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if p, ok := procInfo(pid); ok && p.ppid == r.pid() && untraced(pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tree does not run: %s", r.stderrText())
			}
		}
		srv.cmd.Process.Kill() // by PID: the server this test started
		if !r.exited(30 * time.Second) {
			t.Fatalf("procs receive --lazy still runs after the server was killed: %s", r.stderrText())
		}
		msg, _, _ := strings.Cut(r.stderrText(), "\nprocs: hint: ")
		if code := r.exitCode(); code != 125 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "the tree of process") {
			t.Errorf("procs receive --lazy, the server killed: exit %d, %q; want 125 and one line saying the tree killed", code, r.stderrText())
		}
		if left := liveDescendants(10 * time.Second); len(left) > 0 {
			t.Errorf("processes still run: %v", left)
		}
	})
}
