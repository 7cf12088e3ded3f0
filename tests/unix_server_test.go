package tests

// Unix sockets with addresses in a tree: a server listening on a path
// with its clients, one connection queued and not accepted; datagram and
// seqpacket queues; a client of a server outside the tree
// (--external=close); names taken on the restore host.

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

	"golang.org/x/sys/unix"

	"procs/format"
)

// echoServerPy is a server on a unix socket at srv.sock and two clients,
// its children. The server greets each connection it accepts ("hello"),
// then answers each line with "echo LINE", reading a few bytes at a
// time, so that requests wait in its queues; it accepts the second
// connection only once the file "accept" exists: until then that one is
// queued, not accepted. Each client waits for the greeting, then sends
// two numbered requests at once, checks each answer and writes its
// number to its file (a or b).
const echoServerPy = `
import os, socket, time, select, sys
path = os.path.abspath("srv.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)

def client(name):
    n = 0
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    f = c.makefile("rb")
    if f.readline() != b"hello\n":
        raise SystemExit(name + ": no greeting")
    while True:
        c.sendall(b"%d\n%d\n" % (n + 1, n + 2))
        for k in (1, 2):
            line = f.readline()
            if line != b"echo %d\n" % (n + k):
                raise SystemExit("%s: answer %r to %d" % (name, line, n + k))
            with open(name, "a") as log: log.write("%d\n" % (n + k))
        n += 2

for name in ("a", "b"):
    if os.fork() == 0:
        srv.close()
        client(name)
        os._exit(0)
conns = []
while True:
    if not conns or os.path.exists("accept"):
        r, _, _ = select.select([srv], [], [], 0)
        if r:
            c, _ = srv.accept()
            if c.getsockname() != path:
                raise SystemExit("server: accepted on %r" % c.getsockname())
            c.sendall(b"hello\n")
            conns.append([c, b""])
    r, _, _ = select.select([cc[0] for cc in conns], [], [], 0.005)
    for cc in conns:
        if cc[0] in r:
            d = cc[0].recv(3)
            if not d:
                raise SystemExit("server: a client left")
            cc[1] += d
            while b"\n" in cc[1]:
                line, cc[1] = cc[1].split(b"\n", 1)
                cc[0].sendall(b"echo " + line + b"\n")
    time.sleep(0.005)
`

// TestUnixEchoServer: the server and its two clients move, one client
// being served with requests in flight, the other queued on the
// listening socket: the first goes on where it was, and the second is
// served once accepted. Moved by a dump that kills, and by a -K clone
// (the original killed after the dump, its socket file left behind)
// restored with -d.
func TestUnixEchoServer(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "kill", true: "keep"}[keep], func(t *testing.T) {
			dir := t.TempDir()
			pid := startTree(t, dir, "log", py, "-c", echoServerPy)
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			served, queued := waitServed(t, a, b)
			before := -1
			img := moveTree(t, pid, move{keep: keep, detach: keep, between: func(img string) {
				checkEchoImage(t, img)
				before = linesIn(served)
			}})
			if before < 0 {
				t.Fatalf("image %s was not checked", img)
			}
			waitLines(t, served, before+100, 20*time.Second)
			if n := linesIn(queued); n != 0 {
				t.Fatalf("the queued client was served before it was accepted: %d lines", n)
			}
			if err := os.WriteFile(filepath.Join(dir, "accept"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitLines(t, queued, 100, 20*time.Second)
			for _, f := range []string{served, queued} {
				if keep {
					numbersRestartOnce(t, f)
				} else {
					lineNumbers(t, f)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
				t.Errorf("the programs complained: %s", b)
			}
		})
	}
}

// stopKill stops every process of pid's tree, then kills them: none
// sees another die (and writes of it to a file the image has open).
func stopKill(t *testing.T, pid int) {
	for _, p := range treeOf(pid) {
		syscall.Kill(p.pid, syscall.SIGSTOP)
	}
	killTree(t, pid)
}

// waitServed waits until one of the files a and b has 50 lines, and
// returns it and the other.
func waitServed(t *testing.T, a, b string) (served, queued string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		switch {
		case linesIn(a) >= 50:
			return a, b
		case linesIn(b) >= 50:
			return b, a
		case time.Now().After(deadline):
			t.Fatal("no client was served")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linesIn is the number of lines of file (0 if it does not exist).
func linesIn(file string) int {
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), "\n")
}

// checkEchoImage checks the image of echoServerPy holds the listening
// socket at its path with one connection queued and an accepted
// connection, and logs how many sockets have bytes in flight.
func checkEchoImage(t *testing.T, img string) {
	t.Helper()
	listening, accepted, inFlight := 0, 0, 0
	for _, f := range decodeTree(t, img).Files {
		u := f.Unix
		switch {
		case u == nil:
		case u.Listening:
			listening++
			if len(u.Queue) != 1 || !strings.HasSuffix(u.Path, "/srv.sock") {
				t.Errorf("listening socket at %q with queue %v; want srv.sock and one connection", u.Path, u.Queue)
			}
		case u.Listener != nil:
			accepted++
		}
		if u != nil && len(u.Data) > 0 {
			inFlight++
		}
	}
	if listening != 1 || accepted != 1 {
		t.Errorf("image: %d listening, %d accepted; want 1 and 1", listening, accepted)
	}
	// Nearly always a request or an answer is under way, but the moment
	// of the dump decides (TestUnixQueues has bytes queued for sure).
	t.Logf("image: %d sockets with bytes in flight", inFlight)
}

// numbersRestartOnce checks that file's numbered lines go 1, 2, 3... but
// for one step back at most, where a -K clone went on from the dump while
// the original had gone further before it was killed.
func numbersRestartOnce(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	back := 0
	for i := 1; i < len(lines); i++ {
		p, _ := strconv.Atoi(lines[i-1])
		n, _ := strconv.Atoi(lines[i])
		if n != p+1 {
			back++
			if back > 1 || n > p || n < 1 {
				t.Fatalf("%s: line %d is %q after %q (lines %v)", file, i+1, lines[i], lines[i-1], around(lines, i))
			}
		}
	}
}

// pyChecks starts the python programs that check what they find after a
// move: check records "WHAT ok", or what it got against what it wanted,
// in out, which they write to the file "result".
const pyChecks = `out = []
def check(what, got, want):
    out.append("%s %s" % (what, "ok" if got == want else "bad %r, want %r" % (got, want)))
`

// queuesPy fills queues and waits for the file "go": a datagram pair and
// a seqpacket pair with messages of every size from 1 to 40 bytes, the
// seqpacket reader having peeked twice at a peek offset (SO_PEEK_OFF) of
// its own; a datagram socket bound to dgram.sock with messages from a
// client connected to it and from one that is not, and with SO_PASSCRED
// and a receive timeout; one bound to an abstract name, with messages
// from an unbound socket and from one bound to sender.sock, which its
// recvfrom names. Then it reads them all and writes what it found to the
// file "result".
const queuesPy = pyChecks + `
import os, socket, struct, time, sys
U = socket.AF_UNIX
def msg(n): return b"%d:" % n + b"x" * n
dp = socket.socketpair(U, socket.SOCK_DGRAM)
sp = socket.socketpair(U, socket.SOCK_SEQPACKET)
for n in range(1, 41):
    dp[0].send(msg(n)); sp[0].send(msg(n))
SO_PEEK_OFF = 42
sp[1].setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
sp[1].recv(100, socket.MSG_PEEK); sp[1].recv(100, socket.MSG_PEEK)
dp[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 100000)
path = os.path.abspath("dgram.sock")
srv = socket.socket(U, socket.SOCK_DGRAM)
srv.bind(path)
os.chmod(path, 0o640)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
tv = struct.pack("ll", 2, 500000)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
conn = socket.socket(U, socket.SOCK_DGRAM)
conn.connect(path)
free = socket.socket(U, socket.SOCK_DGRAM)
for n in range(1, 6):
    conn.send(b"c" + msg(n)); free.sendto(b"f" + msg(n), path)
name = b"\0procs-test-queues-%d" % os.getpid()
ab = socket.socket(U, socket.SOCK_DGRAM)
ab.bind(name)
sender = os.path.abspath("sender.sock")
named = socket.socket(U, socket.SOCK_DGRAM)
named.bind(sender)
for n in range(1, 4):
    free.sendto(b"a" + msg(n), name); named.sendto(b"n" + msg(n), name)
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
def drain(s):
    s.setblocking(False)
    got = []
    while True:
        try: got.append(s.recv(100))
        except BlockingIOError: return got
check("dgram", drain(dp[1]), [msg(n) for n in range(1, 41)])
check("peek", sp[1].recv(100, socket.MSG_PEEK), msg(3))
sp[1].setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, -1)
check("seqpacket", drain(sp[1]), [msg(n) for n in range(1, 41)])
want = []
for n in range(1, 6): want += [b"c" + msg(n), b"f" + msg(n)]
check("bound", drain(srv), want)
ab.setblocking(False)
got = [ab.recvfrom(100) for n in range(6)]
want = []
for n in range(1, 4): want += [b"a" + msg(n), b"n" + msg(n)]
check("abstract", [d for d, _ in got], want)
check("from", [a for d, a in got if d[:1] == b"n"], [sender] * 3)
check("name", (srv.getsockname(), ab.getsockname(), conn.getpeername()), (path, name, path))
check("mode", oct(os.stat(path).st_mode & 0o777), oct(0o640))
check("passcred", srv.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED), 1)
check("timeout", srv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16), tv)
check("sndbuf", dp[0].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), 200000)
conn.send(b"after")
srv.setblocking(True)
check("send", srv.recv(100), b"after")
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixQueues: queued messages keep their boundaries and order, in
// datagram and seqpacket sockets, bound and not, with the peek offset,
// addresses and options the program set, after a dump that kills and
// after a -K clone restored with -d.
func TestUnixQueues(t *testing.T) {
	movedPython(t, queuesPy, 12, nil)
}

// extServerPy answers each line of each connection on ext.sock with
// "echo LINE", a thread a connection.
const extServerPy = `
import os, socket, threading
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(os.path.abspath("ext.sock"))
srv.listen(8)
def serve(c):
    f = c.makefile("rb")
    for line in f:
        c.sendall(b"echo " + line)
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// extClientPy sends numbered requests to the server at ext.sock, writing
// each number answered to the file "got"; on a lost connection it writes
// to "lost" and connects again, asking again what was not answered.
const extClientPy = `
import os, socket, time
n = 0
while True:
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(os.path.abspath("ext.sock"))
        f = c.makefile("rb")
        while True:
            c.sendall(b"%d\n" % (n + 1))
            line = f.readline()
            if not line:
                raise ConnectionResetError("end of the connection")
            if line != b"echo %d\n" % (n + 1):
                raise SystemExit("answer %r to %d" % (line, n + 1))
            n += 1
            with open("got", "a") as g: g.write("%d\n" % n)
            time.sleep(0.01)
    except OSError as e:
        with open("lost", "a") as l: l.write("%s\n" % e)
        time.sleep(0.05)
`

// TestUnixExternalClose: a client of a server outside the tree is refused
// naming the server's socket and the process holding it, and the process
// runs on; with --external=close it moves, sees its connection closed,
// connects again and goes on.
func TestUnixExternalClose(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	server := startTree(t, dir, "server.log", py, "-c", extServerPy)
	waitFile(t, filepath.Join(dir, "ext.sock"))
	pid := startTree(t, dir, "log", py, "-c", extClientPy)
	got := filepath.Join(dir, "got")
	waitLines(t, got, 20, 20*time.Second)
	refusedDump(t, pid, "ext.sock", "outside the tree", fmt.Sprintf("process %d", server), "hint: --external=close")
	img := dump(t, pid, false, "--external=close")
	waitImageGone(t, img)
	before := linesIn(got)
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	waitLines(t, got, before+50, 20*time.Second)
	lineNumbers(t, got)
	if b, _ := os.ReadFile(filepath.Join(dir, "lost")); !strings.Contains(string(b), "end of the connection") &&
		!strings.Contains(string(b), "reset") && !strings.Contains(string(b), "pipe") {
		t.Errorf("the client did not see its connection closed: %q", b)
	}
	if e := ld.stderrText(); !strings.Contains(e, "--external=close") {
		t.Errorf("procs-load said %q; want a warning naming --external=close", e)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
		t.Errorf("the client complained: %s", b)
	}
}

// serverOfOutsidersPy listens on srv.sock (then makes the file
// "listening") and accepts one connection
// (from outside its tree) at once; the file "go" lets it go on: it reads
// from that connection and accepts the next, queued meanwhile, and reads
// from it, writing what it found to the file "result".
const serverOfOutsidersPy = pyChecks + `
import os, socket, time
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(os.path.abspath("srv.sock"))
srv.listen(4)
open("listening", "w").close()
c, _ = srv.accept()
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
check("accepted", c.recv(100), b"hello")
check("accepted-end", c.recv(100), b"")
srv.setblocking(False)
d, _ = srv.accept()
check("queued-end", d.recv(100), b"")
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixExternalClients: a server whose clients are outside its tree
// (an accepted connection, one queued) is refused naming a client; with
// --external=close it moves, reads what the first had sent, then the
// end of both connections.
func TestUnixExternalClients(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", serverOfOutsidersPy)
	waitFile(t, filepath.Join(dir, "listening"))
	path := filepath.Join(dir, "srv.sock")
	var clients []int
	for range 2 {
		s, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(s)
		if err := syscall.Connect(s, &syscall.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, s)
	}
	waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
	if _, err := syscall.Write(clients[0], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	refusedDump(t, pid, "outside the tree", fmt.Sprintf("process %d", os.Getpid()), "hint: --external=close")
	img := dump(t, pid, false, "--external=close")
	waitImageGone(t, img)
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	checkResult(t, dir, 3)
}

// TestUnixNamesTaken: a -K clone restored beside its running original is
// refused naming its abstract name, or its path a live socket is bound
// to, and nothing is left.
func TestUnixNamesTaken(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, tc := range []struct{ name, bind, want string }{
		{"abstract", `"\0procs-taken-%d" % os.getpid()`, "abstract unix socket name"},
		{"path", `os.path.abspath("taken.sock")`, "is in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := fmt.Sprintf(`
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(%s)
s.listen(1)
open("ready", "w").close()
while True: time.sleep(0.05)
`, tc.bind)
			pid := startTree(t, dir, "log", py, "-c", prog)
			waitFile(t, filepath.Join(dir, "ready"))
			img := dump(t, pid, true)
			failsClean(t, loadCmd(img, "--pid=ns"), tc.want)
			if _, ok := procInfo(pid); !ok {
				t.Error("the original is gone")
			}
		})
	}
}

// TestUnixCraftedImages: each member of a unix socket crafted out of
// range in the image of a real tree (checksums made right) is refused
// by name, nothing is left; and an image of a user's process whose
// socket is moved to a folder that user may not write to is refused
// naming the user, where procs-load (root) could have bound it.
func TestUnixCraftedImages(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	// The system's python, which the user may run (pyenv's lies in
	// /root).
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no %s: %v", py, err)
	}
	cred := testUser(t)
	dir := userDir(t, cred)
	out, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", echoServerPy)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	pid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { killTree(t, pid) })
	waitServed(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	// An image with bytes queued in a socket: -K dumps until one is
	// (the moment decides), then the tree is killed.
	hasQueued := func(f format.File) bool { return f.Unix != nil && len(f.Unix.Data) > 0 }
	var img string
	var base *treeEdit
	for try := 0; ; try++ {
		img = dump(t, pid, true)
		if base = decodeTree(t, img); slices.ContainsFunc(base.Files, hasQueued) || try == 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopKill(t, pid)
	waitImageGone(t, img)
	l, e := -1, -1
	for i, f := range base.Files {
		switch {
		case f.Unix != nil && f.Unix.Listening:
			l = i
		case f.Unix != nil && f.Unix.Listener != nil:
			e = i
		}
	}
	if l < 0 || e < 0 {
		t.Fatalf("no listening or accepted socket in the image: %d, %d", l, e)
	}
	n := len(base.Files)
	reg := fileOf(t, base, format.FileRegular)
	unixOf := func(e *treeEdit, i int) *format.Unix { return e.Files[i].Unix }
	// A socket with bytes queued, to send files in flight with; an open
	// id of an fd of another file than reg.
	queued := slices.IndexFunc(base.Files, hasQueued)
	if queued < 0 {
		t.Fatal("no socket with bytes queued in the image")
	}
	otherOpen, regOpen := -1, -1
	for _, fd := range base.Procs[0].FDs {
		if fd.File >= 0 && fd.File != reg {
			otherOpen = fd.Open
		}
		if fd.File == reg {
			regOpen = fd.Open
		}
	}
	inFlight := func(e *treeEdit, fd format.FD) {
		unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{fd}}}
	}
	secret := rootOnlyFile(t)
	for _, tc := range []struct {
		name  string
		edit  func(e *treeEdit)
		wants []string
	}{
		{"bind-in-etc", func(e *treeEdit) { unixOf(e, l).Path = "/etc/procs-evil.sock" },
			[]string{"/etc/procs-evil.sock", "permission denied for uid " + strconv.Itoa(int(cred.Uid))}},
		{"queue-out-of-range", func(e *treeEdit) { unixOf(e, l).Queue = []int{n} },
			[]string{"queued connection", strconv.Itoa(n)}},
		{"queue-a-file", func(e *treeEdit) { unixOf(e, l).Queue = []int{reg} },
			[]string{"queued connection", "no unix socket"}},
		{"queue-twice", func(e *treeEdit) { q := unixOf(e, l).Queue; unixOf(e, l).Queue = append(q, q...) },
			[]string{"queued twice"}},
		{"listener-not-listening", func(e *treeEdit) { x := reg; unixOf(e, e2(e, l)).Listener = &x },
			[]string{"accepted from"}},
		{"backlog", func(e *treeEdit) { unixOf(e, l).Backlog = 1 << 30 }, []string{"backlog"}},
		{"relative-no-folder", func(e *treeEdit) { unixOf(e, l).Path = "srv.sock" }, []string{"relative path"}},
		{"path-too-long", func(e *treeEdit) { unixOf(e, l).Path = "/" + strings.Repeat("x", 200) }, []string{"too long"}},
		{"path-and-abstract", func(e *treeEdit) { unixOf(e, l).Abstract = []byte("x") }, []string{"a path and an abstract name"}},
		{"messages-in-stream", func(e *treeEdit) { unixOf(e, e2(e, l)).Messages = [][]byte{[]byte("x")} },
			[]string{"messages in a stream socket"}},
		{"peek-offset", func(e *treeEdit) { x := -5; unixOf(e, l).PeekOff = &x }, []string{"peek offset"}},
		{"timeout", func(e *treeEdit) { unixOf(e, l).RcvTimeo = -1 }, []string{"timeouts"}},
		{"senders", func(e *treeEdit) { unixOf(e, queued).Senders = []int{l} }, []string{"senders"}},
		{"socket-mode", func(e *treeEdit) { unixOf(e, l).Mode = 0o100644 }, []string{"mode"}},
		{"owner", func(e *treeEdit) { unixOf(e, l).UID = -1 }, []string{"owner"}},
		{"in-flight-out-of-range", func(e *treeEdit) { inFlight(e, format.FD{File: n, Open: 1 << 20}) },
			[]string{"file in flight", strconv.Itoa(n)}},
		{"in-flight-a-listener", func(e *treeEdit) { inFlight(e, format.FD{File: l, Open: 1 << 20}) },
			[]string{"unix socket " + strconv.Itoa(l) + " in flight", "two open file descriptions"}},
		{"in-flight-a-socket-held-twice", func(e *treeEdit) { inFlight(e, format.FD{File: unixOf(e, e2(e, l)).Peer, Open: 1 << 20}) },
			[]string{"in flight", "two open file descriptions"}},
		{"in-flight-in-itself", func(e *treeEdit) { inFlight(e, format.FD{File: queued, Open: 1 << 20}) },
			[]string{"unix socket " + strconv.Itoa(queued) + " in flight", "two open file descriptions"}},
		{"in-flight-epoll-watching-no-open", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 5, Open: 1 << 21}}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"epoll", "which no process holds, watches open file " + strconv.Itoa(1<<21)}},
		{"in-flight-epoll-watching-a-file", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 5, Open: regOpen}}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"epoll", "it can watch"}},
		{"in-flight-epoll-fd-out-of-range", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 1 << 30, Open: otherOpen}}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"epoll", "out of range"}},
		{"in-flight-listener-in-etc", func(e *treeEdit) {
			// No process holds it: bound as the one holding the queue.
			e.Files = append(e.Files, format.File{Kind: format.FileUnix, Unix: &format.Unix{Type: unix.SOCK_STREAM, Peer: -1,
				Listening: true, Backlog: 1, Path: "/etc/procs-evil.sock"}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"/etc/procs-evil.sock", "permission denied for uid " + strconv.Itoa(int(cred.Uid))}},
		{"in-flight-pidfd-reaped-stopped", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePidfd, Pidfd: &format.Pidfd{Reaped: &format.Exit{Status: 0x137f}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"pidfd", "reaped", "exit status 0x137f"}},
		{"in-flight-timerfd-alarm", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileTimerfd, Timerfd: &format.Timerfd{Clock: unix.CLOCK_REALTIME_ALARM}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"timerfd clock 8"}},
		{"in-flight-timerfd-deadline", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileTimerfd, Timerfd: &format.Timerfd{Clock: unix.CLOCK_MONOTONIC, Value: 1, Deadline: -1}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"timerfd deadline -1"}},
		{"in-flight-signalfd-no-mask", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileSignalfd})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"signalfd", "no signalfd state"}},
		{"in-flight-inotify-etc-shadow", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileInotify, Inotify: &format.Inotify{Watches: []format.InotifyWatch{{WD: 1, Path: "/etc/shadow", Mask: unix.IN_MODIFY}}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20})
		}, []string{"inotify watch 1", "/etc/shadow", "permission denied"}},
		{"in-flight-inotify-two-opens", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileInotify, Inotify: &format.Inotify{Watches: []format.InotifyWatch{}}})
			i := len(e.Files) - 1
			unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{{File: i, Open: 1 << 20}, {File: i, Open: 1<<20 + 1}}}}
		}, []string{"inotify " + strconv.Itoa(n) + " in flight", "two open file descriptions"}},
		{"in-flight-tcp-listener-privileged-port", func(e *treeEdit) {
			// No process holds it: bound as the one holding the queue.
			e.Files = append(e.Files, format.File{Kind: format.FileTCP, TCP: &format.TCP{Family: unix.AF_INET, State: format.TCPListen,
				Local: "127.0.0.1:81", Backlog: 1}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"a file in flight", "port 81", "privilege"}},
		{"in-flight-tcp-two-opens", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileTCP, TCP: &format.TCP{Family: unix.AF_INET, State: format.TCPNew}})
			i := len(e.Files) - 1
			unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{{File: i, Open: 1 << 20}, {File: i, Open: 1<<20 + 1}}}}
		}, []string{"tcp " + strconv.Itoa(n) + " in flight", "two open file descriptions"}},
		{"in-flight-tcp-connection-mss", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileTCP, TCP: &format.TCP{Family: unix.AF_INET, State: format.TCPEstablished,
				Local: "127.0.0.1:4000", Remote: "127.0.0.1:4001", Conn: &format.TCPConn{MSS: 0}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"TCP socket " + strconv.Itoa(n), "MSS 0"}},
		{"in-flight-udp-privileged-port", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileUDP, UDP: &format.Dgram{Family: unix.AF_INET, Local: "127.0.0.1:82"}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"a file in flight", "port 82", "privilege"}},
		{"in-flight-udp-two-opens", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileUDP, UDP: &format.Dgram{Family: unix.AF_INET}})
			i := len(e.Files) - 1
			unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{{File: i, Open: 1 << 20}, {File: i, Open: 1<<20 + 1}}}}
		}, []string{"udp " + strconv.Itoa(n) + " in flight", "two open file descriptions"}},
		{"in-flight-ptmx-number", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePTYMaster, PTY: &format.PTY{Index: 1 << 20, Master: -1, Cc: make([]byte, 19)}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"pseudo-terminal " + strconv.Itoa(n), "number 1048576"}},
		{"in-flight-ptmx-two-opens", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePTYMaster, PTY: &format.PTY{Index: 7, Master: -1, Cc: make([]byte, 19)}})
			i := len(e.Files) - 1
			unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{{File: i, Open: 1 << 20}, {File: i, Open: 1<<20 + 1}}}}
		}, []string{"ptmx " + strconv.Itoa(n) + " in flight", "two open file descriptions"}},
		{"in-flight-ptmx-controls-the-root", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePTYMaster, PTY: &format.PTY{Index: 7, Master: -1, Cc: make([]byte, 19), Session: e.Procs[0].PID}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"pseudo-terminal " + strconv.Itoa(n), "controls session"}},
		{"in-flight-epoll-watching-itself", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 5, Open: 1 << 20}}}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"epoll", "it can watch"}},
		{"in-flight-epolls-watching-each-other", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 5, Open: 1<<20 + 1}}}},
				format.File{Kind: format.FileEpoll, Epoll: &format.Epoll{Targets: []format.EpollEntry{{FD: 6, Open: 1 << 20}}}})
			unixOf(e, queued).Rights = []format.UnixRights{{At: 1, FDs: []format.FD{{File: n, Open: 1 << 20, Flags: unix.O_RDWR}, {File: n + 1, Open: 1<<20 + 1, Flags: unix.O_RDWR}}}}
		}, []string{"watches itself through epolls"}},
		{"in-flight-pidfd-flags", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePidfd, Pidfd: &format.Pidfd{PID: pid}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR | unix.O_APPEND})
		}, []string{"pidfd", "in flight with open flags"}},
		{"in-flight-pidfd-outside", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FilePidfd, Pidfd: &format.Pidfd{PID: 1}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20, Flags: unix.O_RDWR})
		}, []string{"pidfd", "no process of the image"}},
		{"in-flight-eventfd-full", func(e *treeEdit) {
			e.Files = append(e.Files, format.File{Kind: format.FileEventfd, Eventfd: &format.Eventfd{Count: ^uint64(0)}})
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20})
		}, []string{"eventfd counter"}},
		{"in-flight-shares-open", func(e *treeEdit) { inFlight(e, format.FD{File: reg, Open: otherOpen}) },
			[]string{"file in flight", "shares open"}},
		{"in-flight-past-queue", func(e *treeEdit) {
			inFlight(e, format.FD{File: reg, Open: 1 << 20})
			unixOf(e, queued).Rights[0].At = len(unixOf(e, queued).Data) + 1
		}, []string{"files in flight", "past its queue"}},
		{"in-flight-root-only-file", func(e *treeEdit) {
			e.Files = append(e.Files, secret)
			inFlight(e, format.FD{File: len(e.Files) - 1, Open: 1 << 20})
		}, []string{secret.Path, "permission denied for uid " + strconv.Itoa(int(cred.Uid))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editTree(t, img, tc.edit)
			failsClean(t, loadCmd(bad), tc.wants...)
			if _, err := os.Lstat("/etc/procs-evil.sock"); err == nil {
				os.Remove("/etc/procs-evil.sock")
				t.Error("procs-load bound a socket in /etc")
			}
		})
	}
}

// e2 is the accepted connection of listener l in e.
func e2(e *treeEdit, l int) int {
	for i, f := range e.Files {
		if f.Unix != nil && f.Unix.Listener != nil && *f.Unix.Listener == l {
			return i
		}
	}
	return -1
}

// inFlightPy sends files over unix sockets and does not receive them
// before the file "go" exists: the read end of a pipe, which it then
// closes, with bytes around it in a stream; and a file at offset 6 in a
// datagram, which it keeps open too. Then it receives them and checks
// they work, writing what it found to the file "result".
const inFlightPy = pyChecks + `
import os, socket, time
a, b = socket.socketpair()
da, db = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
r, w = os.pipe()
os.write(w, b"through the pipe\n")
a.send(b"before")
socket.send_fds(a, [b"pipe"], [r])
a.send(b"after")
os.close(r)
fd = os.open("data.txt", os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"hello file")
os.lseek(fd, 6, os.SEEK_SET)
socket.send_fds(da, [b"file"], [fd])
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
msg, fds, _, _ = socket.recv_fds(b, 100, 4)
check("stream", (msg, len(fds)), (b"beforepipe", 1))
check("after", b.recv(100), b"after")
check("pipe", os.read(fds[0], 100), b"through the pipe\n")
os.write(w, b"more\n")
check("pipe-more", os.read(fds[0], 100), b"more\n")
msg, fds2, _, _ = socket.recv_fds(db, 100, 4)
check("dgram", (msg, len(fds2)), (b"file", 1))
check("offset", os.lseek(fds2[0], 0, os.SEEK_CUR), 6)
check("file", os.read(fds2[0], 100), b"file")
check("shared", os.lseek(fd, 0, os.SEEK_CUR), 10)
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixInFlight: files in flight over unix sockets (SCM_RIGHTS), sent
// and not received yet, arrive after a move and work: a pipe no process
// holds any more, with bytes in it, sent among bytes of a stream; a file
// the sender still holds, in a datagram, sharing its offset.
func TestUnixInFlight(t *testing.T) {
	movedPython(t, inFlightPy, 8, nil)
}

// checkResult lets the program in dir go on (the file "go") and checks
// the n lines of its file "result" each end in "ok".
func checkResult(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "result"), filepath.Join(dir, "log"))
	time.Sleep(100 * time.Millisecond) // written whole
	b, _ := os.ReadFile(filepath.Join(dir, "result"))
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasSuffix(l, " ok") {
			t.Errorf("after the move: %s", l)
		}
	}
	if got := strings.Count(string(b), " ok"); got != n {
		t.Errorf("%d checks passed; want %d:\n%s", got, n, b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
		t.Errorf("the program complained: %s", b)
	}
}

// socketInFlightPy is a parent that hands its worker, over a socketpair
// (SCM_RIGHTS), one end of another socketpair with bytes queued in it
// both ways, a connection it accepted with a request queued in it, and
// two eventfds: a semaphore one, and one it keeps and writes to once
// restored; it closes the others. The worker does not receive them
// before the file "go" exists. Then it gets them, reads what was queued,
// talks with the parent over the pair both ways, answers the client and
// reads the counters, writing what it found to the file "result".
const socketInFlightPy = pyChecks + `
import os, socket, time
a, b = socket.socketpair()
x, y = socket.socketpair()
y.send(b"queued for the worker")
x.send(b"queued for the parent")
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(os.path.abspath("l.sock"))
l.listen(1)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(os.path.abspath("l.sock"))
c.send(b"request")
conn, _ = l.accept()
e, shared = os.eventfd(3, os.EFD_SEMAPHORE), os.eventfd(7)
pid = os.fork()
if pid == 0:
    a.close(); x.close(); y.close(); c.close(); conn.close(); os.close(e); os.close(shared)
    while not os.path.exists("go"):
        time.sleep(0.02)
    msg, fds, _, _ = socket.recv_fds(b, 100, 1)
    check("message", (msg, len(fds)), (b"sock", 1))
    s = socket.socket(fileno=fds[0])
    check("type", (s.family, s.type), (socket.AF_UNIX, socket.SOCK_STREAM))
    check("queued", s.recv(100), b"queued for the worker")
    s.send(b"ping")
    check("both-ways", s.recv(100), b"pong")
    msg, fds, _, _ = socket.recv_fds(b, 100, 1)
    check("connection", (msg, len(fds)), (b"conn", 1))
    s = socket.socket(fileno=fds[0])
    check("request", s.recv(100), b"request")
    s.send(b"answer")
    msg, fds, _, _ = socket.recv_fds(b, 100, 2)
    check("eventfds", (msg, len(fds)), (b"efd", 2))
    check("semaphore", [os.eventfd_read(fds[0]) for _ in range(3)], [1, 1, 1])
    check("shared", os.eventfd_read(fds[1]), 12)
    b.send(b"done")
    open("result", "w").write("\n".join(out) + "\n")
    while True: time.sleep(1)
b.close()
socket.send_fds(a, [b"sock"], [x.fileno()])
socket.send_fds(a, [b"conn"], [conn.fileno()])
socket.send_fds(a, [b"efd"], [e, shared])
x.close(); conn.close(); os.close(e)
check = y.recv(100)
if check != b"queued for the parent":
    raise SystemExit("parent: read %r" % check)
open("ready", "w").close()
if y.recv(100) == b"ping":
    os.eventfd_write(shared, 5)
    y.send(b"pong")
if c.recv(100) != b"answer":
    raise SystemExit("client: no answer")
a.recv(100)
while True: time.sleep(1)
`

// TestUnixSocketInFlight: unix sockets and eventfds in flight (a
// socketpair's end and an accepted connection that a parent sent its
// worker and closed, not yet received, an eventfd it closed and one it
// keeps), with bytes queued in the sockets, arrive after a move as the
// same open files: their bytes come through, the pair still talks both
// ways, the client gets its answer, the counters are there and the kept
// eventfd is the one the worker got.
func TestUnixSocketInFlight(t *testing.T) {
	movedPython(t, socketInFlightPy, 9, func(t *testing.T, img string) {
		inFlight := 0
		for _, f := range decodeTree(t, img).Files {
			if f.Unix != nil {
				for _, r := range f.Unix.Rights {
					inFlight += len(r.FDs)
				}
			}
		}
		if inFlight != 4 {
			t.Errorf("%d files in flight in the image; want two sockets and two eventfds", inFlight)
		}
	})
}

// movedPython runs python program prog, which writes the file "ready"
// when it is to be moved, moves it after a dump that kills and after a
// -K clone restored with -d, and checks its n results (checkResult);
// then image, if given, looks at the image.
func movedPython(t *testing.T, prog string, n int, image func(t *testing.T, img string)) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "kill", true: "keep"}[keep], func(t *testing.T) {
			dir := t.TempDir()
			pid := startTree(t, dir, "log", py, "-c", prog)
			waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
			img := moveTree(t, pid, move{keep: keep, detach: keep})
			checkResult(t, dir, n)
			if image != nil {
				image(t, img)
			}
		})
	}
}

// nestedInFlightPy sends itself, to end b of a socketpair, sockets in
// flight (SCM_RIGHTS), and closes them: a listening socket at l.sock
// with a connection queued on it; one end x of a socketpair whose own
// queue holds the read end of a pipe in flight, with bytes after it; an
// end s of a socketpair that holds itself in flight in its own queue,
// and an end u that its peer's queue holds (cycles, which the kernel
// allows); and both ends m and n of a socketpair, one after the other,
// with bytes queued for n. It does not receive them before the file "go"
// exists. Then it gets them and uses each: accepts the queued connection
// and reads from it, takes the pipe out of x and reads it, finds s in
// its own queue and u in its peer's, has m and n talk, writing what it
// found to the file "result".
const nestedInFlightPy = pyChecks + `
import os, socket, time
U = socket.AF_UNIX
a, b = socket.socketpair()
path = os.path.abspath("l.sock")
l = socket.socket(U, socket.SOCK_STREAM)
l.bind(path)
l.listen(2)
c = socket.socket(U, socket.SOCK_STREAM)
c.connect(path)
socket.send_fds(a, [b"l"], [l.fileno()])
l.close()
x, y = socket.socketpair()
r, w = os.pipe()
os.write(w, b"nested pipe\n")
socket.send_fds(y, [b"p"], [r])
os.close(r)
y.send(b"after")
socket.send_fds(a, [b"x"], [x.fileno()])
x.close()
s, t = socket.socketpair()
socket.send_fds(t, [b"self"], [s.fileno()])
socket.send_fds(a, [b"s"], [s.fileno()])
s.close()
u, v = socket.socketpair()
socket.send_fds(u, [b"peer"], [u.fileno()])
socket.send_fds(a, [b"u"], [u.fileno()])
u.close()
m, n = socket.socketpair()
m.send(b"to n")
socket.send_fds(a, [b"m"], [m.fileno()])
m.close()
socket.send_fds(a, [b"n"], [n.fileno()])
n.close()
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
def take(what):
    msg, fds, _, _ = socket.recv_fds(b, 100, 1)
    check("message-" + what, (msg, len(fds)), (what.encode(), 1))
    return socket.socket(fileno=fds[0])
ls = take("l")
check("listening", (ls.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), ls.getsockname()), (1, path))
ls.setblocking(False)
conn, _ = ls.accept()
c.send(b"hi")
check("accepted", conn.recv(100), b"hi")
xs = take("x")
msg, fds, _, _ = socket.recv_fds(xs, 100, 1)
check("nested", (msg, len(fds)), (b"p", 1))
check("pipe", os.read(fds[0], 100), b"nested pipe\n")
os.write(w, b"more\n")
check("pipe-more", os.read(fds[0], 100), b"more\n")
check("after", xs.recv(100), b"after")
xs.send(b"back")
check("back", y.recv(100), b"back")
ss = take("s")
msg, fds, _, _ = socket.recv_fds(ss, 100, 1)
check("cycle", (msg, len(fds), os.fstat(fds[0]).st_ino), (b"self", 1, os.fstat(ss.fileno()).st_ino))
ss.send(b"ping")
check("cycle-peer", t.recv(100), b"ping")
us = take("u")
msg, fds, _, _ = socket.recv_fds(v, 100, 1)
check("cycle-through-peer", (msg, len(fds), os.fstat(fds[0]).st_ino), (b"peer", 1, os.fstat(us.fileno()).st_ino))
ms, ns = take("m"), take("n")
check("pair-queued", ns.recv(100), b"to n")
ms.send(b"both")
check("pair", ns.recv(100), b"both")
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixNestedInFlight: unix sockets in flight that the queue alone
// holds arrive after a move as the same sockets and work: a listening
// one with its queued connection, one with a pipe in flight of its own,
// one in flight in its own queue, one in its peer's, and both ends of a
// pair.
func TestUnixNestedInFlight(t *testing.T) {
	movedPython(t, nestedInFlightPy, 18, nil)
}

// pidfdInFlightPy is a parent that sends itself, over a socketpair
// (SCM_RIGHTS), two pidfds on its child: one it closes, which only the
// queue holds then, and one it keeps. It does not receive them before
// the file "go" exists. Then it gets them, checks that the second is the
// one it kept (a flag set on one shows on the other), that the child
// runs, kills it through the first and sees it end there.
const pidfdInFlightPy = pyChecks + `
import os, socket, time, signal, fcntl, select
a, b = socket.socketpair()
child = os.fork()
if child == 0:
    while True: time.sleep(0.05)
p1, p2 = os.pidfd_open(child), os.pidfd_open(child)
socket.send_fds(a, [b"p1"], [p1])
os.close(p1)
socket.send_fds(a, [b"p2"], [p2])
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
msg, q1, _, _ = socket.recv_fds(b, 100, 1)
check("first", (msg, len(q1)), (b"p1", 1))
msg, q2, _, _ = socket.recv_fds(b, 100, 1)
check("second", (msg, len(q2)), (b"p2", 1))
fcntl.fcntl(p2, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(q2[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
check("running", select.select([q1[0]], [], [], 0)[0], [])
signal.pidfd_send_signal(q1[0], signal.SIGKILL)
_, st = os.waitpid(child, 0)
check("killed", os.WTERMSIG(st) if os.WIFSIGNALED(st) else st, signal.SIGKILL)
check("ended", select.select([q1[0]], [], [], 5)[0], [q1[0]])
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixPidfdInFlight: pidfds in flight arrive after a move as pidfds
// on the restored child: one only the queue held, which kills it, and
// one the process kept, the same open file as its own.
func TestUnixPidfdInFlight(t *testing.T) {
	movedPython(t, pidfdInFlightPy, 6, inFlightOf(format.FilePidfd, 2))
}

// inFlightOf checks that an image holds want files of kind in flight in
// its queues.
func inFlightOf(kind string, want int) func(t *testing.T, img string) {
	return func(t *testing.T, img string) {
		n := 0
		tr := decodeTree(t, img)
		for _, f := range tr.Files {
			if f.Unix != nil {
				for _, r := range f.Unix.Rights {
					for _, fd := range r.FDs {
						if tr.Files[fd.File].Kind == kind {
							n++
						}
					}
				}
			}
		}
		if n != want {
			t.Errorf("%d files of kind %s in flight in the image; want %d", n, kind, want)
		}
	}
}

// epollInFlightPy sends itself, over a socketpair (SCM_RIGHTS), two epolls
// watching a pipe's read end, a socket and an eventfd it keeps: one it closes, which
// only the queue holds then, and one it keeps. It does not receive them
// before the file "go" exists. Then it gets them and checks that the
// first reports the pipe, the socket and the eventfd when they are
// readable, and
// forgets the pipe when told by its fd number, and that the second is
// the one it kept (what it watches, the other does).
const epollInFlightPy = pyChecks + `
import os, socket, time, select
a, b = socket.socketpair()
r, w = os.pipe()
x, y = socket.socketpair()
ev = os.eventfd(0, os.EFD_NONBLOCK)
e, kept = select.epoll(), select.epoll()
e.register(r, select.EPOLLIN)
e.register(x.fileno(), select.EPOLLIN)
e.register(ev, select.EPOLLIN)
socket.send_fds(a, [b"e"], [e.fileno()])
e.close()
socket.send_fds(a, [b"k"], [kept.fileno()])
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("message", (msg, len(fds)), (b"e", 1))
ep = select.epoll.fromfd(fds[0])
check("idle", ep.poll(0), [])
os.write(w, b"p")
check("pipe", ep.poll(5), [(r, select.EPOLLIN)])
os.read(r, 1)
y.send(b"s")
check("socket", ep.poll(5), [(x.fileno(), select.EPOLLIN)])
x.recv(1)
os.eventfd_write(ev, 1)
check("eventfd", ep.poll(5), [(ev, select.EPOLLIN)])
os.eventfd_read(ev)
ep.unregister(r)
os.write(w, b"p")
check("unregistered", ep.poll(0), [])
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("kept", (msg, len(fds)), (b"k", 1))
kept.register(r, select.EPOLLIN)
check("shared", select.epoll.fromfd(fds[0]).poll(5), [(r, select.EPOLLIN)])
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`

// TestUnixEpollInFlight: epolls in flight arrive after a move and work:
// one only the queue held, watching what it watched under the same fd
// numbers, and one the process kept, the same epoll as its own.
func TestUnixEpollInFlight(t *testing.T) {
	movedPython(t, epollInFlightPy, 8, inFlightOf(format.FileEpoll, 2))
}

// sendsItselfPy is a python program that imports os, socket, time and
// modules, makes a socketpair a, b, runs setup, writes the file "ready",
// waits for the file "go", runs use, whose check(what, got, want) calls
// go to the file "result" (checkResult), and sleeps.
func sendsItselfPy(modules, setup, use string) string {
	return "import os, socket, time, " + modules + "\n" + pyChecks + `a, b = socket.socketpair()` + setup + `
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)` + use + `
open("result", "w").write("\n".join(out) + "\n")
while True: time.sleep(1)
`
}

// timerfdInFlightPy sends itself, over a socketpair (SCM_RIGHTS), two
// timerfds (made through ctypes: python 3.11 has no os.timerfd_create):
// a periodic one every 200 ms that it closes, which only the queue holds
// then, and a one-shot one at an absolute CLOCK_MONOTONIC deadline that
// it keeps. It does not receive them before the file "go" exists. Then
// it gets them and checks that the first keeps its period, fires on
// schedule and counts the expirations no read took, and that the second
// is the one it kept and fires at its deadline.
var timerfdInFlightPy = sendsItselfPy("ctypes, struct, fcntl", `
libc = ctypes.CDLL(None, use_errno=True)
class ts(ctypes.Structure): _fields_ = [("s", ctypes.c_long), ("n", ctypes.c_long)]
class its(ctypes.Structure): _fields_ = [("i", ts), ("v", ts)]
def tfd(clock, flags, interval, value):
    fd = libc.timerfd_create(clock, 0)
    spec = its(ts(int(interval), int(interval % 1 * 1e9)), ts(int(value), int(value % 1 * 1e9)))
    assert libc.timerfd_settime(fd, flags, ctypes.byref(spec), None) == 0
    return fd
def gettime(fd):
    spec = its()
    libc.timerfd_gettime(fd, ctypes.byref(spec))
    return spec.i.s + spec.i.n / 1e9, spec.v.s + spec.v.n / 1e9
periodic = tfd(time.CLOCK_MONOTONIC, 0, 0.2, 0.2)
deadline = time.clock_gettime(time.CLOCK_MONOTONIC) + 3
kept = tfd(time.CLOCK_MONOTONIC, 1, 0, deadline)
socket.send_fds(a, [b"p"], [periodic])
os.close(periodic)
socket.send_fds(a, [b"k"], [kept])
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("periodic-message", (msg, len(fds)), (b"p", 1))
p = fds[0]
check("interval", round(gettime(p)[0], 3), 0.2)
os.read(p, 8)
start = time.monotonic()
n = sum(struct.unpack("Q", os.read(p, 8))[0] for _ in range(3))
took = time.monotonic() - start
check("on-schedule", (n >= 3, took > 0.35, took < 10), (True, True, True))
time.sleep(1)
check("expirations", struct.unpack("Q", os.read(p, 8))[0] >= 4, True)
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("kept-message", (msg, len(fds)), (b"k", 1))
fcntl.fcntl(kept, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(fds[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
fcntl.fcntl(kept, fcntl.F_SETFL, 0)
check("deadline", (struct.unpack("Q", os.read(fds[0], 8))[0], time.clock_gettime(time.CLOCK_MONOTONIC) >= deadline), (1, True))
`)

// TestUnixTimerfdInFlight: timerfds in flight arrive after a move and
// work: one only the queue held, periodic, firing on schedule, and one
// the process kept, the same open file as its own, at its deadline.
func TestUnixTimerfdInFlight(t *testing.T) {
	movedPython(t, timerfdInFlightPy, 7, inFlightOf(format.FileTimerfd, 2))
}

// signalfdInFlightPy blocks SIGUSR1 and SIGUSR2 and sends itself, over
// a socketpair (SCM_RIGHTS), two signalfds (made through ctypes): one
// for SIGUSR1 that it closes, which only the queue holds then, and one
// for SIGUSR2 that it keeps. It does not receive them before the file
// "go" exists. Then it gets them, sends itself each signal and reads it
// from its signalfd, and checks that the second is the one it kept.
var signalfdInFlightPy = sendsItselfPy("ctypes, struct, fcntl, signal", `
libc = ctypes.CDLL(None, use_errno=True)
def sigfd(sig):
    mask = ctypes.c_uint64(1 << (sig - 1))
    return libc.signalfd(-1, ctypes.byref(mask), 0)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGUSR2])
one, kept = sigfd(signal.SIGUSR1), sigfd(signal.SIGUSR2)
socket.send_fds(a, [b"1"], [one])
os.close(one)
socket.send_fds(a, [b"2"], [kept])
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("usr1-message", (msg, len(fds)), (b"1", 1))
os.kill(os.getpid(), signal.SIGUSR1)
check("usr1", struct.unpack_from("I", os.read(fds[0], 128))[0], signal.SIGUSR1)
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("usr2-message", (msg, len(fds)), (b"2", 1))
fcntl.fcntl(kept, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(fds[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
os.kill(os.getpid(), signal.SIGUSR2)
check("usr2", struct.unpack_from("I", os.read(fds[0], 128))[0], signal.SIGUSR2)
`)

// TestUnixSignalfdInFlight: signalfds in flight arrive after a move and
// read the signals sent to the process: one only the queue held, and one
// the process kept, the same open file as its own.
func TestUnixSignalfdInFlight(t *testing.T) {
	movedPython(t, signalfdInFlightPy, 5, inFlightOf(format.FileSignalfd, 2))
}

// inotifyInFlightPy sends itself, over a socketpair (SCM_RIGHTS), two
// inotify instances (made through ctypes): one watching the folder "w"
// under watch descriptor 3 (two watches before it, one removed), which
// it closes, so only the queue holds it then, and one watching "k" that
// it keeps. It does not receive them before the file "go" exists. Then
// it gets them, creates a file in each folder and checks that each
// instance reports it, with the same watch descriptor, and that the
// second is the one it kept.
var inotifyInFlightPy = sendsItselfPy("ctypes, struct, fcntl", `
libc = ctypes.CDLL(None, use_errno=True)
IN_CREATE = 0x100
def event(fd):
    wd, mask, _, n = struct.unpack_from("iIII", os.read(fd, 4096))
    return wd, mask
for d in "xywk":
    os.mkdir(d)
one, kept = libc.inotify_init1(0), libc.inotify_init1(0)
libc.inotify_add_watch(one, b"x", IN_CREATE)
libc.inotify_rm_watch(one, libc.inotify_add_watch(one, b"y", IN_CREATE))
wd = libc.inotify_add_watch(one, b"w", IN_CREATE)
os.read(one, 4096) # IN_IGNORED of y
kwd = libc.inotify_add_watch(kept, b"k", IN_CREATE)
socket.send_fds(a, [b"1"], [one])
os.close(one)
socket.send_fds(a, [b"2"], [kept])
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("one-message", (msg, len(fds), wd), (b"1", 1, 3))
open("w/new", "w").close()
check("one", event(fds[0]), (wd, IN_CREATE))
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("kept-message", (msg, len(fds)), (b"2", 1))
fcntl.fcntl(kept, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(fds[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
open("k/new", "w").close()
check("kept", event(fds[0]), (kwd, IN_CREATE))
`)

// TestUnixInotifyInFlight: inotify instances in flight arrive after a
// move and report what happens in the folders they watch under the same
// watch descriptors: one only the queue held, and one the process kept,
// the same open file as its own.
func TestUnixInotifyInFlight(t *testing.T) {
	movedPython(t, inotifyInFlightPy, 5, inFlightOf(format.FileInotify, 2))
}

// epollQueueTargetPy sends itself, over a socketpair (SCM_RIGHTS), an
// epoll watching the read end of a pipe and a timerfd (made through
// ctypes), then that pipe end and that timerfd, and closes all three:
// only the queue holds them then. It does not receive them before the
// file "go" exists. Then it gets the epoll and checks that it reports the
// pipe readable once written to, and the timerfd once it fires, then
// gets the pipe end and the timerfd and checks that they are the ones
// the epoll watches.
var epollQueueTargetPy = sendsItselfPy("select, ctypes, struct", `
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
t = libc.timerfd_create(time.CLOCK_MONOTONIC, 0)
e = select.epoll()
e.register(r, select.EPOLLIN)
e.register(t, select.EPOLLIN)
socket.send_fds(a, [b"e"], [e.fileno()])
socket.send_fds(a, [b"r"], [r])
socket.send_fds(a, [b"t"], [t])
e.close()
os.close(r)
os.close(t)
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("epoll-message", (msg, len(fds)), (b"e", 1))
ep = select.epoll.fromfd(fds[0])
check("idle", ep.poll(0), [])
os.write(w, b"p")
check("pipe", ep.poll(5), [(r, select.EPOLLIN)])
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("pipe-message", (msg, len(fds)), (b"r", 1))
check("pipe-read", os.read(fds[0], 10), b"p")
check("pipe-idle", ep.poll(0), [])
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("timerfd-message", (msg, len(fds)), (b"t", 1))
spec = struct.pack("qqqq", 0, 0, 0, 100000000)
libc.timerfd_settime(fds[0], 0, spec, None)
check("timerfd", ep.poll(5), [(t, select.EPOLLIN)])
check("timerfd-read", struct.unpack("Q", os.read(fds[0], 8))[0], 1)
`)

// TestUnixEpollQueueTarget: an epoll in flight watching files that only
// a queue holds (a pipe's end, a timerfd the restorer makes late) arrives
// after a move and reports them, the very files received after it.
func TestUnixEpollQueueTarget(t *testing.T) {
	movedPython(t, epollQueueTargetPy, 9, inFlightOf(format.FileEpoll, 1))
}

// reapedPidfdInFlightPy is a parent that sends itself, over a socketpair
// (SCM_RIGHTS), two pidfds on children that exited with code 7 and 9
// and that it reaped: the first it closes, so only the queue holds it
// then, the second it keeps. It does not receive them before the file
// "go" exists. Then it gets them and checks that each tells its child
// ended (readable, no process to signal) and how (PIDFD_GET_INFO), and
// that the second is the one it kept.
var reapedPidfdInFlightPy = sendsItselfPy("select, signal, fcntl, struct", `
def reaped(code):
    child = os.fork()
    if child == 0:
        os._exit(code)
    while not open("/proc/%d/stat" % child).read().split(") ")[1].startswith("Z"):
        time.sleep(0.01)
    p = os.pidfd_open(child)
    os.waitpid(child, 0)
    return p
p1, p2 = reaped(7), reaped(9)
socket.send_fds(a, [b"p1"], [p1])
os.close(p1)
socket.send_fds(a, [b"p2"], [p2])
`, `
def ended(what, p, code):
    check(what + "-readable", select.select([p], [], [], 5)[0], [p])
    try:
        signal.pidfd_send_signal(p, 0)
        check(what + "-gone", "signalled", "ESRCH")
    except ProcessLookupError:
        pass
    info = bytearray(64)
    struct.pack_into("Q", info, 0, 8) # PIDFD_INFO_EXIT
    fcntl.ioctl(p, 0xC040FF0B, info) # PIDFD_GET_INFO
    check(what + "-exit", os.waitstatus_to_exitcode(struct.unpack_from("i", info, 60)[0]), code)
msg, q1, _, _ = socket.recv_fds(b, 100, 1)
check("first", (msg, len(q1)), (b"p1", 1))
ended("first", q1[0], 7)
msg, q2, _, _ = socket.recv_fds(b, 100, 1)
check("second", (msg, len(q2)), (b"p2", 1))
ended("second", q2[0], 9)
fcntl.fcntl(p2, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(q2[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
`)

// TestUnixReapedPidfdInFlight: pidfds in flight on children already
// reaped arrive after a move telling how their children ended: one only
// the queue held, and one the process kept, the same open file as its
// own.
func TestUnixReapedPidfdInFlight(t *testing.T) {
	movedPython(t, reapedPidfdInFlightPy, 7, inFlightOf(format.FilePidfd, 2))
}
