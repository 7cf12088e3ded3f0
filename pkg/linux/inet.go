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
const SizeofTCPInfo = 40

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
}

// DecodeTCPInfo reads a TCPInfo from struct tcp_info's bytes, at least
// SizeofTCPInfo of them.
func DecodeTCPInfo(b []byte) TCPInfo {
	le := binary.LittleEndian
	return TCPInfo{State: b[0], Options: b[5], SndWscale: b[6] & 0xf, RcvWscale: b[6] >> 4,
		Unacked: le.Uint32(b[24:]), Sacked: le.Uint32(b[28:])}
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
