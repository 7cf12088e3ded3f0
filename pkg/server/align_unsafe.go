package server

import "unsafe"

// alignedBuf returns a buffer of size bytes whose first byte is at an
// address that is a multiple of align (a power of two), as O_DIRECT
// wants.
func alignedBuf(size, align int) []byte {
	b := make([]byte, size+align)
	off := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1))
	if off != 0 {
		off = align - off
	}
	return b[off : off+size : off+size]
}
