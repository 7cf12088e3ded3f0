package tests

// redis-server from Debian moved to another host with its floating
// address through procs-serve (procs send, procs receive), a client on
// a third host keeping its connection and incrementing a key.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"procs/tests/internal/hosts"
)

// incrPy is a redis client in a few lines of RESP: it connects to the
// address and port given, then sends INCR counter and writes each
// answer to "count", one a line, on one connection. Any end of it is
// fatal (an exit saying why), unless "again" follows the port: then it
// writes why and the last answer to "resets" and connects again.
const incrPy = `
import socket, sys, time
host, port, again = sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ["again"]
def connect():
    while True:
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.settimeout(None)
            return s, s.makefile("rb")
        except OSError:
            time.sleep(0.05) # redis not there yet, or moving
s, f = connect()
last = 0
with open("count", "a") as out:
    while True:
        try:
            s.sendall(b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n")
            line = f.readline()
            if not line:
                raise ConnectionResetError("the connection ended")
        except OSError as e:
            if not again:
                raise
            open("resets", "a").write("%r after %d\n" % (e, last))
            s.close()
            s, f = connect()
            continue
        if not line.startswith(b":"):
            raise SystemExit("redis answered %r" % line)
        last = int(line[1:])
        out.write("%d\n" % last); out.flush()
        time.sleep(0.002)
`

// redisConf is redis-server's configuration in the tests: a port on the
// service address, open to clients of other hosts (the test's own
// namespaces), nothing written to disk, the log on stdout.
const redisConf = `bind %s
port %d
protected-mode no
save ""
appendonly no
daemonize no
logfile ""
dir %s
`

// redisPort is the port redis-server listens on, in the test's own
// network namespaces.
const redisPort = 7000

// moveRedis starts redis-server on host A of three hosts and incrPy
// [again] on host C, and once the client counts, moves redis-server to
// host B with procs send [sendArgs...] through a procs-serve on B, and
// procs receive there, then moves the service address to B. It returns
// the hosts, the client's folder and the last number it wrote before
// procs send.
func moveRedis(t *testing.T, again bool, sendArgs ...string) (*hosts.Three, string, int) {
	t.Helper()
	needTools(t)
	noLeftovers(t)
	rs, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is missing (tests/deps.sh installs it)")
	}
	py := victimArgv(t, "python")[0]
	h := threeHosts(t)
	t.Cleanup(func() { letGoHeld(t, h) })
	bin := serveBins(t)
	work := t.TempDir()
	const token = "e2e-token-redis-0123456789"
	tokenFile := filepath.Join(work, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PROCS_SERVER=", "PROCS_TOKEN_FILE=", "PROCS_TOKEN=" + token}
	a, b := host{ns: h.A, bin: bin, env: env}, host{ns: h.B, bin: bin, env: env}
	addr := net.JoinHostPort(h.IPB, "7627")
	startServer(t, b, a, addr, filepath.Join(work, "state"), "--token-file", tokenFile)

	rdir, cdir := t.TempDir(), t.TempDir()
	conf := filepath.Join(rdir, "redis.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, redisConf, h.S, redisPort, rdir), 0o644); err != nil {
		t.Fatal(err)
	}
	server := startTree(t, rdir, "redis.log", hosts.In(h.A, rs, conf)...)
	t.Cleanup(func() {
		if t.Failed() {
			r, _ := os.ReadFile(filepath.Join(rdir, "redis.log"))
			c, _ := os.ReadFile(filepath.Join(cdir, "log"))
			t.Logf("redis-server's log:\n%s\nthe client's:\n%s", r, c)
		}
	})
	argv := hosts.In(h.C, py, "-c", incrPy, h.S, strconv.Itoa(redisPort))
	if again {
		argv = append(argv, "again")
	}
	startTree(t, cdir, "log", argv...)
	count := filepath.Join(cdir, "count")
	waitLines(t, count, 200, 20*time.Second)

	recv := receive(t, b, work, "-v", "-s", addr)
	time.Sleep(300 * time.Millisecond) // let receive ask for the next image
	last := lineNumbers(t, count)
	if _, errs, code := a.run(t, nil, "procs", append([]string{"send", strconv.Itoa(server), "-s", addr}, sendArgs...)...); code != 0 {
		t.Fatalf("procs send %d = exit %d, %q; want 0", server, code, errs)
	}
	// The address moves once the process runs on B (README, "Moving a
	// service with its clients").
	waitFor(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(recv.out + ".err")
		return strings.Contains(string(b), " runs")
	}, "procs receive to say the process runs")
	moveAddress(t, h)
	return h, cdir, last
}

// redisAnswers checks that redis-server, at the service address, answers
// a new client from host C with a count of at least least.
func redisAnswers(t *testing.T, h *hosts.Three, least int) {
	t.Helper()
	cli := hosts.In(h.C, "redis-cli", "-h", h.S, "-p", strconv.Itoa(redisPort), "GET", "counter")
	got, err := exec.Command(cli[0], cli[1:]...).Output()
	if err != nil {
		t.Fatalf("redis-cli GET counter: %v", err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(got))); err != nil || n < least {
		t.Errorf("redis-cli GET counter = %q; want at least %d", got, least)
	}
}

// TestRedisMoveHosts: redis-server moved to another host with its
// address (procs send, procs receive) while a client on a third host
// increments a key on one connection: the connection carries on, and
// the client's counts have no gap and no repeat.
func TestRedisMoveHosts(t *testing.T) {
	h, cdir, last := moveRedis(t, false)
	count := filepath.Join(cdir, "count")
	waitLines(t, count, last+300, 30*time.Second)
	n := lineNumbers(t, count)
	t.Logf("the client counted to %d before procs send, to %d on one connection", last, n)
	checkLogs(t, cdir)
	redisAnswers(t, h, n)
}

// TestRedisMoveHostsClose: the same move with --tcp=close: the client's
// connection ends (reset), it connects again and counts on from what
// redis-server has.
func TestRedisMoveHostsClose(t *testing.T) {
	h, cdir, last := moveRedis(t, true, "--tcp=close")
	count := filepath.Join(cdir, "count")
	waitFile(t, filepath.Join(cdir, "resets"), filepath.Join(cdir, "log"))
	waitLines(t, count, last+300, 30*time.Second)
	ns := numbers(t, count)
	jumps := 0
	for i := 1; i < len(ns); i++ {
		switch ns[i] - ns[i-1] {
		case 1:
		case 2:
			// The answer to an INCR that redis-server made before it
			// was stopped, lost with the connection.
			jumps++
		default:
			t.Fatalf("counts %v; want each the next, from what redis-server has", ns[max(0, i-3):min(len(ns), i+3)])
		}
	}
	if jumps > 1 {
		t.Errorf("%d answers lost; want at most the one of the connection reset", jumps)
	}
	// The dying server's listener may take one more connection of the
	// client's, whose end follows: the client sees one reset or more,
	// all before the first answer of the new redis-server.
	b := readFile(t, filepath.Join(cdir, "resets"))
	resets := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, r := range resets {
		if !strings.HasSuffix(r, resets[0][strings.LastIndex(resets[0], " after "):]) {
			t.Errorf("the client's connection ended %q; want it only while redis-server moved", b)
		}
	}
	t.Logf("the client counted to %d before procs send, then: %s", last, b)
	checkLogs(t, cdir)
	redisAnswers(t, h, ns[len(ns)-1])
}
