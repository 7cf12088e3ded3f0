package crc32c

// haveFold says whether fold can run here: AVX-512F, VPCLMULQDQ,
// PCLMULQDQ and SSE 4.2, and a kernel that saves the AVX-512 state.
// (Asked of the CPU here rather than through golang.org/x/sys/cpu, whose
// init costs every command ~0.05 ms at start.)
var haveFold = func() bool {
	_, _, ecx1, _ := cpuid(1, 0)
	const pclmulqdq, sse42, osxsave = 1 << 1, 1 << 20, 1 << 27
	if ecx1&(pclmulqdq|sse42|osxsave) != pclmulqdq|sse42|osxsave {
		return false
	}
	// XCR0: SSE, AVX, opmask, upper halves of ZMM0-15, ZMM16-31.
	if eax, _ := xgetbv(); eax&0xe6 != 0xe6 {
		return false
	}
	if max, _, _, _ := cpuid(0, 0); max < 7 {
		return false
	}
	_, ebx7, ecx7, _ := cpuid(7, 0)
	const avx512f, vpclmulqdq = 1 << 16, 1 << 10
	return ebx7&avx512f != 0 && ecx7&vpclmulqdq != 0
}()

// fold returns the CRC-32C state (not inverted) after p from state crc.
// len(p) must be a positive multiple of 256.
//
//go:noescape
func fold(crc uint32, p []byte) uint32

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)
