package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite format/testdata from the vectors in vectors_test.go")

// builder assembles images byte by byte, so tests can make bad ones.
type builder struct {
	b         []byte
	records   uint64
	pageBytes uint64
	rawBytes  uint64
	chain     uint32
	offs      []int // offset of each record header
}

func (b *builder) header(major, minor, machine, shift uint16, flags uint32) *builder {
	h := []byte(Magic)
	h = binary.LittleEndian.AppendUint16(h, major)
	h = binary.LittleEndian.AppendUint16(h, minor)
	h = binary.LittleEndian.AppendUint16(h, machine)
	h = binary.LittleEndian.AppendUint16(h, shift)
	h = binary.LittleEndian.AppendUint32(h, flags)
	h = binary.LittleEndian.AppendUint32(h, crc(h))
	b.b = append(b.b, h...)
	return b
}

func newBuilder() *builder {
	return new(builder).header(MajorVersion, MinorVersion, MachineX8664, pageShift, 0)
}

// rec appends a record with the given stored payload and raw length.
func (b *builder) rec(t RecordType, flags uint16, stored []byte, raw int) *builder {
	b.offs = append(b.offs, len(b.b))
	h := binary.LittleEndian.AppendUint16(nil, uint16(t))
	h = binary.LittleEndian.AppendUint16(h, flags)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(stored)))
	h = binary.LittleEndian.AppendUint32(h, uint32(raw))
	h = binary.LittleEndian.AppendUint32(h, crc(stored))
	h = binary.LittleEndian.AppendUint32(h, crc(h))
	if t != TypeEnd {
		b.records++
		b.rawBytes += uint64(raw)
		b.chain = crc32Update(b.chain, h[16:20])
		if (t == TypePages || t == TypePass) && raw >= pagesPrefix {
			b.pageBytes += uint64(raw - pagesPrefix)
		}
	}
	b.b = append(append(b.b, h...), stored...)
	return b
}

func crc32Update(c uint32, p []byte) uint32 { return crc32UpdateTable(c, p) }

func (b *builder) plain(t RecordType, p []byte) *builder { return b.rec(t, 0, p, len(p)) }

func (b *builder) info() *builder {
	return b.plain(TypeInfo, []byte(`{"comm":"victim","pid":42,"host":"box","kernel":"6.1.0","arch":"x86_64","created":"2025-01-02T03:04:05Z","procs":"test","threads":1,"processes":1}`))
}

// files appends a FILES record with no file.
func (b *builder) files() *builder { return b.plain(TypeFiles, []byte(`{"files":[]}`)) }

// process appends a PROCESS record of a process pid, child of ppid, that
// leads its session and group when ppid is 1.
func (b *builder) process(pid, ppid int) *builder {
	return b.plain(TypeProcess, procJSON(pid, ppid))
}

func procJSON(pid, ppid int) []byte {
	sid := pid
	if ppid != 1 {
		sid = ppid
	}
	return fmt.Appendf(nil, `{"pid":%d,"ppid":%d,"pgid":%d,"sid":%d,"comm":"victim"}`, pid, ppid, sid, sid)
}

// meta appends what every image with memory holds before its PAGES: the
// FILES record and the PROCESS record of one process (task 0).
func (b *builder) meta() *builder { return b.files().process(42, 1) }

// pagesPayload is the payload of a PAGES record of process task at addr:
// npages pages, each filled with one byte from fill on.
func pagesPayload(task uint32, addr uint64, npages int, fill byte) []byte {
	p := binary.LittleEndian.AppendUint32(nil, task)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint64(p, addr)
	for i := 0; i < npages*PageSize; i++ {
		p = append(p, fill+byte(i/PageSize))
	}
	return p
}

// pages appends a PAGES record of task 0.
func (b *builder) pages(addr uint64, npages int) *builder { return b.taskPages(0, addr, npages) }

func (b *builder) taskPages(task uint32, addr uint64, npages int) *builder {
	return b.plain(TypePages, pagesPayload(task, addr, npages, byte(addr>>12)+byte(task)))
}

// passInfo appends an INFO record that requires page passes.
func (b *builder) passInfo() *builder {
	return b.plain(TypeInfo, []byte(`{"comm":"victim","pid":42,"processes":1,"requires":["page-passes"]}`))
}

// pass appends a PASS record of process task.
func (b *builder) pass(task uint32, addr uint64, npages int, fill byte) *builder {
	return b.plain(TypePass, pagesPayload(task, addr, npages, fill))
}

// drop appends a DROP record of process task.
func (b *builder) drop(task uint32, addr, length uint64) *builder {
	p := binary.LittleEndian.AppendUint32(nil, task)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint64(p, addr)
	return b.plain(TypeDrop, binary.LittleEndian.AppendUint64(p, length))
}

func fileData(index uint32, off uint64, data string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, index)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint64(p, off)
	return append(p, data...)
}

// endWith appends an END record with the given fields.
func (b *builder) endWith(records, pageBytes, rawBytes uint64, chain uint32) *builder {
	p := binary.LittleEndian.AppendUint64(nil, records)
	p = binary.LittleEndian.AppendUint64(p, pageBytes)
	p = binary.LittleEndian.AppendUint64(p, rawBytes)
	p = binary.LittleEndian.AppendUint32(p, chain)
	return b.plain(TypeEnd, p)
}

func (b *builder) end() *builder { return b.endWith(b.records, b.pageBytes, b.rawBytes, b.chain) }

func (b *builder) last() int { return b.offs[len(b.offs)-1] }

// vector is one test image and what a reader must do with it.
type vector struct {
	name string
	desc string
	data []byte
	ok   bool      // accept
	kind ErrorKind // else reject with this kind
	off  int64     // at this offset
	tail int       // bytes after END that must stay unread (for accepted images)
}

func zstdAll(t testing.TB, p []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(p, nil)
}

func xzAll(t testing.TB, p []byte) []byte { return xzDict(t, p, 0) }

// writerImage makes an image with the Writer: a tree of two processes,
// a carried file, and memory of both (the child's at the root's
// addresses, as after fork).
func writerImage(t testing.TB, opts WriterOptions) []byte {
	var buf bytes.Buffer
	info := testInfo
	info.Processes, info.Threads = 2, 2
	w, err := NewWriter(&buf, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	seals := uint32(SealSeal)
	must(w.WriteJSON(TypeFiles, FileTable{Files: []File{
		{Kind: FileRegular, Path: "/usr/bin/victim", Dev: 2049, Ino: 1234, Mode: 0o100755, Size: 4 << 20, Mtime: 1700000000123456789},
		{Kind: FileMemfd, Path: "/memfd:buf (deleted)", Mode: 0o100600, Size: 14, Carried: true, Seals: &seals},
	}}))
	must(w.WriteJSON(TypeProcess, json.RawMessage(procJSON(42, 1))))
	must(w.WriteJSON(TypeProcess, json.RawMessage(procJSON(43, 42))))
	must(w.WriteFileData(1, 0, []byte("file contents\n")))
	page := pagesPayload(0, 0, 1, 9)[pagesPrefix:]
	must(w.WritePages(0, 0x400000, bytes.Repeat([]byte("compressible page data "), 3*PageSize/23+1)[:3*PageSize]))
	must(w.WritePages(0, 0x7ffff000, page))
	must(w.WritePages(1, 0x400000, page))
	must(w.Close())
	return buf.Bytes()
}

var testInfo = Info{Comm: "victim", PID: 42, Host: "box", Kernel: "6.1.0", Arch: "x86_64",
	Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Procs: "test", Threads: 1, Processes: 1}

// The FILES and PROCESS records of good-full: a tree of two processes
// that share an open file description (fd 3, after fork) of a carried
// file, with a resource limit of infinity (2^64-1, which a reader must
// read exactly).
const (
	fullFiles = `{"files":[` +
		`{"kind":"reg","path":"/usr/bin/victim","dev":2049,"ino":1234,"mode":33261,"size":4194304,"mtime_ns":1700000000123456789},` +
		`{"kind":"reg","path":"/tmp/notes (deleted)","deleted":true,"dev":2049,"ino":5678,"mode":33188,"size":6,"mtime_ns":1700000000000000000,"carried":true,"uid":1000,"gid":1000,"atime_ns":1700000000000000000}]}`
	fullRoot = `{"pid":42,"ppid":1,"pgid":42,"sid":42,"comm":"victim","exe":0,"cwd":"/tmp","root":"/",` +
		`"creds":{"uid":[1000,1000,1000,1000],"gid":[1000,1000,1000,1000],"groups":[]},` +
		`"limits":[{"cur":18446744073709551615,"max":18446744073709551615}],` +
		`"fds":[{"num":3,"file":1,"flags":2,"pos":6,"open":1}]}`
	fullChild = `{"pid":43,"ppid":42,"pgid":42,"sid":42,"comm":"victim","exe":0,"cwd":"/tmp","root":"/",` +
		`"creds":{"uid":[1000,1000,1000,1000],"gid":[1000,1000,1000,1000],"groups":[]},` +
		`"fds":[{"num":3,"file":1,"flags":2,"pos":6,"open":1}]}`
)

// fullImage builds good-full; the record indexes the vectors that
// damage it use are the constants below.
func fullImage() *builder {
	return newBuilder().info().
		plain(TypeFiles, []byte(fullFiles)).                                      // 1
		plain(TypeProcess, []byte(fullRoot)).                                     // 2
		plain(TypeProcess, []byte(fullChild)).                                    // 3
		plain(TypeFileData, fileData(1, 0, "hello\n")).                           // 4
		plain(0x8123, []byte("unknown ancillary record: skip me")).               // 5
		taskPages(0, 0x1000, 2).taskPages(0, 0x3000, 1).taskPages(0, 0x10000, 3). // 6, 7, 8
		taskPages(1, 0x2000, 1).                                                  // 9: the child's, below the root's last
		plain(0xfffe, nil).end()
}

const (
	fullFilesRec     = 1
	fullAncillaryRec = 5
	fullPagesRec     = 6
)

var (
	bigMetaOnce sync.Once
	bigMetaData []byte
)

// bigMeta is the stored payload of a zstd PROCESS record of maxCap bytes
// (one member whose string fills it), made once.
func bigMeta(t testing.TB) []byte {
	bigMetaOnce.Do(func() {
		p := make([]byte, maxCap)
		copy(p, `{"pad":"`)
		for i := 8; i < maxCap-2; i++ {
			p[i] = 'a'
		}
		copy(p[maxCap-2:], `"}`)
		bigMetaData = zstdWindow(t, p, MaxRecordWindow)
	})
	return bigMetaData
}

// payloadFaults are the bad vectors whose fault only reading payloads
// reveals: a reader that skips them (Next alone) does not see it.
var payloadFaults = map[string]bool{
	"bad-pages-overlap": true, "bad-pages-order": true, "bad-pages-unaligned": true, "bad-pages-wrap": true,
	"bad-pages-task-range": true, "bad-pages-task-order": true, "bad-pages-reserved": true, "bad-pages-order-in-task": true,
	"bad-zstd-raw-length": true, "bad-xz-raw-length": true, "bad-zstd-garbage": true, "bad-filedata-reserved": true,
	"bad-pass-task": true, "bad-drop-task": true, "bad-pass-unaligned": true, "bad-pass-beyond": true, "bad-drop-empty": true, "bad-drop-reserved": true,
}

func vectors(t testing.TB) []vector {
	var vs []vector
	good := func(name, desc string, data []byte) {
		vs = append(vs, vector{name: "good-" + name, desc: desc, data: data, ok: true})
	}
	bad := func(name, desc string, data []byte, kind ErrorKind, off int) {
		vs = append(vs, vector{name: "bad-" + name, desc: desc, data: data, kind: kind, off: int64(off)})
	}

	good("minimal", "header, INFO and END only (well formed; a restorer refuses it, as it holds no process)", newBuilder().info().end().b)
	full := fullImage()
	good("full", "FILES, two PROCESS records (a root and its child sharing an open file), FILEDATA, unknown ancillary records, PAGES of both processes", full.b)
	good("zstd-records", "a tree of two processes whose PAGES and FILEDATA records are compressed with zstd", writerImage(t, WriterOptions{Compression: Zstd}))
	good("xz-records", "a tree of two processes whose PAGES and FILEDATA records are compressed with xz", writerImage(t, WriterOptions{Compression: XZ}))
	good("whole-zstd", "the whole image compressed with zstd", zstdAll(t, full.b))
	good("whole-xz", "the whole image compressed with xz", xzAll(t, full.b))
	good("minor-version", "minor version 9 of major version 2 is readable",
		new(builder).header(MajorVersion, 9, MachineX8664, 12, 0).info().meta().pages(0x1000, 1).end().b)
	good("other-machine", "an image for aarch64 (183) is well formed; only a restorer refuses it",
		new(builder).header(MajorVersion, 0, 183, 12, 0).info().meta().end().b)
	trailing := append(newBuilder().info().meta().pages(0x1000, 1).end().b, "bytes for the restored process"...)
	vs = append(vs, vector{name: "good-trailing", desc: "bytes after END must be left unread", data: trailing, ok: true, tail: 30})
	good("pages-tasks", "PAGES of processes 0 and 2 of three: each process's in increasing address order, the address starting over at the next process; process 1 has none",
		newBuilder().info().files().process(42, 1).process(43, 42).process(44, 42).
			taskPages(0, 0x400000, 2).taskPages(0, 0x7ffff000, 1).
			taskPages(2, 0x400000, 1).taskPages(2, 0x401000, 1).end().b)
	x := newBuilder().info().files()
	for range MaxProcesses {
		x.plain(TypeProcess, []byte("{}"))
	}
	good("processes-cap", fmt.Sprintf("%d tiny PROCESS records, the most an image holds", MaxProcesses), x.end().b)

	good("passes", "page passes: PASS records in any order, a page sent twice (the later copy counts), a DROP, then FILES, PROCESS, PAGES",
		newBuilder().passInfo().pass(0, 0x2000, 2, 1).pass(0, 0x1000, 1, 2).pass(0, 0x2000, 1, 3).drop(0, 0x3000, PageSize).
			meta().pages(0x1000, 1).end().b)

	bad("empty", "empty input", nil, Empty, 0)
	bad("text", "plain text", []byte("#!/bin/sh\necho hello\n"), NotImage, 0)
	mangled := bytes.Replace(full.b, []byte("\r\n"), []byte("\n"), 1)
	bad("crlf", "CR LF turned into LF by a text transfer", mangled, NotImage, 0)
	bad("short-header", "input ends in the file header", full.b[:15], Truncated, 15)
	b := bytes.Clone(full.b)
	b[10] ^= 1
	bad("header-crc", "file header checksum mismatch", b, Corrupt, 20)
	// A genuine 1.0 image: one PROCESS record holding its files, no
	// FILES, and PAGES with an 8-byte prefix.
	v1 := new(builder).header(1, 0, MachineX8664, 12, 0).info().
		plain(TypeProcess, []byte(`{"pid":42,"comm":"victim","files":[],"fds":[]}`)).
		plain(TypePages, pagesPayload(0, 0x1000, 1, 0)[8:])
	v1.pageBytes = PageSize
	bad("major-1", "an image of format 1.0 (one process, no FILES record, 8-byte PAGES prefix), written by an older procs", v1.end().b, Unsupported, 8)
	bad("major-3", "major version 3", new(builder).header(3, 0, MachineX8664, 12, 0).info().end().b, Unsupported, 8)
	bad("page-size", "page size 2^14", new(builder).header(MajorVersion, 0, MachineX8664, 14, 0).info().end().b, Unsupported, 14)
	bad("header-flags", "a header flag set", new(builder).header(MajorVersion, 0, MachineX8664, 12, 4).info().end().b, Unsupported, 16)

	b = bytes.Clone(full.b)
	b[full.offs[1]+5] ^= 0x40
	bad("record-header-crc", "record header checksum mismatch in record 1", b, Corrupt, full.offs[1])
	b = bytes.Clone(full.b)
	b[full.offs[fullPagesRec]+recordHeaderSize+100] ^= 1
	bad("payload-crc", "payload checksum mismatch in a PAGES record", b, Corrupt, full.offs[fullPagesRec]+recordHeaderSize)
	b = bytes.Clone(full.b)
	b[full.offs[fullFilesRec]+recordHeaderSize+2] ^= 1
	bad("payload-crc-skipped", "payload checksum mismatch in a record the reader skips (FILES)", b, Corrupt, full.offs[fullFilesRec]+recordHeaderSize)
	b = bytes.Clone(full.b)
	b[full.offs[fullAncillaryRec]+recordHeaderSize] ^= 1
	bad("ancillary-crc", "payload checksum mismatch in an unknown ancillary record", b, Corrupt, full.offs[fullAncillaryRec]+recordHeaderSize)

	var o int
	x = newBuilder().info().plain(0x0123, []byte("x"))
	o = x.last()
	bad("unknown-critical", "unknown critical record type 0x0123", x.end().b, Unsupported, o)
	x = newBuilder().info().plain(0, nil)
	o = x.last()
	bad("type-zero", "record type 0", x.end().b, Corrupt, o)
	x = newBuilder().info().files().rec(TypeProcess, 0x10, []byte("{}"), 2)
	o = x.last()
	bad("record-flags", "a reserved record flag bit set", x.end().b, Unsupported, o)
	x = newBuilder().info().files().rec(TypeProcess, 3, []byte("{}"), 2)
	o = x.last()
	bad("compression-3", "unknown compression method 3", x.end().b, Unsupported, o)
	x = newBuilder().info().meta().rec(TypePages, 0, make([]byte, pagesPrefix), MaxPageRun+pagesPrefix+PageSize)
	bad("over-cap", "PAGES raw length above the cap", x.b, Corrupt, x.last())
	x = newBuilder().info().files().rec(TypeProcess, 0, []byte("{}"), 3)
	o = x.last()
	bad("stored-not-raw", "uncompressed record whose stored and raw lengths differ", x.end().b, Corrupt, o)
	x = newBuilder()
	x.files()
	bad("info-not-first", "the first record is not INFO", x.info().end().b, Corrupt, x.offs[0])
	x = newBuilder().info().info()
	o = x.last()
	bad("info-twice", "a second INFO record", x.end().b, Corrupt, o)
	x = newBuilder().info().plain(TypeEnd, nil)
	bad("end-short", "an END record of 0 bytes", x.b, Corrupt, x.last())

	x = newBuilder().info().process(42, 1)
	o = x.last()
	bad("files-missing", "a PROCESS record and no FILES record", x.pages(0x1000, 1).end().b, Corrupt, o)
	x = newBuilder().info().process(42, 1)
	o = x.last()
	bad("process-before-files", "a PROCESS record before the FILES record", x.files().end().b, Corrupt, o)
	x = newBuilder().info().files().files()
	o = x.last()
	bad("files-twice", "two FILES records", x.process(42, 1).end().b, Corrupt, o)
	x = newBuilder().info().meta().files()
	o = x.last()
	bad("files-after-process", "a second FILES record, after the PROCESS record", x.end().b, Corrupt, o)
	x = newBuilder().info().files()
	for range MaxProcesses + 1 {
		x.plain(TypeProcess, []byte("{}"))
	}
	o = x.last()
	bad("processes-over-cap", fmt.Sprintf("%d tiny PROCESS records, one more than an image holds", MaxProcesses+1), x.end().b, Corrupt, o)
	x = newBuilder().info().files().rec(TypeProcess, uint16(Zstd), bigMeta(t), maxCap).rec(TypeProcess, uint16(Zstd), bigMeta(t), maxCap)
	o = x.last()
	bad("meta-over-cap", "FILES and two PROCESS records of 64 MiB each (zstd): more than the 128 MiB they may hold together", x.end().b, Corrupt, o)
	x = newBuilder().info().files().pages(0x1000, 1)
	o = x.last()
	bad("early-pages", "a PAGES record before any PROCESS record", x.process(42, 1).end().b, Corrupt, o)

	x = newBuilder().info().meta().pages(0x1000, 1).process(43, 42)
	o = x.last()
	bad("meta-after-pages", "a PROCESS record after PAGES", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1000, 1).plain(TypeFileData, fileData(0, 0, "x"))
	o = x.last()
	bad("filedata-after-pages", "a FILEDATA record after PAGES", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x3000, 2).pages(0x4000, 1)
	o = x.last() + recordHeaderSize
	bad("pages-overlap", "PAGES records that overlap", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x3000, 1).pages(0x1000, 1)
	o = x.last() + recordHeaderSize
	bad("pages-order", "PAGES records of one process in decreasing address order", x.end().b, Corrupt, o)
	x = newBuilder().info().files().process(42, 1).process(43, 42).taskPages(0, 0x5000, 1).taskPages(1, 0x3000, 2).taskPages(1, 0x4000, 1)
	o = x.last() + recordHeaderSize
	bad("pages-order-in-task", "PAGES of process 1 that overlap, after the address started over from process 0's", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().taskPages(1, 0x1000, 1)
	o = x.last() + recordHeaderSize
	bad("pages-task-range", "PAGES of process 1 in an image of one process", x.end().b, Corrupt, o)
	x = newBuilder().info().files().process(42, 1).process(43, 42).taskPages(1, 0x1000, 1).taskPages(0, 0x2000, 1)
	o = x.last() + recordHeaderSize
	bad("pages-task-order", "PAGES of process 0 after those of process 1", x.end().b, Corrupt, o)
	p := pagesPayload(0, 0x1000, 1, 0)
	p[4] = 1
	x = newBuilder().info().meta().plain(TypePages, p)
	o = x.last() + recordHeaderSize
	bad("pages-reserved", "PAGES with its reserved field set", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1001, 1)
	o = x.last() + recordHeaderSize
	bad("pages-unaligned", "PAGES at an unaligned address", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().plain(TypePages, pagesPayload(0, 0x1000, 1, 0)[:pagesPrefix+100])
	o = x.last()
	bad("pages-partial", "PAGES with 100 bytes of memory", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().plain(TypePages, pagesPayload(0, 0x1000, 0, 0))
	o = x.last()
	bad("pages-empty", "PAGES with no memory", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().plain(TypePages, pagesPayload(0, 0xfffffffffffff000, 2, 0))
	o = x.last() + recordHeaderSize
	bad("pages-wrap", "PAGES beyond the end of the address space", x.end().b, Corrupt, o)
	fd := fileData(0, 0, "x")
	fd[5] = 1
	x = newBuilder().info().plain(TypeFileData, fd)
	o = x.last() + recordHeaderSize
	bad("filedata-reserved", "FILEDATA with its reserved field set", x.end().b, Corrupt, o)
	x = newBuilder().info().plain(TypeFileData, fd[:10])
	o = x.last()
	bad("filedata-short", "FILEDATA payload shorter than 16 bytes", x.end().b, Corrupt, o)
	x = newBuilder().plain(TypeInfo, []byte("{not json"))
	bad("info-json", "INFO that is not JSON", x.end().b, Corrupt, x.offs[0]+recordHeaderSize)

	x = newBuilder().info().meta().pages(0x1000, 1)
	o = len(x.b) + recordHeaderSize
	bad("end-records", "END record count off by one", x.endWith(x.records+1, x.pageBytes, x.rawBytes, x.chain).b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1000, 1)
	o = len(x.b) + recordHeaderSize
	bad("end-pages", "END page bytes wrong", x.endWith(x.records, x.pageBytes-PageSize, x.rawBytes, x.chain).b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1000, 1)
	o = len(x.b) + recordHeaderSize
	bad("end-pages-prefix", "END page bytes counting the 16-byte prefix of PAGES", x.endWith(x.records, x.pageBytes+pagesPrefix, x.rawBytes, x.chain).b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1000, 1)
	o = len(x.b) + recordHeaderSize
	bad("end-raw", "END payload bytes wrong", x.endWith(x.records, x.pageBytes, x.rawBytes+1, x.chain).b, Corrupt, o)
	x = newBuilder().info().meta().pages(0x1000, 1)
	o = len(x.b) + recordHeaderSize
	bad("end-chain", "END chain checksum wrong", x.endWith(x.records, x.pageBytes, x.rawBytes, x.chain^1).b, Corrupt, o)
	// Two images' records spliced: every record is fine, the chain is not.
	x = newBuilder().info().meta().pages(0x1000, 1)
	y := newBuilder().info().meta().pages(0x2000, 1)
	spliced := append(bytes.Clone(x.b[:x.last()]), y.b[y.last():]...)
	n := len(x.b)
	x.end()
	spliced = append(spliced, x.b[n:]...)
	bad("end-spliced", "a PAGES record taken from another image: the END chain checksum catches it", spliced, Corrupt, x.last()+recordHeaderSize)
	x = newBuilder().info()
	endp := x.endWith(x.records, 0, x.rawBytes, x.chain).b[x.last()+recordHeaderSize:]
	x.offs = x.offs[:len(x.offs)-1]
	x.b = x.b[:x.last()+len(x.b)-x.last()-len(endp)-recordHeaderSize]
	x.rec(TypeEnd, 1, zstdAll(t, endp), len(endp))
	bad("end-compressed", "a compressed END record", x.b, Corrupt, x.last())

	x = newBuilder().info().meta().pages(0x1000, 1)
	bad("no-end", "input ends after the last PAGES record, with no END", x.b, Truncated, len(x.b))
	x = newBuilder().info().meta().pages(0x1000, 2)
	bad("short-payload", "input ends inside a PAGES payload", x.b[:len(x.b)-100], Truncated, len(x.b)-100)
	x = newBuilder().info().meta().pages(0x1000, 1).end()
	bad("short-end", "input ends inside the END record", x.b[:len(x.b)-1], Truncated, len(x.b)-1)

	pz := zstdAll(t, pagesPayload(0, 0x1000, 2, 7))
	x = newBuilder().info().meta().rec(TypePages, uint16(Zstd), pz, pagesPrefix+PageSize)
	o = x.last() + recordHeaderSize
	bad("zstd-raw-length", "a zstd PAGES payload larger than its raw length says", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().rec(TypePages, uint16(XZ), xzAll(t, pagesPayload(0, 0x1000, 1, 7)), pagesPrefix+2*PageSize)
	o = x.last() + recordHeaderSize
	bad("xz-raw-length", "an xz PAGES payload smaller than its raw length says", x.end().b, Corrupt, o)
	x = newBuilder().info().meta().rec(TypePages, uint16(Zstd), []byte("not zstd at all"), pagesPrefix+PageSize)
	o = x.last() + recordHeaderSize
	bad("zstd-garbage", "a zstd payload that is not zstd", x.end().b, Corrupt, o)
	x = newBuilder().info().pass(0, 0x1000, 1, 1)
	o = x.last()
	bad("pass-no-feature", "a PASS record in an image whose INFO does not require page-passes", x.meta().end().b, Corrupt, o)
	x = newBuilder().passInfo().files().pass(0, 0x1000, 1, 1)
	o = x.last()
	bad("pass-after-files", "a PASS record after the FILES record", x.process(42, 1).end().b, Corrupt, o)
	x = newBuilder().passInfo().drop(0, 0x1000, PageSize).files().drop(0, 0x2000, PageSize)
	o = x.last()
	bad("drop-after-files", "a DROP record after the FILES record", x.end().b, Corrupt, o)
	good("pass-exited", "PASS and DROP records of process 1 in an image of one process: of a process that exited during the passes, discarded", newBuilder().passInfo().pass(1, 0x1000, 1, 1).drop(1, 0, MaxPassAddress).meta().end().b)
	x = newBuilder().passInfo().pass(MaxProcesses, 0x1000, 1, 1)
	bad("pass-task", "a PASS record of process 4096, more than an image has", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo().drop(MaxProcesses, 0x1000, PageSize)
	bad("drop-task", "a DROP record of process 4096, more than an image has", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo().plain(TypePass, pagesPayload(0, 0x1001, 1, 1))
	bad("pass-unaligned", "a PASS record at an address that is not page aligned", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo().pass(0, MaxPassAddress-PageSize, 2, 1)
	bad("pass-beyond", "a PASS record that goes beyond 2^56", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo().drop(0, 0x1000, 0)
	bad("drop-empty", "a DROP record of no bytes", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo()
	dp := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0), 1), 0x1000), PageSize)
	x.plain(TypeDrop, dp)
	bad("drop-reserved", "a DROP record with its reserved field set", x.meta().end().b, Corrupt, x.offs[1]+recordHeaderSize)
	x = newBuilder().passInfo()
	x.plain(TypeDrop, make([]byte, 16))
	bad("drop-short", "a DROP record of 16 bytes", x.meta().end().b, Corrupt, x.offs[1])
	wx := xzAll(t, full.b)
	bad("whole-xz-truncated", "a whole-stream xz image cut short", wx[:len(wx)/2], Truncated, -1)
	return vs
}

// checkVector reads v.data with Verify and with Next alone, and checks the
// result is what v says.
func checkVector(t *testing.T, v vector) {
	t.Helper()
	r := bytes.NewReader(v.data)
	_, sum, err := Verify(r)
	check := func(how string, err error) {
		t.Helper()
		if v.ok {
			if err != nil {
				t.Errorf("%s: %s(%s) = %v; want success", v.name, how, v.desc, err)
			}
			return
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %s(%s) = %v; want a FormatError", v.name, how, v.desc, err)
			return
		}
		if fe.Kind != v.kind || (v.off >= 0 && fe.Offset != v.off) {
			t.Errorf("%s: %s(%s) = %v (kind %d, offset %d); want kind %d at offset %d", v.name, how, v.desc, err, fe.Kind, fe.Offset, v.kind, v.off)
		}
	}
	check("Verify", err)
	if v.ok && v.tail > 0 && r.Len() != v.tail {
		t.Errorf("%s: Verify left %d bytes unread; want %d", v.name, r.Len(), v.tail)
	}
	if v.ok && sum.Bytes != int64(len(v.data)-v.tail) && !bytes.HasPrefix(v.data, zstdMagic) && !bytes.HasPrefix(v.data, xzMagic) {
		t.Errorf("%s: Verify Summary.Bytes = %d; want %d", v.name, sum.Bytes, len(v.data)-v.tail)
	}
	// Reading with Next only (payloads skipped) finds the same, except
	// faults that only reading payloads reveals.
	if payloadFaults[v.name] {
		return
	}
	rd, err := NewReader(bytes.NewReader(v.data))
	for err == nil {
		_, err = rd.Next()
	}
	if err == io.EOF {
		err = nil
	}
	check("Next", err)
}

func TestVectors(t *testing.T) {
	for _, v := range vectors(t) {
		checkVector(t, v)
	}
}

// sidecar is the one-line description of a vector in testdata.
func (v vector) sidecar() string {
	if v.ok {
		if v.tail > 0 {
			return fmt.Sprintf("accept leaving %d trailing bytes unread: %s\n", v.tail, v.desc)
		}
		return "accept: " + v.desc + "\n"
	}
	kinds := []string{"corrupt", "truncated", "unsupported", "notimage", "empty"}
	if v.off < 0 {
		return fmt.Sprintf("reject %s: %s\n", kinds[v.kind], v.desc)
	}
	return fmt.Sprintf("reject %s at byte %d: %s\n", kinds[v.kind], v.off, v.desc)
}

func parseSidecar(s string) (v vector, err error) {
	s = strings.TrimSuffix(s, "\n")
	head, desc, ok := strings.Cut(s, ": ")
	if !ok || strings.Contains(desc, "\n") {
		return v, fmt.Errorf("sidecar %q: want one line VERDICT: DESCRIPTION", s)
	}
	v.desc = desc
	f := strings.Fields(head)
	switch {
	case len(f) == 1 && f[0] == "accept":
		v.ok = true
	case len(f) == 6 && f[0] == "accept" && f[1] == "leaving":
		v.ok = true
		v.tail, err = strconv.Atoi(f[2])
	case (len(f) == 5 && f[2] == "at" && f[3] == "byte" || len(f) == 2) && f[0] == "reject":
		k := map[string]ErrorKind{"corrupt": Corrupt, "truncated": Truncated, "unsupported": Unsupported, "notimage": NotImage, "empty": Empty}
		var found bool
		if v.kind, found = k[f[1]]; !found {
			return v, fmt.Errorf("sidecar %q: unknown kind %q", s, f[1])
		}
		v.off = -1 // any offset
		if len(f) == 5 {
			v.off, err = strconv.ParseInt(f[4], 10, 64)
		}
	default:
		err = fmt.Errorf("sidecar %q: bad verdict", s)
	}
	return v, err
}

// TestTestdata replays format/testdata: NAME.img is an image, NAME.txt
// says in one line what a reader must do with it. go test -update
// rewrites them.
func TestTestdata(t *testing.T) {
	dir := "testdata"
	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "*.img"))
		olds, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
		for _, f := range append(old, olds...) {
			os.Remove(f)
		}
		os.MkdirAll(dir, 0o755)
		for _, v := range vectors(t) {
			if err := os.WriteFile(filepath.Join(dir, v.name+".img"), v.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, v.name+".txt"), []byte(v.sidecar()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	imgs, err := filepath.Glob(filepath.Join(dir, "*.img"))
	if err != nil || len(imgs) == 0 {
		t.Fatalf("no test images in %s (%v); run go test -update", dir, err)
	}
	for _, img := range imgs {
		name := strings.TrimSuffix(filepath.Base(img), ".img")
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		side, err := os.ReadFile(strings.TrimSuffix(img, ".img") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseSidecar(string(side))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v.name, v.data = name, data
		checkVector(t, v)
	}
}

// TestWholeStreamCutSays: a whole-stream compressed image cut short is
// reported as such, not as an image whose file header is cut.
func TestWholeStreamCutSays(t *testing.T) {
	img := newBuilder().info().meta().pages(0x1000, 1).end().b
	wx := xzAll(t, img)
	_, _, err := Verify(bytes.NewReader(wx[:len(wx)/2]))
	if err == nil || !strings.Contains(err.Error(), "the xz-compressed input ends in") {
		t.Errorf("cut xz image: %v; want it to say the xz-compressed input ends", err)
	}
}
