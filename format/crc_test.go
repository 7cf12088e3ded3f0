package format

import "hash/crc32"

func crc32UpdateTable(c uint32, p []byte) uint32 { return crc32.Update(c, castagnoli, p) }
