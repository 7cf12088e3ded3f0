package files

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
)

// Half-closed and closing connections, the part of tcprepair.go that puts
// the FINs back, as CRIU's libsoccr does. A FIN is one sequence number
// at the end of its queue, and TCP_REPAIR has no way to queue one: the
// connection is made established, its queues and windows as they were
// without the FINs, then
//
//   - its own FIN (it shut down writing: FIN-WAIT-1, FIN-WAIT-2, CLOSING,
//     LAST-ACK) by shutdown(SHUT_WR) in repair mode on the send queue,
//     which queues it as sent, not sending it (the kernel sends it again
//     if no acknowledgement comes); one not sent yet, after bytes not
//     sent yet, by shutdown once the connection runs;
//   - the peer's FIN (CLOSE-WAIT, LAST-ACK, CLOSING), and in FIN-WAIT-2
//     the peer's acknowledgement of ours, by a segment the loader makes
//     as the peer would have sent it, through a raw socket, to the
//     restored socket on this host, whose filter lets in that segment
//     alone (it bears finMark) while the connection is made.
//
// TIME-WAIT and closed connections have no fd; SYN-SENT and SYN-RECV are
// refused by name.

// tcpConnStates maps the kernel's states of the connections that travel
// to the image's.
var tcpConnStates = map[uint8]string{
	linux.TCP_ESTABLISHED: format.TCPEstablished, linux.TCP_CLOSE_WAIT: format.TCPCloseWait,
	linux.TCP_FIN_WAIT1: format.TCPFinWait1, linux.TCP_FIN_WAIT2: format.TCPFinWait2,
	linux.TCP_LAST_ACK: format.TCPLastAck, linux.TCP_CLOSING: format.TCPClosing,
}

// finMark marks the segments the loader makes (SO_MARK): the filter of a
// connection being made lets them in, and them alone.
const finMark = 0x70726f63 // "proc"

// makeFilter drops every packet but those marked finMark.
var makeFilter = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: linux.SKF_AD_OFF + linux.SKF_AD_MARK},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: finMark},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
}

// putFINs gives connection s, made established in repair mode with its
// queues and windows, the FINs of its state (t.State), in the order they
// came: for CLOSING ours first, for LAST-ACK the peer's.
func putFINs(s int, t *format.TCP) error {
	c, st := t.Conn, t.State
	if st == format.TCPEstablished {
		return nil
	}
	ownFirst := format.TCPOwnFIN(st) && !c.FinUnsent && st != format.TCPLastAck
	if ownFirst {
		if err := shutInRepair(s); err != nil {
			return err
		}
	}
	if format.TCPPeerFIN(st) {
		fin := uint32(len(c.RecvQueue)) + c.RecvSeq
		if err := fromPeer(t, linux.TCPFlagFIN|linux.TCPFlagACK, fin, c.SendSeq); err != nil {
			return err
		}
		want := uint8(linux.TCP_CLOSE_WAIT)
		if ownFirst {
			want = linux.TCP_CLOSING
		}
		if err := waitTCPState(s, want); err != nil {
			return fmt.Errorf("its peer's FIN: %w", err)
		}
	}
	if st == format.TCPLastAck && !c.FinUnsent {
		if err := shutInRepair(s); err != nil {
			return err
		}
	}
	if st == format.TCPFinWait2 {
		ack := c.SendSeq + uint32(len(c.SendQueue)) + 1
		if err := fromPeer(t, linux.TCPFlagACK, c.RecvSeq+uint32(len(c.RecvQueue)), ack); err != nil {
			return err
		}
		if err := waitTCPState(s, linux.TCP_FIN_WAIT2); err != nil {
			return fmt.Errorf("its FIN acknowledged: %w", err)
		}
	}
	return nil
}

// shutInRepair queues connection s's FIN as sent (shutdown in repair
// mode on the send queue).
func shutInRepair(s int) error {
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, linux.TCP_SEND_QUEUE); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	defer unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, 0)
	if err := unix.Shutdown(s, unix.SHUT_WR); err != nil {
		return fmt.Errorf("its FIN (shutdown): %w", err)
	}
	return nil
}

// fromPeer sends the restored socket of connection t, on this host, a
// segment as its peer would: flags, seq and ack, the peer's window. It
// needs CAP_NET_RAW, which the loader has as it has CAP_NET_ADMIN.
func fromPeer(t *format.TCP, flags uint8, seq, ack uint32) error {
	local, err := netip.ParseAddrPort(t.Local)
	if err != nil {
		return err
	}
	remote, err := netip.ParseAddrPort(t.Remote)
	if err != nil {
		return err
	}
	c := t.Conn
	win := min(c.SndWnd>>c.SndWscale, 0xffff)
	seg := linux.TCPSegment{Src: remote, Dst: local, Seq: seq, Ack: ack, Flags: flags, Window: uint16(win)}
	family, to := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: local.Addr().As16()})
	if l := local.Addr().Unmap(); l.Is4() && remote.Addr().Unmap().Is4() {
		family, to = unix.AF_INET, &unix.SockaddrInet4{Addr: l.As4()}
	}
	r, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("a raw socket, to put back a FIN: %w", os.NewSyscallError("socket", err))
	}
	defer unix.Close(r)
	if err := unix.SetsockoptInt(r, unix.SOL_SOCKET, unix.SO_MARK, finMark); err != nil {
		return fmt.Errorf("SO_MARK of a raw socket: %w", err)
	}
	if err := unix.Sendto(r, seg.Encode(), 0, to); err != nil {
		return fmt.Errorf("sending a segment as the peer: %w", err)
	}
	return nil
}

// waitTCPState waits until socket s is in state want: a segment sent to
// it is taken in by the kernel a moment later.
func waitTCPState(s int, want uint8) error {
	var info linux.TCPInfo
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if info, err = tcpInfo(s); err != nil || info.State == want {
			return err
		}
	}
	return fmt.Errorf("the connection stayed in state %d, not %d", info.State, want)
}

// validConnState checks what the state of a connection says of its queues.
func validConnState(st string, c *format.TCPConn) error {
	switch {
	case c == nil:
		return nil
	case c.FinUnsent && (!format.TCPOwnFIN(st) || st == format.TCPFinWait2):
		return fmt.Errorf("a FIN not sent in state %s", st)
	case format.TCPOwnFIN(st) && c.Unsent > 0 && !c.FinUnsent:
		return fmt.Errorf("a FIN sent before %d bytes not sent", c.Unsent)
	case st == format.TCPFinWait2 && len(c.SendQueue) > 0:
		return fmt.Errorf("%d bytes not acknowledged after an acknowledged FIN", len(c.SendQueue))
	}
	return nil
}
