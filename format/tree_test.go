package format

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// readAll reads an image as a restore does: every record, FILES and
// PROCESS decoded, PAGES and FILEDATA read into a buffer.
func readAll(data []byte) error {
	rd, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	buf := make([]byte, PageBufSize)
	for {
		h, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch h.Type {
		case TypeFiles:
			var ft FileTable
			err = rd.DecodeJSON(&ft)
		case TypeProcess:
			var p Process
			err = rd.DecodeJSON(&p)
		case TypePages:
			_, _, _, err = rd.ReadPages(buf)
		case TypeFileData:
			_, _, _, err = rd.ReadFileData(buf)
		}
		if err != nil {
			return err
		}
	}
}

// TestTreeRules: the rules of version 2.0 on FILES, PROCESS and PAGES
// records, each broken once, are refused with a message that says which,
// at the record that breaks it, by Verify and by a restore's reading.
func TestTreeRules(t *testing.T) {
	two := func() *builder { return newBuilder().info().files().process(42, 1).process(43, 42) }
	reserved := pagesPayload(0, 0x1000, 1, 0)
	reserved[7] = 0x80
	for _, tc := range []struct {
		name    string
		b       *builder
		payload bool // the fault is in the payload, not the record header
		want    string
	}{
		{"no FILES", newBuilder().info().process(42, 1), false, "PROCESS record before the FILES record"},
		{"PROCESS before FILES", newBuilder().info().process(42, 1), false, "PROCESS record before the FILES record"},
		{"FILES twice", newBuilder().info().files().files(), false, "second FILES record"},
		{"FILES after PROCESS", newBuilder().info().meta().files(), false, "second FILES record"},
		{"PAGES before FILES", newBuilder().info().pages(0x1000, 1), false, "PAGES record before any PROCESS record"},
		{"PAGES before PROCESS", newBuilder().info().files().pages(0x1000, 1), false, "PAGES record before any PROCESS record"},
		{"PROCESS after PAGES", newBuilder().info().meta().pages(0x1000, 1).process(43, 42), false, "PROCESS record after PAGES records"},
		{"FILES after PAGES", newBuilder().info().meta().pages(0x1000, 1).files(), false, "second FILES record"},
		{"task out of range", two().taskPages(2, 0x1000, 1), true, "PAGES of process 2; the image has 2"},
		{"task far out of range", two().taskPages(0xffffffff, 0x1000, 1), true, "PAGES of process 4294967295; the image has 2"},
		{"task backwards", two().taskPages(1, 0x1000, 1).taskPages(0, 0x2000, 1), true, "PAGES of process 0 after those of process 1"},
		{"reserved", two().plain(TypePages, reserved), true, "PAGES reserved field is not zero"},
		{"order within a task", two().taskPages(0, 0x3000, 1).taskPages(0, 0x2000, 1), true, "PAGES at 0x2000 below the end of the previous PAGES at 0x4000"},
		{"order after the task changed", two().taskPages(0, 0x9000, 1).taskPages(1, 0x3000, 2).taskPages(1, 0x4000, 1), true,
			"PAGES at 0x4000 below the end of the previous PAGES at 0x5000"},
	} {
		off := int64(tc.b.last())
		if tc.payload {
			off += recordHeaderSize
		}
		if tc.name == "PROCESS before FILES" {
			tc.b.files().process(43, 42)
		}
		img := tc.b.end().b
		for how, read := range map[string]func([]byte) error{
			"Verify":  func(d []byte) error { _, _, err := Verify(bytes.NewReader(d)); return err },
			"readAll": readAll,
		} {
			err := read(img)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Kind != Corrupt || fe.Offset != off || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %s = %v; want a corrupt image at byte %d, %q", tc.name, how, err, off, tc.want)
			}
		}
	}
}

// TestTreeAccept: what the rules allow. PAGES of a process start over at
// any address; processes without memory are skipped; PROCESS records
// need not follow FILES at once (a restorer may ask more: see SPEC.md);
// the cap of PROCESS records is reached, not passed.
func TestTreeAccept(t *testing.T) {
	cap := newBuilder().info().files()
	for range MaxProcesses {
		cap.plain(TypeProcess, []byte("{}"))
	}
	for _, tc := range []struct {
		name string
		b    *builder
	}{
		{"reset", newBuilder().info().files().process(42, 1).process(43, 42).
			taskPages(0, 0x7ffff000, 1).taskPages(1, 0x1000, 1).taskPages(1, 0x2000, 1)},
		{"gap", newBuilder().info().files().process(42, 1).process(43, 42).process(44, 43).
			taskPages(0, 0x1000, 1).taskPages(2, 0x1000, 1)},
		{"only the last", newBuilder().info().files().process(42, 1).process(43, 42).taskPages(1, 0x1000, 1)},
		{"ancillary and FILEDATA between", newBuilder().info().files().plain(0x8001, nil).process(42, 1).
			plain(TypeFileData, fileData(0, 0, "x")).process(43, 42).taskPages(1, 0x1000, 1)},
		{"files only", newBuilder().info().files()},
		{"4096 PROCESS", cap},
	} {
		img := tc.b.end().b
		if _, _, err := Verify(bytes.NewReader(img)); err != nil {
			t.Errorf("%s: Verify = %v", tc.name, err)
		}
		if err := readAll(img); err != nil {
			t.Errorf("%s: reading = %v", tc.name, err)
		}
	}
}

// TestVersion1: a 1.x image is refused at its version, with a message
// that names it and says what to do; an image of a later major version
// too.
func TestVersion1(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint16
		want         []string
	}{
		{1, 0, []string{"format version 1.0", "older procs", "2.x"}},
		{1, 3, []string{"format version 1.3"}},
		{3, 0, []string{"format version 3.0 (this reader knows 2.x)"}},
	} {
		img := new(builder).header(tc.major, tc.minor, MachineX8664, pageShift, 0).info().end().b
		_, _, err := Verify(bytes.NewReader(img))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Kind != Unsupported || fe.Offset != 8 {
			t.Errorf("version %d.%d: Verify = %v; want an unsupported image at byte 8", tc.major, tc.minor, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("version %d.%d: Verify = %v; want it to say %q", tc.major, tc.minor, err, w)
			}
		}
	}
}

// TestExactNumbers: 64-bit members above 2^53 (an rlimit of infinity,
// addresses, an eventfd counter) come back exactly from the JSON the
// Writer writes.
func TestExactNumbers(t *testing.T) {
	const big = 1<<64 - 1
	const addr = 0xffffffffff600000 // vsyscall: not a float64
	count := uint64(1<<53 + 1)
	files := FileTable{Files: []File{{Kind: FileEventfd, Path: "anon_inode:[eventfd]", Eventfd: &Eventfd{Count: count}}}}
	proc := Process{PID: 42, Limits: []Rlimit{{Cur: big, Max: big}},
		Maps: []Mapping{{Start: addr, End: addr + PageSize, Kind: MapVsyscall, File: -1}},
		MM:   MM{Auxv: []uint64{33, 0x7fffffffe001, 0, 0}}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testInfo, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(TypeFiles, files); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(TypeProcess, proc); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, lit := range []string{"18446744073709551615", "18446744073699065856", "9007199254740993"} {
		if !bytes.Contains(buf.Bytes(), []byte(lit)) {
			t.Errorf("the image does not hold %s as a decimal number", lit)
		}
	}
	rd, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var ft FileTable
	var p Process
	for _, v := range []any{&ft, &p} {
		if _, err := rd.Next(); err != nil {
			t.Fatal(err)
		}
		if err := rd.DecodeJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	if p.Limits[0].Cur != big || p.Limits[0].Max != big || p.Maps[0].Start != addr || ft.Files[0].Eventfd.Count != count {
		t.Errorf("read back limits %+v, mapping at 0x%x, eventfd count %d; want %d, 0x%x, %d",
			p.Limits[0], p.Maps[0].Start, ft.Files[0].Eventfd.Count, uint64(big), uint64(addr), count)
	}
}

// TestInfoTree: INFO's processes and requires members travel; requires
// is left out when empty (version 2.0 defines no feature).
func TestInfoTree(t *testing.T) {
	info := testInfo
	info.Processes, info.Threads = 3, 7
	var buf bytes.Buffer
	w, err := NewWriter(&buf, info, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(`"requires"`)) || !bytes.Contains(buf.Bytes(), []byte(`"processes":3`)) {
		t.Errorf("INFO = %s; want processes 3 and no requires", buf.Bytes()[fileHeaderSize+recordHeaderSize:])
	}
	got, _, err := Verify(bytes.NewReader(buf.Bytes()))
	if err != nil || got.Processes != 3 || got.Threads != 7 || got.Requires != nil {
		t.Errorf("Verify = %+v, %v; want 3 processes, 7 threads", got, err)
	}
}

// TestRequires: an image that requires a feature this reader does not
// know is refused at INFO, naming it; the Writer refuses FILES twice,
// PROCESS before FILES.
func TestRequires(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, Info{Comm: "x", Requires: []string{"no-such-feature"}}, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, err = NewReader(bytes.NewReader(b.Bytes()))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Kind != Unsupported || !strings.Contains(err.Error(), `"no-such-feature"`) {
		t.Fatalf("NewReader of an image requiring no-such-feature = %v; want unsupported, naming it", err)
	}
	for _, tc := range []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"process-first", func(w *Writer) error { return w.WriteRecord(TypeProcess, []byte("{}")) }, "before the FILES"},
		{"files-twice", func(w *Writer) error {
			w.WriteRecord(TypeFiles, []byte(`{"files":[]}`))
			return w.WriteRecord(TypeFiles, []byte(`{"files":[]}`))
		}, "second FILES"},
	} {
		w, _ := NewWriter(io.Discard, Info{}, WriterOptions{})
		if err := tc.do(w); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// TestOutside: the parts of a range outside sorted ranges, and what of
// them is left for the next range up.
func TestOutside(t *testing.T) {
	rs := [][2]uint64{{10, 20}, {30, 40}, {45, 60}}
	for _, tc := range []struct {
		lo, hi     uint64
		parts      [][2]uint64
		restLength int
	}{
		{0, 10, [][2]uint64{{0, 10}}, 3},
		{0, 35, [][2]uint64{{0, 10}, {20, 30}}, 2},
		{12, 18, nil, 3},
		{20, 50, [][2]uint64{{20, 30}, {40, 45}}, 1},
		{60, 70, [][2]uint64{{60, 70}}, 0},
	} {
		parts, rest := Outside(nil, tc.lo, tc.hi, rs)
		if fmt.Sprint(parts) != fmt.Sprint(tc.parts) || len(rest) != tc.restLength {
			t.Errorf("Outside(%d, %d) = %v, %d left; want %v, %d", tc.lo, tc.hi, parts, len(rest), tc.parts, tc.restLength)
		}
	}
}

// TestPasses: PASS and DROP records written by the Writer read back in
// order with ReadPass and ReadDrop, in an image that requires
// page-passes; the Writer refuses them elsewhere.
func TestPasses(t *testing.T) {
	var b bytes.Buffer
	info := Info{Comm: "x", Requires: []string{FeaturePagePasses}}
	w, err := NewWriter(&b, info, WriterOptions{Compression: Zstd})
	if err != nil {
		t.Fatal(err)
	}
	page := bytes.Repeat([]byte{7}, 3*PageSize)
	w.WritePass(0, 0x2000, page)
	w.WriteDrop(0, 0x3000, PageSize)
	w.WritePass(0, 0x1000, page[:PageSize])
	w.WriteRecord(TypeFiles, []byte(`{"files":[]}`))
	w.WriteRecord(TypeProcess, []byte(`{}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, PageBufSize)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case TypePass:
			task, addr, data, err := r.ReadPass(buf)
			if err != nil || !bytes.Equal(data, page[:len(data)]) {
				t.Fatalf("ReadPass = %d, %#x, %d bytes, %v", task, addr, len(data), err)
			}
			got = append(got, fmt.Sprintf("pass %d %#x %d", task, addr, len(data)))
		case TypeDrop:
			task, addr, n, err := r.ReadDrop()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("drop %d %#x %d", task, addr, n))
		default:
			got = append(got, h.Type.String())
		}
	}
	want := "[pass 0 0x2000 12288 drop 0 0x3000 4096 pass 0 0x1000 4096 FILES PROCESS]"
	if fmt.Sprint(got) != want {
		t.Errorf("records = %v; want %v", got, want)
	}
	if _, sum, err := Verify(bytes.NewReader(b.Bytes())); err != nil || sum.PageBytes != 4*PageSize {
		t.Errorf("Verify = %+v, %v; want 4 pages", sum, err)
	}
	for _, tc := range []struct {
		name string
		info Info
		do   func(w *Writer) error
		want string
	}{
		{"no-feature", Info{}, func(w *Writer) error { return w.WritePass(0, 0x1000, page) }, "does not require page-passes"},
		{"after-files", info, func(w *Writer) error {
			w.WriteRecord(TypeFiles, []byte(`{"files":[]}`))
			return w.WriteDrop(0, 0x1000, PageSize)
		}, "after the FILES record"},
		{"task", info, func(w *Writer) error { return w.WritePass(MaxProcesses, 0x1000, page) }, "PASS of process 4096; an image has at most 4096"},
		{"beyond", info, func(w *Writer) error { return w.WriteDrop(0, MaxPassAddress, PageSize) }, "beyond 2^56"},
	} {
		w, _ := NewWriter(io.Discard, tc.info, WriterOptions{})
		if err := tc.do(w); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}
