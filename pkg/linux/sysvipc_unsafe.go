package linux

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Semget is semget(2).
func Semget(key int32, nsems, flag int) (int, error) {
	id, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flag))
	if e != 0 {
		return -1, os.NewSyscallError("semget", e)
	}
	return int(id), nil
}

// Semctl is semctl(2) with a pointer argument (a semid64_ds, an array
// of values) in buf, or none.
func Semctl(id, num, cmd int, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), p, 0, 0)
	if e != 0 {
		return -1, os.NewSyscallError("semctl", e)
	}
	return int(r), nil
}

// Msgget is msgget(2).
func Msgget(key int32, flag int) (int, error) {
	id, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flag), 0)
	if e != 0 {
		return -1, os.NewSyscallError("msgget", e)
	}
	return int(id), nil
}

// Msgctl is msgctl(2) with a msqid64_ds in buf, or none.
func Msgctl(id, cmd int, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	r, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), p)
	if e != 0 {
		return -1, os.NewSyscallError("msgctl", e)
	}
	return int(r), nil
}

// MsgCopy reads message number n (from 0) of a queue without taking it
// (MSG_COPY), into buf (8 bytes of type, then at most len(buf)-8 of
// text), and returns its type and text, a slice of buf.
func MsgCopy(id, n int, buf []byte) (int64, []byte, error) {
	r, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8), uintptr(n),
		unix.IPC_NOWAIT|MSG_COPY, 0)
	if e != 0 {
		return 0, nil, os.NewSyscallError("msgrcv(MSG_COPY)", e)
	}
	return int64(binary.LittleEndian.Uint64(buf)), buf[8 : 8+r], nil
}
