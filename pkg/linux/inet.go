package linux

import "encoding/binary"

// TCP states (include/net/tcp_states.h), as TCP_INFO and sock_diag say
// them.
const (
	TCP_ESTABLISHED = 1
	TCP_SYN_SENT    = 2
	TCP_SYN_RECV    = 3
	TCP_FIN_WAIT1   = 4
	TCP_FIN_WAIT2   = 5
	TCP_TIME_WAIT   = 6
	TCP_CLOSE       = 7
	TCP_CLOSE_WAIT  = 8
	TCP_LAST_ACK    = 9
	TCP_LISTEN      = 10
	TCP_CLOSING     = 11
)

// TCP_REPAIR_QUEUE's queues (linux/tcp.h).
const (
	TCP_RECV_QUEUE = 1
	TCP_SEND_QUEUE = 2
)

// tcpi_options bits of struct tcp_info.
const (
	TCPI_OPT_TIMESTAMPS = 1
	TCPI_OPT_SACK       = 2
	TCPI_OPT_WSCALE     = 4
)

// TCP options TCP_REPAIR_OPTIONS sets (include/net/tcp.h TCPOPT_*).
const (
	TCPOPT_MSS       = 2
	TCPOPT_WINDOW    = 3
	TCPOPT_SACK_PERM = 4
	TCPOPT_TIMESTAMP = 8
)

// SizeofTCPInfo is as much of struct tcp_info as TCPInfo reads.
const SizeofTCPInfo = 144

// TCPInfo is the part of struct tcp_info a checkpointer needs, with the
// window scales x/sys's struct leaves in its padding. For a listening
// socket Unacked is its accept queue's length and Sacked its backlog.
type TCPInfo struct {
	State     uint8
	Options   uint8 // TCPI_OPT_*
	SndWscale uint8
	RcvWscale uint8
	Unacked   uint32
	Sacked    uint32
	SegsOut   uint32 // segments sent, and received (since Linux 4.2)
	SegsIn    uint32
}

// DecodeTCPInfo reads a TCPInfo from struct tcp_info's bytes, at least
// SizeofTCPInfo of them.
func DecodeTCPInfo(b []byte) TCPInfo {
	le := binary.LittleEndian
	return TCPInfo{State: b[0], Options: b[5], SndWscale: b[6] & 0xf, RcvWscale: b[6] >> 4,
		Unacked: le.Uint32(b[24:]), Sacked: le.Uint32(b[28:]), SegsOut: le.Uint32(b[136:]), SegsIn: le.Uint32(b[140:])}
}

// TCPRepairWindow is struct tcp_repair_window (TCP_REPAIR_WINDOW).
type TCPRepairWindow struct {
	SndWl1    uint32
	SndWnd    uint32
	MaxWindow uint32
	RcvWnd    uint32
	RcvWup    uint32
}

// SizeofTCPRepairWindow is sizeof(struct tcp_repair_window).
const SizeofTCPRepairWindow = 20

// Encode returns w in the kernel's layout.
func (w TCPRepairWindow) Encode() []byte { return encode(w) }

// Decode reads w from b.
func (w *TCPRepairWindow) Decode(b []byte) { decode(b[:SizeofTCPRepairWindow], w) }

// TCPRepairOpt is struct tcp_repair_opt, one of TCP_REPAIR_OPTIONS's.
type TCPRepairOpt struct {
	Code uint32
	Val  uint32
}

// EncodeTCPRepairOpts returns opts as TCP_REPAIR_OPTIONS takes them.
func EncodeTCPRepairOpts(opts []TCPRepairOpt) []byte { return encode(opts) }

// UDPPacket is an IP packet (IPv4 when src and dst are 4 bytes, IPv6
// when 16) holding a UDP datagram (proto IPPROTO_UDP) or a UDP-Lite one
// (IPPROTO_UDPLITE, its checksum covering all of it) of data from port
// sport to dport, checksums computed: for a raw socket of IPPROTO_RAW.
func UDPPacket(src, dst []byte, sport, dport uint16, proto int, data []byte) []byte {
	be := binary.BigEndian
	ulen := 8 + len(data)
	u := make([]byte, ulen)
	be.PutUint16(u[0:], sport)
	be.PutUint16(u[2:], dport)
	if proto != 136 { // UDP-Lite's field is its coverage: 0, all
		be.PutUint16(u[4:], uint16(ulen))
	}
	copy(u[8:], data)
	// The pseudo-header: addresses, protocol, length.
	pseudo := append(append([]byte{}, src...), dst...)
	pseudo = be.AppendUint32(pseudo, uint32(ulen))
	pseudo = be.AppendUint32(pseudo, uint32(proto))
	sum := ^fold(checksum(u, checksum(pseudo, 0)))
	if sum == 0 {
		sum = 0xffff // 0 says "no checksum"
	}
	be.PutUint16(u[6:], sum)
	var h []byte
	if len(src) == 4 {
		h = make([]byte, 20)
		h[0], h[8], h[9] = 0x45, 64, byte(proto)
		be.PutUint16(h[2:], uint16(20+ulen))
		copy(h[12:], src)
		copy(h[16:], dst)
		be.PutUint16(h[10:], ^fold(checksum(h, 0)))
	} else {
		h = make([]byte, 40)
		h[0], h[6], h[7] = 0x60, byte(proto), 64
		be.PutUint16(h[4:], uint16(ulen))
		copy(h[8:], src)
		copy(h[24:], dst)
	}
	return append(h, u...)
}

// checksum adds b to the Internet checksum sum (RFC 1071), unfolded.
func checksum(b []byte, sum uint32) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// fold folds an unfolded checksum into 16 bits.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
