package linux

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// KCMP_EPOLL_TFD is kcmp's type for comparing an open file description
// with a target of an epoll (struct kcmp_epoll_slot: efd, tfd, toff).
const KCMP_EPOLL_TFD = 7

// SameEpollTarget says whether fd a of process pa is the open file that
// epoll efd of process pb watches as its target fd tfd (kcmp
// KCMP_EPOLL_TFD; the first target of that number).
func SameEpollTarget(pa, a, pb, efd, tfd int) bool {
	slot := [3]uint32{uint32(efd), uint32(tfd), 0}
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pa), uintptr(pb), KCMP_EPOLL_TFD, uintptr(a), uintptr(unsafe.Pointer(&slot)), 0)
	return e == 0 && r == 0
}
