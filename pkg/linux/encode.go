package linux

import "encoding/binary"

// encode returns v (a pointer to a struct of fixed-size fields) in the
// kernel's layout: little-endian, blank fields as zero bytes.
func encode(v any) []byte {
	b, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		panic("linux: " + err.Error())
	}
	return b
}

// decode fills v from the kernel's layout in b.
func decode(b []byte, v any) {
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		panic("linux: " + err.Error())
	}
}
