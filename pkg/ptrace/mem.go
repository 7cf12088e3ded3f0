package ptrace

import (
	"fmt"
	"os"
	"sync"

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

// ProcMem is /proc/PID/mem, opened on first use, for memory that
// process_vm_readv and process_vm_writev cannot reach: a read of pages
// without PROT_READ, a write into pages without PROT_WRITE (as a debugger
// writes). Its methods may be called from several goroutines at once.
type ProcMem struct {
	PID   int
	Write bool // open for writing, else for reading

	once sync.Once
	f    *os.File
	err  error
}

func (m *ProcMem) open() error {
	m.once.Do(func() {
		flag := os.O_RDONLY
		if m.Write {
			flag = os.O_WRONLY
		}
		m.f, m.err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", m.PID), flag, 0)
	})
	return m.err
}

// ReadAt reads len(buf) bytes at addr.
func (m *ProcMem) ReadAt(buf []byte, addr uint64) error {
	if err := m.open(); err != nil {
		return err
	}
	_, err := m.f.ReadAt(buf, int64(addr))
	return err
}

// WriteAt writes data at addr.
func (m *ProcMem) WriteAt(data []byte, addr uint64) error {
	if err := m.open(); err != nil {
		return err
	}
	_, err := m.f.WriteAt(data, int64(addr))
	return err
}

// Close closes the file if it was opened.
func (m *ProcMem) Close() {
	if m.f != nil {
		m.f.Close()
	}
}
