package linux

import "golang.org/x/sys/unix"

// SockFprog is struct sock_fprog with its filter in another address
// space (x/sys's unix.SockFprog holds a pointer of this one).
type SockFprog struct {
	Len    uint16 // instructions
	_      [6]byte
	Filter uint64 // address of Len struct sock_filter
}

// SizeofSockFprog is sizeof(struct sock_fprog).
const SizeofSockFprog = 16

// Encode returns p in the kernel's layout.
func (p SockFprog) Encode() []byte { return encode(p) }

// Decode reads p from b.
func (p *SockFprog) Decode(b []byte) { decode(b[:SizeofSockFprog], p) }

// SizeofSockFilter is sizeof(struct sock_filter), one BPF instruction.
const SizeofSockFilter = 8

// SockFilters decodes a classic BPF program, dropping a trailing part
// instruction.
func SockFilters(prog []byte) []unix.SockFilter {
	out := make([]unix.SockFilter, len(prog)/SizeofSockFilter)
	for i := range out {
		decode(prog[i*SizeofSockFilter:(i+1)*SizeofSockFilter], &out[i])
	}
	return out
}
