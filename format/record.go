package format

import (
	"encoding/binary"
	"fmt"

	"procs/format/internal/crc32c"
)

// MemoryRecord checks b, one whole PAGES or PASS record (header and
// payload) read out of its image by itself (a lazy restore asks a server
// for the record that holds a page), and returns its task, address and
// memory. The record must be of type t, uncompressed, with both
// checksums right. It does not stand for the image, which its reader
// checks whole as it streams.
func MemoryRecord(b []byte, t RecordType) (task uint32, addr uint64, data []byte, err error) {
	if len(b) < 20+pagesPrefix {
		return 0, 0, nil, fmt.Errorf("a record of %d bytes: too short", len(b))
	}
	h := b[:20]
	if crc32c.Checksum(h[:16]) != binary.LittleEndian.Uint32(h[16:]) {
		return 0, 0, nil, fmt.Errorf("record header checksum mismatch")
	}
	typ, flags := RecordType(binary.LittleEndian.Uint16(h)), binary.LittleEndian.Uint16(h[2:])
	stored, raw := binary.LittleEndian.Uint32(h[4:]), binary.LittleEndian.Uint32(h[8:])
	switch {
	case typ != t:
		return 0, 0, nil, fmt.Errorf("a %v record where a %v record was wanted", typ, t)
	case flags != 0 || stored != raw:
		return 0, 0, nil, fmt.Errorf("a compressed %v record", typ)
	case int(stored) != len(b)-20:
		return 0, 0, nil, fmt.Errorf("a %v record of %d payload bytes in %d", typ, stored, len(b)-20)
	case (stored-pagesPrefix)%PageSize != 0 || stored == pagesPrefix:
		return 0, 0, nil, fmt.Errorf("a %v record of %d bytes of memory", typ, stored-pagesPrefix)
	}
	p := b[20:]
	if crc32c.Checksum(p) != binary.LittleEndian.Uint32(h[12:]) {
		return 0, 0, nil, fmt.Errorf("%v record payload checksum mismatch", typ)
	}
	if binary.LittleEndian.Uint32(p[4:]) != 0 {
		return 0, 0, nil, fmt.Errorf("%v record with its reserved field set", typ)
	}
	addr = binary.LittleEndian.Uint64(p[8:])
	if addr%PageSize != 0 || addr+uint64(len(p)-pagesPrefix) < addr {
		return 0, 0, nil, fmt.Errorf("%v record at address %#x", typ, addr)
	}
	return binary.LittleEndian.Uint32(p), addr, p[pagesPrefix:], nil
}
