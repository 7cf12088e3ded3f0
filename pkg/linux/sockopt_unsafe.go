package linux

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GetsockoptBytes reads socket option opt of level into b and returns
// how many bytes the kernel wrote: for the options x/sys reads only as
// a truncated or differently laid out struct (TCP_INFO's window scales,
// TCP_REPAIR_WINDOW).
func GetsockoptBytes(fd, level, opt int, b []byte) (int, error) {
	n := uint32(len(b))
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, os.NewSyscallError("getsockopt", e)
	}
	return int(n), nil
}

// SetsockoptBytes sets socket option opt of level to b, as the kernel
// lays it out (TCP_REPAIR_OPTIONS, TCP_REPAIR_WINDOW).
func SetsockoptBytes(fd, level, opt int, b []byte) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(len(b)), 0)
	if e != 0 {
		return os.NewSyscallError("setsockopt", e)
	}
	return nil
}

// GetFilter reads the classic BPF program attached to socket fd
// (SO_GET_FILTER, whose length the kernel counts in instructions); nil
// for none. An eBPF program (SO_ATTACH_BPF) gives EACCES.
func GetFilter(fd int) ([]unix.SockFilter, error) {
	n, err := GetsockoptBytes(fd, unix.SOL_SOCKET, unix.SO_GET_FILTER, nil)
	if err != nil || n == 0 {
		return nil, err
	}
	f := make([]unix.SockFilter, n)
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER, uintptr(unsafe.Pointer(&f[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return nil, os.NewSyscallError("getsockopt", e)
	}
	return f[:min(int(l), n)], nil
}
