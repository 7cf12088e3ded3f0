package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompFilter returns filter index of tid (0: the last installed) as
// its struct sock_filter instructions, 8 bytes each, and the
// SECCOMP_FILTER_FLAG_* it was installed with that the kernel reports
// (LOG). Past the first filter it fails with ENOENT. Reading filters
// needs CAP_SYS_ADMIN.
func SeccompFilter(tid, index int) (prog []byte, flags uint64, err error) {
	n, err := seccompGetFilter(tid, index, nil)
	if err != nil {
		return nil, 0, errno("ptrace(SECCOMP_GET_FILTER)", err)
	}
	prog = make([]byte, 8*n)
	if m, err := seccompGetFilter(tid, index, prog); err != nil {
		return nil, 0, errno("ptrace(SECCOMP_GET_FILTER)", err)
	} else if m != n {
		return nil, 0, errno("ptrace(SECCOMP_GET_FILTER)", unix.EAGAIN)
	}
	// struct seccomp_metadata: filter_off, then flags.
	md := [2]uint64{uint64(index), 0}
	if _, err := rawPtrace(unix.PTRACE_SECCOMP_GET_METADATA, tid, unsafe.Sizeof(md), uintptr(unsafe.Pointer(&md))); err != nil {
		return nil, 0, errno("ptrace(SECCOMP_GET_METADATA)", err)
	}
	return prog, md[1], nil
}

// seccompGetFilter copies filter index of tid into buf (when it is not
// nil) and returns its number of instructions.
func seccompGetFilter(tid, index int, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	return rawPtrace(unix.PTRACE_SECCOMP_GET_FILTER, tid, uintptr(index), p)
}

// rawPtrace is ptrace returning what the call returned.
func rawPtrace(req int, tid int, addr, data uintptr) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}
