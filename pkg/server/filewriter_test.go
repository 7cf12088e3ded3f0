package server

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFileWriter(t *testing.T) {
	data := make([]byte, 3*writeBufSize+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	for _, tc := range []struct {
		name   string
		size   int
		direct bool
	}{
		{"empty", 0, true},
		{"short", 100, true},
		{"one block", directAlign, true},
		{"pieces and a tail", len(data), true},
		{"buffered", len(data), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "img")
			flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			direct := tc.direct
			f, err := os.OpenFile(name, flag|syscall.O_DIRECT, 0o600)
			if err != nil || !direct {
				// No O_DIRECT on this file system, or not wanted.
				os.Remove(name)
				direct = false
				if f, err = os.OpenFile(name, flag, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			defer f.Close()
			w := newFileWriter(f, direct)
			// Pieces of awkward sizes, as an upload arrives.
			for p := data[:tc.size]; len(p) > 0; {
				n := min(len(p), 70001)
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatalf("Write() = %v", err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v; want nil", err)
			}
			got, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[:tc.size]) {
				t.Errorf("file of %d bytes (direct %v); want the %d bytes written", len(got), direct, tc.size)
			}
		})
	}
}
