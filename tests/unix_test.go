package tests

// Unix sockets bound to no address (socketpairs) in a tree: asyncio's
// self-pipe, a parent and its worker talking, with bytes in flight.

import (
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

// asyncioPy counts in an asyncio loop, waking itself through its
// self-pipe (a socketpair) every round.
const asyncioPy = `
import asyncio
async def main():
    n = 0
    loop = asyncio.get_running_loop()
    while True:
        n += 1
        loop.call_soon_threadsafe(lambda: None)
        with open("count", "a") as f:
            f.write("%d\n" % n)
        await asyncio.sleep(0.02)
asyncio.run(main())
`

// pairPy: a parent sends numbered lines of 1000 bytes to its child over a
// socketpair faster than the child reads them; the child writes each to
// a file and answers "ok N", which the parent writes to another.
const pairPy = `
import os, socket, time
a, b = socket.socketpair()
if os.fork() == 0:
    a.close()
    f = b.makefile("rb")
    with open("got", "a") as out:
        for line in f:
            n = line.split()[0].decode()
            out.write(n + "\n"); out.flush()
            b.sendall(("ok %s\n" % n).encode())
            time.sleep(0.002)
    os._exit(0)
b.close()
a.setblocking(False)
n, pending, acks = 0, b"", b""
with open("acks", "a") as out:
    while True:
        if len(pending) < 100000:
            n += 1
            pending += ("%d %s\n" % (n, "x" * 990)).encode()
        try:
            pending = pending[a.send(pending):]
        except BlockingIOError:
            pass
        try:
            acks += a.recv(65536)
        except BlockingIOError:
            time.sleep(0.001)
        while b"\n" in acks:
            line, acks = acks.split(b"\n", 1)
            out.write(line.decode().split()[1] + "\n"); out.flush()
`

// TestUnixAsyncio: an asyncio program goes on counting after a move.
func TestUnixAsyncio(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	moveCountingPython(t, asyncioPy, "count", 10, 20)
}

// moveCountingPython runs python prog in a new folder, waits for first
// numbered lines in its file name there, moves it (dump killing it,
// then restore) and waits for more lines, each number the next; it
// returns the folder and the lines written before the move.
func moveCountingPython(t *testing.T, prog, name string, first, more int) (dir string, before int) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	dir = t.TempDir()
	file := filepath.Join(dir, name)
	pid := startTree(t, dir, "log", py, "-c", prog)
	waitLines(t, file, first, 10*time.Second)
	moveTree(t, pid, move{between: func(string) { before = lineNumbers(t, file) }})
	waitLines(t, file, before+more, 10*time.Second)
	lineNumbers(t, file)
	return dir, before
}

// TestUnixSocketpair: a parent and its child talking over a socketpair
// with bytes in flight both ways: after a move every line arrives once,
// in order, and every answer too.
func TestUnixSocketpair(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	got, acks := filepath.Join(dir, "got"), filepath.Join(dir, "acks")
	pid := startTree(t, dir, "log", py, "-c", pairPy)
	waitLines(t, got, 200, 10*time.Second)
	img := dump(t, pid, false)
	s := showImage(t, img)
	queued := 0
	for _, p := range s.Processes {
		for _, fd := range p.Files {
			if fd.Kind == "unix" {
				queued++
			}
		}
	}
	if len(s.Processes) != 2 || queued != 2 {
		t.Fatalf("image of %d processes with %d unix sockets; want 2 and 2", len(s.Processes), queued)
	}
	waitImageGone(t, img)
	before := lineNumbers(t, got)
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	waitLines(t, got, before+500, 20*time.Second)
	lineNumbers(t, got)
	waitLines(t, acks, before+400, 20*time.Second)
	lineNumbers(t, acks)
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
		t.Errorf("the program complained: %s", b)
	}
}

// TestUnixRefusals: a socket whose peer a process outside the tree holds
// is refused naming both, with a hint at --external=close, and the
// process runs on.
func TestUnixRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)

	// The test holds the other end of the pair.
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(p[0]), "mine"), os.NewFile(uintptr(p[1]), "theirs")
	defer mine.Close()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	spid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { killTree(t, spid) })
	refusedDump(t, spid, "outside the tree", strconv.Itoa(os.Getpid()), "hint: --external=close")
}

// waitFile waits for file to exist; log, if given, is the program's,
// to show if it does not.
func waitFile(t *testing.T, file string, log ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, err := os.Stat(file); err != nil; _, err = os.Stat(file) {
		if time.Now().After(deadline) {
			var said []byte
			if len(log) > 0 {
				said, _ = os.ReadFile(log[0])
			}
			t.Fatalf("%s did not appear %s", file, said)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusedDump runs procs-dump PID and checks it is refused naming wants,
// and that the process is still there, untraced.
func refusedDump(t *testing.T, pid int, wants ...string) {
	t.Helper()
	refusedDumpWith(t, nil, pid, wants...)
}

// refusedDumpWith is refusedDump with procs-dump's options opts.
func refusedDumpWith(t *testing.T, opts []string, pid int, wants ...string) {
	t.Helper()
	var stderr strings.Builder
	d := exec.Command(filepath.Join(binDir, "procs-dump"), append(opts, strconv.Itoa(pid))...)
	d.Stderr, d.Stdout = &stderr, nil
	err := runTimeout(d, time.Minute)
	for _, w := range wants {
		if err == nil || !strings.Contains(stderr.String(), w) {
			t.Errorf("procs-dump %d: %v, %q; want a refusal naming %q", pid, err, stderr.String(), w)
		}
	}
	if _, ok := procInfo(pid); !ok || !untraced(pid) {
		t.Errorf("process %d is gone or still traced after a refused dump", pid)
	}
}

// busyServerPy is a unix echo server at srv.sock, busy until the file
// "go" exists, and its child, a client that connected and sent a request
// meanwhile, not yet accepted. Once let go, the server accepts and
// answers; the client checks the answer and writes what it found to the
// file "result".
const busyServerPy = `
import os, socket, time
path = os.path.abspath("srv.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
if os.fork() == 0:
    srv.close()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.sendall(b"request\n")
    open("ready", "w").close()
    got = c.makefile("rb").readline()
    open("result", "w").write("answer %s\n" % ("ok" if got == b"echo request\n" else "bad %r" % got))
    while True: time.sleep(1)
while not os.path.exists("go"):
    time.sleep(0.02)
conn, _ = srv.accept()
line = conn.makefile("rb").readline()
conn.sendall(b"echo " + line)
while True: time.sleep(1)
`

// startReadyPy starts python script, as a tree in a folder of its own,
// and waits until it made the file "ready": the folder and the root.
func startReadyPy(t *testing.T, script string) (string, int) {
	t.Helper()
	dir, pid := startPyTree(t, script)
	t.Cleanup(func() { killTree(t, pid) })
	waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
	return dir, pid
}

// TestUnixSentBeforeAccepted: a client that sent a request on a
// connection its server has not accepted yet is refused by name (the
// bytes wait in a socket that has no file until accept, and accepting it
// would take it from the server), by a dump that kills and by -K alike;
// the tree runs on untouched: the server then accepts, reads the request
// and answers, and the client gets the answer.
func TestUnixSentBeforeAccepted(t *testing.T) {
	dir, pid := startReadyPy(t, busyServerPy)
	refusedDump(t, pid, "not yet accepted")
	refusedDumpWith(t, []string{"-K"}, pid, "not yet accepted")
	checkResult(t, dir, 1)
}

// unixAcceptPy is a unix echo server at srv.sock that accepts at once,
// and its three children, clients that each connect, send a numbered
// line, check the echo and close, again and again: at any moment one of
// them may have sent its line on a connection not yet accepted. Each
// writes its count to the file cK, and a wrong answer to "bad".
const unixAcceptPy = `
import os, socket, time
path = os.path.abspath("srv.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(16)
for k in range(3):
    if os.fork() == 0:
        srv.close()
        n = 0
        while True:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            c.sendall(b"%d %d\n" % (k, n))
            got = c.makefile("rb").readline()
            if got != b"echo %d %d\n" % (k, n):
                open("bad", "a").write("client %d, line %d: %r\n" % (k, n, got))
            c.close()
            n += 1
            with open("c%d.tmp" % k, "w") as f: f.write("%d\n" % n)
            os.rename("c%d.tmp" % k, "c%d" % k)
            time.sleep(0.001)
open("ready", "w").close()
while True:
    conn, _ = srv.accept()
    line = conn.makefile("rb").readline()
    conn.sendall(b"echo " + line)
    conn.close()
`

// TestUnixAcceptWhileDumped: clients of the tree's own server send
// requests on new connections all the time, so a freeze often finds one
// sent on a connection not yet accepted, which cannot travel: procs-dump
// lets the tree run a moment and freezes it again until the server has
// accepted it. Every -K dump and the last one, which kills, succeed; the
// restored clients and server go on, every answer right.
func TestUnixAcceptWhileDumped(t *testing.T) {
	dir, pid := startReadyPy(t, unixAcceptPy)
	counts := func() (n [3]int) {
		for k := range n {
			n[k], _ = strconv.Atoi(readIn(dir, fmt.Sprintf("c%d", k)))
		}
		return n
	}
	goesOn := func(what string) {
		t.Helper()
		before := counts()
		waitFor(t, 10*time.Second, func() bool {
			now := counts()
			return now[0] > before[0]+10 && now[1] > before[1]+10 && now[2] > before[2]+10
		}, "the clients to go on "+what)
	}
	goesOn("before the dumps")
	for range 4 {
		dump(t, pid, true)
	}
	goesOn("after the -K dumps")
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	startLoad(t, img)
	restored(t, pid)
	goesOn("after the restore")
	if bad := readIn(dir, "bad"); bad != "" {
		t.Errorf("clients got wrong answers: %s", bad)
	}
}
