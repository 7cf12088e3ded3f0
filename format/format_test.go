package format

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

type run struct {
	task uint32
	addr uint64
	data []byte
}

// randomPages returns runs of pages of process task, some compressible,
// one longer than MaxPageRun.
func randomPages(task uint32, seed uint64, big bool) []run {
	rnd := rand.New(rand.NewPCG(seed, 1))
	var runs []run
	addr := uint64(0x10000)
	long := 2*MaxPageRun/PageSize + 5
	if !big {
		long = 40
	}
	for i, n := range []int{1, 3, long, 17} {
		d := make([]byte, n*PageSize)
		if i%2 == 0 {
			for j := range d {
				d[j] = byte(rnd.UintN(256))
			}
		} else {
			copy(d, strings.Repeat("procs ", len(d)/6))
		}
		runs = append(runs, run{task, addr, d})
		addr += uint64(len(d)) + uint64(1+rnd.UintN(4))*PageSize
	}
	return runs
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts WriterOptions
	}{
		{"none", WriterOptions{}},
		{"zstd", WriterOptions{Compression: Zstd}},
		{"zstd-level-19", WriterOptions{Compression: Zstd, Level: 19}},
		{"zstd-concurrent", WriterOptions{Compression: Zstd, Concurrency: 3}},
		{"xz", WriterOptions{Compression: XZ}},
		{"xz-concurrent", WriterOptions{Compression: XZ, Concurrency: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "xz") && testing.Short() {
				t.Skip("xz is slow")
			}
			// Three processes: the first and the last with memory, the
			// last's at addresses below the first's last run.
			runs := append(randomPages(0, 1, tc.opts.Compression != XZ), randomPages(2, 2, false)...)
			var buf bytes.Buffer
			w, err := NewWriter(&buf, testInfo, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			type proc struct{ Name string }
			steps := []error{
				w.WriteJSON(TypeFiles, FileTable{Files: []File{{Kind: FileRegular, Path: "/bin/victim"}}}),
				w.WriteJSON(TypeProcess, proc{"victim"}),
				w.WriteRecord(0x8001, []byte("ancillary")),
				w.WriteJSON(TypeProcess, proc{"child"}),
				w.WriteJSON(TypeProcess, proc{"grandchild"}),
				w.WriteFileData(7, 4096, bytes.Repeat([]byte("f"), MaxFileRun+10)),
				w.WriteFileData(8, 0, nil),
			}
			var total int64
			nrec := 11 // INFO, FILES, 3 PROCESS, 2 ancillary, 3 FILEDATA, END
			for _, r := range runs {
				steps = append(steps, w.WritePages(r.task, r.addr, r.data))
				total += int64(len(r.data))
				nrec += (len(r.data) + MaxPageRun - 1) / MaxPageRun
			}
			steps = append(steps, w.WriteRecord(0x8002, nil), w.Close())
			for i, err := range steps {
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if w.Written() != int64(buf.Len()) {
				t.Errorf("Written() = %d; want %d", w.Written(), buf.Len())
			}
			image := buf.Bytes()

			info, sum, err := Verify(bytes.NewReader(image))
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if !reflect.DeepEqual(info, testInfo) || !info.Created.Equal(testInfo.Created) {
				t.Errorf("Verify() info = %+v; want %+v", info, testInfo)
			}
			want := Summary{Records: nrec, PageBytes: total, Bytes: int64(len(image))}
			if sum != want {
				t.Errorf("Verify() summary = %+v; want %+v", sum, want)
			}

			rd, err := NewReader(iotest.HalfReader(bytes.NewReader(image)))
			if err != nil {
				t.Fatal(err)
			}
			var got []run
			var ps []proc
			var files FileTable
			var file []byte
			pagebuf := make([]byte, MaxPageRun) // smaller than PageBufSize on purpose
			for last := 0; ; {
				h, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next() = %v", err)
				}
				if h.Index <= last {
					t.Errorf("Next() index = %d; want above %d", h.Index, last)
				}
				last = h.Index
				switch h.Type {
				case TypeFiles:
					if err := rd.DecodeJSON(&files); err != nil {
						t.Fatal(err)
					}
				case TypeProcess:
					var p proc
					if err := rd.DecodeJSON(&p); err != nil {
						t.Fatal(err)
					}
					ps = append(ps, p)
				case TypeFileData:
					idx, off, data, err := rd.ReadFileData(make([]byte, MaxFileRun))
					if idx == 8 && len(data) == 0 && err == nil {
						break
					}
					if err != nil || idx != 7 || off != 4096+uint64(len(file)) {
						t.Fatalf("ReadFileData() = %d, %d, %v", idx, off, err)
					}
					file = append(file, data...)
				case TypePages:
					task, addr, data, err := rd.ReadPages(pagebuf)
					if err != nil {
						t.Fatalf("ReadPages() = %v", err)
					}
					if n := len(got); n > 0 && got[n-1].task == task && got[n-1].addr+uint64(len(got[n-1].data)) == addr {
						got[n-1].data = append(got[n-1].data, data...)
					} else {
						got = append(got, run{task, addr, bytes.Clone(data)})
					}
				default:
					t.Errorf("Next() returned type %v", h.Type)
				}
			}
			if want := []proc{{"victim"}, {"child"}, {"grandchild"}}; !reflect.DeepEqual(ps, want) || len(file) != MaxFileRun+10 {
				t.Errorf("PROCESS %+v, %d file bytes; want %+v, %d", ps, len(file), want, MaxFileRun+10)
			}
			if len(files.Files) != 1 || files.Files[0].Path != "/bin/victim" {
				t.Errorf("FILES %+v; want /bin/victim", files)
			}
			if len(got) != len(runs) {
				t.Fatalf("got %d runs; want %d", len(got), len(runs))
			}
			for i := range runs {
				if got[i].task != runs[i].task || got[i].addr != runs[i].addr || !bytes.Equal(got[i].data, runs[i].data) {
					t.Errorf("run %d of process %d at 0x%x (%d bytes) differs from the one written of process %d at 0x%x (%d bytes)",
						i, got[i].task, got[i].addr, len(got[i].data), runs[i].task, runs[i].addr, len(runs[i].data))
				}
			}
			if rd.Offset() != int64(len(image)) {
				t.Errorf("Offset() = %d; want %d", rd.Offset(), len(image))
			}
			if _, err := rd.Next(); err != io.EOF {
				t.Errorf("Next() after END = %v; want EOF", err)
			}
		})
	}
}

func TestWholeStream(t *testing.T) {
	image := writerImage(t, WriterOptions{})
	for name, data := range map[string][]byte{"zstd": zstdAll(t, image), "xz": xzAll(t, image)} {
		_, sum, err := Verify(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil || sum.Bytes != int64(len(image)) {
			t.Errorf("Verify(%s image) = %+v, %v; want %d bytes", name, sum, err, len(image))
		}
	}
}

// writeMeta writes a FILES record and n PROCESS records.
func writeMeta(w *Writer, n int) error {
	if err := w.WriteJSON(TypeFiles, FileTable{Files: []File{}}); err != nil {
		return err
	}
	for i := range n {
		if err := w.WriteRecord(TypeProcess, procJSON(42+i, 1)); err != nil {
			return err
		}
	}
	return nil
}

func TestWriterErrors(t *testing.T) {
	page := make([]byte, PageSize)
	for _, tc := range []struct {
		name  string
		procs int // PROCESS records written first, after FILES
		do    func(w *Writer) error
		want  string // in the error
	}{
		{"unaligned", 1, func(w *Writer) error { return w.WritePages(0, 0x1001, page) }, "not whole pages"},
		{"partial page", 1, func(w *Writer) error { return w.WritePages(0, 0x1000, make([]byte, 100)) }, "not whole pages"},
		{"empty", 1, func(w *Writer) error { return w.WritePages(0, 0x1000, nil) }, "not whole pages"},
		{"beyond the address space", 1, func(w *Writer) error { return w.WritePages(0, 0xfffffffffffff000, make([]byte, 2*PageSize)) }, "beyond the address space"},
		{"overlap", 1, func(w *Writer) error {
			w.WritePages(0, 0x2000, make([]byte, 2*PageSize))
			return w.WritePages(0, 0x3000, page)
		}, "before the end of the previous run"},
		{"pages before PROCESS", 0, func(w *Writer) error { return w.WritePages(0, 0x1000, page) }, "the image has 0 PROCESS records"},
		{"task out of range", 2, func(w *Writer) error { return w.WritePages(2, 0x1000, page) }, "PAGES of process 2: the image has 2 PROCESS records"},
		{"task backwards", 2, func(w *Writer) error {
			if err := w.WritePages(1, 0x1000, page); err != nil {
				return nil
			}
			return w.WritePages(0, 0x2000, page)
		}, "before the end of the previous run (process 1"},
		{"overlap after the task changed", 2, func(w *Writer) error {
			if err := w.WritePages(0, 0x5000, page); err != nil {
				return nil
			}
			if err := w.WritePages(1, 0x1000, page); err != nil { // starts over: fine
				return nil
			}
			return w.WritePages(1, 0x1000, page)
		}, "before the end of the previous run (process 1, 0x2000)"},
		{"too many PROCESS records", MaxProcesses, func(w *Writer) error { return w.WriteRecord(TypeProcess, []byte("{}")) }, "more than 4096 PROCESS records"},
		{"meta after pages", 1, func(w *Writer) error {
			w.WritePages(0, 0x2000, page)
			return w.WriteRecord(TypeProcess, []byte("{}"))
		}, "PROCESS record after PAGES records"},
		{"filedata after pages", 1, func(w *Writer) error {
			w.WritePages(0, 0x2000, page)
			return w.WriteFileData(0, 0, nil)
		}, "FILEDATA record after PAGES records"},
		{"unknown critical", 1, func(w *Writer) error { return w.WriteRecord(0x0555, nil) }, "unknown critical record type 0x0555"},
		{"END", 1, func(w *Writer) error { return w.WriteRecord(TypeEnd, nil) }, "cannot write END"},
		{"PAGES", 1, func(w *Writer) error { return w.WriteRecord(TypePages, make([]byte, pagesPrefix+PageSize)) }, "cannot write PAGES"},
		{"too big", 1, func(w *Writer) error { return w.WriteRecord(TypeProcess, make([]byte, maxCap+1)) }, "exceeds the cap"},
		{"after close", 1, func(w *Writer) error { w.Close(); return w.WriteRecord(TypeProcess, nil) }, "closed"},
	} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testInfo, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := writeMeta(w, tc.procs); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = tc.do(w)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error saying %q", tc.name, err, tc.want)
			continue
		}
		if err2 := w.WritePages(0, 0x7000000, page); err2 != err {
			t.Errorf("%s: WritePages after error %v = %v; want the same error", tc.name, err, err2)
		}
		if tc.name != "after close" {
			if err2 := w.Close(); err2 != err {
				t.Errorf("%s: Close() after error %v = %v; want the same error", tc.name, err, err2)
			}
		}
	}
}

// TestWriterTasks: the Writer takes each process's pages in address
// order, processes in record order, the address starting over with each
// process, and a process with no pages; the Reader returns them so.
func TestWriterTasks(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testInfo, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(w, 4); err != nil {
		t.Fatal(err)
	}
	want := []run{
		{0, 0x7ffff000, bytes.Repeat([]byte{1}, PageSize)},
		{1, 0x1000, bytes.Repeat([]byte{2}, PageSize)},
		{1, 0x2000, bytes.Repeat([]byte{3}, PageSize)}, // right after the previous run
		{3, 0x1000, bytes.Repeat([]byte{4}, 2*PageSize)},
	}
	for _, r := range want {
		if err := w.WritePages(r.task, r.addr, r.data); err != nil {
			t.Fatalf("WritePages(%d, 0x%x) = %v", r.task, r.addr, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var got []run
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Type == TypePages {
			task, addr, data, err := rd.ReadPages(make([]byte, PageBufSize))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, run{task, addr, bytes.Clone(data)})
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %d runs unlike the %d written", len(got), len(want))
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		n := f.n
		f.n = 0
		return n, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterSticky(t *testing.T) {
	fw := &failWriter{n: 500}
	w, err := NewWriter(fw, testInfo, WriterOptions{Compression: Zstd, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(w, 1); err != nil {
		t.Fatal(err)
	}
	var first error
	for i := 0; i < 20 && first == nil; i++ {
		first = w.WritePages(0, uint64(i+1)*0x100000, bytes.Repeat([]byte{byte(i)}, 16*PageSize))
	}
	if err := w.Close(); first == nil && err != nil {
		first = err
	}
	if first == nil || !strings.Contains(first.Error(), "disk full") {
		t.Fatalf("writing to a full disk = %v; want disk full", first)
	}
	if err := w.Close(); err == nil {
		t.Errorf("Close() after failure = nil; want %v", first)
	}
}

// TestTruncation cuts images at every byte: every prefix must fail with a
// FormatError saying truncated (or empty, or corrupt for the compressed
// stream), never succeed and never panic.
func TestTruncation(t *testing.T) {
	small := newBuilder().info().files().process(42, 1).plain(0x8001, []byte("anc")).process(43, 42).
		pages(0x1000, 1).taskPages(1, 0x1000, 1).end().b
	for name, image := range map[string][]byte{
		"plain":      small,
		"zstd pages": writerImage(t, WriterOptions{Compression: Zstd}),
		"whole zstd": zstdAll(t, small),
	} {
		for n := 0; n < len(image); n++ {
			_, _, err := Verify(bytes.NewReader(image[:n]))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%s: Verify(first %d of %d bytes) = %v; want a FormatError", name, n, len(image), err)
			}
			want := Truncated
			if n == 0 {
				want = Empty
			}
			if fe.Kind != want && !(name == "whole zstd" && fe.Kind == Corrupt) {
				t.Fatalf("%s: Verify(first %d of %d bytes) = %v; want kind %d", name, n, len(image), err, want)
			}
			if name == "plain" && n > 0 && fe.Offset != int64(n) {
				t.Fatalf("%s: Verify(first %d bytes) = %v; want offset %d", name, n, err, n)
			}
		}
	}
}

// TestTrailing checks that readers leave the bytes after END unread.
func TestTrailing(t *testing.T) {
	tail := "the restored process reads this"
	for name, image := range map[string][]byte{
		"plain": writerImage(t, WriterOptions{}),
		"zstd":  writerImage(t, WriterOptions{Compression: Zstd}),
	} {
		for how, read := range map[string]func(io.Reader) error{
			"Verify": func(r io.Reader) error { _, _, err := Verify(r); return err },
			"Next": func(r io.Reader) error {
				rd, err := NewReader(r)
				for err == nil {
					_, err = rd.Next()
				}
				if err == io.EOF {
					return nil
				}
				return err
			},
		} {
			r := bytes.NewReader(append(bytes.Clone(image), tail...))
			if err := read(iotest.OneByteReader(r)); err != nil {
				t.Fatalf("%s %s: %v", name, how, err)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tail {
				t.Errorf("%s %s: left %q unread; want %q", name, how, rest, tail)
			}
		}
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		e    FormatError
		want string
	}{
		{FormatError{Kind: Corrupt, Offset: 1234, Record: 5, Type: TypePages, Msg: "payload checksum mismatch"},
			"corrupt image at byte 1234 (record 5, PAGES): payload checksum mismatch"},
		{FormatError{Kind: Truncated, Offset: 99, Record: 3, Type: TypeProcess, Msg: "input ends in a payload"},
			"truncated image at byte 99 (record 3, PROCESS): input ends in a payload"},
		{FormatError{Kind: Unsupported, Offset: 8, Record: -1, Msg: "format version 3.0 (this reader knows 2.x)"},
			"unsupported image at byte 8 (file header): format version 3.0 (this reader knows 2.x)"},
		{FormatError{Kind: NotImage, Record: -1}, "not a procs image (bad magic)"},
		{FormatError{Kind: Empty, Record: -1}, "empty input"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range []Compression{None, Zstd, XZ} {
		if got, err := ParseCompression(c.String()); got != c || err != nil {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	if _, err := ParseCompression("gzip"); err == nil {
		t.Errorf("ParseCompression(gzip) = nil error; want an error")
	}
}

func FuzzReader(f *testing.F) {
	for _, v := range vectors(f) {
		// Not the vectors of the caps on PROCESS records: each run of
		// one reads 64 MiB or thousands of records, and the fuzzer
		// would spend its time there.
		if v.name == "bad-meta-over-cap" || strings.Contains(v.name, "processes-") {
			continue
		}
		f.Add(v.data)
	}
	buf := make([]byte, PageBufSize)
	f.Fuzz(func(t *testing.T, data []byte) {
		Verify(bytes.NewReader(data))
		rd, err := NewReader(bytes.NewReader(data))
		for i := 0; err == nil; i++ {
			var h Header
			h, err = rd.Next()
			if err == nil && i%2 == 0 {
				switch h.Type {
				case TypePages:
					_, _, _, err = rd.ReadPages(buf)
				default:
					_, err = rd.Payload()
				}
			}
		}
	})
}

func BenchmarkWritePages(b *testing.B) {
	for _, c := range []Compression{None, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			data := bytes.Repeat([]byte("some memory 0123456789abcdef"), MaxPageRun/28+1)[:MaxPageRun]
			for i := range data { // half random, so zstd has work
				if i%2 == 0 {
					data[i] = byte(i * 7919 >> 3)
				}
			}
			w, err := NewWriter(io.Discard, testInfo, WriterOptions{Compression: c, Concurrency: 2})
			if err != nil {
				b.Fatal(err)
			}
			if err := writeMeta(w, 1); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(MaxPageRun)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := w.WritePages(0, uint64(i)*MaxPageRun, data); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkReadPages(b *testing.B) {
	for _, c := range []Compression{None, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			const runs = 16
			var img bytes.Buffer
			w, _ := NewWriter(&img, testInfo, WriterOptions{Compression: c})
			writeMeta(w, 2)
			data := bytes.Repeat([]byte("some memory 0123456789abcdef"), MaxPageRun/28+1)[:MaxPageRun]
			for i := 0; i < runs; i++ {
				w.WritePages(uint32(i/(runs/2)), uint64(i%(runs/2))*MaxPageRun, data)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, PageBufSize)
			b.SetBytes(runs * MaxPageRun)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rd, err := NewReader(bytes.NewReader(img.Bytes()))
				if err != nil {
					b.Fatal(err)
				}
				for {
					if h, err := rd.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					} else if h.Type != TypePages {
						continue
					}
					if _, _, _, err := rd.ReadPages(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestPreparePages: runs prepared in goroutines of their own and written
// with WritePageRun make the very bytes WritePages makes, compressed or
// not.
func TestPreparePages(t *testing.T) {
	runs := append(randomPages(0, 7, true), randomPages(1, 8, false)...)
	for _, opts := range []WriterOptions{{}, {Compression: Zstd}} {
		var want, got bytes.Buffer
		ww, err := NewWriter(&want, Info{Comm: "x"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		gw, err := NewWriter(&got, Info{Comm: "x"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeMeta(ww, 2); err != nil {
			t.Fatal(err)
		}
		if err := writeMeta(gw, 2); err != nil {
			t.Fatal(err)
		}
		prepared := make([]chan PageRun, len(runs))
		for i, r := range runs {
			prepared[i] = make(chan PageRun, 1)
			go func() { prepared[i] <- gw.PreparePages(r.task, r.addr, r.data) }()
		}
		for i, r := range runs {
			if err := ww.WritePages(r.task, r.addr, r.data); err != nil {
				t.Fatal(err)
			}
			pr := <-prepared[i]
			if pr.Len() != len(r.data) {
				t.Fatalf("PageRun.Len() = %d; want %d", pr.Len(), len(r.data))
			}
			if err := gw.WritePageRun(pr); err != nil {
				t.Fatal(err)
			}
		}
		if err := ww.Close(); err != nil {
			t.Fatal(err)
		}
		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%v: WritePageRun wrote %d bytes unlike WritePages' %d", opts.Compression, got.Len(), want.Len())
		}
		if _, _, err := Verify(bytes.NewReader(got.Bytes())); err != nil {
			t.Errorf("%v: Verify = %v", opts.Compression, err)
		}
		// A run that is not whole pages is refused when written.
		bad := ww.PreparePages(1, 0x100000, make([]byte, 100))
		if err := gw.WritePageRun(bad); err == nil {
			t.Errorf("WritePageRun of 100 bytes = nil error")
		}
		// So is one prepared for a process the image lacks, or out of
		// order.
		for _, r := range []struct {
			task uint32
			addr uint64
		}{{2, 0x1000}, {0, 0x100000}} {
			w, _ := NewWriter(io.Discard, Info{}, opts)
			writeMeta(w, 2)
			w.WritePages(1, 0, make([]byte, PageSize))
			if err := w.WritePageRun(ww.PreparePages(r.task, r.addr, make([]byte, PageSize))); err == nil {
				t.Errorf("%v: WritePageRun of process %d at 0x%x after process 1's = nil error", opts.Compression, r.task, r.addr)
			}
			w.Close()
		}
	}
}
