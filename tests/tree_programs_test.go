package tests

// Real programs whose processes are trees, or that keep pipes to
// themselves, moved (dumped, killed, restored) and checked from their own
// output; and the never-harm tests of trees: procs-dump and procs-load
// killed at random moments.

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// poolPy runs batches of work through multiprocessing.Pool(4), each
// batch slow enough that work is always in flight, and checks and
// reports each batch's results.
const poolPy = `
import multiprocessing as mp, time
def square(x):
    time.sleep(0.01)
    return x * x
if __name__ == "__main__":
    with mp.Pool(4) as pool:
        batch = 0
        while True:
            batch += 1
            xs = list(range(batch * 1000, batch * 1000 + 40))
            got = pool.map(square, xs)
            print("%d batch ok=%d n=%d" % (batch, int(got == [x * x for x in xs]), len(got)), flush=True)
`

// reportLines returns the lines of file, each "N WHAT ok=1...", checking
// that they are numbered 1, 2, 3... and that every check the program
// reported passed.
func reportLines(t *testing.T, file string) int {
	t.Helper()
	n := lineNumbers(t, file)
	b, _ := os.ReadFile(file)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(l, "ok=") && !strings.Contains(l, "ok=1") {
			t.Fatalf("%s: %q: a check the program made failed", file, l)
		}
	}
	return n
}

// TestTreePool: python's multiprocessing.Pool(4) with work in flight,
// moved (and moved with --live: every process of the pool tracked): the
// batches go on from where they were, each complete and right (the
// program checks them), with the workers it had.
func TestTreePool(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	for _, tc := range []struct {
		name  string
		extra []string
	}{{"plain", nil}, {"live", []string{"--live"}}} {
		t.Run(tc.name, func(t *testing.T) { movePool(t, tc.extra...) })
	}
}

// movePool moves python with a pool of 4 (dumped with procs-dump
// extra...) and checks the restored tree.
func movePool(t *testing.T, extra ...string) {
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "log")
	pid := startTree(t, dir, "log", py, "-c", poolPy)
	waitLines(t, out, 3, 20*time.Second)
	tree := treeOf(pid)
	if len(tree) != 5 {
		t.Fatalf("python and its pool: %v; want 5 processes", tree)
	}
	img := dump(t, pid, false, extra...)
	waitGone(t, tree)
	before := reportLines(t, out)
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	waitLines(t, out, before+5, 20*time.Second)
	reportLines(t, out)
	var got, want []int
	for _, p := range tree {
		want = append(want, p.pid)
	}
	for _, p := range treeOf(pid) {
		got = append(got, p.pid)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || treeOf(pid)[0].ppid != ld.pid() {
		t.Errorf("restored tree %v, below %d; want PIDs %v below procs-load %d", treeOf(pid), treeOf(pid)[0].ppid, want, ld.pid())
	}
}

// timersJS counts with a setInterval and with a chain of setTimeouts
// (libuv's timers, woken through its own pipes and eventfd).
const timersJS = `
let iv = 0, to = 0;
setInterval(() => { iv++; console.log(iv + " interval"); }, 40);
(function tick() { to++; console.log(to + " timeout"); setTimeout(tick, 60); })();
`

// counters reads file's lines "N WHAT" and returns the numbers of each
// WHAT, in order.
func counters(t *testing.T, file string) map[string][]int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("%s: line %q", file, l)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("%s: line %q", file, l)
		}
		m[f[1]] = append(m[f[1]], n)
	}
	return m
}

// TestNodeTimers: node with an interval and a timeout chain, moved: both
// counters go on with no gap and no repeat.
func TestNodeTimers(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node here: its timers are not tested")
	}
	node, _ = filepath.EvalSymlinks(node)
	movedCounters(t, []string{"interval", "timeout"}, node, "-e", timersJS)
}

// threadsJava counts in two threads of its own, a plain one and a
// scheduled executor's, beside the JVM's (JIT, GC, signal dispatcher...)
// and its unix socket.
const threadsJava = `
import java.util.concurrent.*;
public class Threads {
	public static void main(String[] a) throws Exception {
		new Thread(() -> {
			for (int i = 1; ; i++) {
				System.out.println(i + " thread");
				try { Thread.sleep(40); } catch (InterruptedException e) { return; }
			}
		}).start();
		int[] n = {0};
		Executors.newScheduledThreadPool(2).scheduleAtFixedRate(() -> System.out.println(++n[0] + " executor"), 0, 60, TimeUnit.MILLISECONDS);
	}
}
`

// TestJavaThreads: a JVM running two counting threads, moved: both
// counters go on with no gap and no repeat, and the flock the JVM holds
// through its mapping of its perf-data file (hsperfdata: mmap, flock,
// close) is held again.
func TestJavaThreads(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java here: a JVM is not tested")
	}
	java, _ = filepath.EvalSymlinks(java)
	src := filepath.Join(t.TempDir(), "Threads.java")
	if err := os.WriteFile(src, []byte(threadsJava), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := movedCounters(t, []string{"thread", "executor"}, java, src)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	perf := filepath.Join(os.TempDir(), "hsperfdata_"+u.Username, strconv.Itoa(pid))
	t.Cleanup(func() { os.Remove(perf) }) // a JVM killed leaves it
	if got, want := flockHolder(t, perf), fmt.Sprintf("WRITE %d", pid); got != want {
		t.Errorf("after the restore, /proc/locks says the flock on %s is %q; want %q", perf, got, want)
	}
	if err := exclusiveFlock(t, perf); err != unix.EWOULDBLOCK {
		t.Errorf("after the restore, flock(LOCK_EX|LOCK_NB) on %s: %v; want EWOULDBLOCK", perf, err)
	}
}

// movedCounters runs argv, whose output is lines "N WHAT" counting up
// from 1 for each of whats, dumps it (killed) once it has printed 20,
// restores it and checks that every counter went on with no gap or
// repeat. It returns the PID, which runs until t ends.
func movedCounters(t *testing.T, whats []string, argv ...string) int {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "log")
	pid := startTree(t, dir, "log", argv...)
	waitLines(t, out, 20, time.Minute)
	var before map[string][]int
	moveTree(t, pid, move{between: func(string) { before = counters(t, out) }})
	b, _ := os.ReadFile(out)
	waitLines(t, out, strings.Count(string(b), "\n")+30, 20*time.Second)
	after := counters(t, out)
	for _, what := range whats {
		ns := after[what]
		if len(ns) < len(before[what])+5 {
			t.Errorf("%s: %d after the restore, %d before; want it to go on", what, len(ns), len(before[what]))
		}
		for i, n := range ns {
			if n != i+1 {
				t.Fatalf("%s: %v; want 1, 2, 3... with no gap or repeat (%d lines before the move)", what, ns[max(0, i-3):min(len(ns), i+3)], len(before[what]))
			}
		}
	}
	return pid
}

// pipePairPy is a parent and two children joined by a pipe: the writer
// sends numbered lines, the reader checks each is the next and reports
// it, the parent reports too; and passes each number through a
// pseudo-terminal whose both ends it holds (no echo), a line waiting in
// it most of the time, checking it comes out whole ("pty N ok=1"); and
// checks that its O_ASYNC pipe signals it through its signalfd and that
// the reader's /proc file is its child's (it holds a timerfd and an
// inotify too). The parent holds a POSIX lock on a file, and all three
// an flock on it (fingerprint sees both). Each report is one write(2), whole
// (print would write the line and its end apart, and the other's line
// could come between). They share a System V shared memory segment,
// marked for removal (it goes with them): the writer counts its lines
// in it, and the parent checks the count never goes back. All three hold
// a unix socket listening on a relative path with a connection queued on
// it, a datagram pair with messages queued, and a socketpair with a pipe,
// a socket with bytes queued in it, an eventfd, an epoll, a listening
// socket and a socket with a pipe in flight of its own in flight.
// Given two ports, the parent first listens on the second and connects
// to the first, a peer that echoes each line: it sends it its number
// each time, and checks the answer ("tcp N ok=1"); and holds a TCP
// listener and a UDP socket with a datagram queued in flight.
const pipePairPy = `
import ctypes, fcntl, os, socket, sys, termios, time
tcps = []
if len(sys.argv) > 2:
    tl = socket.socket()
    tl.bind(("127.0.0.1", int(sys.argv[2])))
    tl.listen()
    tc = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    tcpr = tc.makefile("rb")
    tcps = [tl, tc, tcpr]
    # In flight: a TCP listener and a UDP socket with a datagram queued.
    fa, fb = socket.socketpair()
    ftl, fu = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ftl.bind(("127.0.0.1", 0)); ftl.listen()
    fu.bind(("127.0.0.1", 0)); fu.sendto(b"queued", fu.getsockname())
    socket.send_fds(fa, [b"t"], [ftl.fileno(), fu.fileno()])
    ftl.close(); fu.close()
lock = open("lock", "w+")
fcntl.lockf(lock, fcntl.LOCK_EX, 10, 0)
fcntl.flock(lock, fcntl.LOCK_SH)
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(0, 4096, 0o1600)
count = ctypes.c_uint64.from_address(libc.shmat(shm, None, 0))
libc.shmctl(shm, 0, None)
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind("srv.sock")
l.listen(2)
q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
q.connect("srv.sock")
dp = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
dp[0].send(b"one"); dp[0].send(b"two")
sp = socket.socketpair()
pr, pw = os.pipe()
os.write(pw, b"in flight")
socket.send_fds(sp[0], [b"x"], [pr])
os.close(pr)
xa, xb = socket.socketpair()
xb.send(b"queued")
ev = os.eventfd(2)
socket.send_fds(sp[0], [b"y"], [xa.fileno(), ev])
xa.close(); os.close(ev)
import select
ep = select.epoll()
ep.register(sp[1].fileno(), select.EPOLLIN)
fl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
fl.bind("flight.sock")
fl.listen(1)
na, nb = socket.socketpair()
fr, fw = os.pipe()
socket.send_fds(nb, [b"n"], [fr])
socket.send_fds(sp[0], [b"z"], [ep.fileno(), fl.fileno(), na.fileno()])
ep.close(); fl.close(); na.close(); os.close(fr)
r, w = os.pipe()
if os.fork() == 0:
    for x in tcps: x.close()
    os.close(r)
    i = 0
    while True:
        i += 1
        count.value = i
        os.write(w, b"%d\n" % i)
        time.sleep(0.01)
reader = os.fork()
if reader == 0:
    for x in tcps: x.close()
    os.close(w)
    want = 1
    for line in os.fdopen(r):
        n = int(line)
        os.write(1, b"got %d ok=%d\n" % (n, int(n == want)))
        want = n + 1
os.close(r); os.close(w)
pm, ps = os.openpty()
a = termios.tcgetattr(ps)
a[3] &= ~termios.ECHO
termios.tcsetattr(ps, termios.TCSANOW, a)
# The event-loop kinds: a timerfd, a signalfd, an inotify, an O_ASYNC
# pipe whose signal comes through the signalfd, the reader's /proc file.
import signal
tfd = libc.timerfd_create(1, os.O_NONBLOCK)
libc.timerfd_settime(tfd, 0, (ctypes.c_long * 4)(0, 20000000, 0, 20000000), None)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
sfd = libc.signalfd(-1, ctypes.byref(ctypes.c_ulong(1 << (signal.SIGUSR2 - 1))), os.O_NONBLOCK)
ino = libc.inotify_init1(os.O_NONBLOCK)
libc.inotify_add_watch(ino, b".", 0x100)
ar, aw = os.pipe()
fcntl.fcntl(ar, fcntl.F_SETOWN, os.getpid())
fcntl.fcntl(ar, 10, signal.SIGUSR2) # F_SETSIG
fcntl.fcntl(ar, fcntl.F_SETFL, os.O_NONBLOCK | os.O_ASYNC)
status = open("/proc/%d/status" % reader)
i, last = 0, 0
while True:
    i += 1
    os.write(pm, b"%d\n" % i)
    os.write(aw, b"x")
    os.read(ar, 1)
    try:
        sig = len(os.read(sfd, 128)) == 128
    except BlockingIOError:
        sig = False
    try:
        os.read(tfd, 8)
    except BlockingIOError:
        pass
    status.seek(0)
    mine = ("PPid:\t%d\n" % os.getpid()) in status.read()
    os.write(1, b"parent %d shmok=%d sigio_ok=%d proc_ok=%d\n" % (i, int(count.value >= last), int(sig), int(mine)))
    last = count.value
    if tcps:
        tc.sendall(b"%d\n" % i)
        os.write(1, b"tcp %d ok=%d\n" % (i, int(int(tcpr.readline()) == i)))
    time.sleep(0.05)
    n = int(os.read(ps, 100))
    os.write(1, b"pty %d ok=%d\n" % (i, int(n == i)))
`

// startPipePair starts pipePairPy [args...] and returns it once all
// three report (and the parent's TCP connection, given ports).
func startPipePair(t *testing.T, args ...string) *proc {
	t.Helper()
	py := victimArgv(t, "python")[0]
	p := start(t, append([]string{py, "-c", pipePairPy}, args...), t.TempDir())
	if _, ok := p.out.wait(lineWait, haveLines(pipePairStreams(args), 3, 0)); !ok {
		t.Fatalf("the pipe pair did not start: %s", p.stderrText())
	}
	t.Cleanup(func() { killTree(t, p.pid()) })
	return p
}

// pipePairStreams are the streams pipePairPy [args...] reports.
func pipePairStreams(args []string) []string {
	if len(args) > 1 {
		return []string{"got", "parent", "tcp"}
	}
	return []string{"got", "parent"}
}

// echoPeer is the test's own end of a TCP connection with a tree: it
// echoes each line, a number, and keeps the first error it saw (a
// reset, an end, a number not the one after the last).
type echoPeer struct {
	mu  sync.Mutex
	err error
	n   int // the last number echoed
}

// startEchoPeer listens on a loopback port, and echoes the first
// connection it takes; it returns the port.
func startEchoPeer(t *testing.T) (string, *echoPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &echoPeer{}
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			p.fail(err)
			return
		}
		conns <- c
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err == nil {
				_, err = c.Write([]byte(l))
			}
			if err != nil {
				p.fail(err)
				return
			}
			p.mu.Lock()
			if n, _ := strconv.Atoi(strings.TrimSpace(l)); n == p.n+1 {
				p.n = n
			} else if p.err == nil {
				p.err = fmt.Errorf("line %q after %d", l, p.n)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-conns:
			c.Close()
		default:
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, p
}

// fail keeps err if it is the first.
func (p *echoPeer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// check fails t if the peer saw an error, after what.
func (p *echoPeer) check(t *testing.T, what string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("%s: the tree's TCP peer saw %v after %d lines", what, p.err, p.n)
	}
}

// TestTreeDumpKilledNeverHarms kills procs-dump -K at random moments while
// it works on a tree (a parent and two children joined by a pipe, the
// parent listening on a TCP port and connected to a peer of the test's),
// and checks each time that every process goes on as before: the same
// processes, none stopped or traced, the same signal state, fds and
// mappings, still exchanging data (every line through the pipe once, in
// order, as the reader checks; every line to the peer and back, with
// no reset, and no socket left held).
func TestTreeDumpKilledNeverHarms(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	peerPort, peer := startEchoPeer(t)
	listen := freeAddr(t)
	_, listenPort, _ := net.SplitHostPort(listen)
	args := []string{peerPort, listenPort}
	p := startPipePair(t, args...)
	// goesOn checks that the tree goes on after a dump: no socket left
	// held, every stream reporting, lines to the peer and back.
	goesOn := func(what string) {
		t.Helper()
		checkNotHeld(t, p.pid(), 3)
		skip := len(mustLines(p.out))
		if all, ok := p.out.wait(lineWait, haveLines(pipePairStreams(args), 2, skip)); !ok {
			t.Fatalf("%s: the tree stopped reporting:\n%s", what, tail(all, 10))
		}
		peer.check(t, what)
	}
	tree := treeOf(p.pid())
	if len(tree) != 3 {
		t.Fatalf("tree %v; want 3 processes", tree)
	}
	base := map[int]string{}
	for _, m := range tree {
		base[m.pid] = fingerprint(m.pid)
	}
	if !holdsLocks(tree[0].pid) {
		t.Fatalf("the parent does not hold its locks:\n%s", base[tree[0].pid])
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	for i := range rounds {
		delay := time.Duration(rng.IntN(60_001)) * time.Microsecond
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(binDir, "procs-dump"), "-K", strconv.Itoa(p.pid()))
		cmd.Stdout, cmd.Stderr = devnull, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		if now := treeOf(p.pid()); !same(now, tree) {
			t.Fatalf("round %d (procs-dump killed after %v): tree %v; want %v as before", i, delay, now, tree)
		}
		for _, m := range tree {
			if err := waitHealthy(m.pid); err != nil {
				t.Fatalf("round %d (procs-dump killed after %v): process %d harmed: %v", i, delay, m.pid, err)
			}
			if d := waitSame(m.pid, base[m.pid]); d != "" {
				t.Fatalf("round %d (procs-dump killed after %v): process %d changed:\n%s", i, delay, m.pid, d)
			}
		}
		goesOn(fmt.Sprintf("round %d (procs-dump killed after %v)", i, delay))
	}
	reportsRight(t, mustLines(p.out))
	// A dump let finish holds both sockets (the rounds' dumps could
	// hold them too), and leaves them as they were.
	kinds := map[string]int{}
	img := dump(t, p.pid(), true)
	inFlightOf(format.FileTCP, 1)(t, img)
	inFlightOf(format.FileUDP, 1)(t, img)
	for _, f := range showImage(t, img).Processes[0].Files {
		kinds[f.Kind]++
	}
	if kinds["tcp"] != 2 {
		t.Errorf("the parent's files in a dump: %v; want 2 TCP sockets", kinds)
	}
	goesOn("after a dump")
	// The parent still listens.
	if c, err := net.DialTimeout("tcp", listen, 5*time.Second); err != nil {
		t.Errorf("the tree's listener: %v", err)
	} else {
		c.Close()
	}
}

// reportsRight checks the lines of a program that reports
// "STREAM N ...": every check it made (the "...ok" fields) passed, and
// each stream's numbers follow each other.
func reportsRight(t *testing.T, all []string) {
	t.Helper()
	if bad := badFlags(parseAll(all)); len(bad) > 0 {
		t.Fatalf("a failed check:\n%s", strings.Join(bad, "\n"))
	}
	for st, rs := range perStream(parseAll(all)) {
		for i := 1; i < len(rs); i++ {
			if rs[i].n != rs[i-1].n+1 {
				t.Errorf("stream %s: line %q after %q; want consecutive numbers", st, rs[i].line, rs[i-1].line)
			}
		}
	}
}

// TestTreeLoadKilledLeavesNothing kills procs-load at random moments of
// the restore of a tree (from its start to a little past the time a
// restore takes, every other time in the first 5 ms): every
// process it had made dies with it; a tree it had already let run may
// live on, and then it must be whole: all three processes, still
// exchanging data.
func TestTreeLoadKilledLeavesNothing(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	p := startPipePair(t)
	tree := treeOf(p.pid())
	img := dump(t, p.pid(), false)
	waitGone(t, tree)
	var pids []int
	for _, m := range tree {
		pids = append(pids, m.pid)
	}
	// How long a whole restore takes, until procs-load lets the tree
	// run: the span the kills fall in. (--stdio=inherit: a member killed
	// may write to its stderr file, which then is not the dump's.)
	t0 := time.Now()
	ld := startLoad(t, img, "--stdio=inherit")
	for {
		// The root is let go last.
		if q, ok := procInfo(p.pid()); ok && q.ppid == ld.pid() && untraced(p.pid()) {
			break
		}
		if time.Since(t0) > lineWait {
			t.Fatalf("the tree was not restored: %s", ld.stderrText())
		}
		time.Sleep(time.Millisecond)
	}
	span := time.Since(t0)
	restored := treeOf(p.pid())
	ld.cmd.Process.Kill()
	<-ld.done
	for _, m := range restored {
		killChecked(t, m.pid, m.start)
	}
	waitFree(t, pids)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d; a restore takes %v", seed, span.Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(seed, 17))
	survived := 0
	for i := range rounds {
		// Every other round in the first 5 ms, while procs-load starts
		// the stub the processes are cloned from.
		delay := time.Duration(rng.Int64N(int64([]time.Duration{span * 5 / 4, 5 * time.Millisecond}[i%2]))) + time.Microsecond
		ld := startLoad(t, img, "--stdio=inherit")
		time.Sleep(delay)
		ld.cmd.Process.Kill()
		<-ld.done
		left := liveDescendants(time.Second)
		if len(left) == 0 {
			waitFree(t, pids)
			continue
		}
		var got []int
		for _, m := range left {
			got = append(got, m.pid)
		}
		slices.Sort(got)
		if !slices.Equal(got, pids) {
			t.Fatalf("round %d (procs-load killed after %v): left %v; want nothing, or the whole tree %v", i, delay, left, pids)
		}
		if !holdsLocks(p.pid()) {
			t.Fatalf("round %d (procs-load killed after %v): the tree lives on without its locks:\n%s", i, delay, fingerprint(p.pid()))
		}
		skip := len(mustLines(ld.out))
		all, ok := ld.out.wait(lineWait, haveLines([]string{"got", "parent"}, 2, skip))
		if !ok {
			t.Fatalf("round %d (procs-load killed after %v): the tree lives on but does not report:\n%s", i, delay, tail(all, 10))
		}
		if bad := badFlags(parseAll(all)); len(bad) > 0 {
			t.Fatalf("round %d (procs-load killed after %v): the reader saw a line out of order:\n%s", i, delay, strings.Join(bad, "\n"))
		}
		for _, m := range left {
			killChecked(t, m.pid, m.start)
		}
		waitFree(t, pids)
		survived++
	}
	t.Logf("%d of %d restored trees outlived their procs-load", survived, rounds)
}

// holdsLocks says whether pipePairPy's parent pid holds its POSIX write
// lock and its flock (fingerprint lists them).
func holdsLocks(pid int) bool {
	fp := fingerprint(pid)
	return strings.Contains(fp, "POSIX ADVISORY WRITE") && strings.Contains(fp, "FLOCK ADVISORY READ")
}

// waitFree waits until no process has one of pids, collecting those that
// are zombies of ours (this test process is a subreaper): the next
// restore of the tree finds its PIDs free.
func waitFree(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			p, ok := procInfo(pid)
			if !ok {
				break
			}
			if p.state == 'Z' && p.ppid == os.Getpid() {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still there: %v", pid, p)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// same tells whether a and b are the same processes (PIDs and start
// times), whatever their states.
func same(a, b []pinfo) bool {
	return slices.EqualFunc(a, b, func(x, y pinfo) bool { return x.pid == y.pid && x.start == y.start })
}
