package directio

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriter(t *testing.T) {
	data := make([]byte, 3*pieceSize+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	for _, tc := range []struct {
		name   string
		base   int // bytes already in the file
		size   int
		direct bool
	}{
		{"empty", 0, 0, true},
		{"short", 0, 100, true},
		{"one block", 0, Align, true},
		{"pieces and a tail", 0, len(data), true},
		{"after a block", Align, len(data), true},
		{"more pieces than buffers", 0, 0, true},
		{"buffered", 0, len(data), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := data[:tc.size]
			if tc.name == "more pieces than buffers" {
				want = bytes.Repeat(data[:pieceSize], pieces*2+1)
			}
			name := filepath.Join(t.TempDir(), "img")
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head := bytes.Repeat([]byte("h"), tc.base)
			if _, err := f.Write(head); err != nil {
				t.Fatal(err)
			}
			direct := tc.direct && SetDirect(f, true) == nil
			w := NewWriter(f, direct, int64(tc.base))
			// Pieces of awkward sizes, as an upload arrives.
			for p := want; len(p) > 0; {
				n := min(len(p), 70001)
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatalf("Write() = %v", err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v; want nil", err)
			}
			if err := SetDirect(f, false); err != nil {
				t.Fatal(err)
			}
			// The next write lands right after the data.
			if _, err := f.Write([]byte("after")); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			whole := append(append(head, want...), "after"...)
			if !bytes.Equal(got, whole) {
				t.Errorf("file of %d bytes (direct %v); want the %d bytes written", len(got), direct, len(whole))
			}
		})
	}
}

// TestWriterError: a write error is returned by Write or Close, and by
// every call after.
func TestWriterError(t *testing.T) {
	r, wf, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer wf.Close()
	w := NewWriter(wf, false, 0)
	var werr error
	for range 2 * pieces {
		if _, werr = w.Write(make([]byte, pieceSize)); werr != nil {
			break
		}
	}
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("writing to a closed pipe gave no error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after an error = nil error")
	}
	var _ io.WriteCloser = w
}
