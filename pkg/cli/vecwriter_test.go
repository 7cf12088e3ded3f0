package cli

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
)

// TestVecWriterPipe writes small and large pieces through a pipe whose
// reader is slow, so that writev comes back short, and checks the bytes.
func TestVecWriterPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var want bytes.Buffer
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 3000)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	v := newVecWriter(w)
	for i := range 200 {
		size := rng.IntN(100)
		if i%3 == 0 {
			size = bigWrite + rng.IntN(300<<10)
		}
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		want.Write(p)
		if n, err := v.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written", len(b), want.Len())
	}
}

// TestVecWriterClosedPipe: a write to a pipe nobody reads is EPIPE, an
// error, not a death by SIGPIPE.
func TestVecWriterClosedPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	v := newVecWriter(w)
	if _, err := v.Write(make([]byte, bigWrite)); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to a closed pipe = %v; want EPIPE", err)
	}
	if _, err := v.Write([]byte("x")); err != nil {
		t.Fatalf("a small write is buffered: %v", err)
	}
	if err := v.Flush(); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Flush to a closed pipe = %v; want EPIPE", err)
	}
	var _ io.Writer = v
}
