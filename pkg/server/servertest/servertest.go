// Package servertest makes small, valid procs images for tests of
// procs-serve and its clients that only move bytes around: an INFO record
// with the given metadata, pseudo-random memory pages and the END record,
// written with package format. They pass format.Verify, not a restore.
package servertest

import (
	"bytes"
	"io"
	"os"

	"procs/format"
	"procs/pkg/server"
)

// Image returns an image of the given metadata holding size bytes of
// pseudo-random memory derived from seed, rounded up to whole pages.
func Image(m server.Meta, size int, seed byte) []byte {
	var b bytes.Buffer
	if err := Write(&b, m, size, seed); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// Write writes an image as Image does, without holding it in memory.
func Write(w io.Writer, m server.Meta, size int, seed byte) error {
	iw, err := format.NewWriter(w, format.Info{Comm: m.Comm, PID: m.PID, Host: m.Host, Threads: 1}, format.WriterOptions{})
	if err != nil {
		return err
	}
	// One process, of the writer's own credentials, whose memory the
	// pages are.
	if err := iw.WriteJSON(format.TypeFiles, &format.FileTable{Files: []format.File{}}); err != nil {
		return err
	}
	u, g := os.Geteuid(), os.Getegid()
	p := format.Process{PID: m.PID, Comm: m.Comm, Creds: format.Creds{UID: [4]int{u, u, u, u}, GID: [4]int{g, g, g, g}}}
	if err := iw.WriteJSON(format.TypeProcess, &p); err != nil {
		return err
	}
	const run = 64 * format.PageSize
	buf := make([]byte, run)
	x := uint32(seed) | 1
	addr := uint64(0x400000)
	for left := size; left > 0; left -= run {
		n := (min(left, run) + format.PageSize - 1) / format.PageSize * format.PageSize
		for i := range buf[:n] {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			buf[i] = byte(x)
		}
		if err := iw.WritePages(0, addr, buf[:n]); err != nil {
			iw.Close()
			return err
		}
		addr += uint64(n)
	}
	return iw.Close()
}
