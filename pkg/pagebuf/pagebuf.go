// Package pagebuf allocates the large buffers that memory pages move
// through, outside the Go heap and without transparent huge pages: the
// first touch of a fresh huge page (zeroing 2 MiB at once) costs several
// times more than 4 KiB pages here, and is paid once per buffer.
package pagebuf

import (
	"os"

	"golang.org/x/sys/unix"
)

// New returns n bytes of fresh memory (n is rounded up to pages).
func New(n int) ([]byte, error) {
	n = (n + 4095) &^ 4095
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	return b, nil
}

// Free gives b back; b must come from New and not be used after.
func Free(b []byte) {
	if cap(b) > 0 {
		unix.Munmap(b[:cap(b)])
	}
}

// Prefault makes every page of b present now (MADV_POPULATE_WRITE, or a
// write to each page where the kernel lacks it), so that no later copy
// into b pays for the first touch.
func Prefault(b []byte) {
	if len(b) == 0 {
		return
	}
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil {
		return
	}
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 0
	}
}
