package tests

// Helpers of the end-to-end feature tests (files_test.go, memory_test.go,
// process_test.go, stream_test.go, terminal_test.go): each test runs
// tests/victims/features.c (or another victim) and checks what a round
// trip must keep from the program's own point of view and through /proc.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	featuresOnce sync.Once
	featuresPath string
	featuresErr  error
)

// featuresBin returns the path of the features victim, built once beside
// the harness's C victims, skipping t when it cannot be built.
func featuresBin(t *testing.T) string {
	t.Helper()
	counter := victimArgv(t, "counter")
	featuresOnce.Do(func() {
		out := filepath.Join(filepath.Dir(counter[0]), "features")
		src := filepath.Join(repoRoot, "tests", "victims", "features.c")
		if b, err := exec.Command("gcc", "-O1", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
			featuresErr = fmt.Errorf("gcc %s: %v\n%s", src, err, b)
			return
		}
		featuresPath = out
	})
	if featuresErr != nil {
		t.Fatal(featuresErr)
	}
	return featuresPath
}

// startFeature starts the features victim in mode with args in a fresh
// folder and waits for its first line.
func startFeature(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	p := start(t, append([]string{featuresBin(t)}, args...), dir)
	expect(t, p.out, "start 0", 0)
	return p
}

// reports waits for n lines of stream after the first skip and returns
// them.
func reports(t *testing.T, l *lines, stream string, n, skip int) []rec {
	t.Helper()
	all, ok := l.wait(lineWait, haveLines([]string{stream}, n, skip))
	if !ok {
		t.Fatalf("want %d lines %q; got:\n%s", n, stream, tail(all, 10))
	}
	rs := perStream(parseAll(all[min(skip, len(all)):]))[stream]
	if bad := badFlags(rs); len(bad) > 0 {
		t.Fatalf("a failed check:\n%s", strings.Join(bad, "\n"))
	}
	return rs
}

// dumpKilled dumps p without -K and returns the image and every line p
// wrote before it died.
func dumpKilled(t *testing.T, p *proc, extra ...string) (string, []string) {
	t.Helper()
	img := dump(t, p.pid(), false, extra...)
	if !p.exited(10 * time.Second) {
		t.Fatalf("pid %d still runs after procs-dump without -K", p.pid())
	}
	all, ok := p.out.waitEOF(5 * time.Second)
	if !ok {
		t.Fatalf("stdout of the dumped pid %d is still open", p.pid())
	}
	return img, all
}

// restoreGoesOn restores img with procs-load [args...], waits for n lines
// of stream, checks they continue before's, finds the restored process
// (named comm) and returns the load, its PID and those lines.
func restoreGoesOn(t *testing.T, img, comm, stream string, n int, before []string, args ...string) (*load, int, []string) {
	t.Helper()
	ld := startLoad(t, img, args...)
	after, ok := ld.out.wait(lineWait, haveLines([]string{stream}, n, 0))
	if !ok {
		t.Fatalf("restored: want %d lines %q; got:\n%s\nprocs-load stderr: %s", n, stream, tail(after, 10), ld.stderrText())
	}
	pid := ld.find(t, comm, 5*time.Second)
	continuity(t, []string{stream}, before, after, false, nil)
	if t.Failed() {
		t.FailNow()
	}
	return ld, pid, after
}

func lastRec(t *testing.T, all []string, stream string) rec {
	t.Helper()
	rs := perStream(parseAll(all))[stream]
	if len(rs) == 0 {
		t.Fatalf("no line %q in:\n%s", stream, tail(all, 10))
	}
	return rs[len(rs)-1]
}

// loadCmd is procs-load [args...] IMAGE.
func loadCmd(img string, args ...string) *exec.Cmd {
	argv := slices.Clone(args)
	if img != "" {
		argv = append(argv, img)
	}
	return exec.Command(filepath.Join(binDir, "procs-load"), argv...)
}

// refused runs cmd (a procs-load) and checks that it fails with exit 125
// and one line "procs-load: ..." (and maybe a hint) holding each of wants,
// and leaves no new process behind. It returns the message.
func refused(t *testing.T, cmd *exec.Cmd, comm string, wants ...string) string {
	t.Helper()
	before := named(comm)
	var live []int
	for _, p := range descendants() {
		live = append(live, p.pid)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runTimeout(cmd, 30*time.Second)
	msg := strings.TrimSpace(stderr.String())
	if cmd.ProcessState == nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 125 {
		t.Errorf("%s: exit = %d (%v); want 125; stderr: %s", strings.Join(cmd.Args, " "), code, err, msg)
	}
	ls := strings.Split(msg, "\n")
	if msg == "" || !strings.HasPrefix(ls[0], "procs-load: ") ||
		len(ls) > 2 || (len(ls) == 2 && !strings.HasPrefix(ls[1], "procs-load: hint: ")) {
		t.Errorf("procs-load stderr = %q; want one line \"procs-load: ...\" (and maybe a hint)", msg)
	}
	for _, w := range wants {
		if !strings.Contains(ls[0], w) {
			t.Errorf("procs-load message %q does not name %q", ls[0], w)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("procs-load stdout = %q; want nothing", stdout.String())
	}
	deadline := time.Now().Add(time.Second)
	for {
		var extra []pinfo
		for _, p := range descendants() {
			if p.state != 'Z' && !slices.Contains(live, p.pid) {
				extra = append(extra, p)
			}
		}
		if len(extra) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left after a refused load: %v", extra)
			break
		}
		liveDescendants(0) // reap
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range named(comm) {
		if !slices.Contains(before, pid) {
			t.Errorf("a process named %s (pid %d) appeared after a refused load", comm, pid)
		}
	}
	t.Logf("refused: %s", msg)
	return msg
}

// patternFile writes n bytes, byte k being k%251, to path.
func patternFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkLog checks that the log of the files mode holds "1\n".."N\n" with
// N at least min.
func checkLog(t *testing.T, path string, least int64) {
	t.Helper()
	b := readFile(t, path)
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range ls {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("%s line %d = %q; want %d", path, i+1, l, i+1)
		}
	}
	if int64(len(ls)) < least {
		t.Errorf("%s has %d lines; want at least %d", path, len(ls), least)
	}
}

// mapsLine returns the line of /proc/PID/maps that starts at addr.
func mapsLine(t *testing.T, pid int, addr string) []string {
	t.Helper()
	a, err := strconv.ParseUint(strings.TrimPrefix(addr, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("%x-", a)) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("no mapping at %s in /proc/%d/maps:\n%s", addr, pid, b)
	return nil
}

// mapsOf is /proc/PID/maps without the device and inode columns.
func mapsOf(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 {
			out = append(out, strings.Join(append(f[:3:3], f[5:]...), " "))
		}
	}
	return out
}
