package tests

// Sockets of the network in flight (SCM_RIGHTS) in a unix socket's
// queue of the tree, sent and not yet received: a UDP and a UDP-Lite
// socket with datagrams queued, a TCP listener (handed over as systemd
// and HAProxy do), an established TCP connection to a peer outside the
// tree. Each is received only after the move, and used.

import (
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"procs/format"
)

// udpInFlightPy sends itself, over a socketpair (SCM_RIGHTS), a UDP
// socket with three datagrams queued from a socket peer it keeps, and a
// UDP-Lite socket with one it sent itself, and closes them: only the
// queue holds them then. It does not receive them before the file "go"
// exists. Then it gets them and checks that each has its address, its
// datagrams whole with their sender, and sends and receives more.
var udpInFlightPy = sendsItselfPy("fcntl", `
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
peer.bind(("127.0.0.1", 0))
queued = [b"one", b"two two", b"three three three"]
for m in queued:
    peer.sendto(m, u.getsockname())
lite = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)
lite.bind(("127.0.0.1", 0))
lite.sendto(b"lite", lite.getsockname())
addr, laddr = u.getsockname(), lite.getsockname()
time.sleep(0.1)
socket.send_fds(a, [b"u"], [u.fileno(), lite.fileno()])
u.close()
lite.close()
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 2)
check("message", (msg, len(fds)), (b"u", 2))
u, lite = socket.socket(fileno=fds[0]), socket.socket(fileno=fds[1])
u.settimeout(10)
lite.settimeout(10)
peer.settimeout(10)
check("address", u.getsockname(), addr)
check("queued", [u.recvfrom(100) for _ in queued], [(m, peer.getsockname()) for m in queued])
peer.sendto(b"after", addr)
check("after", u.recvfrom(100), (b"after", peer.getsockname()))
u.sendto(b"back", peer.getsockname())
check("back", peer.recvfrom(100), (b"back", addr))
check("lite", (lite.getsockname(), lite.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL), lite.recv(100)), (laddr, 136, b"lite"))
`)

// TestUDPInFlight: a UDP and a UDP-Lite socket in flight arrive after a
// move, on their addresses, with their queues, and work.
func TestUDPInFlight(t *testing.T) {
	movedPython(t, udpInFlightPy, 6, func(t *testing.T, img string) {
		inFlightOf(format.FileUDP, 2)(t, img)
	})
}

// listenerInFlightPy sends itself, over a socketpair (SCM_RIGHTS), two
// TCP listeners: one it closes, which only the queue holds then, and one
// it keeps. It does not receive them before the file "go" exists. Then
// it gets them, checks that each listens on its address, connects to
// each and accepts the connection, and that the second is the one it
// kept.
var listenerInFlightPy = sendsItselfPy("fcntl", `
l, k = socket.socket(), socket.socket()
for s in (l, k):
    s.bind(("127.0.0.1", 0))
    s.listen(4)
addr, kaddr = l.getsockname(), k.getsockname()
socket.send_fds(a, [b"l"], [l.fileno()])
l.close()
socket.send_fds(a, [b"k"], [k.fileno()])
`, `
def serves(l, addr):
    c = socket.create_connection(addr, timeout=10)
    l.settimeout(10)
    s, _ = l.accept()
    c.sendall(b"hello")
    return s.recv(100)
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("message", (msg, len(fds)), (b"l", 1))
l = socket.socket(fileno=fds[0])
check("listening", (l.getsockname(), l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)), (addr, 1))
check("accepted", serves(l, addr), b"hello")
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("kept-message", (msg, len(fds)), (b"k", 1))
fcntl.fcntl(k, fcntl.F_SETFL, os.O_NONBLOCK)
check("shared", fcntl.fcntl(fds[0], fcntl.F_GETFL) & os.O_NONBLOCK, os.O_NONBLOCK)
fcntl.fcntl(k, fcntl.F_SETFL, 0)
check("kept-accepted", serves(socket.socket(fileno=fds[0]), kaddr), b"hello")
`)

// TestTCPListenerInFlight: TCP listeners in flight arrive after a move,
// listening on their ports, and accept a client that connects then: one
// only the queue held, and one the process kept, the same open file as
// its own.
func TestTCPListenerInFlight(t *testing.T) {
	movedPython(t, listenerInFlightPy, 6, inFlightOf(format.FileTCP, 2))
}

// connInFlightPy connects to the echo server (tcpEchoPy) on port PORT,
// sends 50 numbered lines and reads 40 answers, then sends itself the
// connection over a socketpair (SCM_RIGHTS) and closes it: only the
// queue holds it then, while the other answers come. It does not
// receive it before the file "go" exists. Then it gets it, reads the
// answers left and carries on to line 250, checking that every answer
// came once, in order.
var connInFlightPy = sendsItselfPy("fcntl", `
port = PORT
c = socket.create_connection(("127.0.0.1", port))
buf, sent, got = b"", 0, []
def answers(s, k):
    global buf
    out = []
    while len(out) < k:
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise SystemExit("the server closed the connection")
            buf += d
        line, buf = buf.split(b"\n", 1)
        out.append(int(line.split()[0]))
    return out
def send(s, k):
    global sent
    for _ in range(k):
        sent += 1
        s.sendall(("%d %s\n" % (sent, "x" * 990)).encode())
for _ in range(5):
    send(c, 10)
    got += answers(c, 8)
local = c.getsockname()
socket.send_fds(a, [b"c"], [c.fileno()])
c.close()
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("message", (msg, len(fds)), (b"c", 1))
c = socket.socket(fileno=fds[0])
c.settimeout(20)
check("addresses", (c.getsockname(), c.getpeername()), (local, ("127.0.0.1", port)))
got += answers(c, 10)
for _ in range(20):
    send(c, 10)
    got += answers(c, 10)
check("lines", got, list(range(1, 251)))
`)

// TestTCPConnInFlight: an established connection to a server outside the
// tree, in flight, with answers arriving for it meanwhile, is received
// after a move and carries on: the program and the server see every line
// once, in order, and no reset. Dumps that fail (killed at random
// moments, or whose reader goes away) and a -K dump leave it as it was:
// the source receives it and carries on, and the -K image is refused on
// this host, where the connection is the source's.
func TestTCPConnInFlight(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	start := func(t *testing.T) (dir, sdir string, pid int) {
		sdir, dir = t.TempDir(), t.TempDir()
		_, port, _ := net.SplitHostPort(freeAddr(t))
		startTree(t, sdir, "log", py, "-c", tcpEchoPy, port)
		waitFile(t, filepath.Join(sdir, "ready"))
		pid = startTree(t, dir, "log", py, "-c", strings.Replace(connInFlightPy, "PORT", port, 1))
		waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
		return dir, sdir, pid
	}
	served := func(t *testing.T, sdir string) {
		t.Helper()
		if n := lineNumbers(t, filepath.Join(sdir, "got")); n != 250 {
			t.Errorf("the server got %d lines; want 250", n)
		}
		checkLogs(t, sdir)
	}
	t.Run("kill", func(t *testing.T) {
		dir, sdir, pid := start(t)
		img := moveTree(t, pid, move{})
		checkResult(t, dir, 3)
		inFlightOf(format.FileTCP, 1)(t, img)
		served(t, sdir)
	})
	t.Run("failed-and-keep", func(t *testing.T) {
		dir, sdir, pid := start(t)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
		for round := range 6 {
			failDump(t, pid, round, rng)
		}
		img := dumpSettled(t, pid)
		checkResult(t, dir, 3)
		served(t, sdir)
		refused(t, loadCmd(img), "python3", "exists on this host")
	})
}

// dumpSettled dumps pid with -K once the holder of a dump killed just
// before has put its connections back (until then a dump refuses the
// filter the killed one attached), trying again for some seconds.
func dumpSettled(t *testing.T, pid int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		cmd := exec.Command(filepath.Join(binDir, "procs-dump"), "-K", "-o", img, strconv.Itoa(pid))
		out, err := cmd.CombinedOutput()
		if err == nil {
			return img
		}
		if !strings.Contains(string(out), "socket filter attached") || time.Now().After(deadline) {
			t.Fatalf("procs-dump -K %d: %v: %s", pid, err, out)
		}
	}
}

// ptyInFlightPy forks a child on a pseudo-terminal (pty.fork: the slave
// is its controlling terminal and its fds 0-2), a bash that says "up",
// waits for the file "go", then answers each line it reads; it gives the
// terminal a window size and types a line, which waits in the slave's
// queue, then sends itself the master over a socketpair (SCM_RIGHTS) and
// closes it: only the queue holds it then. It does not receive it
// before the file "go" exists. Then it gets it and checks the window
// size, the child's foreground group, what was queued both ways, and
// that the child answers a line typed then.
var ptyInFlightPy = sendsItselfPy("fcntl, pty, select, struct, termios", `
pid, m = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", "-c", 'echo up; while [ ! -e go ]; do sleep 0.05; done; while read -r l; do echo "got $l"; done'])
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
def until(fd, want):
    got = b""
    while want not in got:
        got += os.read(fd, 4096)
    return got
select.select([m], [], [], 20) # "up": bash runs (its exec done), unread
os.write(m, b"early\n")
time.sleep(0.2)
socket.send_fds(a, [b"m"], [m])
os.close(m)
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
check("message", (msg, len(fds)), (b"m", 1))
m = fds[0]
check("winsize", struct.unpack("HHHH", fcntl.ioctl(m, termios.TIOCGWINSZ, b"\0" * 8))[:2], (30, 100))
check("foreground", os.tcgetpgrp(m), pid)
check("queued", b"up" in until(m, b"got early"), True)
os.write(m, b"late\n")
check("late", b"got late" in until(m, b"got late"), True)
`)

// TestPTYMasterInFlight: a pseudo-terminal's master in flight, whose
// slave is a child's controlling terminal, arrives after a move with its
// window size, its queues both ways and the child's session and
// foreground group, and carries the child's input and output.
func TestPTYMasterInFlight(t *testing.T) {
	movedPython(t, ptyInFlightPy, 5, func(t *testing.T, img string) {
		inFlightOf(format.FilePTYMaster, 1)(t, img)
		// The queues read through procs-dump's copy of the master, the
		// child's slave paired with it (not taken for its own terminal).
		tr := decodeTree(t, img)
		m := fileOf(t, tr, format.FilePTYMaster)
		if st := tr.Files[m].PTY; string(st.Input) != "early\n" || !strings.Contains(string(st.Output), "up") {
			t.Errorf("master in flight: input %q, output %q; want \"early\\n\" and \"up\"", st.Input, st.Output)
		}
		if s := fileOf(t, tr, format.FilePTYSlave); tr.Files[s].PTY.Master != m {
			t.Errorf("slave paired with file %d; want the master in flight, %d", tr.Files[s].PTY.Master, m)
		}
	})
}

// waitingListenerPy sends itself, over a socketpair (SCM_RIGHTS), a TCP
// listener that a client connected to, and closes it: no process can
// accept that connection before one receives the listener. It does not
// receive it before the file "go" exists. Then it gets it, accepts the
// waiting client and one that connects then.
var waitingListenerPy = sendsItselfPy("fcntl", `
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(4)
addr = l.getsockname()
c = socket.create_connection(addr)
socket.send_fds(a, [b"l"], [l.fileno()])
l.close()
`, `
msg, fds, _, _ = socket.recv_fds(b, 100, 1)
l = socket.socket(fileno=fds[0])
l.settimeout(10)
s, _ = l.accept()
c.sendall(b"waited")
check("waiting", s.recv(100), b"waited")
c2 = socket.create_connection(addr, timeout=10)
s2, _ = l.accept()
c2.sendall(b"after")
check("after", s2.recv(100), b"after")
`)

// TestTCPListenerInFlightWaiting: a TCP listener in flight with a
// connection completed on it is refused by name, by a dump that kills
// and by -K alike (no process can accept it before one receives the
// listener); the tree runs on untouched: once received, the listener
// accepts that connection and a new one.
func TestTCPListenerInFlightWaiting(t *testing.T) {
	dir, pid := startReadyPy(t, waitingListenerPy)
	refusedDump(t, pid, "TCP listener", "in flight", "connections waiting")
	refusedDumpWith(t, []string{"-K"}, pid, "TCP listener", "in flight", "connections waiting")
	checkResult(t, dir, 2)
}
