package tests

// --stdio: which standard streams a restored process gets.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonPy writes a numbered line to stdout and to stderr every 20 ms:
// started with both on a log file, it is a daemon writing its log.
const daemonPy = `
import sys, time
n = 0
while True:
    n += 1
    sys.stdout.write("out %d\n" % n); sys.stdout.flush()
    sys.stderr.write("err %d\n" % n); sys.stderr.flush()
    time.sleep(0.02)
`

// TestStdioDaemon: a daemon whose stdout and stderr were its log file
// (>>log 2>&1) writes on to that log after a restore, not to procs-load's
// streams, with no line lost or repeated; with --stdio=inherit, its
// streams are procs-load's.
func TestStdioDaemon(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	logf := filepath.Join(dir, "daemon.log")
	log, err := os.OpenFile(logf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", daemonPy)
	cmd.Stdout, cmd.Stderr = log, log // stdin: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	pid := cmd.Process.Pid
	st := startTime(pid)
	t.Cleanup(func() { killChecked(t, pid, st); cmd.Wait() })
	waitLog(t, logf, "out 5")

	// A clone with -K, restored with --stdio=inherit: its lines come to
	// procs-load's stdout and stderr.
	imgK := dump(t, pid, true)
	ld := startLoad(t, imgK, "--pid=new", "--stdio=inherit")
	ld.find(t, "python3", 10*time.Second, pid)
	expect(t, ld.out, "out ", 0)

	// The daemon itself, moved: the log goes on, procs-load's streams
	// stay empty.
	img := dump(t, pid, false)
	cmd.Wait()
	ld2 := startLoad(t, img, "-v")
	restored := ld2.find(t, "python3", 10*time.Second, ld.restored)
	if restored != pid {
		t.Logf("restored as %d (the original PID was taken)", restored)
	}
	before := countLines(t, logf)
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, logf) < before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("the restored daemon did not write on to its log (%d lines, %d before)", countLines(t, logf), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, _ := ld2.out.snapshot(); len(out) > 0 {
		t.Errorf("the restored daemon wrote to procs-load's stdout: %q", out)
	}
	b, _ := os.ReadFile(logf)
	// Every number of each stream once, in order, from 1 on (lines of
	// the -K clone went to procs-load, not here).
	next := map[string]int{"out": 1, "err": 1}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		stream, num, _ := strings.Cut(l, " ")
		n, err := strconv.Atoi(num)
		if err != nil || n != next[stream] {
			t.Fatalf("log line %q; want %s %d (a line lost, repeated or torn)", l, stream, next[stream])
		}
		next[stream]++
	}
	errs, _ := os.ReadFile(ld2.stderr)
	if !regexp.MustCompile(`fd 1: .*daemon\.log, opened again`).Match(errs) || !strings.Contains(string(errs), "fd 0: ") {
		t.Errorf("procs-load -v does not say where the streams went:\n%s", errs)
	}
}

// waitLog waits until file holds a line that is want.
func waitLog(t *testing.T, file, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains("\n"+string(b), "\n"+want+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no line %q in %q", file, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countLines(t *testing.T, file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(fmt.Errorf("count lines: %w", err))
	}
	return strings.Count(string(b), "\n")
}
