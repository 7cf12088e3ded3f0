package tests

// Listeners with clients connecting while they are dumped: the dump
// waits for the program to accept what the kernel completed, holds the
// listener from then on (a client's SYN is dropped, and sent again a
// second later), and no client whose connection the kernel completed sees
// it reset. A program that does not accept is refused by name, its
// clients unharmed.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// acceptPy listens on the port given and, once there is a file "go",
// answers each connection in turn: it reads a line and sends back its
// count and the line, then closes it.
const acceptPy = `
import os, socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(64)
open("ready", "w").close()
while not os.path.exists("go"): time.sleep(0.01)
n = 0
while True:
    c, _ = l.accept()
    n += 1
    line = c.makefile("rb").readline()
    c.sendall(b"%d %s" % (n, line))
    c.close()
`

// startAcceptPy starts acceptPy on a free loopback port, in a folder of
// its own, and waits until it listens.
func startAcceptPy(t *testing.T) (pid int, dir, addr string) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	dir, addr = t.TempDir(), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	pid = startTree(t, dir, "log", py, "-c", acceptPy, port)
	waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
	return pid, dir, addr
}

// asker is a client of acceptPy that asks once per connection; clients
// tells how many connections were answered, refused (nothing listening:
// the client tries again), or failed once the kernel had completed them.
type asker struct {
	addr string
	// http: ask python's http.server for index.html, which says
	// "page one", with HTTP/1.0 (the server closes after answering).
	http                      bool
	answered, refused, failed atomic.Int64
	mu                        sync.Mutex
	errs                      []string
}

// ask connects, sends a line and reads the answer to its end.
func (a *asker) ask(k int) {
	c, err := net.DialTimeout("tcp", a.addr, 30*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			a.refused.Add(1)
			time.Sleep(20 * time.Millisecond)
			return
		}
		a.fail(fmt.Sprintf("dial: %v", err))
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	line, want := fmt.Sprintf("hello %d\n", k), fmt.Sprintf(" hello %d\n", k)
	if a.http {
		line, want = fmt.Sprintf("GET /index.html?%d HTTP/1.0\r\n\r\n", k), "\r\n\r\npage one\n"
	}
	if _, err := io.WriteString(c, line); err != nil {
		a.fail(fmt.Sprintf("write: %v", err))
		return
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil || !strings.HasSuffix(string(b), want) {
		a.fail(fmt.Sprintf("answer %q: %v", b, err))
		return
	}
	a.answered.Add(1)
}

func (a *asker) fail(s string) {
	a.failed.Add(1)
	a.mu.Lock()
	a.errs = append(a.errs, s)
	a.mu.Unlock()
}

// run asks from n goroutines until stop is closed; wait waits for them.
func (a *asker) run(n int, stop chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	var k atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					a.ask(int(k.Add(1)))
				}
			}
		}()
	}
	return wg.Wait
}

// waitAnswered waits until more than n connections were answered.
func (a *asker) waitAnswered(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, 30*time.Second, func() bool { return a.answered.Load() > n }, "%d answers (%d so far)", n, a.answered.Load())
}

// TestTCPAcceptWhileDumped: clients connect to a server all the time it
// is dumped, with -K and then killed and restored: every connection the
// kernel completed is answered, none reset. The server answers a line,
// or is python's http.server.
func TestTCPAcceptWhileDumped(t *testing.T) {
	needTools(t)
	for _, http := range []bool{false, true} {
		t.Run(map[bool]string{false: "lines", true: "http.server"}[http], func(t *testing.T) {
			noLeftovers(t)
			var pid int
			var dir, addr string
			if http {
				dir, addr = t.TempDir(), freeAddr(t)
				if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("page one\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				_, port, _ := net.SplitHostPort(addr)
				pid = startTree(t, dir, "requests", victimArgv(t, "python")[0], "-m", "http.server", "--bind", "127.0.0.1", port)
				curlGet(t, "http://"+addr+"/index.html")
			} else {
				pid, dir, addr = startAcceptPy(t)
			}
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			askWhileDumped(t, pid, &asker{addr: addr, http: http})
			checkLogs(t, dir)
		})
	}
}

// askWhileDumped asks a's server pid from four clients all the time it
// is dumped three times with -K, then killed and restored, and fails t if
// a connection failed.
func askWhileDumped(t *testing.T, pid int, a *asker) {
	t.Helper()
	stop := make(chan struct{})
	wait := a.run(4, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	a.waitAnswered(t, 50)
	for range 3 {
		dump(t, pid, true)
		checkNotHeld(t, pid, 3)
		a.waitAnswered(t, a.answered.Load()+50)
	}
	img := dump(t, pid, false)
	waitImageGone(t, img)
	startLoadLogged(t, img)
	a.waitAnswered(t, a.answered.Load()+100)
	close(stop)
	wait()
	stopped = true
	t.Logf("%d answered, %d refused (between the kill and the restore)", a.answered.Load(), a.refused.Load())
	if n := a.failed.Load(); n > 0 {
		t.Errorf("%d connections failed: %v", n, a.errs)
	}
}

// TestTCPNotAccepted: a server that does not accept while a client's
// connection waits on its listener is refused by name, after the dump
// gave it a moment; its listener is as it was, and once it accepts, the
// client gets its answer.
func TestTCPNotAccepted(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	pid, dir, addr := startAcceptPy(t)
	a := &asker{addr: addr}
	done := make(chan struct{})
	go func() {
		a.ask(1)
		close(done)
	}()
	waitFor(t, 10*time.Second, func() bool {
		_, port, _ := net.SplitHostPort(addr)
		out, _ := exec.Command("ss", "-tln", "sport", "= :"+port).Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "LISTEN" && f[1] != "0" {
				return true
			}
		}
		return false
	}, "the connection in the accept queue")
	refusedDump(t, pid, "listening on "+addr, "keeps connections waiting that its program does not accept (1, ")
	checkNotHeld(t, pid, 3)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	if a.answered.Load() != 1 {
		t.Errorf("the client was not answered: %v", a.errs)
	}
}
