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
	"os"

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
