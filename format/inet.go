package format

// --- TCP and UDP sockets (issue 12). Kept in one file for merges.

// FileTCP is the kind of a TCP socket (IPv4 or IPv6): never bound,
// bound, listening, or an established connection.
const FileTCP = "tcp"

// TCP states in the image (TCP.State).
const (
	TCPNew   = "new"   // created, never bound
	TCPBound = "bound" // bound, neither listening nor connected
	// A connection that ended (reset by its peer, refused, or closed both
	// ways) whose fd its program still has: it comes back reset.
	TCPClosed      = "closed"
	TCPListen      = "listen"      // listening
	TCPEstablished = "established" // a connection (TCP.Conn)
	// Half-closed and closing connections (TCP.Conn as for TCPEstablished):
	// the peer's FIN received (CloseWait, LastAck, Closing), or ours
	// sent (FinWait1, FinWait2: acknowledged, LastAck, Closing).
	TCPCloseWait = "close-wait"
	TCPFinWait1  = "fin-wait-1"
	TCPFinWait2  = "fin-wait-2"
	TCPLastAck   = "last-ack"
	TCPClosing   = "closing"
)

// IsTCPConn says whether state is a connection's, which has a peer
// (TCP.Remote) and, but with --tcp=close, a TCP.Conn.
func IsTCPConn(state string) bool {
	return state == TCPEstablished || TCPPeerFIN(state) || TCPOwnFIN(state)
}

// TCPPeerFIN says whether a connection in state has received its peer's
// FIN, at RecvSeq + len(RecvQueue).
func TCPPeerFIN(state string) bool {
	return state == TCPCloseWait || state == TCPLastAck || state == TCPClosing
}

// TCPOwnFIN says whether a connection in state has shut down writing: its
// FIN is at SendSeq + len(SendQueue) (in FinWait2, acknowledged).
func TCPOwnFIN(state string) bool {
	return state == TCPFinWait1 || state == TCPFinWait2 || state == TCPLastAck || state == TCPClosing
}

// TCP is the state of a TCP socket (FileTCP).
type TCP struct {
	// Family is AF_INET (2) or AF_INET6 (10).
	Family int `json:"family"`
	// MPTCP: a multipath TCP socket (IPPROTO_MPTCP), which Go's
	// listeners are by default.
	MPTCP bool   `json:"mptcp,omitempty"`
	State string `json:"state"`
	// Local and Remote are addresses with their ports, "127.0.0.1:8000",
	// "[::]:80", as Go's netip.AddrPort writes them; Local is absent for
	// a new socket, Remote but for a connection.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Backlog is a listening socket's listen(2) backlog.
	Backlog int      `json:"backlog,omitempty"`
	Options SockOpts `json:"options"`
	// Conn is an established connection's state, read in repair mode
	// (TCP_REPAIR); absent when it was dumped with --tcp=close.
	Conn *TCPConn `json:"conn,omitempty"`
}

// TCPConn is what TCP_REPAIR reads of an established connection: enough
// to make it again so that neither end loses or repeats a byte.
type TCPConn struct {
	// SendSeq is the sequence number of SendQueue's first byte: the
	// bytes sent and not acknowledged, then those not sent yet.
	SendSeq   uint32 `json:"send_seq"`
	SendQueue []byte `json:"send_queue,omitempty"`
	// Unsent is how many bytes at the end of SendQueue were not sent
	// yet.
	Unsent int `json:"unsent,omitempty"`
	// RecvSeq is the sequence number of RecvQueue's first byte: the
	// bytes received that the program had not read.
	RecvSeq   uint32 `json:"recv_seq"`
	RecvQueue []byte `json:"recv_queue,omitempty"`
	// The options the two ends agreed on: the largest segment, window
	// scaling (each way, 0 to 14) when Wscale, SACK, timestamps (with
	// the clock TSVal, TCP_TIMESTAMP).
	MSS        int    `json:"mss"`
	Wscale     bool   `json:"wscale,omitempty"`
	SndWscale  int    `json:"snd_wscale,omitempty"`
	RcvWscale  int    `json:"rcv_wscale,omitempty"`
	SACK       bool   `json:"sack,omitempty"`
	Timestamps bool   `json:"timestamps,omitempty"`
	TSVal      uint32 `json:"tsval,omitempty"`
	// The windows (TCP_REPAIR_WINDOW).
	SndWl1    uint32 `json:"snd_wl1"`
	SndWnd    uint32 `json:"snd_wnd"`
	MaxWindow uint32 `json:"max_window"`
	RcvWnd    uint32 `json:"rcv_wnd"`
	RcvWup    uint32 `json:"rcv_wup"`
	// FinUnsent: the connection's own FIN (states FinWait1, LastAck,
	// Closing) was not sent yet; it follows the Unsent bytes.
	FinUnsent bool `json:"fin_unsent,omitempty"`
}

// SockOpts are the options of an IPv4 or IPv6 socket that a program can
// read back; a member absent or zero is the option's default.
type SockOpts struct {
	ReuseAddr bool `json:"reuseaddr,omitempty"` // SO_REUSEADDR
	ReusePort bool `json:"reuseport,omitempty"` // SO_REUSEPORT
	KeepAlive bool `json:"keepalive,omitempty"` // SO_KEEPALIVE
	Broadcast bool `json:"broadcast,omitempty"` // SO_BROADCAST
	OOBInline bool `json:"oobinline,omitempty"` // SO_OOBINLINE
	FreeBind  bool `json:"freebind,omitempty"`  // IP_FREEBIND
	V6Only    bool `json:"v6only,omitempty"`    // IPV6_V6ONLY
	// SndBuf and RcvBuf as getsockopt tells them (twice what setsockopt
	// was given), when they are not a new socket's.
	SndBuf int `json:"sndbuf,omitempty"`
	RcvBuf int `json:"rcvbuf,omitempty"`
	// Linger is SO_LINGER's time in seconds, plus one (0: off).
	Linger   int    `json:"linger,omitempty"`
	Mark     uint32 `json:"mark,omitempty"`     // SO_MARK
	Priority int    `json:"priority,omitempty"` // SO_PRIORITY
	Device   string `json:"device,omitempty"`   // SO_BINDTODEVICE
	TOS      int    `json:"tos,omitempty"`      // IP_TOS, IPV6_TCLASS
	// TCP's own.
	NoDelay     bool `json:"nodelay,omitempty"`      // TCP_NODELAY
	KeepIdle    int  `json:"keepidle,omitempty"`     // TCP_KEEPIDLE, seconds
	KeepIntvl   int  `json:"keepintvl,omitempty"`    // TCP_KEEPINTVL, seconds
	KeepCnt     int  `json:"keepcnt,omitempty"`      // TCP_KEEPCNT
	DeferAccept int  `json:"defer_accept,omitempty"` // TCP_DEFER_ACCEPT, seconds
	UserTimeout int  `json:"user_timeout,omitempty"` // TCP_USER_TIMEOUT, ms
	Fastopen    int  `json:"fastopen,omitempty"`     // TCP_FASTOPEN's queue
	// Multicast (issue 12, udp): IP_MULTICAST_TTL or
	// IPV6_MULTICAST_HOPS plus one (0: the default), and
	// IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP off.
	McastTTL    int  `json:"mcast_ttl,omitempty"`
	McastNoLoop bool `json:"mcast_noloop,omitempty"`
	// What a datagram's reader gets with it: IP_PKTINFO or
	// IPV6_RECVPKTINFO, IP_RECVERR or IPV6_RECVERR.
	PktInfo bool `json:"pktinfo,omitempty"`
	RecvErr bool `json:"recverr,omitempty"`
	// Filter is the classic BPF program attached (SO_ATTACH_FILTER),
	// and FilterLocked SO_LOCK_FILTER.
	Filter       []SockFilter `json:"filter,omitempty"`
	FilterLocked bool         `json:"filter_locked,omitempty"`
	// SO_RCVTIMEO and SO_SNDTIMEO, ns (0: none).
	RcvTimeo int64 `json:"rcvtimeo,omitempty"`
	SndTimeo int64 `json:"sndtimeo,omitempty"`
	// UDP's own: UDP_SEGMENT (the size GSO cuts a send in) and UDP_GRO.
	Segment int  `json:"udp_segment,omitempty"`
	GRO     bool `json:"udp_gro,omitempty"`
	// IP_TTL (IPV6_UNICAST_HOPS), SO_RCVLOWAT, and IP_MTU_DISCOVER
	// (IPV6_MTU_DISCOVER) plus one, so that 0 (IP_PMTUDISC_DONT) may
	// travel.
	TTL      int `json:"ttl,omitempty"`
	RcvLowat int `json:"rcvlowat,omitempty"`
	PMTUDisc int `json:"pmtudisc,omitempty"`
}

// --- UDP, UDP-Lite, ping and netlink route sockets (issue 12, udp).

// FeatureSocketFilters is the INFO.requires name of an image with a
// `tcp` file whose options hold a socket filter (SockOpts.Filter),
// which an older reader would ignore, and so restore the socket
// unfiltered. The kinds that came with filters (udp, ping) need none.
const FeatureSocketFilters = "socket-filters"

// Kinds of the other sockets that travel.
const (
	// FileUDP is a UDP or UDP-Lite socket, IPv4 or IPv6 (File.UDP).
	FileUDP = "udp"
	// FilePing is an ICMP echo ("ping") socket, IPv4 or IPv6: SOCK_DGRAM
	// of IPPROTO_ICMP or IPPROTO_ICMPV6 (File.Ping).
	FilePing = "ping"
	// FileNetlink is a netlink socket of protocol NETLINK_ROUTE
	// (File.Netlink).
	FileNetlink = "netlink"
)

// Dgram is the state of a datagram socket of an IP family: UDP, UDP-Lite
// (FileUDP) or ping (FilePing).
type Dgram struct {
	// Family is AF_INET (2) or AF_INET6 (10).
	Family int `json:"family"`
	// Lite: a UDP-Lite socket (IPPROTO_UDPLITE); CsCovSend and
	// CsCovRecv are its UDPLITE_SEND_CSCOV and UDPLITE_RECV_CSCOV.
	Lite      bool `json:"lite,omitempty"`
	CsCovSend int  `json:"send_cscov,omitempty"`
	CsCovRecv int  `json:"recv_cscov,omitempty"`
	// Local is its address and port (of a ping socket: its echo id),
	// absent for one never bound; Remote the peer it is connected to.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Shutdown holds SHUT_RD (1) and SHUT_WR (2) as shutdown(2) left
	// them.
	Shutdown int `json:"shutdown,omitempty"`
	// PeekOff is SO_PEEK_OFF when the program set one.
	PeekOff *int     `json:"peek_off,omitempty"`
	Options SockOpts `json:"options"`
	// Queue is what it had received and the program had not read, in
	// order: each datagram whole (of a ping socket: the ICMP echo
	// reply, its header first) with its sender.
	Queue []Datagram `json:"queue,omitempty"`
}

// Datagram is a datagram queued on a socket: its sender's address and
// port ("127.0.0.1:5000"; of a ping socket, port 0) and its bytes.
type Datagram struct {
	From string `json:"from"`
	Data []byte `json:"data"`
}

// Netlink is the state of a NETLINK_ROUTE socket (FileNetlink).
type Netlink struct {
	// Type is SOCK_RAW (3) or SOCK_DGRAM (2).
	Type int `json:"type"`
	// PortID is the port id it was bound to (0: never bound).
	PortID uint32 `json:"port_id,omitempty"`
	// Groups are the multicast groups it listened to (rtnetlink's
	// RTNLGRP_*, from 1).
	Groups []uint32 `json:"groups,omitempty"`
	// SndBuf and RcvBuf as getsockopt tells them, when not a new
	// socket's.
	SndBuf int `json:"sndbuf,omitempty"`
	RcvBuf int `json:"rcvbuf,omitempty"`
	// Flags are the netlink options set (NETLINK_PKTINFO 3,
	// NETLINK_BROADCAST_ERROR 4, NETLINK_NO_ENOBUFS 5,
	// NETLINK_LISTEN_ALL_NSID 8, NETLINK_CAP_ACK 10, NETLINK_EXT_ACK 11,
	// NETLINK_GET_STRICT_CHK 12), as a bit mask of 1<<option.
	Flags uint32 `json:"flags,omitempty"`
}

// SockFilter is an instruction of a classic BPF program (struct
// sock_filter).
type SockFilter struct {
	Code uint16 `json:"code"`
	Jt   uint8  `json:"jt"`
	Jf   uint8  `json:"jf"`
	K    uint32 `json:"k"`
}
