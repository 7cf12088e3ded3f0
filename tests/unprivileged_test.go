package tests

// An ordinary user dumps and restores its own process: ptrace rights over
// it are all procs-dump needs.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// userDir returns a new folder owned by cred's user, which it can reach.
func userDir(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ptraceLimited says why the kernel would not let a user trace its own
// non-child process, or "".
func ptraceLimited() string {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err == nil && strings.TrimSpace(string(b)) != "0" {
		return "kernel.yama.ptrace_scope is " + strings.TrimSpace(string(b))
	}
	return ""
}

// TestUnprivilegedOwnProcess: an ordinary user starts a python3 victim,
// dumps it with procs-dump (no capability, no -K: it is killed once the
// image is written) and restores it with procs-load; the victim's threads
// go on counting from where they were, as that user.
func TestUnprivilegedOwnProcess(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	if why := ptraceLimited(); why != "" {
		t.Skipf("a user may not trace its own processes here: %s", why)
	}
	argv := victimArgv(t, "python")
	// The system's python3, which every user may run (the one on root's
	// PATH may live in root's home).
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no %s: %v", py, err)
	}
	cred := testUser(t)
	attr := func() *syscall.SysProcAttr { return &syscall.SysProcAttr{Credential: cred} }

	script := publicCopy(t, argv[len(argv)-1])
	dumpBin := publicCopy(t, filepath.Join(binDir, "procs-dump"))
	loadBin := publicCopy(t, filepath.Join(binDir, "procs-load"))
	dir := userDir(t, cred)

	streams := []string{"py0", "py1", "py2", "main"}
	p := startAs(t, []string{py, script}, dir, attr())
	expect(t, p.out, "start 0", 0)
	if all, ok := p.out.wait(lineWait, haveLines(streams, 2, 0)); !ok {
		t.Fatalf("victim: want 2 lines of each of %v; got:\n%s", streams, tail(all, 10))
	}
	comm := procComm(p.pid())
	wantIDs := fmt.Sprintf("%d\t%d\t%d\t%d", cred.Uid, cred.Uid, cred.Uid, cred.Uid)
	if got := procStatus(p.pid())["Uid"]; got != wantIDs {
		t.Fatalf("victim's Uid = %q; want %q", got, wantIDs)
	}

	img := filepath.Join(dir, "img")
	var stderr bytes.Buffer
	cmd := exec.Command(dumpBin, "-o", img, strconv.Itoa(p.pid()))
	cmd.Dir, cmd.Stderr, cmd.SysProcAttr = dir, &stderr, attr()
	if err := runTimeout(cmd, time.Minute); err != nil {
		t.Fatalf("procs-dump as uid %d: %v\n%s", cred.Uid, err, stderr.String())
	}
	if !p.exited(10 * time.Second) {
		t.Fatalf("pid %d still runs after procs-dump without -K", p.pid())
	}
	before, ok := p.out.waitEOF(5 * time.Second)
	if !ok {
		t.Fatalf("stdout of the dumped pid %d is still open", p.pid())
	}

	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	// The victim's stderr is a file in a folder of root's, which the user
	// cannot open again: procs-load's own stands in.
	ld.proc = startAs(t, []string{loadBin, "--stdio=inherit", img}, dir, attr())
	after, ok := ld.out.wait(lineWait, haveLines(streams, 2, 0))
	if !ok {
		t.Fatalf("restored as uid %d: want 2 lines of each of %v; got:\n%s\nprocs-load stderr: %s",
			cred.Uid, streams, tail(after, 10), ld.stderrText())
	}
	pid := ld.find(t, comm, 5*time.Second)
	continuity(t, streams, before, after, false, nil)
	if got := procStatus(pid)["Uid"]; got != wantIDs {
		t.Errorf("restored process's Uid = %q; want %q", got, wantIDs)
	}
}

// userPython skips t unless an ordinary user may trace its own processes
// here and run the system's python3 (the one on root's PATH may live in
// root's home), and returns its path.
func userPython(t *testing.T) string {
	t.Helper()
	if why := ptraceLimited(); why != "" {
		t.Skipf("a user may not trace its own processes here: %s", why)
	}
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no %s: %v", py, err)
	}
	return py
}

// userDumpSetup readies an ordinary user's dump: python for the victim, a
// new user, a copy of procs-dump it can run, a folder of its own.
func userDumpSetup(t *testing.T) (py string, cred *syscall.Credential, dumpBin, dir string) {
	t.Helper()
	needTools(t)
	noLeftovers(t)
	py = userPython(t)
	cred = testUser(t)
	return py, cred, publicCopy(t, filepath.Join(binDir, "procs-dump")), userDir(t, cred)
}

// TestUnprivilegedNeedsCapability: what an ordinary user's procs-dump
// cannot reach without CAP_CHECKPOINT_RESTORE, a mapping of a deleted file
// that no fd holds, is refused (exit 3) with a message that names the
// capability, and the process goes on.
func TestUnprivilegedNeedsCapability(t *testing.T) {
	py, cred, dumpBin, dir := userDumpSetup(t)
	// mmap through libc: Python's mmap module keeps an fd of its own.
	code := `import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open("gone", os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"x" * 4096)
assert libc.mmap(None, 4096, 3, 1, fd, 0) not in (None, 2**64 - 1)  # PROT_READ|PROT_WRITE, MAP_SHARED
os.close(fd)
os.unlink("gone")
print("start 0", flush=True)
n = 0
while True:
    time.sleep(0.05)
    n += 1
    if n % 4 == 0:
        print("tick %d" % (n // 4), flush=True)
`
	p := startAs(t, []string{py, "-c", code}, dir, &syscall.SysProcAttr{Credential: cred})
	expect(t, p.out, "start 0", 0)
	var stderr bytes.Buffer
	cmd := exec.Command(dumpBin, "-o", filepath.Join(dir, "img"), strconv.Itoa(p.pid()))
	cmd.Dir, cmd.Stderr = dir, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	err := runTimeout(cmd, time.Minute)
	msg := strings.TrimSpace(stderr.String())
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("procs-dump as uid %d of a process mapping a deleted file: %v; want exit 3\n%s", cred.Uid, err, msg)
	}
	if !strings.Contains(msg, "CAP_CHECKPOINT_RESTORE") || !strings.Contains(msg, "deleted") || strings.Count(msg, "\n") > 1 {
		t.Errorf("procs-dump message %q; want one line naming the deleted file and CAP_CHECKPOINT_RESTORE", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "img")); err == nil {
		t.Errorf("a refused dump left %s", filepath.Join(dir, "img"))
	}
	if err := waitHealthy(p.pid()); err != nil {
		t.Fatalf("victim harmed: %v", err)
	}
	skip := len(mustLines(p.out))
	expect(t, p.out, "tick", skip)
}

// TestUnprivilegedUnseenPipeEnd: an ordinary user's procs-dump cannot list
// root's fds, yet a pipe whose other end a root process holds is refused
// all the same (poll tells the other end is open, and the tree does not
// hold it), naming the fd; the process goes on.
func TestUnprivilegedUnseenPipeEnd(t *testing.T) {
	py, cred, dumpBin, dir := userDumpSetup(t)
	code := `import os, sys, time
r, w = os.pipe()
print("pipe %d" % r, flush=True)
sys.stdin.readline()  # root opens a write end of its own meanwhile
os.close(w)
print("closed", flush=True)
n = 0
while True:
    time.sleep(0.05)
    n += 1
    print("tick %d %d" % (n, len(os.read(r, 100)) if n % 20 == 0 else 0), flush=True)
`
	p := startAs(t, []string{py, "-c", code}, dir, &syscall.SysProcAttr{Credential: cred})
	line := expect(t, p.out, "pipe ", 0)
	w, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%s", p.pid(), strings.TrimPrefix(line, "pipe ")), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p.stdin.WriteString("go\n")
	expect(t, p.out, "closed", 0)
	var stderr bytes.Buffer
	cmd := exec.Command(dumpBin, "-o", filepath.Join(dir, "img"), strconv.Itoa(p.pid()))
	cmd.Dir, cmd.Stderr = dir, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	err = runTimeout(cmd, time.Minute)
	msg := strings.TrimSpace(stderr.String())
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 || !strings.Contains(msg, "cannot see") || !strings.Contains(msg, "fd 3 ") {
		t.Fatalf("procs-dump as uid %d of a process whose pipe's write end root holds: %v, %q; want exit 3 naming fd 3 and a holder it cannot see", cred.Uid, err, msg)
	}
	if err := waitHealthy(p.pid()); err != nil {
		t.Fatalf("victim harmed: %v", err)
	}
	// The write end root holds still reaches the process.
	w.WriteString("x")
	skip := len(mustLines(p.out))
	expect(t, p.out, "tick", skip)
}

// TestUnprivilegedForeignSemaphore: a semaphore set of root's that the
// user may not read is not the tree's, and does not stop the user's dump
// (procs-dump asks each set's last changers, which needs read access).
func TestUnprivilegedForeignSemaphore(t *testing.T) {
	py, cred, dumpBin, dir := userDumpSetup(t)
	out, err := exec.Command("ipcmk", "-S", "1", "-p", "0600").CombinedOutput()
	f := strings.Fields(string(out))
	if err != nil || len(f) == 0 {
		t.Skipf("ipcmk: %v %s", err, out)
	}
	id := f[len(f)-1]
	t.Cleanup(func() { exec.Command("ipcrm", "-s", id).Run() })
	p := startAs(t, []string{py, "-c", "import time\nprint('start 0', flush=True)\nwhile True: time.sleep(1)"}, dir, &syscall.SysProcAttr{Credential: cred})
	expect(t, p.out, "start 0", 0)
	var stderr bytes.Buffer
	cmd := exec.Command(dumpBin, "-K", "-o", filepath.Join(dir, "img"), strconv.Itoa(p.pid()))
	cmd.Dir, cmd.Stderr = dir, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := runTimeout(cmd, time.Minute); err != nil {
		t.Fatalf("procs-dump -K as uid %d beside root's semaphore set %s: %v\n%s", cred.Uid, id, err, stderr.String())
	}
}
