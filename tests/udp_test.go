package tests

// UDP, UDP-Lite and ping sockets: a counting server with datagrams
// queued unread moved and counting on, the queue back whole with its
// senders; what an image may not make procs-load do with them.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"procs/format"
	"procs/tests/internal/hosts"
)

// udpServerPy is a UDP (argv[3] "lite": UDP-Lite) server bound to the
// address and port given that reads its datagrams slowly, so that they
// wait in its queue, and writes a numbered line for each: the client,
// its sequence number and try, and the sender's port. It checks each
// datagram's boundaries (its length is in it) and answers each with the
// sequence number it has from that client in order so far, which the
// client waits for.
const udpServerPy = `
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
proto = 136 if len(sys.argv) > 3 else 0
s = socket.socket(fam, socket.SOCK_DGRAM, proto)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 300000)
if proto:
    s.setsockopt(136, 11, 8)  # UDPLITE_RECV_CSCOV
s.bind((host, port))
open("ready", "w").close()
n, have = 0, {}
with open("got", "a") as out:
    while True:
        d, a = s.recvfrom(65536)
        f = d.split(b" ", 4)
        if len(f) < 5 or len(d) != int(f[3]):
            print("bad datagram of %d bytes from %s: %r" % (len(d), a, d[:40]), flush=True)
            continue
        c, seq, tries = f[0].decode(), int(f[1]), f[2].decode()
        if seq == have.get(c, 0) + 1:
            have[c] = seq
        n += 1
        out.write("%d %s %d %s %d\n" % (n, c, seq, tries, a[1])); out.flush()
        s.sendto(str(have.get(c, 0)).encode(), a)
        time.sleep(0.01)
`

// udpClientPy sends the server numbered datagrams of many lengths, a
// window of 20 ahead of the answers, and sends again from the oldest
// unanswered after half a second without an answer (a datagram lost).
const udpClientPy = `
import socket, sys, time
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
proto = 136 if len(sys.argv) > 4 else 0
s = socket.socket(fam, socket.SOCK_DGRAM, proto)
s.settimeout(0.5)
base, nxt, tries = 1, 1, 0
def send(seq):
    body = " " + "x" * (seq * 37 % 1400)
    head = "%s %d %d " % (name, seq, tries)
    n = len(head) + 6 + len(body)
    s.sendto(("%s%06d%s" % (head, n, body)).encode(), (host, port))
while True:
    while nxt < base + 20:
        send(nxt); nxt += 1
    try:
        base = max(base, int(s.recv(100)) + 1)
    except socket.timeout:
        tries += 1
        nxt = base
`

// udpServer starts udpServerPy on a free port of host (proto "" or
// "lite") with a client from each of clients, and waits until
// datagrams flow.
func udpServer(t *testing.T, host, proto string, clients ...string) (pid int, dir, port string) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	dir = t.TempDir()
	_, port, _ = net.SplitHostPort(freeUDP(t, host))
	args := []string{py, "-c", udpServerPy, host, port}
	if proto != "" {
		args = append(args, proto)
	}
	pid = startTree(t, dir, "log", args...)
	waitFile(t, filepath.Join(dir, "ready"))
	for i, to := range clients {
		args := []string{py, "-c", udpClientPy, "c" + strconv.Itoa(i), to, port}
		if proto != "" {
			args = append(args, proto)
		}
		startTree(t, t.TempDir(), "log", args...)
	}
	waitLines(t, filepath.Join(dir, "got"), 100, 10*time.Second)
	return pid, dir, port
}

// udpFile is the image's UDP socket.
func udpFile(t *testing.T, img string) format.Dgram {
	t.Helper()
	var d *format.Dgram
	for _, f := range decodeTree(t, img).Files {
		if f.UDP != nil {
			d = f.UDP
		}
	}
	if d == nil {
		t.Fatal("no UDP socket in the image")
	}
	return *d
}

// checkRequeued checks that the server got, right after its line
// before (or the one after it: a datagram the server had read but not
// written a line for yet when it was dumped), the datagrams queued in d,
// in order, whole, from their senders' ports (unless !senders), and that
// it counts on to more lines after.
func checkRequeued(t *testing.T, dir string, before int, d format.Dgram, senders bool) {
	t.Helper()
	got := filepath.Join(dir, "got")
	waitLines(t, got, before+len(d.Queue)+100, 20*time.Second)
	n := lineNumbers(t, got)
	lines := strings.Split(strings.TrimSpace(string(readFile(t, got))), "\n")
	var errs []string
	for _, from := range []int{before, before + 1} {
		errs = nil
		for k, g := range d.Queue {
			f := strings.SplitN(string(g.Data), " ", 4)
			_, port, _ := net.SplitHostPort(g.From)
			want := fmt.Sprintf("%d %s %s %s %s", from+k+1, f[0], f[1], f[2], port)
			if got := lines[from+k]; !senders && len(got) > 0 {
				want = want[:strings.LastIndex(want, " ")] + got[strings.LastIndex(got, " "):]
			}
			if lines[from+k] != want {
				errs = append(errs, fmt.Sprintf("line %d after the move is %q; want %q, queued datagram %d of %d", from+k+1, lines[from+k], want, k+1, len(d.Queue)))
			}
		}
		if len(errs) == 0 {
			break
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); len(b) > 0 {
		t.Errorf("the server complained: %s", b)
	}
	t.Logf("%d datagrams queued at the dump; %d lines", len(d.Queue), n)
}

// TestUDPServer: a UDP server on IPv6 (both families: an IPv4 client
// and an IPv6 one) and a UDP-Lite one on IPv4, each with datagrams
// queued unread, dumped and killed, restored (the UDP-Lite one with
// procs-load -d): the datagrams come back whole, in order, from their
// senders' ports, and the server counts on from its own count.
func TestUDPServer(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	for _, tc := range []struct {
		name, host, proto string
		clients           []string
		load              []string
	}{
		{"udp6", "::", "", []string{"127.0.0.1", "::1"}, nil},
		{"udplite4", "127.0.0.1", "lite", []string{"127.0.0.1"}, []string{"-d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid, dir, _ := udpServer(t, tc.host, tc.proto, tc.clients...)
			img := dump(t, pid, false)
			waitImageGone(t, img)
			before := lineNumbers(t, filepath.Join(dir, "got"))
			d := udpFile(t, img)
			if len(d.Queue) == 0 {
				t.Errorf("no datagram queued in the image")
			}
			if lite := tc.proto != ""; !d.Options.Broadcast || d.Options.RcvBuf == 0 || d.Lite != lite || lite && d.CsCovRecv != 8 {
				t.Errorf("image socket %+v; want SO_BROADCAST, SO_RCVBUF, UDP-Lite %v (UDPLITE_RECV_CSCOV 8)", d, lite)
			}
			ld := startLoadLogged(t, img, tc.load...)
			if len(tc.load) > 0 {
				ld.find(t, "python3", 10*time.Second)
			}
			checkRequeued(t, dir, before, d, true)
		})
	}
}

// TestUDPUnprivileged: an ordinary user's UDP server with datagrams
// queued, dumped and restored by that user: the datagrams come back
// whole and in order, from a socket of procs-load's (forging their
// senders needs CAP_NET_RAW), which procs-load says.
func TestUDPUnprivileged(t *testing.T) {
	py, cred, dumpBin, dir := userDumpSetup(t)
	loadBin := publicCopy(t, filepath.Join(binDir, "procs-load"))
	attr := &syscall.SysProcAttr{Credential: cred}
	_, port, _ := net.SplitHostPort(freeUDP(t, "127.0.0.1"))
	pid := startUserReady(t, cred, dir, py, "-c", udpServerPy, "127.0.0.1", port)
	client := startTree(t, t.TempDir(), "log", victimArgv(t, "python")[0], "-c", udpClientPy, "c0", "127.0.0.1", port)
	got := filepath.Join(dir, "got")
	waitLines(t, got, 100, 10*time.Second)
	img := filepath.Join(dir, "img")
	var stderr strings.Builder
	cmd := exec.Command(dumpBin, "-o", img, strconv.Itoa(pid))
	cmd.Dir, cmd.Stderr, cmd.SysProcAttr = dir, &stderr, attr
	if err := runTimeout(cmd, time.Minute); err != nil {
		t.Fatalf("procs-dump as uid %d: %v\n%s", cred.Uid, err, stderr.String())
	}
	waitImageGone(t, img)
	before := lineNumbers(t, got)
	d := udpFile(t, img)
	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	ld.proc = startAs(t, []string{loadBin, img}, dir, attr)
	ld.find(t, "python3", 10*time.Second, client)
	checkRequeued(t, dir, before, d, false)
	if len(d.Queue) > 0 && !strings.Contains(ld.stderrText(), "not from their senders") {
		t.Errorf("procs-load said %q; want a warning that the senders changed", ld.stderrText())
	}
}

// freeUDP is a free UDP address and port on host.
func freeUDP(t *testing.T, host string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no UDP on %s: %v", host, err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestUDPKeep: dumped with -K, the server counts on with its queue as it
// was; its copy is refused, its port being the original's.
func TestUDPKeep(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	pid, dir, port := udpServer(t, "127.0.0.1", "", "127.0.0.1")
	img := dump(t, pid, true)
	got := filepath.Join(dir, "got")
	waitLines(t, got, lineNumbers(t, got)+100, 20*time.Second)
	refused(t, loadCmd(img), "python3", "127.0.0.1:"+port, "in use on this host")
	waitLines(t, got, lineNumbers(t, got)+100, 20*time.Second)
	lineNumbers(t, got)
}

// udpOptionsPy makes UDP sockets, one never bound, one bound and
// connected and shut down for reading, one on IPv6 with options set and a
// filter that lets only datagrams starting with "a" in, and writes every
// 50 ms a line of what it reads back of them, numbered; it reads what
// the filtered one got into "filtered".
const udpOptionsPy = `
import socket, struct, time
S = socket.SOL_SOCKET
new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
new.setsockopt(S, socket.SO_BROADCAST, 1)
new.setsockopt(socket.SOL_IP, socket.IP_MULTICAST_TTL, 7)
new.setsockopt(socket.SOL_IP, socket.IP_MULTICAST_LOOP, 0)
conn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
conn.setsockopt(S, socket.SO_REUSEADDR, 1)
conn.setsockopt(socket.SOL_IP, 8, 1)  # IP_PKTINFO
conn.setsockopt(socket.SOL_IP, 11, 1)  # IP_RECVERR
conn.bind(("127.0.0.1", 0))
conn.connect(("127.0.0.1", 9))
try:
    conn.shutdown(socket.SHUT_RD)
except OSError:
    pass
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
v6.setsockopt(S, socket.SO_REUSEPORT, 1)
v6.setsockopt(S, socket.SO_SNDBUF, 65536)
v6.setsockopt(S, socket.SO_PRIORITY, 5)
v6.setsockopt(S, socket.SO_MARK, 3)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x20)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 5)
v6.setsockopt(S, socket.SO_RCVTIMEO, struct.pack("ll", 2, 500000))
conn.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
conn.setsockopt(socket.SOL_UDP, 104, 1)  # UDP_GRO
# ldb [8] (the first byte after the UDP header); jeq #'a', accept, drop
prog = [(0x30, 0, 0, 8), (0x15, 0, 1, ord("a")), (0x6, 0, 0, 0xffff), (0x6, 0, 0, 0)]
code = b"".join(struct.pack("HBBI", *i) for i in prog)
buf = __import__("ctypes").create_string_buffer(code)
v6.setsockopt(S, 26, struct.pack("HL", len(prog), __import__("ctypes").addressof(buf)))
v6.bind(("::1", 0))
open("port", "w").write(str(v6.getsockname()[1]))
v6.setblocking(False)
def opts(s):
    out = [s.family, s.getsockname()]
    try:
        out.append(s.getpeername())
    except OSError:
        out.append(None)
    for lvl, o in [(S, socket.SO_REUSEADDR), (S, socket.SO_REUSEPORT), (S, socket.SO_BROADCAST),
                   (S, socket.SO_SNDBUF), (S, socket.SO_RCVBUF), (S, socket.SO_MARK), (S, socket.SO_PRIORITY)]:
        out.append(s.getsockopt(lvl, o))
    out.append(len(s.getsockopt(S, 26, 64)) if s is v6 else 0)
    out.append(struct.unpack("ll", s.getsockopt(S, socket.SO_RCVTIMEO, 16)))
    out += [s.getsockopt(socket.SOL_UDP, o) for o in (103, 104)]
    if s is conn:
        try:
            out.append(s.recv(10, socket.MSG_DONTWAIT))  # b"": shut down
        except BlockingIOError:
            out.append("EAGAIN")
    if s.family == socket.AF_INET6:
        for o in [socket.IPV6_V6ONLY, socket.IPV6_TCLASS, socket.IPV6_MULTICAST_HOPS]:
            out.append(s.getsockopt(socket.IPPROTO_IPV6, o))
    else:
        for o in [socket.IP_TOS, socket.IP_MULTICAST_TTL, socket.IP_MULTICAST_LOOP, 8, 11]:
            out.append(s.getsockopt(socket.SOL_IP, o))
    return out
n = 0
while True:
    n += 1
    with open("opts", "a") as f:
        f.write("%d %s\n" % (n, [opts(s) for s in (new, conn, v6)]))
    try:
        while True:
            open("filtered", "a").write(v6.recv(100).decode() + "\n")
    except BlockingIOError:
        pass
    time.sleep(0.05)
`

// TestUDPOptions: UDP sockets never bound, connected and shut down, and
// on IPv6 with options and a classic BPF filter come back as the
// program reads them; the filter still filters.
func TestUDPOptions(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir, before := moveCountingPython(t, udpOptionsPy, "opts", 3, 3)
	checkOptsKept(t, dir, before)
	port, _ := strconv.Atoi(string(readFile(t, filepath.Join(dir, "port"))))
	c, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: net.IPv6loopback, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"bad", "apple", "no", "avocado"} {
		c.Write([]byte(m))
	}
	filtered := filepath.Join(dir, "filtered")
	waitLines(t, filtered, 2, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if got := string(readFile(t, filtered)); got != "apple\navocado\n" {
		t.Errorf("the filtered socket got %q; want apple and avocado", got)
	}
}

// TestUDPImageAttack: an image edited to bind a port below 1024 for an
// ordinary user's process is refused by root's procs-load; addresses,
// queues, coverage and options out of range are refused by validation.
func TestUDPImageAttack(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	cred := testUser(t)
	py := userPython(t)
	dir := userDir(t, cred)
	pid := startUserReady(t, cred, dir, py, "-c", udpServerPy, "127.0.0.1", "0")
	img := dump(t, pid, true)
	// A socket of root's sharing its port (SO_REUSEADDR), which an
	// image's queue must not reach with a forged sender.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
	}}
	victim, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	shared := victim.LocalAddr().String()
	for _, tc := range []struct {
		name  string
		edit  func(*format.Dgram)
		wants []string
	}{
		{"privileged port", func(d *format.Dgram) { d.Local = "127.0.0.1:81" }, []string{"port 81", "privilege"}},
		{"port zero", func(d *format.Dgram) { d.Local = "127.0.0.1:0" }, []string{"UDP socket", "not an address"}},
		{"v6 address on v4", func(d *format.Dgram) { d.Local = "[::1]:5000" }, []string{"UDP socket", "not an address"}},
		{"family", func(d *format.Dgram) { d.Family = 17 }, []string{"UDP socket", "family 17"}},
		{"shutdown", func(d *format.Dgram) { d.Shutdown = 4 }, []string{"shutdown 4"}},
		{"coverage", func(d *format.Dgram) { d.CsCovRecv = 8 }, []string{"not UDP-Lite"}},
		{"peer unbound", func(d *format.Dgram) { d.Local, d.Remote = "", "127.0.0.1:53" }, []string{"peer"}},
		{"sender", func(d *format.Dgram) {
			d.Queue = []format.Datagram{{From: "[::1]:53", Data: []byte("x")}}
		}, []string{"sender"}},
		{"sender of another family", func(d *format.Dgram) {
			d.Family, d.Local = 10, "[::1]:5000"
			d.Queue = []format.Datagram{{From: "[::ffff:10.1.2.3]:53", Data: []byte("x")}}
		}, []string{"not one its socket may receive from"}},
		{"long datagram", func(d *format.Dgram) {
			d.Queue = []format.Datagram{{From: "127.0.0.1:53", Data: make([]byte, 70000)}}
		}, []string{"too long"}},
		{"filter", func(d *format.Dgram) { d.Options.Filter = make([]format.SockFilter, 5000) }, []string{"filter"}},
		{"lock", func(d *format.Dgram) { d.Options.FilterLocked = true }, []string{"SO_LOCK_FILTER"}},
		{"ttl", func(d *format.Dgram) { d.Options.McastTTL = 300 }, []string{"IP_MULTICAST_TTL"}},
		{"mark", func(d *format.Dgram) { d.Options.Mark = 5 }, []string{"SO_MARK"}},
		{"timeout", func(d *format.Dgram) { d.Options.SndTimeo = -1 }, []string{"SO_SNDTIMEO"}},
		{"queue to another host", func(d *format.Dgram) {
			d.Local, d.Options.FreeBind = "192.0.2.7:5000", true
			d.Queue = []format.Datagram{{From: "10.1.2.3:53", Data: []byte("forged")}}
		}, []string{"192.0.2.7:5000", "an address this host lacks"}},
		{"forged sender to a shared port", func(d *format.Dgram) {
			d.Local, d.Options.ReuseAddr = shared, true
			d.Queue = []format.Datagram{{From: "10.1.2.3:53", Data: []byte("forged")}}
		}, []string{"shares its port " + shared}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editImage(t, img, func(e *imageEdit) {
				for i := range e.Files {
					if e.Files[i].UDP != nil {
						tc.edit(e.Files[i].UDP)
					}
				}
			})
			refused(t, loadCmd(bad), "python3", tc.wants...)
		})
	}
	victim.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, from, err := victim.ReadFrom(make([]byte, 100)); err == nil {
		t.Errorf("root's socket on %s got %d bytes from %s", shared, n, from)
	}
}

// pingPy pings 127.0.0.1 and ::1 with ping sockets bound to the ids
// given, one request each every 20 ms, and writes a numbered line for
// each round: the ids the sockets have, and for each the id and
// sequence number of the reply, or "lost" when none came in a second.
const pingPy = `
import socket, struct, sys, time
socks = []
for fam, proto, host, ident in [(socket.AF_INET, socket.IPPROTO_ICMP, "127.0.0.1", int(sys.argv[1])),
                                (socket.AF_INET6, socket.IPPROTO_ICMPV6, "::1", int(sys.argv[2]))]:
    s = socket.socket(fam, socket.SOCK_DGRAM, proto)
    s.bind((host, ident))
    s.settimeout(1)
    socks.append((s, host, 8 if fam == socket.AF_INET else 128))
n = 0
while True:
    n += 1
    line = [str(n)]
    for s, host, typ in socks:
        s.sendto(struct.pack("!BBHHH", typ, 0, 0, 0, n & 0xffff) + b"procs", (host, 0))
        try:
            d = s.recv(100)
            while struct.unpack("!H", d[6:8])[0] != n & 0xffff:
                d = s.recv(100)
            line.append("%d:%d:%d" % (s.getsockname()[1], struct.unpack("!H", d[4:6])[0], struct.unpack("!H", d[6:8])[0]))
        except socket.timeout:
            line.append("%d:lost" % s.getsockname()[1])
    with open("pings", "a") as f:
        f.write(" ".join(line) + "\n")
    time.sleep(0.02)
`

// TestPingSocket: a program pinging loopback with ping sockets (IPv4 and
// IPv6) in a network namespace whose ping_group_range lets it, moved:
// restored where ping sockets are not allowed it is refused by name;
// restored in its namespace, its sockets have their ids and get replies.
func TestPingSocket(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	ns := oneNetns(t, "ping")
	if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647").CombinedOutput(); err != nil {
		t.Fatalf("sysctl in %s: %v: %s", ns, err, out)
	}
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pings := filepath.Join(dir, "pings")
	pid := startTree(t, dir, "log", hosts.In(ns, py, "-c", pingPy, "4242", "4343")...)
	waitLines(t, pings, 20, 10*time.Second)
	img := dump(t, pid, false)
	waitImageGone(t, img)
	before := lineNumbers(t, pings)
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); strings.Fields(string(b))[0] == "1" {
		refused(t, loadCmd(img), "python3", "ping socket", "ping_group_range")
	}
	ld := start(t, hosts.In(ns, filepath.Join(binDir, "procs-load"), img), t.TempDir())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("procs-load: %s", ld.stderrText())
		}
	})
	waitLines(t, pings, before+20, 20*time.Second)
	lines := strings.Split(strings.TrimSpace(string(readFile(t, pings))), "\n")
	lineNumbers(t, pings)
	for _, l := range lines[before+3:] {
		f := strings.Fields(l)
		n, _ := strconv.Atoi(f[0])
		if want := fmt.Sprintf("%s 4242:4242:%d 4343:4343:%d", f[0], n, n); l != want {
			t.Errorf("after the move: %q; want %q", l, want)
		}
	}
}

// oneNetns makes a network namespace with loopback up for the test, and
// removes it at its end.
func oneNetns(t *testing.T, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter is missing")
	}
	ns := fmt.Sprintf("procs-%s-%d", name, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}
	return ns
}

// TestSocketFilterFeature: the image of a TCP listener with a classic BPF
// filter requires socket-filters of its reader, which an older one would
// ignore, restoring the listener unfiltered.
func TestSocketFilterFeature(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	pid := startTree(t, dir, "log", victimArgv(t, "python")[0], "-c", `
import ctypes, socket, struct, time
l = socket.socket()
ret = ctypes.create_string_buffer(struct.pack("HBBI", 0x6, 0, 0, 0xffffffff))  # ret #-1
l.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HL", 1, ctypes.addressof(ret)))  # SO_ATTACH_FILTER
l.bind(("127.0.0.1", 0))
l.listen()
open("ready", "w").close()
time.sleep(1000)
`)
	waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
	img := dump(t, pid, true)
	if req := requires(t, img); !slices.Contains(req, format.FeatureSocketFilters) {
		t.Errorf("INFO requires %v; want %s", req, format.FeatureSocketFilters)
	}
}
