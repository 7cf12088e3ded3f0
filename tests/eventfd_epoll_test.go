package tests

// The anonymous-inode kinds of pkg/files made again in the process:
// eventfd (counter, semaphore mode) and epoll (its interest list, in the
// second pass).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventfdEpollPy holds a semaphore eventfd it takes one from each tick,
// a plain eventfd it never reads and an epoll watching both, and prints
// what the epoll says is ready.
const eventfdEpollPy = `
import os, select, time
sem = os.eventfd(1000, os.EFD_SEMAPHORE | os.EFD_NONBLOCK)
plain = os.eventfd(7)
ep = select.epoll()
ep.register(sem, select.EPOLLIN)
ep.register(plain, select.EPOLLIN | select.EPOLLOUT)
print('fds sem=%d plain=%d ep=%d' % (sem, plain, ep.fileno()), flush=True)
n = 0
while True:
    n += 1
    ready = sorted('%d:%x' % (fd, ev) for fd, ev in ep.poll(0))
    got = os.eventfd_read(sem)
    print('tick %d got=%d ready=%s' % (n, got, ','.join(ready)), flush=True)
    time.sleep(0.02)
`

// TestEventfdEpoll round-trips a process holding eventfds watched by an
// epoll: after the restore its epoll reports the same fds with the same
// events, and each eventfd has its counter and its mode.
func TestEventfdEpoll(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skipf("no /usr/bin/python3: %v", err)
	}
	p := start(t, []string{py, "-c", eventfdEpollPy}, t.TempDir())
	var sem, plain, ep int
	if _, err := fmt.Sscanf(expect(t, p.out, "fds ", 0), "fds sem=%d plain=%d ep=%d", &sem, &plain, &ep); err != nil {
		t.Fatal(err)
	}
	before := expect(t, p.out, "tick 3 ", 0)
	wantReady := before[strings.Index(before, "ready="):]
	if !strings.Contains(wantReady, fmt.Sprintf("%d:", sem)) || !strings.Contains(wantReady, fmt.Sprintf("%d:", plain)) {
		t.Fatalf("before the dump: %q; want both eventfds ready", before)
	}
	comm := procComm(p.pid())
	img, all := dumpKilled(t, p)
	last := 0
	for _, l := range all {
		fmt.Sscanf(l, "tick %d", &last)
	}
	ld := startLoad(t, img)
	pid := ld.find(t, comm, 10*time.Second)
	after := expect(t, ld.out, fmt.Sprintf("tick %d ", last+1), 0)
	if got := after[strings.Index(after, "ready="):]; got != wantReady {
		t.Errorf("restored epoll says %q; want %q", got, wantReady)
	}
	if !strings.Contains(after, "got=1 ") {
		t.Errorf("restored semaphore eventfd gave %q; want 1 a read", after)
	}
	info := func(fd int) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if s := info(plain); !strings.Contains(s, "eventfd-count:                7\n") && !strings.Contains(s, "eventfd-count: 7\n") {
		t.Errorf("restored plain eventfd fdinfo:\n%s\nwant count 7", s)
	}
	if s := info(sem); !strings.Contains(s, "eventfd-semaphore: 1") {
		t.Errorf("restored semaphore eventfd fdinfo:\n%s\nwant semaphore 1", s)
	}
	if s := info(ep); strings.Count(s, "tfd:") != 2 {
		t.Errorf("restored epoll fdinfo:\n%s\nwant 2 watched fds", s)
	}
}
