package ptrace

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ReadMem reads len(buf) bytes of pid's memory at addr.
func ReadMem(pid int, addr uint64, buf []byte) error {
	for done := 0; done < len(buf); {
		n, err := readv(pid, addr+uint64(done), buf[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("process_vm_readv", err)
		}
		if n == 0 {
			return fmt.Errorf("process_vm_readv: short read at %#x", addr+uint64(done))
		}
		done += n
	}
	return nil
}

// WriteMem writes buf into pid's memory at addr. The pages must be
// writable; use PokeMem for others.
func WriteMem(pid int, addr uint64, buf []byte) error {
	for done := 0; done < len(buf); {
		n, err := writev(pid, addr+uint64(done), buf[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("process_vm_writev", err)
		}
		if n == 0 {
			return fmt.Errorf("process_vm_writev: short write at %#x", addr+uint64(done))
		}
		done += n
	}
	return nil
}

// PokeMem writes buf at addr through /proc/PID/mem, which works on pages
// of any protection.
func PokeMem(pid int, addr uint64, buf []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(buf, int64(addr))
	return err
}
