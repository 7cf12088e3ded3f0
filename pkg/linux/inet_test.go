package linux

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTCPInfo: DecodeTCPInfo reads what x/sys's TCPInfo reads of a live
// connection, and the window scales it leaves out.
func TestTCPInfo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		b := make([]byte, 256)
		n, err := GetsockoptBytes(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO, b)
		if err != nil || n < SizeofTCPInfo {
			t.Fatalf("GetsockoptBytes(TCP_INFO) = %d, %v", n, err)
		}
		got := DecodeTCPInfo(b)
		want, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want.State || got.Options != want.Options || got.Unacked != want.Unacked {
			t.Errorf("DecodeTCPInfo = %+v; want state %d, options %d, unacked %d", got, want.State, want.Options, want.Unacked)
		}
		if got.State != TCP_ESTABLISHED || got.Options&TCPI_OPT_WSCALE == 0 || got.SndWscale == 0 || got.RcvWscale == 0 {
			t.Errorf("DecodeTCPInfo = %+v; want an established connection with window scales", got)
		}
	})
}

// TestTCPRepairWindow: the struct is the kernel's 20 bytes, in order.
func TestTCPRepairWindow(t *testing.T) {
	w := TCPRepairWindow{1, 2, 3, 4, 5}
	b := w.Encode()
	if len(b) != SizeofTCPRepairWindow || b[0] != 1 || b[16] != 5 {
		t.Fatalf("Encode() = %v", b)
	}
	var back TCPRepairWindow
	back.Decode(b)
	if back != w {
		t.Errorf("Decode(Encode(%v)) = %v", w, back)
	}
	if o := EncodeTCPRepairOpts([]TCPRepairOpt{{TCPOPT_MSS, 1460}}); len(o) != 8 || o[0] != TCPOPT_MSS || o[4] != 1460&0xff {
		t.Errorf("EncodeTCPRepairOpts = %v", o)
	}
}
