package linux

// EpollEvent is struct epoll_event, packed on x86-64 (x/sys's
// unix.EpollEvent splits the data word into two int32s).
type EpollEvent struct {
	Events uint32
	Data   uint64
}

// SizeofEpollEvent is sizeof(struct epoll_event) on x86-64.
const SizeofEpollEvent = 12

// Encode returns e in the kernel's layout.
func (e EpollEvent) Encode() []byte { return encode(e) }

// Decode reads e from b.
func (e *EpollEvent) Decode(b []byte) { decode(b[:SizeofEpollEvent], e) }
