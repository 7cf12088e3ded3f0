package format

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// xzDict compresses p with xz and an LZMA2 dictionary of dict bytes (0:
// the default, 8 MiB).
func xzDict(t testing.TB, p []byte, dict int) []byte {
	var buf bytes.Buffer
	w, err := xz.WriterConfig{DictCap: dict}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdWindow compresses p with zstd in a frame that declares a window of
// window bytes, a power of two (the encoder declares a smaller one for a
// small input: the frame header, which has no checksum, is patched).
func zstdWindow(t testing.TB, p []byte, window int) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	b := enc.EncodeAll(p, nil)
	if b[4]&0x20 != 0 {
		t.Fatal("zstd: single segment frame")
	}
	b[5] = byte(bits.Len(uint(window))-1-10) << 3 // Window_Descriptor: exponent, no mantissa
	return b
}

// TestRecordBounds: records beyond the counts and sizes an image may
// hold (a second FILES record, PROCESS records beyond MaxProcesses or
// MaxMeta), and compressed records that ask for more than
// MaxRecordWindow to decompress, are refused at the record, by Verify
// and by the readers a restore uses.
func TestRecordBounds(t *testing.T) {
	proc := []byte(`{"pid":42}`)
	pages := pagesPayload(0, 0x1000, 4, 1)
	many := newBuilder().info().files()
	for range MaxProcesses + 1 {
		many.plain(TypeProcess, []byte("{}"))
	}
	tests := []struct {
		name string
		b    *builder
		want string // in the error
	}{
		{"second FILES", newBuilder().info().files().files(), "second FILES record"},
		{"4097 PROCESS", many, "more than 4096 PROCESS records"},
		{"128 MiB and more of FILES and PROCESS", newBuilder().info().files().rec(TypeProcess, uint16(Zstd), bigMeta(t), maxCap).rec(TypeProcess, uint16(Zstd), bigMeta(t), maxCap),
			"FILES and PROCESS records hold more than 134217728 bytes together"},
		{"xz dictionary of 16 MiB", newBuilder().info().meta().rec(TypePages, uint16(XZ), xzDict(t, pages, 16<<20), len(pages)), "xz dictionary of 16777216 bytes exceeds the limit of 8388608"},
		{"zstd window of 16 MiB", newBuilder().info().meta().rec(TypePages, uint16(Zstd), zstdWindow(t, pages, 16<<20), len(pages)), "window size exceeded"},
		{"xz PROCESS of 16 MiB", newBuilder().info().files().rec(TypeProcess, uint16(XZ), xzDict(t, proc, 16<<20), len(proc)), "exceeds the limit"},
		{"xz FILES of 16 MiB", newBuilder().info().rec(TypeFiles, uint16(XZ), xzDict(t, []byte(`{"files":[]}`), 16<<20), 12), "exceeds the limit"},
	}
	for _, tt := range tests {
		off := int64(tt.b.last())
		img := tt.b.end().b
		_, _, err := Verify(bytes.NewReader(img))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Kind != Corrupt || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Verify = %v; want a corrupt image, %q", tt.name, err, tt.want)
			continue
		}
		if fe.Offset != off && fe.Offset != off+recordHeaderSize {
			t.Errorf("%s: Verify = %v; want the record at %d", tt.name, err, off)
		}
		// As a restore reads: Payload, ReadPages.
		rd, err := NewReader(bytes.NewReader(img))
		for err == nil {
			var h Header
			if h, err = rd.Next(); err != nil {
				break
			}
			if h.Type == TypePages {
				_, _, _, err = rd.ReadPages(make([]byte, PageBufSize))
			} else {
				_, err = rd.Payload()
			}
		}
		if err == io.EOF || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: reading records = %v; want %q", tt.name, err, tt.want)
		}
	}
}

// TestRecordBoundsAccept: the windows the Writer uses pass.
func TestRecordBoundsAccept(t *testing.T) {
	pages := pagesPayload(0, 0x1000, 4, 1)
	img := newBuilder().info().
		rec(TypeFiles, uint16(Zstd), zstdWindow(t, []byte(`{"files":[]}`), MaxRecordWindow), 12).
		rec(TypeProcess, uint16(XZ), xzDict(t, []byte(`{"pid":42}`), MaxRecordWindow), 10).
		rec(TypePages, uint16(Zstd), zstdWindow(t, pages, MaxRecordWindow), len(pages)).end().b
	if _, _, err := Verify(bytes.NewReader(img)); err != nil {
		t.Fatalf("Verify = %v; want success", err)
	}
}

// TestStreamWindow: an image compressed as a whole with a larger window
// than Limits.StreamWindow is refused before it is decompressed.
func TestStreamWindow(t *testing.T) {
	img := newBuilder().info().meta().pages(0x1000, 1).end().b
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"xz", xzDict(t, img, 32<<20)},
		{"zstd", zstdWindow(t, img, 32<<20)},
	} {
		if _, _, err := Verify(bytes.NewReader(c.data)); err != nil {
			t.Errorf("%s: Verify = %v; want success under the default limit", c.name, err)
		}
		_, _, err := VerifyLimits(bytes.NewReader(c.data), Limits{StreamWindow: 8 << 20})
		if err == nil || !strings.Contains(err.Error(), "exceeds") && !strings.Contains(err.Error(), "window size exceeded") {
			t.Errorf("%s: VerifyLimits(8 MiB) = %v; want the window refused", c.name, err)
		}
	}
}

// TestVerifyMemory: Verify holds none of a payload. Records of 64 MiB
// that compress to almost nothing (a decompression bomb) cost it a
// decompressor's window, not their length.
func TestVerifyMemory(t *testing.T) {
	zero := make([]byte, maxCap)
	// The PROCESS record is JSON (a verifier reads its credentials as it
	// streams): one member whose string fills the cap.
	proc := make([]byte, maxCap)
	copy(proc, `{"pad":"`)
	for i := 8; i < maxCap-2; i++ {
		proc[i] = 'a'
	}
	copy(proc[maxCap-2:], `"}`)
	procXZ := xzDict(t, proc, MaxRecordWindow)
	proc = nil
	zeroXZ := xzDict(t, zero, MaxRecordWindow)
	procZstd := zstdWindow(t, zero, MaxRecordWindow)
	pages := make([]byte, pagesPrefix+MaxPageRun)
	pages[9] = 0x10 // task 0, address 0x1000
	img := newBuilder().info().files().rec(TypeProcess, uint16(XZ), procXZ, maxCap).
		rec(0x8001, uint16(Zstd), procZstd, maxCap).
		rec(TypePages, uint16(XZ), xzDict(t, pages, MaxRecordWindow), len(pages)).
		rec(0x8002, uint16(XZ), zeroXZ, maxCap).end().b
	zero = nil
	t.Logf("%d bytes hold %d MiB of records", len(img), 3*maxCap>>20+MaxPageRun>>20)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := Verify(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Per xz record: its dictionary (8 MiB) and the decoder's tables;
	// per zstd record: at most the window.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*(MaxRecordWindow+2<<20)); got > limit {
		t.Errorf("Verify allocated %d MiB for the bomb; want at most %d MiB", got>>20, limit>>20)
	}
}
