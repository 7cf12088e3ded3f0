package linux

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetTimerfdTicks is ioctl(fd, TFD_IOC_SET_TICKS, &ticks): the
// expirations of timerfd fd that no read took yet.
func SetTimerfdTicks(fd int, ticks uint64) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), TFD_IOC_SET_TICKS, uintptr(unsafe.Pointer(&ticks)))
	if e != 0 {
		return os.NewSyscallError("ioctl(TFD_IOC_SET_TICKS)", e)
	}
	return nil
}
