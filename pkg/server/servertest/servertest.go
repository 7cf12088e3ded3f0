// Package servertest holds a stand-in image format for testing procs-serve
// and its clients before, and independently of, the real image codec.
//
// A stand-in image is:
//
//	"PROCSTEST1\n"
//	header: one line of JSON {"comm":..., "pid":..., "host":...}
//	payload length: 8 bytes, big endian
//	payload
//	SHA-256 of everything above: 32 bytes
//	"END\n"
//
// Verify reads exactly that far, so any truncation or flipped byte fails.
package servertest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"procs/pkg/server"
)

const magic = "PROCSTEST1\n"

// maxHeader bounds the JSON header line.
const maxHeader = 4096

// Image returns a stand-in image of the given metadata whose payload is
// size pseudo-random bytes derived from seed.
func Image(m server.Meta, size int, seed byte) []byte {
	var b bytes.Buffer
	Write(&b, m, size, seed)
	return b.Bytes()
}

// Write writes a stand-in image to w without holding it in memory.
func Write(w io.Writer, m server.Meta, size int, seed byte) error {
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	hdr, _ := json.Marshal(struct {
		Comm string `json:"comm"`
		PID  int    `json:"pid"`
		Host string `json:"host"`
	}{m.Comm, m.PID, m.Host})
	bw.WriteString(magic)
	bw.Write(hdr)
	bw.WriteByte('\n')
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	bw.Write(n[:])
	x := uint32(seed) | 1
	for i := 0; i < size; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		bw.WriteByte(byte(x))
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return err
	}
	_, err := io.WriteString(w, "END\n")
	return err
}

// Verify is a server.Verifier for stand-in images. It reads no byte past
// the end of the image.
func Verify(r io.Reader) (server.Meta, error) {
	var m server.Meta
	h := sha256.New()
	tr := io.TeeReader(r, h)
	var off int64
	buf := make([]byte, len(magic))
	if _, err := io.ReadFull(tr, buf); err != nil {
		return m, fmt.Errorf("magic: %w", unexpected(err))
	}
	if string(buf) != magic {
		return m, errors.New("not a stand-in image (bad magic)")
	}
	off += int64(len(magic))
	var line []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(tr, one); err != nil {
			return m, fmt.Errorf("header at byte %d: %w", off, unexpected(err))
		}
		if one[0] == '\n' {
			break
		}
		if len(line) >= maxHeader {
			return m, fmt.Errorf("header at byte %d: too long", off)
		}
		line = append(line, one[0])
	}
	var hdr struct {
		Comm string `json:"comm"`
		PID  int    `json:"pid"`
		Host string `json:"host"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return m, fmt.Errorf("header at byte %d: %v", off, err)
	}
	off += int64(len(line)) + 1
	var n [8]byte
	if _, err := io.ReadFull(tr, n[:]); err != nil {
		return m, fmt.Errorf("length at byte %d: %w", off, unexpected(err))
	}
	off += 8
	size := binary.BigEndian.Uint64(n[:])
	if size > 1<<50 {
		return m, fmt.Errorf("length at byte %d: %d is too large", off-8, size)
	}
	if got, err := io.CopyN(io.Discard, tr, int64(size)); err != nil {
		return m, fmt.Errorf("payload at byte %d: %w", off+got, unexpected(err))
	}
	off += int64(size)
	want := h.Sum(nil)
	sum := make([]byte, sha256.Size+4)
	if _, err := io.ReadFull(r, sum); err != nil {
		return m, fmt.Errorf("end record at byte %d: %w", off, unexpected(err))
	}
	if !bytes.Equal(sum[:sha256.Size], want) {
		return m, fmt.Errorf("end record at byte %d: checksum mismatch", off)
	}
	if string(sum[sha256.Size:]) != "END\n" {
		return m, fmt.Errorf("end record at byte %d: bad end marker", off+sha256.Size)
	}
	return server.Meta{Comm: hdr.Comm, PID: hdr.PID, Host: hdr.Host}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
