package uffd

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// ioctl runs request req with arg, the struct's bytes, retrying EINTR
// (and EAGAIN, which a range being changed by the target gives).
func (u *FD) ioctl(name string, req uintptr, arg []byte) error {
	for {
		errno := u.ioctlRaw(req, arg)
		if errno == unix.EINTR || errno == unix.EAGAIN {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("ioctl "+name, errno)
		}
		return nil
	}
}

// ioctlRaw runs request req with arg once.
func (u *FD) ioctlRaw(req uintptr, arg []byte) unix.Errno { return ioctlFD(u.f.Fd(), req, arg) }

// ioctlFD runs request req with arg once on fd.
func ioctlFD(fd, req uintptr, arg []byte) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&arg[0])))
	runtime.KeepAlive(arg)
	return errno
}

// copy runs UFFDIO_COPY of c with src, once: the bytes copied (c.Copy
// when positive) and the error.
func (u *FD) copy(c *linux.UffdioCopy, src []byte) (int64, unix.Errno) {
	c.Src = uint64(uintptr(unsafe.Pointer(&src[0])))
	b := c.Encode()
	errno := u.ioctlRaw(linux.UFFDIO_COPY, b)
	runtime.KeepAlive(src)
	c.Decode(b)
	if errno == 0 {
		return int64(c.Len), 0
	}
	return max(c.Copy, 0), errno
}

// addrOf is the address of b's first byte (tests).
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
