package linux

import "golang.org/x/sys/unix"

// EncodeOpenHow returns openat2's struct open_how in the kernel's layout
// (x/sys has the struct, unix.OpenHow, but no encoder).
func EncodeOpenHow(h unix.OpenHow) []byte { return encode(h) }
