package tests

// TCP sockets: listening servers (python's http.server, a Go net/http
// server) moved and serving again, their options as the program reads
// them back, and what the restorer may not be made to bind.

import (
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/tests/internal/hosts"
)

// curlGet fetches url with curl, retrying for a few seconds while the
// server is not there yet, and returns the body.
func curlGet(t *testing.T, url string) string {
	t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, err = exec.Command("curl", "-sS", "-g", "--fail", "-m", "5", url).Output(); err == nil {
			return string(out)
		}
	}
	t.Fatalf("curl %s: %v", url, err)
	return ""
}

// TestTCPHTTPServer: python3 -m http.server on a loopback port, dumped
// (killed) and restored: curl gets pages from it.
func TestTCPHTTPServer(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("page one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	pid := startTree(t, dir, "log", py, "-m", "http.server", "--bind", "127.0.0.1", port)
	url := "http://" + addr + "/index.html"
	if got := curlGet(t, url); got != "page one\n" {
		t.Fatalf("before: curl %s = %q", url, got)
	}
	img := dump(t, pid, false)
	waitImageGone(t, img)
	startLoad(t, img)
	if got := curlGet(t, url); got != "page one\n" {
		t.Errorf("after: curl %s = %q", url, got)
	}
}

// TestTCPGoServer: a Go net/http server on an IPv6 loopback port, built
// by the test. Dumped with -K, its copy is refused (the port is the
// original's) and the original serves on; dumped and killed, it comes
// back and serves on, its count of requests going on.
func TestTCPGoServer(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "httpgo")
	build := exec.Command("go", "build", "-o", bin, "./tests/victims/httpgo")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build httpgo: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pid := startTree(t, dir, "log", bin, addr)
	url := "http://" + addr + "/"
	if got := curlGet(t, url); got != "hello 1\n" {
		t.Fatalf("curl %s = %q; want hello 1", url, got)
	}
	img := dump(t, pid, true)
	s := showImage(t, img)
	kinds := map[string]int{}
	for _, p := range s.Processes {
		for _, f := range p.Files {
			kinds[f.Kind]++
		}
	}
	if kinds["tcp"] != 1 {
		t.Fatalf("image files %v; want one tcp socket", kinds)
	}
	refused(t, loadCmd(img), "httpgo", addr, "in use on this host")
	if got := curlGet(t, url); got != "hello 2\n" {
		t.Fatalf("the original after -K: curl %s = %q; want hello 2", url, got)
	}
	img = dump(t, pid, false)
	waitImageGone(t, img)
	startLoad(t, img)
	if got := curlGet(t, url); got != "hello 3\n" {
		t.Errorf("restored: curl %s = %q; want hello 3", url, got)
	}
}

// optionsPy makes TCP sockets with options set, one never bound, one
// bound, two listening (IPv4 and IPv6), and writes every 50 ms a line
// of what it reads back of them, numbered.
const optionsPy = `
import socket, struct, time
S, T = socket.SOL_SOCKET, socket.IPPROTO_TCP
new = socket.socket()
new.setsockopt(T, socket.TCP_NODELAY, 1)
bound = socket.socket()
bound.setsockopt(S, socket.SO_REUSEADDR, 1)
bound.bind(("127.0.0.1", 0))
l4 = socket.socket()
l4.setsockopt(S, socket.SO_REUSEPORT, 1)
l4.setsockopt(S, socket.SO_KEEPALIVE, 1)
l4.setsockopt(T, socket.TCP_KEEPIDLE, 33)
l4.setsockopt(T, socket.TCP_KEEPINTVL, 7)
l4.setsockopt(T, socket.TCP_KEEPCNT, 4)
l4.setsockopt(T, socket.TCP_DEFER_ACCEPT, 5)
l4.setsockopt(S, socket.SO_SNDBUF, 65536)
l4.setsockopt(S, socket.SO_RCVBUF, 98304)
l4.setsockopt(S, socket.SO_LINGER, struct.pack("ii", 1, 3))
l4.setsockopt(S, socket.SO_MARK, 7)
l4.setsockopt(S, socket.SO_PRIORITY, 3)
l4.setsockopt(socket.SOL_IP, socket.IP_TOS, 0x10)
l4.setsockopt(T, socket.TCP_USER_TIMEOUT, 12345)
l4.setsockopt(socket.SOL_IP, socket.IP_TTL, 33)
l4.setsockopt(S, socket.SO_RCVLOWAT, 9)
l4.setsockopt(socket.SOL_IP, 10, 0)  # IP_MTU_DISCOVER, IP_PMTUDISC_DONT
l4.bind(("127.0.0.1", 0))
l4.listen(17)
l6 = socket.socket(socket.AF_INET6)
l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
l6.setsockopt(T, socket.TCP_NODELAY, 1)
l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 21)
l6.setsockopt(socket.IPPROTO_IPV6, 23, 3)  # IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE
# a classic BPF filter (SO_ATTACH_FILTER, 26) that takes every packet
ret = __import__("ctypes").create_string_buffer(struct.pack("HBBI", 0x6, 0, 0, 0xffffffff))
l6.setsockopt(S, 26, struct.pack("HL", 1, __import__("ctypes").addressof(ret)))
l6.bind(("::", 0))
l6.listen(5)
def opts(s):
    out = [s.family, s.getsockname()]
    for lvl, o in [(S, socket.SO_REUSEADDR), (S, socket.SO_REUSEPORT), (S, socket.SO_KEEPALIVE),
                   (T, socket.TCP_KEEPIDLE), (T, socket.TCP_KEEPINTVL), (T, socket.TCP_KEEPCNT),
                   (T, socket.TCP_DEFER_ACCEPT), (S, socket.SO_SNDBUF), (S, socket.SO_RCVBUF),
                   (S, socket.SO_MARK), (S, socket.SO_PRIORITY), (T, socket.TCP_NODELAY),
                   (T, socket.TCP_USER_TIMEOUT), (S, socket.SO_ACCEPTCONN), (S, socket.SO_RCVLOWAT)]:
        out.append(s.getsockopt(lvl, o))
    out.append(struct.unpack("ii", s.getsockopt(S, socket.SO_LINGER, 8)))
    out.append(s.getsockopt(S, 26, 8))  # SO_GET_FILTER
    if s.family == socket.AF_INET6:
        out.append(s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
        out.append(s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))
        out.append(s.getsockopt(socket.IPPROTO_IPV6, 23))
    else:
        out.append(s.getsockopt(socket.SOL_IP, socket.IP_TOS))
        out.append(s.getsockopt(socket.SOL_IP, socket.IP_TTL))
        out.append(s.getsockopt(socket.SOL_IP, 10))
    return out
n = 0
while True:
    n += 1
    with open("opts", "a") as f:
        f.write("%d %s\n" % (n, [opts(s) for s in (new, bound, l4, l6)]))
    time.sleep(0.05)
`

// TestTCPOptions: sockets never bound, bound, listening on IPv4 and on
// IPv6 come back as the program reads them: addresses, ports, backlog
// state and every option it set.
func TestTCPOptions(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir, before := moveCountingPython(t, optionsPy, "opts", 3, 3)
	checkOptsKept(t, dir, before)
}

// checkOptsKept checks that the last line of "opts" in dir, written
// after a move, says what line before, the last before it, said, and
// that the program wrote nothing to its log.
func checkOptsKept(t *testing.T, dir string, before int) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "opts"))
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	state := func(l string) string { return strings.SplitN(l, " ", 2)[1] }
	if got, want := state(ls[len(ls)-1]), state(ls[before-1]); got != want {
		t.Errorf("after the move the program reads\n%s\nwant\n%s", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
		t.Errorf("the program complained: %s", b)
	}
}

// userListenerPy listens on the port given, as an ordinary user.
const userListenerPy = `
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open("ready", "w").close()
while True: time.sleep(0.05)
`

// startUserReady starts argv as the user of cred in dir, and waits until
// it makes the file "ready" there; it is killed when t ends.
func startUserReady(t *testing.T, cred *syscall.Credential, dir string, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { killTree(t, pid) })
	waitFile(t, filepath.Join(dir, "ready"))
	return pid
}

// TestTCPImageAttack: an image edited to bind a port below 1024 for an
// ordinary user's process is refused by root's procs-load (the socket is
// bound with the process's rights, not root's); addresses, ports, states
// and options out of range are refused by validation.
func TestTCPImageAttack(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	cred := testUser(t)
	py := userPython(t)
	dir := userDir(t, cred)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	pid := startUserReady(t, cred, dir, py, "-c", userListenerPy, port)
	img := dump(t, pid, true)
	tcpFile := func(e *imageEdit) *format.TCP {
		for i := range e.Files {
			if e.Files[i].TCP != nil {
				return e.Files[i].TCP
			}
		}
		t.Fatal("no TCP socket in the image")
		return nil
	}
	for _, tc := range []struct {
		name  string
		edit  func(*format.TCP)
		wants []string
	}{
		{"privileged port", func(s *format.TCP) { s.Local = "127.0.0.1:81" }, []string{"port 81", "privilege"}},
		{"port zero", func(s *format.TCP) { s.Local = "127.0.0.1:0" }, []string{"TCP socket", "not an address"}},
		{"v6 address on v4", func(s *format.TCP) { s.Local = "[::1]:" + port }, []string{"TCP socket", "not an address"}},
		{"state", func(s *format.TCP) { s.State = "syn-sent" }, []string{"TCP socket", "state"}},
		{"closed with an address", func(s *format.TCP) { s.State = format.TCPClosed }, []string{"TCP socket", "closed and has an address"}},
		{"family", func(s *format.TCP) { s.Family = 17 }, []string{"TCP socket", "family 17"}},
		{"backlog", func(s *format.TCP) { s.Backlog = 1 << 30 }, []string{"backlog"}},
		{"buffer", func(s *format.TCP) { s.Options.SndBuf = -1 }, []string{"SO_SNDBUF"}},
		{"keepcnt", func(s *format.TCP) { s.Options.KeepCnt = 1000 }, []string{"TCP_KEEPCNT"}},
		{"ttl", func(s *format.TCP) { s.Options.TTL = 256 }, []string{"IP_TTL"}},
		{"rcvlowat", func(s *format.TCP) { s.Options.RcvLowat = -1 }, []string{"SO_RCVLOWAT"}},
		{"pmtudisc", func(s *format.TCP) { s.Options.PMTUDisc = 7 }, []string{"IP_MTU_DISCOVER"}},
		{"device", func(s *format.TCP) { s.Options.Device = "../x" }, []string{"SO_BINDTODEVICE"}},
		{"remote", func(s *format.TCP) { s.Remote = "127.0.0.1:1" }, []string{"peer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editImage(t, img, func(e *imageEdit) { tc.edit(tcpFile(e)) })
			refused(t, loadCmd(bad), "python3", tc.wants...)
		})
	}
	// The original, dumped with -K, still listens.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second); err != nil {
		t.Errorf("the original after the dumps: %v", err)
	} else {
		c.Close()
	}
}

// tcpEchoPy listens on the port given (on 127.0.0.1, or the address
// given after it), takes one connection at a
// time, and answers each numbered line with its number, slowly: bytes wait unread
// in its receive queue. It writes each number it got to "got".
const tcpEchoPy = `
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1])))
l.listen()
open("ready", "w").close()
while True:
    c, _ = l.accept()
    f = c.makefile("rb")
    try:
        with open("got", "a") as out:
            for line in f:
                n = line.split()[0].decode()
                out.write(n + "\n"); out.flush()
                c.sendall(("%s %s\n" % (n, "y" * 500)).encode())
                time.sleep(0.002)
    except ConnectionResetError:
        open("server-resets", "a").write("reset\n")
    c.close()
`

// echoClientPy connects to the port given (on 127.0.0.1, or the address
// given after it; then a pacing rate, SO_MAX_PACING_RATE, in bytes per
// second) and sends numbered lines of
// 1000 bytes as fast as it may, reading the answers every 50 ms (they
// wait in its receive queue meanwhile) and writing their numbers to
// "acks".
const echoClientPy = `
import socket, sys, time
a = socket.create_connection((sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1])))
if len(sys.argv) > 3:
    a.setsockopt(socket.SOL_SOCKET, 47, int(sys.argv[3]))  # SO_MAX_PACING_RATE
a.setblocking(False)
n, pending, acks, last = 0, b"", b"", 0
with open("acks", "a") as out:
    while True:
        if len(pending) < 100000:
            n += 1
            pending += ("%d %s\n" % (n, "x" * 990)).encode()
        try:
            pending = pending[a.send(pending):]
        except BlockingIOError:
            pass
        if time.time() - last > 0.05:
            last = time.time()
            while True:
                try:
                    d = a.recv(65536)
                except BlockingIOError:
                    break
                if not d:
                    raise SystemExit("the server closed the connection")
                acks += d
        while b"\n" in acks:
            line, acks = acks.split(b"\n", 1)
            out.write(line.decode().split()[0] + "\n"); out.flush()
        time.sleep(0.001)
`

// echoPair starts an echo server and its client (with args after the
// port), each a tree of its own, in folders of their own, and waits
// until lines flow.
func echoPair(t *testing.T, args ...string) (server, client int, sdir, cdir string) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	sdir, cdir = t.TempDir(), t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	server = startTree(t, sdir, "log", py, "-c", tcpEchoPy, port)
	waitFile(t, filepath.Join(sdir, "ready"))
	client = startTree(t, cdir, "log", append([]string{py, "-c", echoClientPy, port}, args...)...)
	waitLines(t, filepath.Join(sdir, "got"), 200, 10*time.Second)
	waitLines(t, filepath.Join(cdir, "acks"), 100, 10*time.Second)
	return server, client, sdir, cdir
}

// startLoadLogged is startLoad, saying what procs-load said if t fails.
func startLoadLogged(t *testing.T, img string, args ...string) *load {
	t.Helper()
	ld := startLoad(t, img, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("procs-load: %s", ld.proc.stderrText())
		}
	})
	return ld
}

// checkLogs fails t if a program wrote to its log in one of dirs (a
// reset, an end of the connection).
func checkLogs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if b, _ := os.ReadFile(filepath.Join(d, "log")); len(b) > 0 {
			t.Errorf("a program complained: %s", b)
		}
	}
}

// checkEcho checks that lines go on flowing both ways, every one once and
// in order, and that neither program complained (a reset, an end).
func checkEcho(t *testing.T, sdir, cdir string) {
	t.Helper()
	got, acks := filepath.Join(sdir, "got"), filepath.Join(cdir, "acks")
	defer checkLogs(t, sdir, cdir)
	before := lineNumbers(t, got)
	waitLines(t, got, before+300, 20*time.Second)
	lineNumbers(t, got)
	waitLines(t, acks, before+200, 20*time.Second)
	lineNumbers(t, acks)
}

// TestTCPEstablishedServer: the server of a connection with bytes in
// flight and unread both ways is moved (dumped, killed, restored): its
// client sees every answer once, in order, and no reset.
func TestTCPEstablishedServer(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	server, _, sdir, cdir := echoPair(t)
	img := dump(t, server, false)
	s := showImage(t, img)
	if len(s.Processes) != 1 {
		t.Fatalf("image of %d processes", len(s.Processes))
	}
	waitImageGone(t, img)
	startLoadLogged(t, img)
	checkEcho(t, sdir, cdir)
}

// TestTCPEstablishedClient: the client's side moved instead; the server
// sees every line once, in order, and no reset.
func TestTCPEstablishedClient(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	_, client, sdir, cdir := echoPair(t)
	img := dump(t, client, false)
	waitImageGone(t, img)
	startLoadLogged(t, img)
	checkEcho(t, sdir, cdir)
}

// TestTCPEstablishedPaced: the client's connection is paced (as BBR
// and fq pace any): bytes it has not sent yet wait while its window is
// open. The kernel must send none of them while the connection is held,
// or the server acknowledges bytes the restored connection has as not
// sent yet, which it drops as acknowledgements of the future, with the
// server's data: the connection stalls for good (it did in one run of
// three before the hold closed the window; more often on a busy machine).
func TestTCPEstablishedPaced(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	_, client, sdir, cdir := echoPair(t, "127.0.0.1", "300000")
	img := dump(t, client, false)
	waitImageGone(t, img)
	startLoadLogged(t, img)
	checkEcho(t, sdir, cdir)
}

// TestTCPEstablishedKeep: with -K the server goes on with its
// connection as before, and its copy is refused on this host, where its
// port and its connection are the original's.
func TestTCPEstablishedKeep(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	server, _, sdir, cdir := echoPair(t)
	img := dump(t, server, true)
	checkEcho(t, sdir, cdir)
	checkNotHeld(t, server, 3)
	refused(t, loadCmd(img), "python3", "in use on this host")
	checkEcho(t, sdir, cdir)
}

// checkNotHeld checks, within a few seconds, that no socket of process
// pid among fds from from up is in repair mode or has a filter attached.
func checkNotHeld(t *testing.T, pid, from int) {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	deadline := time.Now().Add(10 * time.Second)
	for num := from; num < from+8; num++ {
		s, err := unix.PidfdGetfd(pidfd, num, 0)
		if err != nil {
			continue
		}
		for {
			repair, _ := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR)
			filter := filterLen(s)
			if repair == 0 && filter == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("fd %d of process %d: TCP_REPAIR %d, a filter of %d instructions", num, pid, repair, filter)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		unix.Close(s)
	}
}

// filterLen is the number of instructions of the filter attached to
// socket s (SO_GET_FILTER asked with no room), 0 for none.
func filterLen(s int) int {
	n, _ := linux.GetsockoptBytes(s, unix.SOL_SOCKET, unix.SO_GET_FILTER, nil)
	return n
}

// TestTCPFailedDump: dumps that fail once the connection is held (the
// reader of the image goes away, or the dump is killed) or, with -K, are
// killed at random moments leave it as it was: out of repair mode, no filter, lines flowing both ways,
// no reset.
func TestTCPFailedDump(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	server, _, sdir, cdir := echoPair(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	for round := range 6 {
		failDump(t, server, round, rng)
		checkNotHeld(t, server, 3)
		checkEcho(t, sdir, cdir)
	}
}

// failDump runs a dump of pid that fails, by round modulo 3: the reader
// of the image goes away after the state, before the memory; a dump
// with -K is killed at a random moment; or it is killed once it has
// written the state (every connection held). The tree must be there
// after it.
func failDump(t *testing.T, pid, round int, rng *rand.Rand) {
	t.Helper()
	args := []string{strconv.Itoa(pid)}
	if round%3 != 0 {
		args = append([]string{"-K"}, args...)
	}
	cmd := exec.Command(filepath.Join(binDir, "procs-dump"), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	switch round % 3 {
	case 0:
		io.CopyN(io.Discard, out, 4096)
		out.Close()
	case 1:
		go io.Copy(io.Discard, out)
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		cmd.Process.Kill()
	case 2:
		io.CopyN(io.Discard, out, 4096)
		cmd.Process.Kill()
		go io.Copy(io.Discard, out)
	}
	cmd.Wait()
	if _, ok := procInfo(pid); !ok {
		t.Fatalf("round %d: process %d is gone", round, pid)
	}
}

// inTreePy is a server and its client in one tree: the parent serves,
// its child connects and sends numbered lines; both write what they got.
const inTreePy = `
import os, socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
port = l.getsockname()[1]
if os.fork() == 0:
    l.close()
    exec(CLIENT)
c, _ = l.accept()
l.close()
f = c.makefile("rb")
with open("got", "a") as out:
    for line in f:
        n = line.split()[0].decode()
        out.write(n + "\n"); out.flush()
        c.sendall(("%s %s\n" % (n, "y" * 500)).encode())
        time.sleep(0.002)
`

// TestTCPInTree: both ends of a connection in the tree move together.
func TestTCPInTree(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	client := strings.Replace(echoClientPy, `int(sys.argv[1])`, `port`, 1)
	src := "CLIENT = " + strconv.Quote(client) + "\n" + inTreePy
	pid := startTree(t, dir, "log", py, "-c", src)
	waitLines(t, filepath.Join(dir, "got"), 200, 10*time.Second)
	img := dump(t, pid, false)
	if n := len(showImage(t, img).Processes); n != 2 {
		t.Fatalf("image of %d processes; want 2", n)
	}
	waitImageGone(t, img)
	startLoadLogged(t, img)
	checkEcho(t, dir, dir)
}

// reconnectPy is echoClientPy that, when its connection is reset,
// writes "reset" to "resets" and connects again.
const reconnectPy = `
import socket, sys, time
port = int(sys.argv[1])
n = 0
while True:
    a = socket.create_connection(("127.0.0.1", port))
    a.setblocking(False)
    pending = b""
    try:
        while True:
            if len(pending) < 100000:
                n += 1
                pending += ("%d %s\n" % (n, "x" * 990)).encode()
            try:
                pending = pending[a.send(pending):]
            except BlockingIOError:
                pass
            try:
                if a.recv(65536) == b"":
                    raise ConnectionResetError("end")
            except BlockingIOError:
                pass
            time.sleep(0.001)
    except (ConnectionResetError, BrokenPipeError):
        open("resets", "a").write("reset\n")
        a.close()
`

// TestTCPClose: a client restored with --tcp=close sees its connection
// reset, connects again and carries on; the server, whose end of the old
// connection is reset too, serves the new one.
func TestTCPClose(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	sdir, cdir := t.TempDir(), t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	startTree(t, sdir, "log", py, "-c", tcpEchoPy, port)
	waitFile(t, filepath.Join(sdir, "ready"))
	client := startTree(t, cdir, "log", py, "-c", reconnectPy, port)
	got := filepath.Join(sdir, "got")
	waitLines(t, got, 100, 10*time.Second)
	img := dump(t, client, false)
	waitImageGone(t, img)
	startLoadLogged(t, img, "--tcp=close")
	waitFile(t, filepath.Join(cdir, "resets"))
	n := len(strings.Split(string(readFile(t, got)), "\n"))
	waitLines(t, got, n+100, 20*time.Second)
	checkLogs(t, sdir, cdir)
}

// TestTCPConnImageAttack: a connection's image cannot make procs-load
// take over a connection that exists on this host (the -K original's
// here), and its repair state out of range is refused before anything
// runs.
func TestTCPConnImageAttack(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	_, client, sdir, cdir := echoPair(t)
	img := dump(t, client, true)
	refused(t, loadCmd(img), "python3", "exists on this host")
	conn := func(e *imageEdit) *format.TCP {
		for i := range e.Files {
			if c := e.Files[i].TCP; c != nil && c.Conn != nil {
				return c
			}
		}
		t.Fatal("no TCP connection in the image")
		return nil
	}
	for _, tc := range []struct {
		name  string
		edit  func(*format.TCP)
		wants []string
	}{
		{"mss", func(s *format.TCP) { s.Conn.MSS = 0 }, []string{"MSS 0"}},
		{"wscale", func(s *format.TCP) { s.Conn.SndWscale = 15 }, []string{"window scales"}},
		{"unsent", func(s *format.TCP) { s.Conn.Unsent = len(s.Conn.SendQueue) + 1 }, []string{"not sent"}},
		{"peer", func(s *format.TCP) { s.Remote = "127.0.0.1:0" }, []string{"peer"}},
		{"queue", func(s *format.TCP) { s.Conn.RecvQueue = make([]byte, 8<<20+1) }, []string{"queues"}},
		{"not a connection", func(s *format.TCP) { s.State = format.TCPBound }, []string{"not a connection"}},
		// Half-closed states: the FINs must agree with the queues, and
		// no segment is made for a connection the host has.
		{"time-wait", func(s *format.TCP) { s.State = "time-wait" }, []string{"state \"time-wait\""}},
		{"fin not sent, established", func(s *format.TCP) { s.Conn.FinUnsent = true }, []string{"FIN not sent in state established"}},
		{"fin not sent, fin-wait-2", func(s *format.TCP) {
			s.State, s.Conn.SendQueue, s.Conn.Unsent, s.Conn.FinUnsent = format.TCPFinWait2, nil, 0, true
		}, []string{"FIN not sent in state fin-wait-2"}},
		{"fin sent before bytes", func(s *format.TCP) {
			s.State, s.Conn.SendQueue, s.Conn.Unsent, s.Conn.FinUnsent = format.TCPFinWait1, []byte("abc"), 2, false
		}, []string{"a FIN sent before 2 bytes not sent"}},
		{"fin acknowledged before bytes", func(s *format.TCP) {
			s.State, s.Conn.SendQueue, s.Conn.Unsent = format.TCPFinWait2, []byte("abc"), 0
		}, []string{"3 bytes not acknowledged after an acknowledged FIN"}},
		{"close-wait of a connection here", func(s *format.TCP) { s.State = format.TCPCloseWait }, []string{"exists on this host"}},
		{"last-ack of a connection here", func(s *format.TCP) {
			s.State, s.Conn.Unsent, s.Conn.FinUnsent = format.TCPLastAck, 0, false
		}, []string{"exists on this host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editImage(t, img, func(e *imageEdit) { tc.edit(conn(e)) })
			refused(t, loadCmd(bad), "python3", tc.wants...)
		})
	}
	checkNotHeld(t, client, 3)
	checkEcho(t, sdir, cdir)
}

// threeHosts makes hosts.Three and removes them at the end of the test.
func threeHosts(t *testing.T) *hosts.Three {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter is missing")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	h, err := hosts.New(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Remove)
	return h
}

// moveAddress is h.Move, failing t if it cannot.
func moveAddress(t *testing.T, h *hosts.Three) {
	t.Helper()
	if err := h.Move(); err != nil {
		t.Fatal(err)
	}
}

// letGoHeld has the holders on host A of h let go of the connections
// that left it, as a restore on A would have them do (else they hold
// them for minutes, processes left over by the test).
func letGoHeld(t *testing.T, h *hosts.Three) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	for _, l := range strings.Split(cmdOutput(t, hosts.In(h.A, "ss", "-xl")...), "\n") {
		if i := strings.Index(l, "@procs-tcp-hold "); i >= 0 {
			f := strings.Fields(l[i:])
			exec.Command("nsenter", "--net=/run/netns/"+h.A, py, "-c",
				"import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(chr(0)+sys.argv[1]); s.recv(1)", strings.Join(f[:3], " ")[1:]).Run()
		}
	}
}

// TestTCPMoveHosts: a server on host A with a client on host C holding a
// connection, lines flowing both ways, is moved to host B with its
// address, a routed floating IP: dumped on A, restored on B, then C's
// route to the address goes to B. The
// client sees every answer once, in order, and no reset.
func TestTCPMoveHosts(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	h := threeHosts(t)
	t.Cleanup(func() { letGoHeld(t, h) })
	sdir, cdir := t.TempDir(), t.TempDir()
	server := startTree(t, sdir, "log", hosts.In(h.A, py, "-c", tcpEchoPy, "7000", h.S)...)
	waitFile(t, filepath.Join(sdir, "ready"))
	startTree(t, cdir, "log", hosts.In(h.C, py, "-c", echoClientPy, "7000", h.S)...)
	waitLines(t, filepath.Join(sdir, "got"), 200, 10*time.Second)
	img := dump(t, server, false)
	waitImageGone(t, img)
	ld := start(t, hosts.In(h.B, filepath.Join(binDir, "procs-load"), img), t.TempDir())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("procs-load: %s", ld.stderrText())
		}
	})
	waitFor(t, 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", h.B, "ss", "-tn", "state", "established").Output()
		return strings.Contains(string(out), h.S+":7000")
	}, "the connection on host B")
	moveAddress(t, h)
	checkEcho(t, sdir, cdir)
}

// cmdOutput runs argv and returns its output.
func cmdOutput(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return string(out)
}

// resetHeldPy listens on the port given, takes a connection from itself
// and has its client reset it, keeping the accepted end's fd (its state
// CLOSE, its port the listener's); once "go" exists it reads that fd,
// writing what it got to "read", then accepts a client, writing
// "accepted".
const resetHeldPy = `
import os, socket, struct, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen()
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
a, _ = l.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
time.sleep(0.2)
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.01)
try:
    got = "data %r" % a.recv(10)
except OSError as e:
    got = "error " + os.strerror(e.errno)
open("read", "w").write(got)
b, _ = l.accept()
open("accepted", "w").close()
time.sleep(60)
`

// TestTCPResetHeld: a server keeps the fd of a connection its client
// reset (state CLOSE, getsockname still giving the listener's port).
// It was dumped as a socket bound to that port, which the restore could
// not bind beside the listener ("in use"): it comes back as a
// connection reset, and the listener accepts.
func TestTCPResetHeld(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	pid := startTree(t, dir, "log", py, "-c", resetHeldPy, port)
	waitFile(t, filepath.Join(dir, "ready"))
	img := dump(t, pid, false)
	waitImageGone(t, img)
	startLoadLogged(t, img)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("tcp", "127.0.0.1:"+port); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("the restored listener: %v", err)
	}
	defer c.Close()
	waitFile(t, filepath.Join(dir, "accepted"), filepath.Join(dir, "log"))
	if got := string(readFile(t, filepath.Join(dir, "read"))); got != "error Connection reset by peer" {
		t.Errorf("the reset connection read after the move: %q; want a reset", got)
	}
}
