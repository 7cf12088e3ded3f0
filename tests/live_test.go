package tests

// Live dumps (procs-dump --live): memory written in passes while the
// victim writes it, and the victim's own check of its memory after the
// restore (tests/victims/livemem.c).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// startLivemem starts livemem with args and waits for it to be ready.
func startLivemem(t *testing.T, args ...string) *proc {
	t.Helper()
	p := start(t, append(victimArgv(t, "livemem"), args...), t.TempDir())
	if _, ok := p.out.wait(10*time.Second, func(all []string, _ bool) bool { return len(all) > 0 }); !ok {
		t.Fatalf("livemem did not start: %s", p.stderrText())
	}
	return p
}

// liveDump runs procs-dump --live -v [extra...] PID into a file and
// returns the image and procs-dump's stderr.
func liveDump(t *testing.T, pid int, extra ...string) (string, string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	args := append([]string{"--live", "-v", "-o", img}, extra...)
	args = append(args, strconv.Itoa(pid))
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "procs-dump"), args...)
	cmd.Stderr = &stderr
	if err := runTimeout(cmd, 2*time.Minute); err != nil {
		t.Fatalf("procs-dump %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("procs-dump %s:\n%s", strings.Join(args, " "), stderr.String())
	return img, stderr.String()
}

// checkLines asks the restored livemem (its output is out) to check its
// memory, and fails t unless every writer (and with churn, the churn
// objects) says ok.
func checkLines(t *testing.T, pid int, out *lines, writers int, churn bool) {
	t.Helper()
	before, _ := out.snapshot()
	unix.Kill(pid, unix.SIGUSR1)
	want := writers
	if churn {
		want++
	}
	all, _ := out.wait(20*time.Second, func(all []string, _ bool) bool {
		n := 0
		for _, l := range all[len(before):] {
			if strings.HasPrefix(l, "check ") || strings.HasPrefix(l, "churn ") {
				n++
			}
		}
		return n >= want
	})
	n := 0
	for _, l := range all[len(before):] {
		if strings.HasPrefix(l, "check ") || strings.HasPrefix(l, "churn ") {
			n++
			if !strings.Contains(l, " ok ") {
				t.Errorf("restored livemem: %q; want ok", l)
			}
		}
	}
	if n < want {
		t.Errorf("restored livemem printed %d check lines; want %d (output: %q)", n, want, all[len(before):])
	}
}

// TestLiveDump dumps a victim that writes its memory all the time, maps
// and unmaps regions, grows its heap, drops pages and starts threads
// while the passes run; the restored victim finds every page as it last
// wrote it.
func TestLiveDump(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name    string
		threads int
		churn   bool
	}{{"one-thread", 1, false}, {"churn", 1, true}, {"threads-churn", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			churn := "0"
			if tc.churn {
				churn = "1"
			}
			// 2 pages a millisecond per writer: 8 MB/s, as a busy service.
			p := startLivemem(t, "48", strconv.Itoa(tc.threads), churn, "2")
			time.Sleep(500 * time.Millisecond)
			img, log := liveDump(t, p.pid())
			for _, want := range []string{"pass 1: ", "pass 2: ", "last pass, frozen: "} {
				if !strings.Contains(log, want) {
					t.Errorf("procs-dump -v says %q; want a line with %q", log, want)
				}
			}
			if !p.exited(10 * time.Second) {
				t.Fatal("the victim still runs after procs-dump (without -K)")
			}
			ld := startLoad(t, img)
			pid := ld.find(t, "livemem", 20*time.Second)
			checkLines(t, pid, ld.out, tc.threads, tc.churn)
		})
	}
}

// smapsHasUffd tells whether a mapping of pid is still registered with
// a userfaultfd (VmFlags uw, um, ui).
func smapsHasUffd(t *testing.T, pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "VmFlags:"); ok {
			for _, fl := range strings.Fields(f) {
				if fl == "uw" || fl == "um" || fl == "ui" {
					return true
				}
			}
		}
	}
	return false
}

// rate is the pages a second livemem's writer 0 last said it wrote,
// after the line index from.
func lastRate(t *testing.T, out *lines, from int) (int, int) {
	t.Helper()
	all, _ := out.wait(5*time.Second, func(all []string, _ bool) bool {
		for _, l := range all[from:] {
			if strings.HasPrefix(l, "rate 0 ") {
				return true
			}
		}
		return false
	})
	r := -1
	for _, l := range all[from:] {
		if n, ok := strings.CutPrefix(l, "rate 0 "); ok {
			r, _ = strconv.Atoi(n)
		}
	}
	if r < 0 {
		t.Fatalf("livemem says no rate: %q", all)
	}
	return r, len(all)
}

// killLiveDump starts procs-dump --live -K of pid with passes without
// end, and kills it after a random wait of 20 to 20+ms milliseconds,
// which it returns.
func killLiveDump(t *testing.T, pid, ms int) time.Duration {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "procs-dump"), "--live", "-K", "--passes=1000", "-o", filepath.Join(t.TempDir(), "image"), strconv.Itoa(pid))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := time.Duration(20+rand.IntN(ms)) * time.Millisecond
	time.Sleep(wait)
	cmd.Process.Kill()
	cmd.Wait()
	return wait
}

// wpPages counts the pages of pid that are write-protected by a
// userfaultfd (pagemap bit 57, PM_UFFD_WP): each would cost the process a
// fault on its next write.
func wpPages(t *testing.T, pid int) int {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err != nil || strings.HasSuffix(l, "[vsyscall]") {
			continue
		}
		buf := make([]byte, (hi-lo)/4096*8)
		if _, err := pm.ReadAt(buf, int64(lo/4096*8)); err != nil {
			continue // gone meanwhile
		}
		for i := 0; i+8 <= len(buf); i += 8 {
			if binary.LittleEndian.Uint64(buf[i:])&(1<<57) != 0 {
				n++
			}
		}
	}
	return n
}

// TestLiveDumpKilled kills procs-dump --live at random moments of its
// passes: the victim goes on, with no write protection left (no
// registration, no page the kernel marks write-protected: it writes as
// fast as before), its memory intact.
func TestLiveDumpKilled(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "64", "2", "1")
	base, seen := lastRate(t, p.out, 0)
	for i := range 6 {
		wait := killLiveDump(t, p.pid(), 400)
		if p.exited(0) {
			t.Fatalf("kill %d after %v: the victim died: %s", i, wait, p.stderrText())
		}
		if smapsHasUffd(t, p.pid()) {
			t.Errorf("kill %d after %v: the victim's memory is still registered with a userfaultfd", i, wait)
		}
		if n := wpPages(t, p.pid()); n > 0 {
			t.Errorf("kill %d after %v: %d pages of the victim are still write-protected", i, wait, n)
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.pid(), fd.Name())); strings.Contains(l, "userfaultfd") {
				t.Errorf("kill %d after %v: the victim holds fd %s -> %s", i, wait, fd.Name(), l)
			}
		}
	}
	time.Sleep(1100 * time.Millisecond)
	after, _ := lastRate(t, p.out, seen)
	// A rate is a timing, which a loaded machine moves: logged only.
	t.Logf("writes a second: %d before, %d after", base, after)
	checkLines(t, p.pid(), p.out, 2, true)
}

// TestLiveDumpUserfaultfd: a victim that holds a userfaultfd of its own
// is dumped as without --live, with a warning; procs-dump then refuses
// the userfaultfd, and the victim goes on.
func TestLiveDumpUserfaultfd(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "4", "1", "0", "2", "uffd")
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "procs-dump"), "--live", "-o", filepath.Join(t.TempDir(), "image"), strconv.Itoa(p.pid()))
	cmd.Stderr = &stderr
	runTimeout(cmd, time.Minute)
	msg := stderr.String()
	if !strings.Contains(msg, "procs-dump: warning: process") || !strings.Contains(msg, "uses userfaultfd itself") {
		t.Errorf("procs-dump says %q; want a warning that the process uses userfaultfd itself", msg)
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(msg, "userfaultfd]") {
		t.Errorf("procs-dump exit %d, %q; want 3, refusing the userfaultfd", code, msg)
	}
	if p.exited(0) {
		t.Fatal("the victim died")
	}
	checkLines(t, p.pid(), p.out, 1, false)
}

// TestLiveImageCrafted: PASS records an attacker adds to a live image,
// over the [vdso], where the process has no mapping, and of processes
// the image does not have, are discarded:
// the process restores and its memory is its own.
func TestLiveImageCrafted(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "8", "1", "0", "2")
	var vdso uint64
	for _, l := range strings.Split(string(readFile(t, fmt.Sprintf("/proc/%d/maps", p.pid()))), "\n") {
		if strings.HasSuffix(l, "[vdso]") {
			vdso, _ = strconv.ParseUint(strings.Split(l, "-")[0], 16, 64)
		}
	}
	img, _ := liveDump(t, p.pid())
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := format.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	crafted := filepath.Join(t.TempDir(), "crafted")
	out, err := os.Create(crafted)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := format.NewWriter(out, r.Info(), format.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xcc}, 2*format.PageSize)
	for _, addr := range []uint64{vdso, 0x10000} {
		if err := w.WritePass(0, addr, junk); err != nil {
			t.Fatal(err)
		}
	}
	// Pages of a process numbered beyond the image's (one that exited
	// during the passes), and a DROP of all of one's.
	if err := w.WritePass(7, 0x10000, junk); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDrop(format.MaxProcesses-1, 0, format.MaxPassAddress); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, format.PageBufSize)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case format.TypePass:
			task, addr, data, err := r.ReadPass(buf)
			if err == nil {
				err = w.WritePass(task, addr, data)
			}
			if err != nil {
				t.Fatal(err)
			}
		case format.TypeDrop:
			task, addr, n, err := r.ReadDrop()
			if err == nil {
				err = w.WriteDrop(task, addr, n)
			}
			if err != nil {
				t.Fatal(err)
			}
		default:
			b, err := r.Payload()
			if err == nil {
				err = w.WriteRecord(h.Type, b)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p.exited(10 * time.Second)
	ld := startLoad(t, crafted)
	pid := ld.find(t, "livemem", 20*time.Second)
	checkLines(t, pid, ld.out, 1, false)
	if m := string(readFile(t, fmt.Sprintf("/proc/%d/maps", pid))); strings.Contains(m, "00010000-") {
		t.Errorf("the restored process has a mapping at 0x10000:\n%s", m)
	}
}

// liveTreeKids is how many children livemem forks in the tree tests.
const liveTreeKids = 3

// startLiveTree starts livemem with liveTreeKids children writing their
// copies of its memory (args after the size: see livemem.c).
func startLiveTree(t *testing.T, args ...string) *proc {
	t.Helper()
	p := startLivemem(t, append([]string{"16", "1", "0", "2", "tree", strconv.Itoa(liveTreeKids)}, args...)...)
	time.Sleep(300 * time.Millisecond)
	// A cycling root has one child fewer, or a zombie, for an instant.
	for try := 0; len(treeOf(p.pid())) != 1+liveTreeKids; try++ {
		if try == 100 {
			t.Fatalf("livemem's tree is %v; want %d processes", treeOf(p.pid()), 1+liveTreeKids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// TestLiveDumpTree dumps live a tree whose processes all write their
// memory, shared copy-on-write at first: every process of the restored
// tree finds its memory as it last wrote it; with -K the tree goes on
// unharmed; a restore with -d too.
func TestLiveDumpTree(t *testing.T) {
	needTools(t)
	for _, tc := range []struct{ name, how string }{{"kill", ""}, {"keep", "-K"}, {"detach", "detach"}} {
		t.Run(tc.name, func(t *testing.T) {
			var dumpArgs []string
			if tc.how == "-K" {
				dumpArgs = []string{"-K"}
			}
			p := startLiveTree(t)
			img, log := liveDump(t, p.pid(), dumpArgs...)
			if !strings.Contains(log, fmt.Sprintf("pass 1 of %d processes: ", 1+liveTreeKids)) || !strings.Contains(log, "last pass, frozen: ") {
				t.Errorf("procs-dump -v says %q; want passes of %d processes", log, 1+liveTreeKids)
			}
			if tc.how == "-K" {
				checkLines(t, p.pid(), p.out, 1+liveTreeKids, false)
				if smapsHasUffd(t, p.pid()) {
					t.Errorf("the dumped root is still registered with a userfaultfd")
				}
				p.cmd.Process.Kill()
			}
			if !p.exited(10 * time.Second) {
				t.Fatal("the victim still runs")
			}
			ld := startLoadAs(t, img, tc.how)
			root := restoredRoot(t, "livemem", nil)
			ld.restored, ld.start = root, startTime(root)
			checkLines(t, root, ld.out, 1+liveTreeKids, false)
		})
	}
}

// TestLiveDumpTreeChanges: a tree whose root kills a child and forks
// another every 20 ms, dumped live (with -K) until a dump saw a child
// come and one go during its passes: the tree goes on unharmed, and
// every process of the restored tree finds its memory as it last wrote
// it (the new child's, the children's that moved up in the order).
func TestLiveDumpTreeChanges(t *testing.T) {
	needTools(t)
	p := startLiveTree(t, "cycle")
	// Whether a fork falls in the passes is the moment's: as many dumps
	// as it takes, for a minute at most.
	var img, log string
	tries := 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !strings.Contains(log, "the tree changed"); tries++ {
		img, log = liveDump(t, p.pid(), "-K")
	}
	if !strings.Contains(log, "the tree changed") {
		t.Fatalf("in %d live dumps, no child came or went during the passes", tries)
	}
	checkLines(t, p.pid(), p.out, 1+liveTreeKids, false)
	p.cmd.Process.Kill()
	if !p.exited(10 * time.Second) {
		t.Fatal("the victim still runs")
	}
	ld := startLoad(t, img)
	root := restoredRoot(t, "livemem", nil)
	ld.restored, ld.start = root, startTime(root)
	checkLines(t, root, ld.out, 1+liveTreeKids, false)
}

// TestLiveDumpTreeKilled kills procs-dump --live of a tree at random
// moments of its passes: every process goes on, with no write
// protection left, its memory intact.
func TestLiveDumpTreeKilled(t *testing.T) {
	needTools(t)
	p := startLiveTree(t)
	for i := range 5 {
		wait := killLiveDump(t, p.pid(), 500)
		tree := treeOf(p.pid())
		if len(tree) != 1+liveTreeKids {
			t.Fatalf("kill %d after %v: the tree is %v", i, wait, tree)
		}
		for _, m := range tree {
			if smapsHasUffd(t, m.pid) {
				t.Errorf("kill %d after %v: process %d is still registered with a userfaultfd", i, wait, m.pid)
			}
		}
	}
	checkLines(t, p.pid(), p.out, 1+liveTreeKids, false)
}

// TestLiveDumpSparse: a process that maps far more than it touches (256
// GiB, 16 pages touched) is tracked without page tables made for what it
// never touched, and restored.
func TestLiveDumpSparse(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "8", "1", "0", "2", "sparse")
	pte := func() int {
		kb, _ := strconv.Atoi(strings.Fields(procStatus(p.pid())["VmPTE"] + " 0")[0])
		return kb
	}
	before := pte()
	img, _ := liveDump(t, p.pid(), "-K")
	if after := pte(); after > before+1024 {
		t.Errorf("the victim's page tables grew from %d to %d KiB in the live dump", before, after)
	}
	checkLines(t, p.pid(), p.out, 1, false)
	p.cmd.Process.Kill()
	p.exited(10 * time.Second)
	ld := startLoad(t, img)
	pid := ld.find(t, "livemem", 20*time.Second)
	checkLines(t, pid, ld.out, 1, false)
}
