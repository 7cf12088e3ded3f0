package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func getRegset(tid int, nt uintptr, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	err := ptrace(unix.PTRACE_GETREGSET, tid, nt, uintptr(unsafe.Pointer(&iov)))
	return int(iov.Len), err
}

func setRegset(tid int, nt uintptr, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	return ptrace(unix.PTRACE_SETREGSET, tid, nt, uintptr(unsafe.Pointer(&iov)))
}

func ptraceSigmask(req int, tid int, m *uint64) error {
	return ptrace(req, tid, 8, uintptr(unsafe.Pointer(m)))
}

type peekSiginfoArgs struct {
	off   uint64
	flags uint32
	nr    int32
}

func peekSiginfo(tid int, off uint64, shared bool) ([][]byte, error) {
	const batch = 32
	var buf [batch * 128]byte
	args := peekSiginfoArgs{off: off, nr: batch}
	if shared {
		args.flags = unix.PTRACE_PEEKSIGINFO_SHARED
	}
	n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
		uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
	if e != 0 {
		return nil, e
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = append([]byte(nil), buf[i*128:(i+1)*128]...)
	}
	return out, nil
}

type rseqConf struct {
	addr  uint64
	size  uint32
	sig   uint32
	flags uint32
	_     uint32
}

func getRseq(tid int) (Rseq, error) {
	var c rseqConf
	err := ptrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)))
	return Rseq{Addr: c.addr, Size: c.size, Sig: c.sig, Flags: c.flags}, err
}

// GetRobustList returns the head and length of tid's robust futex list.
func GetRobustList(tid int) (head, length uint64, err error) {
	var h uintptr
	var l uintptr
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, 0, errno("get_robust_list", e)
	}
	return uint64(h), uint64(l), nil
}
