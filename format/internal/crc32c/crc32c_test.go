package crc32c

import (
	"hash/crc32"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestUpdate compares Update with hash/crc32 at every length up to 5 KiB
// and at some large ones, from several states and alignments.
func TestUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20+512)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	lengths := []int{1 << 20, 1<<20 - 256, 1<<20 + 255, 65536, 4096 * 3}
	for n := 0; n <= 5120; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		for _, off := range []int{0, 1, 7, 64, 255} {
			p := buf[off : off+n]
			for _, crc := range []uint32{0, 0xffffffff, rng.Uint32()} {
				if got, want := Update(crc, p), crc32.Update(crc, table, p); got != want {
					t.Fatalf("Update(%#x, %d bytes at %d) = %#x, want %#x (fold: %v)", crc, n, off, got, want, haveFold)
				}
			}
		}
	}
	if !haveFold {
		t.Log("no AVX-512 carry-less multiplication here: only hash/crc32 was compared")
	}
}

// TestZeros checks inputs that are all zeros or all ones, where a wrong
// constant may cancel out.
func TestZeros(t *testing.T) {
	for _, v := range []byte{0, 0xff} {
		p := make([]byte, 8192)
		for i := range p {
			p[i] = v
		}
		if got, want := Checksum(p), crc32.Checksum(p, table); got != want {
			t.Fatalf("Checksum of 8192 bytes of %#x = %#x, want %#x", v, got, want)
		}
	}
}

// TestConstants computes the folding constants of fold_amd64.s again.
func TestConstants(t *testing.T) {
	const p = 0x1EDC6F41
	xnmod := func(n int) uint32 {
		r := uint32(1)
		for range n {
			top := r & 0x80000000
			r <<= 1
			if top != 0 {
				r ^= p
			}
		}
		return r
	}
	k := func(n int) uint64 { return uint64(bits.Reverse32(xnmod(n))) << 1 }
	for _, c := range []struct {
		bits   int
		lo, hi uint64
	}{{2048, 0xdcb17aa4, 0xb9e02b86}, {512, 0x740eef02, 0x9e4addf8}, {128, 0xf20c0dfe, 0x14cd00bd6}} {
		if k(c.bits+32) != c.lo || k(c.bits-32) != c.hi {
			t.Errorf("fold over %d bits: constants %#x, %#x; want %#x, %#x", c.bits, c.lo, c.hi, k(c.bits+32), k(c.bits-32))
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Update(0, p)
	}
}

func BenchmarkStdlib(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		crc32.Update(0, table, p)
	}
}
