package tests

// Half-closed TCP connections: a server holding a connection whose client
// has sent its request and shut down writing (CLOSE-WAIT), and one that
// has sent its answer and shut down writing (FIN-WAIT-2, or FIN-WAIT-1
// with bytes not sent yet), moved while they wait; each end reads every
// byte once, then the end, and no reset.

import (
	"cmp"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// halfClosePy is a server (argv: server MODE PORT N [HOST]) or its client
// (client MODE PORT N [HOST]), on 127.0.0.1 or HOST, each writing "result"
// once done. Mode "answer":
// the client sends a line "N", N bytes, and shuts down writing, then
// reads the answer to the end; the server reads the line, waits for a
// file "go", reads the request to its end and answers N bytes. Mode
// "shut": the server sends N bytes and shuts down writing, then reads the
// client's reply to its end; the client (with a small receive buffer)
// waits for "go", reads the N bytes to the end and replies. Mode
// "lastack": as "answer", but the server reads the request and answers
// at once, shuts down writing, and waits for "go" to close, while the
// client (with a small receive buffer) waits for "go" to read.
const halfClosePy = `
import os, socket, sys, time
S = socket.SOL_SOCKET
role, mode, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
def blob(n, k): return bytes((i * 7 + k) % 251 for i in range(n))
def wait(name):
    while not os.path.exists(name): time.sleep(0.01)
def readall(s):
    b = b""
    while True:
        d = s.recv(65536)
        if not d: return b
        b += d
def done(what):
    open("result.tmp", "w").write(what)
    os.rename("result.tmp", "result")
if role == "server":
    l = socket.socket(family)
    l.setsockopt(S, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen()
    open("listening", "w").close()
    c, _ = l.accept()
    l.close()
    if mode == "lastack":
        line = b""
        while not line.endswith(b"\n"): line += c.recv(1)
        req = readall(c)
        c.setsockopt(S, socket.SO_SNDBUF, 1 << 20)
        c.sendall(blob(n, 2))
        c.shutdown(socket.SHUT_WR)
        open("ready", "w").close()
        wait("go")
        c.close()
        done("request %s %d" % (req == blob(int(line), 1), len(req)))
    elif mode == "answer":
        line = b""
        while not line.endswith(b"\n"): line += c.recv(1)
        open("ready", "w").close()
        wait("go")
        req = readall(c)
        c.sendall(blob(n, 2))
        c.close()
        done("request %s %d" % (req == blob(int(line), 1), len(req)))
    else:
        c.setsockopt(S, socket.SO_SNDBUF, 1 << 20)
        c.sendall(blob(n, 2))
        c.shutdown(socket.SHUT_WR)
        open("ready", "w").close()
        rep = readall(c)
        done("reply %s %d" % (rep == blob(1000, 3), len(rep)))
else:
    s = socket.socket(family)
    if mode != "answer": s.setsockopt(S, socket.SO_RCVBUF, 16384)
    s.connect((host, port))
    if mode == "lastack":
        s.sendall(b"%d\n" % n + blob(n, 1))
        s.shutdown(socket.SHUT_WR)
        open("ready", "w").close()
        wait("go")
        ans = readall(s)
        done("answer %s %d" % (ans == blob(n, 2), len(ans)))
    elif mode == "answer":
        s.sendall(b"%d\n" % n + blob(n, 1))
        s.shutdown(socket.SHUT_WR)
        open("ready", "w").close()
        ans = readall(s)
        done("answer %s %d" % (ans == blob(n, 2), len(ans)))
    else:
        open("ready", "w").close()
        wait("go")
        data = readall(s)
        s.sendall(blob(1000, 3))
        s.close()
        done("data %s %d" % (data == blob(n, 2), len(data)))
`

// tcpStates lists the TCP states of the sockets among fds 3 to 10 of
// process pid (TCP_INFO of a copy, pidfd_getfd); none while there is no
// process pid.
func tcpStates(pid int) []uint8 {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(pidfd)
	var out []uint8
	for num := 3; num <= 10; num++ {
		s, err := unix.PidfdGetfd(pidfd, num, 0)
		if err != nil {
			continue
		}
		b := make([]byte, 256)
		if n, err := linux.GetsockoptBytes(s, unix.IPPROTO_TCP, unix.TCP_INFO, b); err == nil && n >= linux.SizeofTCPInfo {
			out = append(out, linux.DecodeTCPInfo(b).State)
		}
		unix.Close(s)
	}
	return out
}

// TestTCPHalfClosed: the end of a half-closed connection is moved while
// it waits (killed and restored, or with -K going on), then the
// exchange goes on: each side gets every byte once and the end.
func TestTCPHalfClosed(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, tc := range []struct {
		name   string
		mode   string
		n      int
		client bool  // the client is moved, not the server
		state  uint8 // of the moved end's connection
		keep   bool
		load   []string // procs-load's options
		host   string   // the server's address, 127.0.0.1 if empty
	}{
		// The server holds a request and its end, unread.
		{"close-wait", "answer", 30000, false, linux.TCP_CLOSE_WAIT, false, nil, ""},
		{"close-wait -K", "answer", 30000, false, linux.TCP_CLOSE_WAIT, true, nil, ""},
		{"close-wait, restored -d", "answer", 30000, false, linux.TCP_CLOSE_WAIT, false, []string{"-d"}, ""},
		{"close-wait IPv6", "answer", 30000, false, linux.TCP_CLOSE_WAIT, false, nil, "::1"},
		{"fin-wait-2 IPv6", "shut", 5000, false, linux.TCP_FIN_WAIT2, false, nil, "::1"},
		// The server has sent all and shut down; its FIN is acknowledged.
		{"fin-wait-2", "shut", 5000, false, linux.TCP_FIN_WAIT2, false, nil, ""},
		// ...or waits behind bytes the client has no room for yet.
		{"fin-wait-1", "shut", 300000, false, linux.TCP_FIN_WAIT1, false, nil, ""},
		{"fin-wait-1 -K", "shut", 300000, false, linux.TCP_FIN_WAIT1, true, nil, ""},
		// The server has the request and its end, has answered behind
		// bytes the client has no room for yet, and shut down.
		{"last-ack", "lastack", 300000, false, linux.TCP_LAST_ACK, false, nil, ""},
		// The client has the answer and its end unread.
		{"client close-wait", "shut", 5000, true, linux.TCP_CLOSE_WAIT, false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sdir, cdir := t.TempDir(), t.TempDir()
			_, port, _ := net.SplitHostPort(freeAddr(t))
			n := strconv.Itoa(tc.n)
			host := cmp.Or(tc.host, "127.0.0.1")
			if tc.host != "" {
				ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
				if err != nil {
					t.Skipf("no %s: %v", host, err)
				}
				_, port, _ = net.SplitHostPort(ln.Addr().String())
				ln.Close()
			}
			server := startTree(t, sdir, "log", py, "-c", halfClosePy, "server", tc.mode, port, n, host)
			waitFile(t, filepath.Join(sdir, "listening"), filepath.Join(sdir, "log"))
			client := startTree(t, cdir, "log", py, "-c", halfClosePy, "client", tc.mode, port, n, host)
			waitFile(t, filepath.Join(sdir, "ready"), filepath.Join(sdir, "log"))
			waitFile(t, filepath.Join(cdir, "ready"), filepath.Join(cdir, "log"))
			moved := server
			if tc.client {
				moved = client
			}
			waitFor(t, 10*time.Second, func() bool {
				st := tcpStates(moved)
				return len(st) == 1 && st[0] == tc.state
			}, "state %d of process %d's connection", tc.state)
			img := dump(t, moved, tc.keep)
			if tc.keep {
				checkNotHeld(t, moved, 3)
				if st := tcpStates(moved); len(st) != 1 || st[0] != tc.state {
					t.Errorf("after the dump -K: states %v; want [%d]", st, tc.state)
				}
			} else {
				waitImageGone(t, img)
				startLoadLogged(t, img, tc.load...)
				waitFor(t, 10*time.Second, func() bool {
					st := tcpStates(moved)
					return len(st) == 1 && st[0] == tc.state
				}, "state %d of the restored connection", tc.state)
			}
			if err := os.WriteFile(filepath.Join(cdir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sdir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"answer": "request True 30000", "shut": "reply True 1000", "lastack": "request True " + n}[tc.mode]
			cwant := map[string]string{"answer": "answer True 30000", "shut": "data True " + n, "lastack": "answer True " + n}[tc.mode]
			for _, r := range []struct{ dir, want string }{{sdir, want}, {cdir, cwant}} {
				waitFile(t, filepath.Join(r.dir, "result"), filepath.Join(r.dir, "log"))
				if got := strings.TrimSpace(string(readFile(t, filepath.Join(r.dir, "result")))); got != r.want {
					t.Errorf("%s: %q; want %q", r.dir, got, r.want)
				}
			}
			checkLogs(t, sdir, cdir)
		})
	}
}

// TestTCPHalfClosedInTree: a server and its client in one tree, the
// server in CLOSE-WAIT and the client in FIN-WAIT-2, move together.
func TestTCPHalfClosedInTree(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	sdir, cdir := filepath.Join(dir, "s"), filepath.Join(dir, "c")
	for _, d := range []string{sdir, cdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	script := `cd s && "$0" -c "$1" server answer $2 30000 & (cd c && until [ -e ../s/listening ]; do sleep 0.01; done; exec "$0" -c "$1" client answer $2 30000) & wait`
	pid := startTree(t, dir, "log", "sh", "-c", script, py, halfClosePy, port)
	waitFile(t, filepath.Join(sdir, "ready"), filepath.Join(dir, "log"))
	waitFile(t, filepath.Join(cdir, "ready"), filepath.Join(dir, "log"))
	for _, st := range []string{"close-wait", "fin-wait-2"} {
		waitFor(t, 10*time.Second, func() bool {
			out, _ := exec.Command("ss", "-tnH", "state", st, "( sport = :"+port+" or dport = :"+port+" )").Output()
			return strings.TrimSpace(string(out)) != ""
		}, "a connection in %s", st)
	}
	img := dump(t, pid, false)
	if n := len(showImage(t, img).Processes); n != 3 {
		t.Fatalf("image of %d processes; want 3", n)
	}
	waitImageGone(t, img)
	startLoadLogged(t, img)
	waitFile(t, filepath.Join(sdir, "listening"))
	if err := os.WriteFile(filepath.Join(sdir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ dir, want string }{{sdir, "request True 30000"}, {cdir, "answer True 30000"}} {
		waitFile(t, filepath.Join(r.dir, "result"), filepath.Join(dir, "log"))
		if got := strings.TrimSpace(string(readFile(t, filepath.Join(r.dir, "result")))); got != r.want {
			t.Errorf("%s: %q; want %q", r.dir, got, r.want)
		}
	}
	checkLogs(t, dir)
}
