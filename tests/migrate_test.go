package tests

// End-to-end tests of procs save, send, receive and restore with real
// processes: python3 victims that count on their stdout, checkpointed,
// moved through procs-serve and restored, on loopback and between two
// network namespaces.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/api"
)

// counter is the victim: it prints 1, 2, 3... every 10 ms.
const counter = "import time\nn=0\nwhile True:\n n+=1; print(n, flush=True); time.sleep(0.01)\n"

var setupOnce sync.Once

// setup makes the test process a child subreaper, so that processes
// restored with -d (whose procs exits) become its children and can be
// reaped, and marks inherited fds close-on-exec, so that victims hold
// only 0, 1 and 2 (procs refuses a process with a pipe).
func setup(t *testing.T) {
	setupOnce.Do(func() {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				unix.CloseOnExec(fd)
			}
		}
	})
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is missing")
	}
}

// victim is a counting process the test started and owns.
type victim struct {
	pid    int
	out    string // its stdout
	exited chan struct{}
	// taken, when set, says whether a receiver already restored the
	// victim's image (and may have removed it from the server).
	taken func() bool
}

// startCounter starts a counter on h (in its namespace, if any) with
// stdin /dev/null, stdout a file and stderr /dev/null, and waits until
// it has counted a little. It is killed, by PID, at the end of the test.
func startCounter(t *testing.T, h host, dir, name string) *victim {
	t.Helper()
	v := &victim{out: filepath.Join(dir, name+".out"), exited: make(chan struct{})}
	f, err := os.Create(v.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmd *exec.Cmd
	if h.ns == "" {
		cmd = exec.Command("python3", "-c", counter)
	} else {
		// ip netns exec execs the command: the PID is python's.
		cmd = exec.Command("ip", "netns", "exec", h.ns, "python3", "-c", counter)
	}
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.pid = cmd.Process.Pid
	go func() { cmd.Wait(); close(v.exited) }()
	t.Cleanup(func() {
		syscall.Kill(v.pid, syscall.SIGKILL)
		<-v.exited
	})
	waitFor(t, 10*time.Second, func() bool { return len(numbers(t, v.out)) >= 5 }, "victim %d to count", v.pid)
	return v
}

func (v *victim) alive() bool {
	select {
	case <-v.exited:
		return false
	default:
		return true
	}
}

// numbers returns the numbers printed in file name, one a line.
func numbers(t *testing.T, name string) []int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ns []int
	s := bufio.NewScanner(f)
	for s.Scan() {
		if n, err := strconv.Atoi(s.Text()); err == nil {
			ns = append(ns, n)
		}
	}
	return ns
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkContinues checks that a restored counter writing to out goes on
// from last, the last number its original printed; with pid (restored by
// -d), that the PID printed by -d comes first, before the process prints.
func checkContinues(t *testing.T, out string, last, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool { return len(numbers(t, out)) >= 5 }, "the restored process to count in %s", out)
	ns := numbers(t, out)
	if pid != 0 {
		if ns[0] != pid {
			t.Errorf("restore -d printed %v; want the PID %d first", ns, pid)
		}
		ns = ns[1:]
	}
	i := 0
	for i < len(ns) && ns[i] != last+1 {
		i++
	}
	if i == len(ns) || i+3 >= len(ns) || ns[i+3] != last+4 {
		t.Errorf("restored process printed %v; want it to go on from %d", ns, last)
	}
}

// reap kills a restored process by PID and reaps it (the test is a
// subreaper; procs may still be its parent, which reaps it then).
func reap(pid int) {
	syscall.Kill(pid, syscall.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

// children returns the child PIDs of process pid.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// sendWatched runs "procs send PID -s addr" on h and checks that the
// victim dies only once the server lists its image.
func sendWatched(t *testing.T, h host, v *victim, addr, token string, extra ...string) string {
	t.Helper()
	listed := make(chan bool, 1)
	go func() {
		<-v.exited
		// The victim is gone: its image must already be on the server,
		// or in the hands of a receiver that took it from there.
		listed <- listsPID(h, addr, token, v.pid) || v.taken != nil && v.taken()
	}()
	out, errs, code := h.run(t, nil, "procs", append([]string{"send", strconv.Itoa(v.pid), "-s", addr}, extra...)...)
	if code != 0 {
		t.Fatalf("procs send %d = exit %d, %q; want 0", v.pid, code, errs)
	}
	id := strings.TrimSpace(out)
	select {
	case ok := <-listed:
		if !ok {
			t.Errorf("victim %d died before the server listed its image", v.pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("victim %d still runs after procs send", v.pid)
	}
	return id
}

// listsPID asks the server at addr (from h's namespace) whether it holds
// an image of pid.
func listsPID(h host, addr, token string, pid int) bool {
	args := []string{"list", "-s", addr}
	cmd := h.command("procs", args...)
	if token != "" {
		cmd.Env = append(cmd.Env, "PROCS_TOKEN="+token)
	}
	out, err := cmd.Output()
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[2] == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// receiver is a running "procs receive".
type receiver struct {
	cmd    *exec.Cmd
	out    string        // its stdout
	exited chan struct{} // closed once it exited; err is then set
	err    error
}

// receive starts "procs receive --stdio=inherit [args]" on h with stdout
// to a file: the counter's stdout was a file of its own, which
// --stdio=auto would open again.
func receive(t *testing.T, h host, dir string, args ...string) *receiver {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("recv-%d.out", time.Now().UnixNano()))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := h.command("procs", append([]string{"receive", "--stdio=inherit"}, args...)...)
	cmd.Stdout = f
	ef, err := os.Create(out + ".err")
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &receiver{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			for _, c := range children(cmd.Process.Pid) {
				reap(c)
			}
			cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(out + ".err")
			t.Logf("procs receive stderr:\n%s", b)
		}
	})
	return r
}

// migrate moves a victim from a to the server at addr with procs send
// [sendArgs...], where procs receive, started first on b, restores it.
func migrate(t *testing.T, a, b host, addr, token, dir string, recvArgs []string, sendArgs ...string) {
	v := startCounter(t, a, dir, "migrate")
	recv := receive(t, b, dir, append([]string{"-s", addr}, recvArgs...)...)
	v.taken = func() bool { return len(children(recv.cmd.Process.Pid)) > 0 }
	time.Sleep(300 * time.Millisecond) // let receive ask for the next image
	last := 0
	id := sendWatched(t, a, v, addr, token, sendArgs...)
	if ns := numbers(t, v.out); len(ns) > 0 {
		last = ns[len(ns)-1]
	}
	checkContinues(t, recv.out, last, 0)
	kids := children(recv.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("procs receive has children %v; want the restored process", kids)
	}
	waitFor(t, 10*time.Second, func() bool { return !listsPID(b, addr, token, v.pid) }, "%s to leave the server once the process runs", id)
	syscall.Kill(kids[0], syscall.SIGKILL) // by PID: the restored victim
	select {
	case <-recv.exited:
		if ee, ok := recv.err.(*exec.ExitError); !ok || ee.ExitCode() != 128+9 {
			t.Errorf("procs receive after its process was killed: %v; want exit 137", recv.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("procs receive did not exit after its process was killed")
	}
}

func TestMigrateLoopback(t *testing.T) {
	setup(t)
	bin := serveBins(t)
	h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}}
	addr := freePort(t)
	state := filepath.Join(t.TempDir(), "state")
	startServer(t, h, h, addr, state)
	dir := t.TempDir()

	t.Run("send receive", func(t *testing.T) { migrate(t, h, h, addr, "", dir, nil) })

	t.Run("save list restore delete", func(t *testing.T) {
		v := startCounter(t, h, dir, "save")
		out := h.must(t, "procs", "save", "-K", strconv.Itoa(v.pid), "-s", addr)
		id := strings.TrimSpace(out)
		if !api.ValidID(id) || !v.alive() {
			t.Fatalf("procs save -K = %q, victim alive %v; want an id and a live victim", out, v.alive())
		}
		list := h.must(t, "procs", "list", "-s", addr)
		if !strings.Contains(list, id) || !strings.Contains(list, "python3") || !strings.Contains(list, strconv.Itoa(v.pid)) {
			t.Errorf("procs list = %q; want %s python3 %d", list, id, v.pid)
		}
		id2 := sendWatched(t, h, v, addr, "", "-z", "zstd")
		last := numbers(t, v.out)
		// procs restore ID -d: the process runs on with the original PID.
		rout := filepath.Join(dir, "restore.out")
		code, errs := runFiles(t, h, rout, "procs", "restore", id2, "-d", "--pid=keep", "--stdio=inherit", "-s", addr)
		if code != 0 {
			t.Fatalf("procs restore %s -d = exit %d, %q", id2, code, errs)
		}
		defer reap(v.pid)
		checkContinues(t, rout, last[len(last)-1], v.pid) // --pid=keep
		if !listsPID(h, addr, "", v.pid) {
			t.Errorf("procs restore removed the image %s; want it kept", id2)
		}
		h.must(t, "procs", "delete", id, id2, "-s", addr)
		if list := h.must(t, "procs", "list", "-s", addr); strings.Count(list, "\n") != 1 {
			t.Errorf("procs list after delete = %q; want only the header", list)
		}
	})

	t.Run("upload cut", func(t *testing.T) {
		v := startCounter(t, h, dir, "cut")
		proxy := cutProxy(t, addr, 1<<20)
		_, errs, code := h.run(t, nil, "procs", "send", strconv.Itoa(v.pid), "-s", proxy)
		if code != 1 {
			t.Errorf("procs send through a cut connection = exit %d, %q; want 1", code, errs)
		}
		n := len(numbers(t, v.out))
		waitFor(t, 5*time.Second, func() bool { return len(numbers(t, v.out)) > n+3 }, "victim %d to go on counting", v.pid)
		if !v.alive() {
			t.Fatalf("victim %d died after a failed send", v.pid)
		}
		if ns := numbers(t, v.out); !increasing(ns) {
			t.Errorf("victim printed %v after a failed send; want 1, 2, 3...", ns)
		}
		waitFor(t, 5*time.Second, func() bool { return len(stateFiles(t, state)) == 0 }, "the state directory to be empty")
		if list := h.must(t, "procs", "list", "-s", addr); strings.Count(list, "\n") != 1 {
			t.Errorf("procs list after a cut upload = %q; want only the header", list)
		}
	})

	t.Run("ten sends at once", func(t *testing.T) {
		const n = 10
		vs := make([]*victim, n)
		for i := range vs {
			vs[i] = startCounter(t, h, dir, fmt.Sprint("ten", i))
		}
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i, v := range vs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := h.command("procs", "send", strconv.Itoa(v.pid), "-s", addr).Output()
				if err != nil {
					t.Errorf("procs send %d: %v", v.pid, err)
				}
				ids[i] = strings.TrimSpace(string(out))
			}()
		}
		wg.Wait()
		for i, v := range vs {
			select {
			case <-v.exited:
			case <-time.After(5 * time.Second):
				t.Errorf("victim %d still runs after procs send", v.pid)
			}
			img := filepath.Join(dir, "ten.img")
			if _, errs, code := runFilesOut(t, h, img, "procs-fetch", "--delete", "-s", addr, ids[i]); code != 0 {
				t.Fatalf("procs-fetch %s = exit %d, %q", ids[i], code, errs)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			info, _, err := format.Verify(f)
			f.Close()
			if err != nil || info.PID != v.pid {
				t.Errorf("image %s of victim %d: Verify = PID %d, %v; want PID %d and no error", ids[i], v.pid, info.PID, err, v.pid)
			}
		}
	})
}

func increasing(ns []int) bool {
	for i := range ns {
		if ns[i] != i+1 {
			return false
		}
	}
	return len(ns) > 0
}

// runFiles runs a command whose stdout is file out, with stderr in a file
// too: a process restored with -d keeps them, and must not hold a pipe
// the test waits on. It returns the exit status and stderr.
func runFiles(t *testing.T, h host, out string, name string, args ...string) (int, string) {
	t.Helper()
	_, errs, code := runFilesOut(t, h, out, name, args...)
	return code, errs
}

func runFilesOut(t *testing.T, h host, out string, name string, args ...string) (string, string, int) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ef, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	cmd := h.command(name, args...)
	cmd.Stdout, cmd.Stderr = f, ef
	err = cmd.Run()
	errb, _ := os.ReadFile(ef.Name())
	if ee, ok := err.(*exec.ExitError); ok {
		return "", string(errb), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return "", string(errb), 0
}

// cutProxy forwards connections to addr, but cuts each one after limit
// bytes from the client.
func cutProxy(t *testing.T, addr string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				go func() { io.Copy(c, s) }()
				io.CopyN(s, c, limit)
				c.Close()
				s.Close()
			}()
			_ = ctx
		}
	}()
	return ln.Addr().String()
}

func TestMigrateTwoHosts(t *testing.T) {
	migrateTwoHosts(t, nil)
}

// TestMigrateTwoHostsLive is TestMigrateTwoHosts with procs send --live:
// the memory goes in passes while the counter counts.
func TestMigrateTwoHostsLive(t *testing.T) {
	migrateTwoHosts(t, nil, "--live", "-v")
}

// TestMigrateTwoHostsLiveLazy moves the counter with procs send --live
// and procs receive --lazy: the process runs once its description has
// come, and its pages are asked for by range as it touches them.
func TestMigrateTwoHostsLiveLazy(t *testing.T) {
	migrateTwoHosts(t, []string{"--lazy", "-v"}, "--live", "-v")
}

// migrateTwoHosts moves a counter between two network namespaces with
// procs send [sendArgs...] and procs receive [recvArgs...], through
// procs-serve.
func migrateTwoHosts(t *testing.T, recvArgs []string, sendArgs ...string) {
	setup(t)
	nsA, nsB, _, ipB := netns(t)
	bin := serveBins(t)
	work := t.TempDir()
	const token = "e2e-token-migrate-0123456789"
	tokenFile := filepath.Join(work, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	env := []string{"PROCS_SERVER=", "PROCS_TOKEN_FILE=", "PROCS_TOKEN=" + token}
	a := host{ns: nsA, bin: bin, env: env}
	b := host{ns: nsB, bin: bin, env: env}
	addr := net.JoinHostPort(ipB, "7627")
	srv := startServer(t, b, a, addr, filepath.Join(work, "state"), "--token-file", tokenFile)
	migrate(t, a, b, addr, token, work, recvArgs, sendArgs...)
	stopServer(t, srv)
}
