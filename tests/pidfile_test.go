package tests

// procs-load -d --pidfile: the daemon pattern, and what a failed restore
// leaves of the file.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPIDFile restores a counter with -d, its streams to a log, and finds
// it by the PID in --pidfile: running, and writing on to the log. A
// restore that fails, or a --pidfile that cannot be written, leaves
// neither the file nor a process.
func TestPIDFile(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	v, _ := startVictim(t, counterSpec("counter"))
	expect(t, v.out, "tick 1", 0)
	img := dump(t, v.pid(), false)
	dir := t.TempDir()
	pidfile, logf := filepath.Join(dir, "app.pid"), filepath.Join(dir, "app.log")

	// First what fails (the image's files are as at the dump until a
	// restored counter writes to them). A damaged image: no file, exit
	// 125.
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.img")
	os.WriteFile(bad, good[:len(good)-100], 0o600)
	gone := filepath.Join(dir, "gone.pid")
	cmd := exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--pid=new", "--pidfile="+gone, bad)
	runTimeout(cmd, 30*time.Second)
	if code := cmd.ProcessState.ExitCode(); code != 125 {
		t.Errorf("procs-load of a cut image = exit %d; want 125", code)
	}
	if _, err := os.Stat(gone); err == nil {
		t.Errorf("a failed restore left its pid file")
	}
	// A pid file that cannot be written: the restore fails, nothing runs.
	var stderr bytes.Buffer
	cmd = exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--pid=new", "--pidfile="+filepath.Join(dir, "no", "such.pid"), img)
	cmd.Stderr = &stderr
	runTimeout(cmd, 30*time.Second)
	if code := cmd.ProcessState.ExitCode(); code != 125 || !strings.Contains(stderr.String(), "--pidfile") {
		t.Errorf("procs-load --pidfile=DIR/no/such.pid = exit %d, %q; want 125 naming --pidfile", code, stderr.String())
	}

	// The good restore.
	log, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// As a daemon: stdin /dev/null, stdout and stderr the log. (A pipe
	// would stay open in the process.)
	cmd = exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--pidfile="+pidfile, img)
	cmd.Stdout, cmd.Stderr = log, log
	if err := runTimeout(cmd, 30*time.Second); err != nil {
		out, _ := os.ReadFile(logf)
		t.Fatalf("procs-load -d --pidfile: %v; log: %s", err, out)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(string(b), "\n"))
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("pid file holds %q; want a PID and a newline", b)
	}
	st := startTime(pid)
	t.Cleanup(func() { killChecked(t, pid, st) })
	if info, ok := procInfo(pid); !ok || info.comm != "counter" {
		t.Fatalf("pid file names %d (%v); want the restored counter", pid, info)
	}
	// The PID went to stdout too, before the process's own lines.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := os.ReadFile(logf)
		ls := strings.Split(string(out), "\n")
		if ls[0] != strconv.Itoa(pid) {
			t.Fatalf("log starts with %q; want the PID %d", ls[0], pid)
		}
		if bytes.Contains(out, []byte("heapok=1")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored counter wrote no tick to its log: %q", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := healthy(pid); err != nil {
		t.Fatalf("restored process: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("beside the pid file: %v; want only app.pid and app.log", ents)
	}
}
