// Package uffd drives a userfaultfd from outside the process whose memory
// it watches: a live dump takes the fd of a userfaultfd made inside the
// target (by an injected call) and tracks the target's writes with it
// (write-protect, resolved by the kernel itself: WP_ASYNC). The kernel's
// structs and constants are in package linux.
//
// A userfaultfd's watch ends with its last fd: when the holder closes it
// or dies, the kernel unregisters every range and lifts the write
// protection it put, and the target goes on as before.
package uffd

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// FD is a userfaultfd.
type FD struct{ f *os.File }

// New takes f, a userfaultfd.
func New(f *os.File) *FD { return &FD{f: f} }

// Close closes the fd: the watch ends (see the package comment).
func (u *FD) Close() error { return u.f.Close() }

// API asks for features (UFFD_FEATURE_*), once, before anything else.
func (u *FD) API(features uint64) error {
	b := linux.UffdioAPI{API: linux.UFFD_API, Features: features}.Encode()
	return u.ioctl("UFFDIO_API", linux.UFFDIO_API, b)
}

// Register watches [start, start+n) in mode (UFFDIO_REGISTER_MODE_*):
// whole mappings, without a hole. Registered for write-protection, the
// pages are protected by PAGEMAP_SCAN (WP_MATCHING), which tells which
// were written since (see procfs.ScanArgs).
func (u *FD) Register(start, n, mode uint64) error {
	b := linux.UffdioRegister{Start: start, Len: n, Mode: mode}.Encode()
	return u.ioctl("UFFDIO_REGISTER", linux.UFFDIO_REGISTER, b)
}

// Take makes an FD of fd, a userfaultfd not used yet, once it has asked
// for features (UFFDIO_API): a userfaultfd polls as an error until
// then, and the runtime's poller, which a nonblocking fd made a File
// joins at once, would keep that error for good.
func Take(fd int, features uint64) (*FD, error) {
	b := linux.UffdioAPI{API: linux.UFFD_API, Features: features}.Encode()
	if errno := ioctlFD(uintptr(fd), linux.UFFDIO_API, b); errno != 0 {
		unix.Close(fd)
		return nil, os.NewSyscallError("ioctl UFFDIO_API", errno)
	}
	return New(os.NewFile(uintptr(fd), "userfaultfd")), nil
}

// File is the userfaultfd's file.
func (u *FD) File() *os.File { return u.f }

// ErrChanging is what UFFDIO_COPY and UFFDIO_ZEROPAGE give while the
// process changes its mappings (an mremap, munmap, madvise or fork whose
// event is not read yet): try again once the events are read.
var ErrChanging = errors.New("the mappings are changing")

// ErrGone is what they give once the process's memory is gone (it
// exited).
var ErrGone = errors.New("the process is gone")

// Copy puts data at dst (UFFDIO_COPY, which wakes the threads waiting
// for those pages). Pages that are there already (served before, or
// written by the process) are kept, and so are pages outside the ranges
// the fd watches now (unmapped since); it returns how many bytes it
// went past before an ErrChanging, ErrGone or another error.
func (u *FD) Copy(dst uint64, data []byte) (int, error) {
	done := 0
	for done < len(data) {
		c := linux.UffdioCopy{Dst: dst + uint64(done), Len: uint64(len(data) - done)}
		n, errno := u.copy(&c, data[done:])
		if n > 0 {
			done += int(n)
			continue
		}
		switch errno {
		case unix.EINTR:
		case unix.EEXIST, unix.ENOENT:
			done += pageSize
		case unix.EAGAIN:
			return done, ErrChanging
		case unix.ESRCH:
			return done, ErrGone
		default:
			return done, os.NewSyscallError("ioctl UFFDIO_COPY", errno)
		}
	}
	return done, nil
}

// Zero maps the zero page at the page addr (UFFDIO_ZEROPAGE) for a
// thread that waits for a page the image does not hold; if a page is
// there already, it wakes the threads waiting for it instead.
func (u *FD) Zero(addr uint64) error {
	for {
		b := linux.UffdioZeropage{Start: addr, Len: pageSize}.Encode()
		err := u.ioctlRaw(linux.UFFDIO_ZEROPAGE, b)
		switch err {
		case 0, unix.ENOENT:
			return nil
		case unix.EINTR:
		case unix.EEXIST:
			if err := u.ioctlRaw(linux.UFFDIO_WAKE, linux.UffdioRange{Start: addr, Len: pageSize}.Encode()); err != 0 {
				return os.NewSyscallError("ioctl UFFDIO_WAKE", err)
			}
			return nil
		case unix.EAGAIN:
			return ErrChanging
		case unix.ESRCH:
			return ErrGone
		default:
			return os.NewSyscallError("ioctl UFFDIO_ZEROPAGE", err)
		}
	}
}

// Gone tells whether the process whose memory the fd watches is gone
// (its memory freed: it exited). It asks the kernel to lift the write
// protection of a page that no range of a lazy restore's is registered
// for, without waking anyone: a request that changes nothing, and that
// the kernel refuses with ESRCH only when the memory is gone.
func (u *FD) Gone() bool {
	b := linux.UffdioWriteprotect{Start: 1 << 32, Len: pageSize, Mode: linux.UFFDIO_WRITEPROTECT_MODE_DONTWAKE}.Encode()
	for {
		switch u.ioctlRaw(linux.UFFDIO_WRITEPROTECT, b) {
		case unix.EINTR:
		case unix.ESRCH:
			return true
		default:
			return false
		}
	}
}

const pageSize = 4096
