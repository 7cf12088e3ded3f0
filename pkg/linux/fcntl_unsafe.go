package linux

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FOwnerEx is struct f_owner_ex: who gets the signals of an open file's
// I/O (F_OWNER_TID 0, F_OWNER_PID 1, F_OWNER_PGRP 2, and the id).
type FOwnerEx struct {
	Type int32
	PID  int32
}

// SizeofFOwnerEx is sizeof(struct f_owner_ex).
const SizeofFOwnerEx = 8

// Encode returns o in the kernel's layout.
func (o FOwnerEx) Encode() []byte { return encode(o) }

// GetOwnerEx is fcntl(fd, F_GETOWN_EX).
func GetOwnerEx(fd int) (FOwnerEx, error) {
	var o FOwnerEx
	_, _, e := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&o)))
	if e != 0 {
		return o, os.NewSyscallError("fcntl(F_GETOWN_EX)", e)
	}
	return o, nil
}
