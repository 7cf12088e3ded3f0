package linux

import (
	"encoding/binary"
	"net/netip"
)

// Classic BPF's ancillary loads (linux/filter.h): a load at SKF_AD_OFF +
// SKF_AD_MARK reads the packet's mark.
const (
	SKF_AD_OFF  = 0xfffff000 // -0x1000, as a load's uint32 offset
	SKF_AD_MARK = 20
)

// TCP header flags (struct tcphdr).
const (
	TCPFlagFIN = 0x01
	TCPFlagACK = 0x10
)

// TCPSegment is a TCP segment without options or data, with its IP
// header, from Src to Dst: what a raw IPPROTO_RAW socket sends as is.
type TCPSegment struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
}

// Encode returns s as an IPv4 packet when both addresses are IPv4 (or
// IPv4-mapped IPv6), else as an IPv6 one; the kernel fills the IPv4
// header's checksum, the TCP checksum is computed here.
func (s TCPSegment) Encode() []byte {
	src, dst := s.Src.Addr().Unmap(), s.Dst.Addr().Unmap()
	tcp := make([]byte, 20)
	be := binary.BigEndian
	be.PutUint16(tcp[0:], s.Src.Port())
	be.PutUint16(tcp[2:], s.Dst.Port())
	be.PutUint32(tcp[4:], s.Seq)
	be.PutUint32(tcp[8:], s.Ack)
	tcp[12] = 5 << 4 // header of 5 words
	tcp[13] = s.Flags
	be.PutUint16(tcp[14:], s.Window)
	var ip, pseudo []byte
	if src.Is4() && dst.Is4() {
		a, b := src.As4(), dst.As4()
		ip = []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0}
		ip = append(append(ip, a[:]...), b[:]...)
		pseudo = append(append(append([]byte{}, a[:]...), b[:]...), 0, 6, 0, 20)
	} else {
		a, b := src.As16(), dst.As16()
		ip = []byte{0x60, 0, 0, 0, 0, 20, 6, 64}
		ip = append(append(ip, a[:]...), b[:]...)
		pseudo = append(append(append([]byte{}, a[:]...), b[:]...), 0, 0, 0, 20, 0, 0, 0, 6)
	}
	be.PutUint16(tcp[16:], ^fold(checksum(append(pseudo, tcp...), 0)))
	return append(ip, tcp...)
}
