package linux

// Msghdr is struct msghdr, recvmsg's argument, with the addresses of its
// buffers in another process: Iov points to Iovlen Iovec.
type Msghdr struct {
	Name       uint64
	Namelen    uint32
	_          uint32
	Iov        uint64
	Iovlen     uint64
	Control    uint64
	Controllen uint64
	Flags      int32
	_          int32
}

// SizeofMsghdr is sizeof(struct msghdr).
const SizeofMsghdr = 56

// Encode returns m in the kernel's layout.
func (m Msghdr) Encode() []byte { return encode(m) }

// Iovec is struct iovec, with an address in another process.
type Iovec struct {
	Base uint64
	Len  uint64
}

// SizeofIovec is sizeof(struct iovec).
const SizeofIovec = 16

// Encode returns v in the kernel's layout.
func (v Iovec) Encode() []byte { return encode(v) }

// Decode reads v from b.
func (v *Iovec) Decode(b []byte) { decode(b[:SizeofIovec], v) }
