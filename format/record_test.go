package format

import (
	"encoding/binary"
	"strings"
	"testing"

	"procs/format/internal/crc32c"
)

// memoryRecord builds a whole record of type t holding data at addr.
func memoryRecord(t RecordType, task uint32, addr uint64, data []byte) []byte {
	p := binary.LittleEndian.AppendUint32(nil, task)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint64(p, addr)
	p = append(p, data...)
	h := binary.LittleEndian.AppendUint16(nil, uint16(t))
	h = binary.LittleEndian.AppendUint16(h, 0)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(p)))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(p)))
	h = binary.LittleEndian.AppendUint32(h, crc32c.Checksum(p))
	h = binary.LittleEndian.AppendUint32(h, crc32c.Checksum(h))
	return append(h, p...)
}

func TestMemoryRecord(t *testing.T) {
	data := make([]byte, 2*PageSize)
	data[5] = 7
	good := memoryRecord(TypePass, 0, 0x7000, data)
	task, addr, got, err := MemoryRecord(good, TypePass)
	if err != nil || task != 0 || addr != 0x7000 || len(got) != len(data) || got[5] != 7 {
		t.Fatalf("MemoryRecord(good) = %d, %#x, %d bytes, %v; want 0, 0x7000, %d bytes", task, addr, len(got), err, len(data))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		t    RecordType
		want string
	}{
		{"payload", func() []byte { b := append([]byte(nil), good...); b[40] ^= 1; return b }(), TypePass, "payload checksum"},
		{"header", func() []byte { b := append([]byte(nil), good...); b[4] ^= 1; return b }(), TypePass, "header checksum"},
		{"type", good, TypePages, "was wanted"},
		{"short", good[:len(good)-1], TypePass, "payload bytes"},
		{"unaligned", memoryRecord(TypePages, 0, 0x7001, data), TypePages, "address"},
		{"partial page", memoryRecord(TypePages, 0, 0x7000, data[:100]), TypePages, "bytes of memory"},
	} {
		if _, _, _, err := MemoryRecord(tc.b, tc.t); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MemoryRecord(%s) = %v; want an error with %q", tc.name, err, tc.want)
		}
	}
}
