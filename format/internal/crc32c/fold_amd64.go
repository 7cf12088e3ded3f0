package crc32c

import "golang.org/x/sys/cpu"

// haveFold says whether fold can run here (cpu checks that the kernel
// saves the AVX-512 state too).
var haveFold = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPCLMULQDQ &&
	cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE42

// fold returns the CRC-32C state (not inverted) after p from state crc.
// len(p) must be a positive multiple of 256.
//
//go:noescape
func fold(crc uint32, p []byte) uint32
