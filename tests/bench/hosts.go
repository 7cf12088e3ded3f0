package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"procs/tests/internal/hosts"
)

// hostsPort is the port of the server moved between hosts.
const hostsPort = 7000

// benchMoveHosts moves a server of mib MiB (memhog listening on the
// service address) from host A to host B (hosts.Three: network
// namespaces), through procs-serve on B, procs receive -d waiting there
// and procs send on A, the address moved once the process runs on B:
// first with no connection, then with conns connections from host C,
// each answering before and after. It prints the time from procs send
// to the process running on B, how long the server was stopped (from
// the moment procs send froze it to then), and the longest gap its own
// ticker saw (whose clock, in the time namespace procs-load gives it,
// went on from the dump: the wait between dump and restore is not in
// it).
func benchMoveHosts(tw io.Writer, hog, dir string, mib, conns int) error {
	for _, n := range []int{0, conns} {
		m, err := moveServer(hog, dir, mib, n)
		if err != nil {
			return fmt.Errorf("%d connections: %v", n, err)
		}
		label, with := human(int64(mib)<<20), fmt.Sprintf(", %d connections", n)
		if n == 0 {
			with = ", no connection"
		}
		line(tw, label, "send to B, running"+with, dur(m.running))
		line(tw, label, "stopped moving to B"+with, dur(m.down))
		line(tw, label, "its own clock's gap"+with, dur(m.stopped))
	}
	return nil
}

// hostsMove is what moveServer measured: a migration, and how long the
// process was stopped, from its freeze on A to running on B.
type hostsMove struct {
	migration
	down time.Duration
}

// moving are the hosts of a move under way, removed if a signal stops
// the bench.
var moving atomic.Pointer[hosts.Three]

// moveServer moves a server with conns connections between new hosts,
// and removes them.
func moveServer(hog, dir string, mib, conns int) (hostsMove, error) {
	h, err := hosts.New(os.Getpid())
	if err != nil {
		return hostsMove{}, err
	}
	moving.Store(h)
	defer func() { moving.Store(nil); h.Remove() }()
	const token = "bench-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return hostsMove{}, err
	}
	defer os.Remove(tokenFile)
	r := route{
		addr:   net.JoinHostPort(h.IPB, "7627"),
		server: hosts.In(h.B), recv: hosts.In(h.B), send: hosts.In(h.A),
		env: []string{"PROCS_SERVER=", "PROCS_TOKEN_FILE=", "PROCS_TOKEN=" + token},
	}
	stop, err := r.serve(dir, "--token-file", tokenFile)
	if err != nil {
		return hostsMove{}, err
	}
	defer stop()
	service := net.JoinHostPort(h.S, strconv.Itoa(hostsPort))
	argv := hosts.In(h.A, hog, strconv.Itoa(mib), "0", "0", service)
	v, err := startVictim(argv[0], argv[1:]...)
	if err != nil {
		return hostsMove{}, err
	}
	defer v.stop()
	cs, err := dialIn(h.C, service, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	if err == nil {
		err = echoes(cs) // each taken by the server
	}
	if err != nil {
		return hostsMove{}, err
	}
	defer killHolders()
	frozen, unwatch := watchFreeze(v.cmd.Process.Pid)
	defer unwatch()
	m, err := migrateOnce(r, dir, v.cmd.Process.Pid, func() error {
		if err := h.Move(); err != nil {
			return err
		}
		if err := echoes(cs); err != nil {
			return fmt.Errorf("after the move: %v", err)
		}
		return nil
	}, nil, nil)
	if err != nil {
		return hostsMove{}, err
	}
	select {
	case at := <-frozen:
		return hostsMove{m, m.ranAt.Sub(at)}, nil
	default:
		return hostsMove{}, errors.New("the server was never seen stopped")
	}
}

// watchFreeze watches process pid every millisecond until it stops (in
// a tracing stop: procs-dump froze it) or is gone, and sends then the
// time on the channel it returns; the func it returns ends the watch.
func watchFreeze(pid int) (<-chan time.Time, func()) {
	at, done := make(chan time.Time, 1), make(chan struct{})
	go func() {
		for {
			if state, _ := procState(pid); state == "t" || state == "T" || state == "" || state == "Z" {
				at <- time.Now()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return at, func() { close(done) }
}

// dialIn opens n connections to addr from network namespace ns: from a
// thread of its own that enters ns, and ends with its goroutine if it
// cannot leave it.
func dialIn(ns, addr string, n int) ([]net.Conn, error) {
	type result struct {
		cs  []net.Conn
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		var res result
		defer func() { done <- res }()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			res.err = err
			return
		}
		defer self.Close()
		there, err := os.Open("/run/netns/" + ns)
		if err != nil {
			res.err = err
			return
		}
		defer there.Close()
		if err := unix.Setns(int(there.Fd()), unix.CLONE_NEWNET); err != nil {
			res.err = os.NewSyscallError("setns", err)
			return
		}
		for range n {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				res.err = err
				break
			}
			res.cs = append(res.cs, c)
		}
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	res := <-done
	return res.cs, res.err
}

// echoes checks that the server echoes a line on each connection.
func echoes(cs []net.Conn) error {
	for i, c := range cs {
		c.SetDeadline(time.Now().Add(time.Minute))
		msg := []byte(fmt.Sprintf("%d\n", i))
		got := make([]byte, len(msg))
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("connection %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("connection %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("connection %d: %q came back as %q", i, msg, got)
		}
	}
	return nil
}

// killHolders kills the holders of TCP connections that procs send
// left on host A (the bench's children once procs send ended), which
// would hold the connections that left for minutes: they close them
// silently, still in repair mode.
func killHolders() {
	var pids []int
	for _, pid := range children() {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if bytes.Contains(env, []byte("\x00PROCS_TCP_HOLDER=")) || bytes.HasPrefix(env, []byte("PROCS_TCP_HOLDER=")) {
			pids = append(pids, pid)
		}
	}
	killTree(pids)
}
