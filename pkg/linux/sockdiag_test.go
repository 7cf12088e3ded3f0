package linux

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnixSockets: sock_diag tells a socketpair's ends, their peers and
// the bytes in a receive queue.
func TestUnixSockets(t *testing.T) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.Write(p[0], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	unix.Shutdown(p[0], unix.SHUT_WR)
	var st [2]unix.Stat_t
	for i := range p {
		if err := unix.Fstat(p[i], &st[i]); err != nil {
			t.Fatal(err)
		}
	}
	all, err := UnixSockets()
	if err != nil {
		t.Fatal(err)
	}
	a, b := all[st[0].Ino], all[st[1].Ino]
	if a.Peer != st[1].Ino || b.Peer != st[0].Ino || a.Type != unix.SOCK_STREAM {
		t.Fatalf("sock_diag says %+v and %+v; want peers %d and %d", a, b, st[1].Ino, st[0].Ino)
	}
	if b.RQueue != 5 || a.Shutdown != 2 || b.Shutdown != 1 {
		t.Errorf("receive queue %d, shutdown %d and %d; want 5 bytes, SEND_SHUTDOWN and RCV_SHUTDOWN", b.RQueue, a.Shutdown, b.Shutdown)
	}
}
