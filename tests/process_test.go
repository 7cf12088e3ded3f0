package tests

// Feature tests: PIDs, credentials, timers, alternate stacks, process
// attributes, clocks.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPidModes restores a -K image beside its running original with
// --pid=keep (refused by PID), --pid=auto (its PID, in a PID namespace of
// its own) and --pid=new (a new PID), then, once the original is gone,
// with --pid=auto and --pid=keep (its own PID, here) and --pid=ns.
func TestPidModes(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	orig := startFeature(t, t.TempDir(), "timer")
	reports(t, orig.out, "timer", 2, 0)
	pid := orig.pid()
	img := dump(t, pid, true)

	t.Run("keep-taken", func(t *testing.T) {
		refused(t, loadCmd(img, "--pid=keep"), "features", strconv.Itoa(pid))
		if err := healthy(pid); err != nil {
			t.Errorf("original after a refused --pid=keep: %v", err)
		}
	})
	restoredAs := func(t *testing.T, mode string, want func(int) bool, what string) {
		t.Helper()
		var not []int
		if !orig.exited(0) {
			not = append(not, pid)
		}
		ld := startLoad(t, img, "--pid="+mode)
		if _, ok := ld.out.wait(lineWait, haveLines([]string{"timer"}, 2, 0)); !ok {
			t.Fatalf("procs-load --pid=%s: no lines; stderr: %s", mode, ld.stderrText())
		}
		got := ld.find(t, "features", 5*time.Second, not...)
		if !want(got) {
			t.Errorf("procs-load --pid=%s restored pid %d; want %s", mode, got, what)
		}
		ld.kill(t)
		if !ld.exited(10 * time.Second) {
			t.Fatal("procs-load did not end after its process did")
		}
	}
	// inNS tells whether process p has PID pid in a PID namespace of its
	// own.
	inNS := func(p int) bool {
		return p != pid && procStatus(p)["NSpid"] == fmt.Sprintf("%d\t%d", p, pid)
	}
	t.Run("auto-taken", func(t *testing.T) {
		restoredAs(t, "auto", inNS, fmt.Sprintf("%d in a PID namespace", pid))
	})
	t.Run("new", func(t *testing.T) {
		restoredAs(t, "new", func(p int) bool { return p != pid }, fmt.Sprintf("not %d", pid))
	})
	orig.cmd.Process.Kill()
	if !orig.exited(10 * time.Second) {
		t.Fatal("original did not die")
	}
	t.Run("auto-free", func(t *testing.T) {
		restoredAs(t, "auto", func(p int) bool { return p == pid }, strconv.Itoa(pid))
	})
	t.Run("keep-free", func(t *testing.T) {
		restoredAs(t, "keep", func(p int) bool { return p == pid }, strconv.Itoa(pid))
	})
	t.Run("ns-free", func(t *testing.T) {
		restoredAs(t, "ns", inNS, fmt.Sprintf("%d in a PID namespace", pid))
	})
}

// publicCopy copies the file at src into a folder every user can reach
// and returns the copy's path.
func publicCopy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, readFile(t, src), 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// nobody is the unprivileged user the credential tests run as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// TestCredentials restores, as root, a process that ran as uid 65534 (it
// gets its uid back), and refuses to restore a root process for uid 65534.
func TestCredentials(t *testing.T) {
	t.Run("unprivileged-by-root", func(t *testing.T) {
		needTools(t)
		noLeftovers(t)
		bin := publicCopy(t, featuresBin(t))
		p := startAs(t, []string{bin, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
		expect(t, p.out, "start 0", 0)
		reports(t, p.out, "timer", 2, 0)
		for _, k := range []string{"Uid", "Gid"} {
			if got := procStatus(p.pid())[k]; got != "65534\t65534\t65534\t65534" {
				t.Fatalf("victim's %s = %q; want 65534 four times", k, got)
			}
		}
		img, before := dumpKilled(t, p)
		// --stdio=inherit: its stderr was a file in a folder of the
		// test's, which uid 65534 may not open.
		_, pid, _ := restoreGoesOn(t, img, "features", "timer", 2, before, "--stdio=inherit")
		st := procStatus(pid)
		for _, k := range []string{"Uid", "Gid"} {
			if got := st[k]; got != "65534\t65534\t65534\t65534" {
				t.Errorf("restored process's %s = %q; want 65534 four times", k, got)
			}
		}
		if got := st["Groups"]; got != "" {
			t.Errorf("restored process's Groups = %q; want none", got)
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); l != "/tmp" {
			t.Errorf("restored cwd = %q; want /tmp", l)
		}
	})
	for _, mode := range []string{"new", "auto"} {
		t.Run("unprivileged-by-same-uid/pid-"+mode, func(t *testing.T) {
			sameUID(t, "--pid="+mode)
		})
	}
	t.Run("root-by-unprivileged", func(t *testing.T) {
		needTools(t)
		noLeftovers(t)
		p := startFeature(t, "/tmp", "timer")
		reports(t, p.out, "timer", 2, 0)
		img, _ := dumpKilled(t, p)
		pl := publicCopy(t, filepath.Join(binDir, "procs-load"))
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(pl)
		cmd.Stdin = f
		cmd.Dir = "/tmp"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		msg := refused(t, cmd, "features", "uid 0")
		if !strings.Contains(msg, "root") {
			t.Errorf("procs-load message %q; want it to say root is needed", msg)
		}
	})
}

// sameUID restores as uid 65534, with procs-load [args...], a process that
// ran as uid 65534.
func sameUID(t *testing.T, args ...string) {
	needTools(t)
	noLeftovers(t)
	bin := publicCopy(t, featuresBin(t))
	p := startAs(t, []string{bin, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
	expect(t, p.out, "start 0", 0)
	reports(t, p.out, "timer", 2, 0)
	img, before := dumpKilled(t, p)
	pl := publicCopy(t, filepath.Join(binDir, "procs-load"))
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	// The victim's stderr is a file in a folder of root's: uid 65534
	// cannot open it again, so it gets procs-load's.
	args = append(args, "--stdio=inherit")
	ld.proc = startAs(t, append([]string{pl}, args...), "/tmp", &syscall.SysProcAttr{Credential: nobody})
	go func() {
		defer ld.stdin.Close()
		io.Copy(ld.stdin, f)
	}()
	after, ok := ld.out.wait(lineWait, haveLines([]string{"timer"}, 2, 0))
	if !ok {
		msg := ld.stderrText()
		t.Fatalf("restored by uid 65534: want 2 lines; got:\n%s\nprocs-load stderr: %s", tail(after, 10), msg)
	}
	pid := ld.find(t, "features", 5*time.Second)
	continuity(t, []string{"timer"}, before, after, false, nil)
	if got := procStatus(pid)["Uid"]; got != "65534\t65534\t65534\t65534" {
		t.Errorf("restored process's Uid = %q; want 65534 four times", got)
	}
}

// TestTimerAltstack restores a process whose SIGALRM handler, run on a
// sigaltstack, counts the ticks of an ITIMER_REAL: the timer keeps firing
// and the handler still runs on the altstack.
func TestTimerAltstack(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p := startFeature(t, t.TempDir(), "timer")
	reports(t, p.out, "timer", 3, 0)
	img, before := dumpKilled(t, p)
	ticks0, _ := strconv.Atoi(lastRec(t, before, "timer").kv["ticks"])
	_, pid, after := restoreGoesOn(t, img, "features", "timer", 8, before)
	rs := perStream(parseAll(after))["timer"]
	t1, _ := strconv.Atoi(rs[0].kv["ticks"])
	t2, _ := strconv.Atoi(rs[len(rs)-1].kv["ticks"])
	if t1 < ticks0 {
		t.Errorf("ticks after the restore = %d; before the dump %d; want no reset", t1, ticks0)
	}
	// 7 lines 100 ms apart: about 14 ticks of 50 ms.
	if t2-t1 < 7 {
		t.Errorf("ticks went from %d to %d over %d lines of 100 ms; want the 50 ms timer firing", t1, t2, len(rs)-1)
	}
	cgt, err := strconv.ParseUint(procStatus(pid)["SigCgt"], 16, 64)
	if err != nil || cgt&(1<<(unix.SIGALRM-1)) == 0 {
		t.Errorf("restored SigCgt = %q; want SIGALRM caught", procStatus(pid)["SigCgt"])
	}
}

// attrView is what /proc shows of the attributes the attrs mode sets.
func attrView(t *testing.T, pid int) map[string]string {
	t.Helper()
	v := map[string]string{}
	lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	v["limits"] = string(lim)
	v["umask"] = procStatus(pid)["Umask"]
	v["cwd"], _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	v["nice"] = f[16]
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, pid))
	v["comm"] = strings.TrimSpace(string(comm))
	return v
}

// TestProcessAttributes restores rlimits, umask, cwd, nice and the name
// the process gave itself.
func TestProcessAttributes(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startFeature(t, dir, "attrs", work, "featname")
	reports(t, p.out, "attrs", 2, 0)
	want := attrView(t, p.pid())
	for k, v := range map[string]string{"umask": "0027", "cwd": work, "nice": "5", "comm": "featname"} {
		if want[k] != v {
			t.Fatalf("victim's %s = %q; want %q", k, want[k], v)
		}
	}
	img, before := dumpKilled(t, p)
	_, pid, _ := restoreGoesOn(t, img, "featname", "attrs", 2, before)
	got := attrView(t, pid)
	for _, k := range []string{"limits", "umask", "cwd", "nice", "comm"} {
		if got[k] != want[k] {
			t.Errorf("restored %s = %q; want %q", k, got[k], want[k])
		}
	}
}

// TestMonotonicGoesOn checks that a restored process's CLOCK_MONOTONIC
// goes on from where it was at the dump (procs-load gives it a time
// namespace), so that absolute deadlines on it keep their meaning: the
// time the image waited between dump and restore does not show.
func TestMonotonicGoesOn(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	code := "import time\nn = 0\nwhile True:\n    n += 1\n    print('mono %d ms=%d' % (n, time.monotonic() * 1000), flush=True)\n    time.sleep(0.02)\n"
	orig := start(t, []string{py, "-c", code}, t.TempDir())
	reports(t, orig.out, "mono", 3, 0)
	img, before := dumpKilled(t, orig)
	last := lastRec(t, before, "mono")
	time.Sleep(1500 * time.Millisecond)
	_, _, after := restoreGoesOn(t, img, "python3", "mono", 2, before)
	first := perStream(parseAll(after))["mono"][0]
	was, _ := strconv.ParseInt(last.kv["ms"], 10, 64)
	now, _ := strconv.ParseInt(first.kv["ms"], 10, 64)
	if gap := now - was; gap < 0 || gap > 700 {
		t.Errorf("monotonic clock went from %d ms at the dump to %d ms after the restore (gap %d ms); want it to go on (gap < 700 ms, the image waited 1500 ms)", was, now, gap)
	}
}

// TestPosixTimers: POSIX timers come back under their ids and go on
// firing: one with a signal and a value, one due in an hour, one that
// signals a single thread (whose id changes with --pid=new), and glibc's
// SIGEV_THREAD, whose helper thread gets the signal.
func TestPosixTimers(t *testing.T) {
	for _, mode := range []string{"auto", "new"} {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			p := startFeature(t, t.TempDir(), "ptimer")
			reports(t, p.out, "ptimer", 3, 0)
			ids := timerIDs(p.pid())
			if len(ids) != 4 {
				t.Fatalf("victim's timers %v; want 4", ids)
			}
			img, before := dumpKilled(t, p)
			last := lastRec(t, before, "ptimer")
			_, pid, after := restoreGoesOn(t, img, "features", "ptimer", 8, before, "--pid="+mode)
			if got := timerIDs(pid); !slices.Equal(got, ids) {
				t.Errorf("restored timers %v; want the ids %v", got, ids)
			}
			rs := perStream(parseAll(after))["ptimer"]
			first, end := rs[0], rs[len(rs)-1]
			for k, least := range map[string]int{"a": 20, "c": 12, "d": 8} {
				v0, _ := strconv.Atoi(last.kv[k])
				v1, _ := strconv.Atoi(first.kv[k])
				v2, _ := strconv.Atoi(end.kv[k])
				if v1 < v0 || v2-v1 < least {
					t.Errorf("timer %s fired %d times before the dump, %d then %d after (over %d lines of 100 ms); want it going on",
						k, v0, v1, v2, len(rs)-1)
				}
			}
			if bad := badFlags(rs); len(bad) > 0 {
				t.Errorf("failed checks after the restore:\n%s", strings.Join(bad, "\n"))
			}
		})
	}
}

// timerIDs lists the ids of /proc/PID/timers.
func timerIDs(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/timers", pid))
	var ids []string
	for _, l := range strings.Split(string(b), "\n") {
		if id, ok := strings.CutPrefix(l, "ID: "); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
