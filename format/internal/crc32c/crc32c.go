// Package crc32c computes CRC-32C (Castagnoli), the checksum of the image
// format, with the same results as hash/crc32 and its Castagnoli table.
//
// On x86-64 CPUs with AVX-512 and its carry-less multiplication
// (VPCLMULQDQ) it folds long inputs 256 bytes at a time in four
// independent lanes of 64 bytes, and ends with the SSE 4.2 CRC32
// instruction: about 2.5x the speed of hash/crc32 here (~50 GB/s against
// ~20). Checksums are a fifth of the work of a dump, and most of what
// a load does besides copying.
package crc32c

import "hash/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// foldMin is the shortest input worth the vector setup.
const foldMin = 1024

// Update returns crc updated with the bytes of p, as
// crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), p) does.
func Update(crc uint32, p []byte) uint32 {
	if haveFold && len(p) >= foldMin {
		n := len(p) &^ 255
		crc = ^fold(^crc, p[:n])
		p = p[n:]
	}
	return crc32.Update(crc, table, p)
}

// Checksum returns the CRC-32C of p.
func Checksum(p []byte) uint32 { return Update(0, p) }
