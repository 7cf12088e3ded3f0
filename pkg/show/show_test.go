package show

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"procs/format"
	"procs/pkg/linux"
)

// TestVectors reads every image of format/testdata: the good ones whole,
// the bad ones up to the error format.Verify gives, which Read returns
// word for word.
func TestVectors(t *testing.T) {
	imgs, err := filepath.Glob("../../format/testdata/*.img")
	if err != nil || len(imgs) == 0 {
		t.Fatalf("no test vectors: %v", err)
	}
	for _, path := range imgs {
		name := strings.TrimSuffix(filepath.Base(path), ".img")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, _, verr := format.Verify(bytes.NewReader(data))
			img, err := Read(bytes.NewReader(data))
			if (err == nil) != strings.HasPrefix(name, "good-") {
				t.Fatalf("Read(%s) = %v; want an error only for bad- vectors", name, err)
			}
			if err != nil {
				if verr == nil || err.Error() != verr.Error() {
					t.Errorf("Read(%s) = %q; format.Verify says %v", name, err, verr)
				}
				if img.Complete || img.Error != err.Error() {
					t.Errorf("Read(%s): Complete %v, Error %q; want false, %q", name, img.Complete, img.Error, err)
				}
			} else if !img.Complete {
				t.Errorf("Read(%s): Complete false", name)
			}
			var text bytes.Buffer
			if err := WriteText(&text, img); err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(img); err != nil {
				t.Errorf("json.Marshal: %v", err)
			}
		})
	}
}

// image writes an image of p with memory pages, then cuts it to cut
// bytes (0: whole).
func image(t *testing.T, p *format.Process, fs []format.File, pages map[uint64][]byte, opts format.WriterOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := format.NewWriter(&b, format.Info{Comm: p.Comm, PID: p.PID, Host: "box\x1b[2J", Kernel: "6.18", Arch: "x86_64",
		Created: time.Unix(1700000000, 0), Threads: len(p.Threads)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(format.TypeFiles, &format.FileTable{Files: fs}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(format.TypeProcess, p); err != nil {
		t.Fatal(err)
	}
	addrs := make([]uint64, 0, len(pages))
	for a := range pages {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		if err := w.WritePages(0, a, pages[a]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func page(fill byte, n int) []byte { return bytes.Repeat([]byte{fill}, n*format.PageSize) }

// TestSizes checks how memory is counted into mappings, and the command
// line read from the pages.
func TestSizes(t *testing.T) {
	const stack = 0x7ff000000000
	args := "prog\x00-x\x00two words\x00"
	argPage := page(0, 1)
	copy(argPage[100:], args)
	p := &format.Process{
		PID: 42, Comm: "prog", Exe: 0, Cwd: "/tmp", Root: "/",
		Maps: []format.Mapping{
			// Out of order on purpose: show sorts them.
			{Start: stack, End: stack + 4*4096, Prot: 3, Kind: format.MapAnon, Name: "[stack]", File: -1},
			{Start: 0x400000, End: 0x402000, Prot: 5, Kind: format.MapFile, File: 0},
			{Start: 0x402000, End: 0x404000, Prot: 3, Kind: format.MapFile, File: 0},
			{Start: 0x600000, End: 0x700000, Prot: 3, Kind: format.MapAnon, File: -1},
			{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: 4, Kind: format.MapVsyscall, File: -1},
		},
		Threads: []format.Thread{{TID: 42, Regs: make([]uint64, linux.NumUserRegs)}, {TID: 43, Regs: make([]uint64, linux.NumUserRegs)}},
		MM:      format.MM{ArgStart: stack + 100, ArgEnd: stack + 100 + uint64(len(args))},
	}
	p.Threads[0].Regs[linux.ORIG_RAX] = 230 // in clock_nanosleep
	p.Threads[1].Regs[linux.ORIG_RAX] = ^uint64(0)
	pages := map[uint64][]byte{
		0x402000: page(1, 1),
		// One record over two mappings' gap: 0x600000 is the next one.
		0x600000: page(2, 3),
		stack:    argPage,
		0x900000: page(3, 1), // in no mapping
	}
	for _, c := range []format.Compression{format.None, format.Zstd} {
		img, err := Read(bytes.NewReader(image(t, p, []format.File{{Kind: format.FileRegular, Path: "/bin/prog", Size: 8192, Mtime: 1}}, pages, format.WriterOptions{Compression: c})))
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Processes) != 1 {
			t.Fatalf("%d processes; want 1", len(img.Processes))
		}
		got := img.Processes[0]
		if want := []string{"prog", "-x", "two words"}; !slices.Equal(got.Cmdline, want) {
			t.Errorf("Cmdline = %q; want %q", got.Cmdline, want)
		}
		if got.Threads[0].SyscallName != "clock_nanosleep" || got.Threads[1].Syscall != -1 {
			t.Errorf("threads = %+v", got.Threads)
		}
		want := []Sizes{
			{FromFile: 8192},
			{Stored: 4096, FromFile: 4096},
			{Stored: 3 * 4096, Zero: 1<<20 - 3*4096},
			{Stored: 4096, Zero: 3 * 4096},
			{Kernel: 4096},
		}
		for i, m := range got.Mappings {
			if m.Sizes != want[i] {
				t.Errorf("mapping %x-%x: %+v; want %+v", m.Start, m.End, m.Sizes, want[i])
			}
		}
		if got.Memory.Outside != 4096 || got.Memory.Stored != 5*4096 {
			t.Errorf("Memory = %+v; want 5 pages stored and 1 outside", got.Memory)
		}
		if c != format.None && !slices.Equal(img.RecordCompression, []string{"zstd"}) {
			t.Errorf("RecordCompression = %q", img.RecordCompression)
		}
		if len(img.Needs.Files) != 2 || img.Needs.Files[1].Path != "/bin/prog" || !img.Needs.Files[1].Unchanged {
			t.Errorf("Needs.Files = %+v", img.Needs.Files)
		}
	}
}

// TestDamaged cuts an image in its memory records: what came before is
// there, and the error is the reader's.
func TestDamaged(t *testing.T) {
	p := &format.Process{PID: 7, Comm: "cut", Threads: []format.Thread{{TID: 7}},
		Maps: []format.Mapping{{Start: 0x10000, End: 0x20000, Kind: format.MapAnon, File: -1}}}
	data := image(t, p, nil, map[uint64][]byte{0x10000: page(1, 4), 0x18000: page(2, 4)}, format.WriterOptions{})
	cut := data[:len(data)-5000]
	img, err := Read(bytes.NewReader(cut))
	if err == nil || !strings.HasPrefix(err.Error(), "truncated image at byte ") {
		t.Fatalf("Read(cut image) = %v; want a truncated image", err)
	}
	if len(img.Processes) != 1 || img.Processes[0].PID != 7 || img.Processes[0].Memory.Stored != 4*4096 {
		t.Errorf("Read(cut image) = %+v; want process 7 with the first record's 4 pages", img.Processes)
	}
}

// TestEscaped checks that no control byte from the image reaches the
// text form, and that the JSON form keeps the strings.
func TestEscaped(t *testing.T) {
	evil := "a\x1b]0;owned\x07b\nc\x9bd\xff"
	argPage := page(0, 1)
	copy(argPage, evil+"\x00"+evil+"\x00")
	p := &format.Process{PID: 9, Comm: evil, Cwd: evil, Root: "/", Exe: 0,
		FDs:     []format.FD{{Num: 3, File: 0, Open: 1}, {Num: 4, File: 99, Open: 2}},
		Maps:    []format.Mapping{{Start: 0x1000, End: 0x2000, Kind: format.MapAnon, Name: evil, File: -1}},
		Threads: []format.Thread{{TID: 9, Comm: evil}},
		MM:      format.MM{ArgStart: 0x1000, ArgEnd: 0x1000 + 2*uint64(len(evil)+1)},
	}
	img, err := Read(bytes.NewReader(image(t, p, []format.File{{Kind: format.FileRegular, Path: evil}}, map[uint64][]byte{0x1000: argPage}, format.WriterOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, img); err != nil {
		t.Fatal(err)
	}
	for i, r := range out.String() {
		if r != '\n' && (r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
			t.Fatalf("text form holds %U at byte %d:\n%s", r, i, out.String())
		}
	}
	if !strings.Contains(out.String(), `'a\x1b]0;owned\ab\nc\x9bd\xff'`) {
		t.Errorf("text form lacks the escaped string:\n%s", out.String())
	}
	b, err := json.Marshal(img)
	if err != nil {
		t.Fatal(err)
	}
	var back Image
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Processes[0].Cmdline; len(got) != 2 || !strings.HasPrefix(got[0], "a\x1b]0;owned\x07b\nc") {
		t.Errorf("JSON cmdline = %q", got)
	}
	if f := back.Processes[0].Files[1]; f.Kind != "?" {
		t.Errorf("fd 4 of a file the image does not have: kind %q; want ?", f.Kind)
	}
}

// TestWithRange: the memory of page passes, ranges added and taken away
// in record order.
func TestWithRange(t *testing.T) {
	var rs [][2]uint64
	for _, step := range []struct {
		lo, hi uint64
		add    bool
		want   string
	}{
		{10, 20, true, "[[10 20]]"},
		{30, 40, true, "[[10 20] [30 40]]"},
		{20, 30, true, "[[10 40]]"},
		{15, 25, false, "[[10 15] [25 40]]"},
		{12, 13, true, "[[10 15] [25 40]]"},
		{0, 12, false, "[[12 15] [25 40]]"},
		{25, 40, false, "[[12 15]]"},
	} {
		rs = withRange(rs, step.lo, step.hi, step.add)
		if fmt.Sprint(rs) != step.want {
			t.Fatalf("withRange(%d, %d, %v) = %v; want %s", step.lo, step.hi, step.add, rs, step.want)
		}
	}
}
