package uffd

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// TestPager serves this process's own memory: a page the image holds,
// a hole, and a page waited for until it comes.
func TestPager(t *testing.T) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v", errno)
	}
	u, err := Take(int(fd), Features)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(-1, 0, 3*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	base := addrOf(mem)
	if err := u.Register(base, 3*pageSize, linux.UFFDIO_REGISTER_MODE_MISSING); err != nil {
		t.Fatal(err)
	}
	p := NewPager(u)
	page := func(v byte) []byte {
		b := make([]byte, pageSize)
		for i := range b {
			b[i] = v
		}
		return b
	}
	if err := p.Fill(base, page(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Advance(base + 2*pageSize); err != nil { // page 1: a hole
		t.Fatal(err)
	}
	// Missing pages are read by the kernel, in write(2): a goroutine in a
	// system call holds up no other (a Go read of a missing page would
	// hold up the runtime's stops).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	read := func(off int) byte {
		b := make([]byte, 1)
		if _, err := unix.Write(int(w.Fd()), mem[off:off+1]); err != nil {
			t.Error(err)
		}
		r.Read(b)
		return b[0]
	}
	if mem[0] != 1 || read(pageSize+7) != 0 {
		t.Errorf("pages 0, 1 = %d, %d; want 1 (filled), 0 (a hole)", mem[0], mem[pageSize+7])
	}
	got := make(chan byte)
	go func() { got <- read(2*pageSize + 9) }() // waits for page 2
	select {
	case v := <-got:
		t.Fatalf("page 2 read %d before it came", v)
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.Fill(base+2*pageSize, page(3)); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != 3 {
			t.Errorf("page 2 = %d; want 3", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the thread waiting for page 2 was not woken")
	}
	if err := p.Done(); err != nil {
		t.Errorf("Done() = %v", err)
	}
}
