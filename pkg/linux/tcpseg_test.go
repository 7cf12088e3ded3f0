package linux

import (
	"net/netip"
	"testing"
)

// TestTCPSegment: a segment's headers are where the kernel reads them,
// and its TCP checksum, summed again with its pseudo-header, checks.
func TestTCPSegment(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		iplen    int
	}{
		{"10.0.0.1:80", "127.0.0.1:4242", 20},
		{"[::ffff:10.0.0.1]:80", "[::ffff:127.0.0.1]:4242", 20},
		{"[2001:db8::1]:80", "[::1]:4242", 40},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		b := TCPSegment{Src: src, Dst: dst, Seq: 0x01020304, Ack: 0x0a0b0c0d, Flags: TCPFlagFIN | TCPFlagACK, Window: 512}.Encode()
		if len(b) != tc.iplen+20 {
			t.Fatalf("%s: %d bytes; want %d", tc.src, len(b), tc.iplen+20)
		}
		tcp := b[tc.iplen:]
		if tcp[0] != 0 || tcp[1] != 80 || tcp[2] != 0x10 || tcp[3] != 0x92 || tcp[4] != 1 || tcp[11] != 0x0d || tcp[13] != 0x11 {
			t.Errorf("%s: TCP header % x", tc.src, tcp)
		}
		var pseudo []byte
		if tc.iplen == 20 {
			pseudo = append(append([]byte{}, b[12:20]...), 0, 6, 0, 20)
		} else {
			pseudo = append(append([]byte{}, b[8:40]...), 0, 0, 0, 20, 0, 0, 0, 6)
		}
		if c := ^fold(checksum(append(pseudo, tcp...), 0)); c != 0 {
			t.Errorf("%s: checksum over the segment = %#x; want 0", tc.src, c)
		}
	}
}
