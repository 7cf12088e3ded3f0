#include "textflag.h"

// Folding constants for CRC-32C, bit-reflected, in the layout of the
// Linux kernel's crc32-pclmul (and hash/crc32's ieeeCLMUL): for a fold
// over d bits, the low quadword of each 128-bit lane is multiplied by
// reflect32(x^(d+32) mod P) << 1 and the high one by
// reflect32(x^(d-32) mod P) << 1, P = 0x1EDC6F41. TestConstants computes
// them again.
DATA k2048<>+0(SB)/8, $0xdcb17aa4
DATA k2048<>+8(SB)/8, $0xb9e02b86
GLOBL k2048<>(SB), RODATA|NOPTR, $16
DATA k512<>+0(SB)/8, $0x740eef02
DATA k512<>+8(SB)/8, $0x9e4addf8
GLOBL k512<>(SB), RODATA|NOPTR, $16
DATA k128<>+0(SB)/8, $0xf20c0dfe
DATA k128<>+8(SB)/8, $0x14cd00bd6
GLOBL k128<>(SB), RODATA|NOPTR, $16

// func fold(crc uint32, p []byte) uint32
TEXT ·fold(SB), NOSPLIT, $0-36
	MOVL crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX

	// Four accumulators of 64 bytes; the state goes into the first
	// four bytes.
	VMOVDQU64 (SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VMOVD     AX, X4
	VPXORQ    Z4, Z0, Z0
	ADDQ      $256, SI
	SUBQ      $256, CX
	JZ        reduce

	VBROADCASTI32X4 k2048<>(SB), Z8

loop:
	VPCLMULQDQ $0x00, Z8, Z0, Z4
	VPCLMULQDQ $0x11, Z8, Z0, Z0
	VPTERNLOGD $0x96, (SI), Z4, Z0
	VPCLMULQDQ $0x00, Z8, Z1, Z5
	VPCLMULQDQ $0x11, Z8, Z1, Z1
	VPTERNLOGD $0x96, 64(SI), Z5, Z1
	VPCLMULQDQ $0x00, Z8, Z2, Z6
	VPCLMULQDQ $0x11, Z8, Z2, Z2
	VPTERNLOGD $0x96, 128(SI), Z6, Z2
	VPCLMULQDQ $0x00, Z8, Z3, Z7
	VPCLMULQDQ $0x11, Z8, Z3, Z3
	VPTERNLOGD $0x96, 192(SI), Z7, Z3
	ADDQ       $256, SI
	SUBQ       $256, CX
	JNZ        loop

reduce:
	// Each accumulator into the next, 64 bytes on.
	VBROADCASTI32X4 k512<>(SB), Z8
	VPCLMULQDQ      $0x00, Z8, Z0, Z4
	VPCLMULQDQ      $0x11, Z8, Z0, Z0
	VPTERNLOGD      $0x96, Z4, Z0, Z1
	VPCLMULQDQ      $0x00, Z8, Z1, Z4
	VPCLMULQDQ      $0x11, Z8, Z1, Z1
	VPTERNLOGD      $0x96, Z4, Z1, Z2
	VPCLMULQDQ      $0x00, Z8, Z2, Z4
	VPCLMULQDQ      $0x11, Z8, Z2, Z2
	VPTERNLOGD      $0x96, Z4, Z2, Z3

	// The four lanes of Z3 into its last, 16 bytes on each.
	VEXTRACTI32X4 $1, Z3, X1
	VEXTRACTI32X4 $2, Z3, X2
	VEXTRACTI32X4 $3, Z3, X5
	VMOVDQU       k128<>(SB), X8
	VPCLMULQDQ    $0x00, X8, X3, X4
	VPCLMULQDQ    $0x11, X8, X3, X3
	VPXOR         X4, X3, X3
	VPXOR         X3, X1, X1
	VPCLMULQDQ    $0x00, X8, X1, X4
	VPCLMULQDQ    $0x11, X8, X1, X1
	VPXOR         X4, X1, X1
	VPXOR         X1, X2, X2
	VPCLMULQDQ    $0x00, X8, X2, X4
	VPCLMULQDQ    $0x11, X8, X2, X2
	VPXOR         X4, X2, X2
	VPXOR         X2, X5, X5

	// What is left are 16 bytes with the same CRC from state 0.
	VMOVQ   X5, AX
	VPEXTRQ $1, X5, BX
	VZEROUPPER
	XORL    DX, DX
	CRC32Q  AX, DX
	CRC32Q  BX, DX
	MOVL    DX, ret+32(FP)
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
