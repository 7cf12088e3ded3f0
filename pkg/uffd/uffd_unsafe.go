package uffd

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl runs request req with arg, the struct's bytes, retrying EINTR
// (and EAGAIN, which a range being changed by the target gives).
func (u *FD) ioctl(name string, req uintptr, arg []byte) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, u.f.Fd(), req, uintptr(unsafe.Pointer(&arg[0])))
		runtime.KeepAlive(arg)
		if errno == unix.EINTR || errno == unix.EAGAIN {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("ioctl "+name, errno)
		}
		return nil
	}
}
