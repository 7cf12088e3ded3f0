package restore

import "unsafe"

// addrOf is the address of b's first byte: where a segment procs-load
// attached lies in its memory.
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
