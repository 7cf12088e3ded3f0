package format

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"procs/format/internal/crc32c"
)

var (
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// PageBufSize is a buffer size for ReadPages that lets it decompress a
// compressed PAGES record in place, with no buffer of its own.
const PageBufSize = MaxPageRun + pagesPrefix

// Header describes the record Next returned.
type Header struct {
	Type   RecordType
	Index  int   // INFO is record 0
	Offset int64 // of the record header in the (decompressed) image
	Raw    int   // raw payload length
	// Stored is the stored payload length, and Compression how the
	// payload is compressed (None: Stored is Raw).
	Stored      int
	Compression Compression
}

// A Reader reads one image, checking everything as it goes. It reads
// exactly the bytes of the image from a stream that is not compressed as
// a whole, none after the END record. Errors about the image are
// *FormatError; once one is returned every later call returns it.
type Reader struct {
	src     io.Reader
	whole   Compression // whole-stream compression
	srcErr  *errReader  // underlying reader, under a whole-stream decompressor
	zstream *zstd.Decoder

	off     int64
	info    Info
	major   int
	minor   int
	machine int

	cur     Header
	curComp Compression
	stored  int
	sum     uint32
	pending bool // the current payload has not been read

	records   uint64
	processes int    // PROCESS records so far
	files     bool   // the FILES record was read
	meta      uint64 // raw bytes of FILES and PROCESS records so far
	task      uint32 // the process of the last PAGES record
	pageBytes uint64
	rawBytes  uint64
	chain     uint32
	inPages   bool
	nextAddr  uint64 // end of the last PAGES record read
	pagesRead bool
	passes    bool // INFO requires page-passes: PASS and DROP may come
	done      bool
	err       error

	hdr     [max(recordHeaderSize, dropSize)]byte // a record header, or a payload's prefix
	scratch []byte                                // stored payloads
	dec     []byte                                // decompressed payloads that do not fit the caller's buffer
}

// errReader remembers the last error of the reader under a decompressor,
// to tell input errors from decompression errors.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// DefaultStreamWindow is the largest zstd window or xz dictionary that
// NewReader accepts in an image compressed as a whole (zstd --long=28,
// xz -9 and everything below).
const DefaultStreamWindow = 256 << 20

// Limits bound what a Reader holds beyond the caps of the format.
type Limits struct {
	// StreamWindow is the largest zstd window or xz dictionary of an
	// image compressed as a whole: the memory its decompression holds.
	// 0 means DefaultStreamWindow.
	StreamWindow int
}

// NewReader reads and checks the file header and the INFO record. An
// input compressed as a whole with xz or zstd is decompressed on the fly.
func NewReader(r io.Reader) (*Reader, error) {
	return NewReaderLimits(r, Limits{})
}

// NewReaderLimits is NewReader with limits of the caller's.
func NewReaderLimits(r io.Reader, lim Limits) (*Reader, error) {
	if lim.StreamWindow <= 0 {
		lim.StreamWindow = DefaultStreamWindow
	}
	rd := &Reader{src: r, cur: Header{Index: -1}}
	var h [fileHeaderSize]byte
	n, err := io.ReadFull(r, h[:len(Magic)])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("read image: %w", err)
	}
	switch {
	case n == 0:
		return nil, &FormatError{Kind: Empty, Record: -1}
	case n >= len(xzMagic) && bytes.Equal(h[:len(xzMagic)], xzMagic):
		rd.whole = XZ
		rd.srcErr = &errReader{r: io.MultiReader(bytes.NewReader(h[:n:n]), r)}
		zr, err := xz.NewReader(bufio.NewReaderSize(newXZGuard(rd.srcErr, int64(lim.StreamWindow)), 64<<10))
		if err != nil {
			return nil, rd.inputError(err, "file header")
		}
		rd.src = bufio.NewReaderSize(zr, 64<<10)
	case n >= len(zstdMagic) && bytes.Equal(h[:len(zstdMagic)], zstdMagic):
		rd.whole = Zstd
		rd.srcErr = &errReader{r: io.MultiReader(bytes.NewReader(h[:n:n]), r)}
		zr, err := zstd.NewReader(rd.srcErr,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(uint64(lim.StreamWindow)))
		if err != nil {
			return nil, rd.inputError(err, "file header")
		}
		rd.zstream = zr
		rd.src = zr
	default:
		rd.off = int64(n)
		if n < len(Magic) && (bytes.HasPrefix(xzMagic, h[:n]) || bytes.HasPrefix(zstdMagic, h[:n])) {
			return nil, rd.fail(Truncated, -1, "input ends in the compressed stream's header")
		}
		if !bytes.Equal(h[:n], []byte(Magic)[:n]) {
			return nil, notImage(h[:n])
		}
		if n < len(Magic) {
			return nil, rd.fail(Truncated, -1, "input ends in the file header")
		}
	}
	if rd.whole != None {
		if err := rd.readFull(h[:len(Magic)], -1, "the file header"); err != nil {
			return nil, err
		}
		if string(h[:len(Magic)]) != Magic {
			rd.off = 0
			return nil, rd.fail(NotImage, -1, "bad magic after "+rd.whole.String()+" decompression")
		}
	}
	if err := rd.readFull(h[len(Magic):], -1, "the file header"); err != nil {
		return nil, err
	}
	if crc(h[:20]) != binary.LittleEndian.Uint32(h[20:]) {
		rd.off = 20
		return nil, rd.fail(Corrupt, -1, "header checksum mismatch")
	}
	rd.major = int(binary.LittleEndian.Uint16(h[8:]))
	rd.minor = int(binary.LittleEndian.Uint16(h[10:]))
	rd.machine = int(binary.LittleEndian.Uint16(h[12:]))
	if rd.major != MajorVersion {
		rd.off = 8
		msg := fmt.Sprintf("format version %d.%d (this reader knows %d.x)", rd.major, rd.minor, MajorVersion)
		if rd.major == 1 {
			msg = fmt.Sprintf("format version %d.%d, written by an older procs; this one reads %d.x (version 1 images held one process and no tree: dump the process again with this procs)", rd.major, rd.minor, MajorVersion)
		}
		return nil, rd.fail(Unsupported, -1, msg)
	}
	if s := binary.LittleEndian.Uint16(h[14:]); s != pageShift {
		rd.off = 14
		return nil, rd.fail(Unsupported, -1, fmt.Sprintf("page size 2^%d (want 2^%d)", s, pageShift))
	}
	if f := binary.LittleEndian.Uint32(h[16:]); f != 0 {
		rd.off = 16
		return nil, rd.fail(Unsupported, -1, fmt.Sprintf("unknown header flags 0x%x", f))
	}
	hd, err := rd.Next()
	if err == io.EOF { // END first
		return nil, rd.fail(Corrupt, 0, "no INFO record")
	}
	if err != nil {
		return nil, err
	}
	if hd.Type != TypeInfo {
		return nil, rd.failAt(Corrupt, hd.Offset, "first record is not INFO")
	}
	if err := rd.DecodeJSON(&rd.info); err != nil {
		return nil, err
	}
	if f := unknownFeatures(rd.info.Requires); len(f) > 0 {
		return nil, rd.failAt(Unsupported, hd.Offset, fmt.Sprintf("the image requires %s, which this reader does not know", strings.Join(f, ", ")))
	}
	rd.passes = slices.Contains(rd.info.Requires, FeaturePagePasses)
	return rd, nil
}

// Features are the names of INFO.requires this package knows (see
// SPEC.md, "How the format evolves").
var Features = []string{FeatureFileLocks, FeatureSysVIPC, FeaturePagePasses, FeatureProcPID, FeatureSocketFilters}

// FeatureProcPID: a process holds a file of another process's /proc
// folder (File.ProcPID), which a reader that ignores proc_pid would open
// in the holder's folder.
const FeatureProcPID = "proc-pid"

// unknownFeatures returns those of req that Features lacks, quoted.
func unknownFeatures(req []string) []string {
	var out []string
	for _, f := range req {
		if !slices.Contains(Features, f) {
			out = append(out, strconv.Quote(f))
		}
		if len(out) == 4 {
			break
		}
	}
	return out
}

func notImage(b []byte) error {
	e := &FormatError{Kind: NotImage, Record: -1}
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		e.Msg = "gzip data: decompress it first"
	case len(b) >= 6 && string(b[1:6]) == Magic[1:6]:
		e.Msg = "bad magic: was it transferred as text?"
	}
	return e
}

// Info returns the INFO record.
func (r *Reader) Info() Info { return r.info }

// Version returns the format version of the image.
func (r *Reader) Version() (major, minor int) { return r.major, r.minor }

// Machine returns the ELF machine number the image was made on.
func (r *Reader) Machine() int { return r.machine }

// Offset returns how many bytes of the (decompressed) image have been read.
func (r *Reader) Offset() int64 { return r.off }

// Compression returns how the whole input is compressed (None for an
// image that is not compressed as a whole).
func (r *Reader) Compression() Compression { return r.whole }

// fail makes err a FormatError at the current offset and records it.
func (r *Reader) fail(kind ErrorKind, record int, msg string) error {
	return r.failAt(kind, r.off, msg, record)
}

// failAt records a FormatError at offset off about the current record
// (or the given record index).
func (r *Reader) failAt(kind ErrorKind, off int64, msg string, record ...int) error {
	e := &FormatError{Kind: kind, Offset: off, Record: r.cur.Index, Msg: msg}
	if len(record) > 0 {
		e.Record = record[0]
	}
	if e.Record >= 0 && e.Record == r.cur.Index {
		e.Type = r.cur.Type
	}
	r.err = e
	r.release()
	return e
}

// inputError turns an error from the input into the error to return.
func (r *Reader) inputError(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if r.whole != None {
			// Said of the decompressed stream: the input may be cut
			// anywhere in a block that was not decoded.
			return r.fail(Truncated, r.cur.Index, fmt.Sprintf("the %v-compressed input ends in %s", r.whole, what))
		}
		return r.fail(Truncated, r.cur.Index, "input ends in "+what)
	}
	if r.whole != None && (r.srcErr.err == nil || r.srcErr.err != err) {
		return r.fail(Corrupt, r.cur.Index, fmt.Sprintf("%v decompression: %v", r.whole, err))
	}
	r.err = fmt.Errorf("read image at byte %d: %w", r.off, err)
	r.release()
	return r.err
}

func (r *Reader) readFull(p []byte, record int, what string) error {
	n, err := io.ReadFull(r.src, p)
	r.off += int64(n)
	if err != nil {
		r.cur.Index = record
		return r.inputError(err, what)
	}
	return nil
}

// Close frees what the Reader holds. It is needed only for a Reader left
// before Next returned io.EOF or an error; it does not close the
// underlying reader.
func (r *Reader) Close() error {
	r.release()
	if r.err == nil && !r.done {
		r.err = errors.New("format: read from closed image reader")
	}
	return nil
}

// release frees the whole-stream decompressor.
func (r *Reader) release() {
	if r.zstream != nil {
		r.zstream.Close()
		r.zstream = nil
	}
}

// Next reads the next record header and returns it; the payload, if the
// caller wants it, is read with Payload, DecodeJSON, ReadPages or
// ReadFileData. Next skips the unread payload of the previous record
// (checking its checksum) and unknown ancillary records, rejects unknown
// critical ones, and reads and checks the END record itself: it then
// returns io.EOF.
func (r *Reader) Next() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.done {
		return Header{}, io.EOF
	}
	if r.pending {
		if err := r.skip(); err != nil {
			return Header{}, err
		}
	}
	for {
		idx := int(r.records)
		off := r.off
		what := "a record header"
		if idx > 0 {
			what = "a record header (no END record)"
		}
		r.cur = Header{Index: idx, Offset: off}
		if err := r.readFull(r.hdr[:recordHeaderSize], idx, what); err != nil {
			return Header{}, err
		}
		h := r.hdr[:recordHeaderSize]
		if crc(h[:16]) != binary.LittleEndian.Uint32(h[16:]) {
			return Header{}, r.failAt(Corrupt, off, "record header checksum mismatch")
		}
		t := RecordType(binary.LittleEndian.Uint16(h[0:]))
		flags := binary.LittleEndian.Uint16(h[2:])
		stored := int64(binary.LittleEndian.Uint32(h[4:]))
		raw := int64(binary.LittleEndian.Uint32(h[8:]))
		r.cur.Type = t
		r.cur.Raw = int(raw)
		r.curComp = Compression(flags & 0xf)
		r.stored = int(stored)
		r.cur.Stored, r.cur.Compression = r.stored, r.curComp
		r.sum = binary.LittleEndian.Uint32(h[12:])
		desc, known := recordTypes[t]
		limit := int64(capOf(t))
		switch {
		case t == 0:
			return Header{}, r.failAt(Corrupt, off, "record type 0")
		case !known && t.Critical():
			return Header{}, r.failAt(Unsupported, off, fmt.Sprintf("unknown critical record type 0x%04x", uint16(t)))
		case flags&^0xf != 0:
			return Header{}, r.failAt(Unsupported, off, fmt.Sprintf("unknown record flags 0x%04x", flags&^0xf))
		case r.curComp > XZ:
			return Header{}, r.failAt(Unsupported, off, fmt.Sprintf("unknown compression %d", r.curComp))
		case stored > limit || raw > limit:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("payload length %d exceeds the cap of %d", max(stored, raw), limit))
		case r.curComp == None && stored != raw:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("stored length %d differs from raw length %d in an uncompressed record", stored, raw))
		case t == TypeInfo && idx != 0:
			return Header{}, r.failAt(Corrupt, off, "INFO record is not the first")
		case t != TypeInfo && idx == 0:
			return Header{}, r.failAt(Corrupt, off, "first record is not INFO")
		case t == TypeProcess && r.processes >= MaxProcesses:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("more than %d PROCESS records", MaxProcesses))
		case t == TypeProcess && !r.files:
			return Header{}, r.failAt(Corrupt, off, "PROCESS record before the FILES record")
		case t == TypeFiles && r.files:
			return Header{}, r.failAt(Corrupt, off, "second FILES record")
		case (t == TypeFiles || t == TypeProcess) && r.meta+uint64(raw) > MaxMeta:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("FILES and PROCESS records hold more than %d bytes together", MaxMeta))
		case t == TypePages && r.processes == 0:
			return Header{}, r.failAt(Corrupt, off, "PAGES record before any PROCESS record")
		case (t == TypePass || t == TypeDrop) && !r.passes:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("%v record in an image that does not require %s", desc.name, FeaturePagePasses))
		case (t == TypePass || t == TypeDrop) && r.files:
			return Header{}, r.failAt(Corrupt, off, desc.name+" record after the FILES record")
		case t == TypePass && (raw <= pagesPrefix || (raw-pagesPrefix)%PageSize != 0):
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("PASS payload of %d bytes is not an address and whole pages", raw))
		case t == TypeDrop && raw != dropSize:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("DROP payload of %d bytes (want %d)", raw, dropSize))
		case t == TypeEnd:
			return Header{}, r.end()
		case t == TypePages:
			if raw <= pagesPrefix || (raw-pagesPrefix)%PageSize != 0 {
				return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("PAGES payload of %d bytes is not an address and whole pages", raw))
			}
			r.inPages = true
			r.pageBytes += uint64(raw - pagesPrefix)
		case t == TypePass:
			r.pageBytes += uint64(raw - pagesPrefix)
		case t == TypeFileData && raw < fileDataPrefix:
			return Header{}, r.failAt(Corrupt, off, fmt.Sprintf("FILEDATA payload of %d bytes is too short", raw))
		case t.Critical() && r.inPages:
			return Header{}, r.failAt(Corrupt, off, desc.name+" record after PAGES records")
		}
		switch t {
		case TypeProcess:
			r.processes++
			r.meta += uint64(raw)
		case TypeFiles:
			r.files = true
			r.meta += uint64(raw)
		}
		r.records++
		r.rawBytes += uint64(raw)
		r.chain = crc32c.Update(r.chain, h[16:20])
		r.pending = true
		if !known {
			if err := r.skip(); err != nil {
				return Header{}, err
			}
			continue
		}
		return r.cur, nil
	}
}

// end reads and checks the END record whose header is in r.hdr.
func (r *Reader) end() error {
	off := r.cur.Offset
	if r.curComp != None || r.stored != endPayloadSize {
		return r.failAt(Corrupt, off, "END record is compressed or not 28 bytes")
	}
	var p [endPayloadSize]byte
	if err := r.readFull(p[:], r.cur.Index, "the END record"); err != nil {
		return err
	}
	poff := off + recordHeaderSize
	if crc(p[:]) != r.sum {
		return r.failAt(Corrupt, poff, "payload checksum mismatch")
	}
	check := func(field string, got, want uint64) error {
		if got != want {
			return r.failAt(Corrupt, poff, fmt.Sprintf("END %s is %d; the image has %d", field, got, want))
		}
		return nil
	}
	le := binary.LittleEndian
	if err := check("record count", le.Uint64(p[0:]), r.records); err != nil {
		return err
	}
	if err := check("page bytes", le.Uint64(p[8:]), r.pageBytes); err != nil {
		return err
	}
	if err := check("payload bytes", le.Uint64(p[16:]), r.rawBytes); err != nil {
		return err
	}
	if got := le.Uint32(p[24:]); got != r.chain {
		return r.failAt(Corrupt, poff, fmt.Sprintf("END chain checksum 0x%08x; the records give 0x%08x", got, r.chain))
	}
	r.records++
	r.done = true
	r.release()
	return io.EOF
}

// skip reads the current payload, checking only its checksum.
func (r *Reader) skip() error {
	r.pending = false
	if len(r.scratch) < 64<<10 {
		r.scratch = make([]byte, 64<<10)
	}
	poff := r.off
	var sum uint32
	for left := r.stored; left > 0; {
		b := r.scratch[:min(left, len(r.scratch))]
		if err := r.readFull(b, r.cur.Index, "a payload"); err != nil {
			return err
		}
		sum = crc32c.Update(sum, b)
		left -= len(b)
	}
	if sum != r.sum {
		return r.failAt(Corrupt, poff, "payload checksum mismatch")
	}
	return nil
}

var errNoPayload = errors.New("format: no current record payload to read")

// Payload reads and returns the payload of the current record, checked
// and decompressed, in a new slice.
func (r *Reader) Payload() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.pending {
		return nil, errNoPayload
	}
	pre := prefixOf(r.cur.Type)
	p := make([]byte, r.cur.Raw)
	_, data, err := r.read(p, 0)
	if err != nil {
		return nil, err
	}
	if pre > 0 {
		if err := r.checkContents(data[:pre], len(data)-pre); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// DecodeJSON reads the current payload as JSON into v.
func (r *Reader) DecodeJSON(v any) error {
	p, err := r.Payload()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p, v); err != nil {
		return r.failAt(Corrupt, r.cur.Offset+recordHeaderSize, "bad JSON: "+err.Error())
	}
	return nil
}

// ReadPages reads the current record, which must be PAGES, into buf,
// which must hold the record's pages (MaxPageRun bytes always do), and
// returns the process they belong to (the number of its PROCESS record,
// from 0), their address and the memory. data is a part of buf: with a
// buffer of PageBufSize bytes or more, a compressed record is
// decompressed right there; with a smaller one it is decompressed
// elsewhere and copied. The checksum, the process number and the order
// are checked before ReadPages returns.
func (r *Reader) ReadPages(buf []byte) (task uint32, addr uint64, data []byte, err error) {
	prefix, data, err := r.readBulk(TypePages, buf, pagesPrefix)
	if err != nil {
		return 0, 0, nil, err
	}
	return binary.LittleEndian.Uint32(prefix), binary.LittleEndian.Uint64(prefix[8:]), data, nil
}

// ReadFileData reads the current record, which must be FILEDATA, into
// buf as ReadPages does (MaxFileRun bytes always suffice), and returns
// its file index, offset and contents.
func (r *Reader) ReadFileData(buf []byte) (index uint32, off uint64, data []byte, err error) {
	prefix, data, err := r.readBulk(TypeFileData, buf, fileDataPrefix)
	if err != nil {
		return 0, 0, nil, err
	}
	return binary.LittleEndian.Uint32(prefix), binary.LittleEndian.Uint64(prefix[8:]), data, nil
}

// ReadPass reads the current record, which must be PASS, as ReadPages
// reads a PAGES record. The process is checked against the number of
// PROCESS records once they are all read (by Next).
func (r *Reader) ReadPass(buf []byte) (task uint32, addr uint64, data []byte, err error) {
	prefix, data, err := r.readBulk(TypePass, buf, pagesPrefix)
	if err != nil {
		return 0, 0, nil, err
	}
	return binary.LittleEndian.Uint32(prefix), binary.LittleEndian.Uint64(prefix[8:]), data, nil
}

// ReadDrop reads the current record, which must be DROP, and returns the
// process and the range of memory [addr, addr+length) whose earlier
// copies it voids.
func (r *Reader) ReadDrop() (task uint32, addr, length uint64, err error) {
	if r.err == nil && (!r.pending || r.cur.Type != TypeDrop) {
		return 0, 0, 0, fmt.Errorf("format: current record is not %v", TypeDrop)
	}
	p, err := r.Payload()
	if err != nil {
		return 0, 0, 0, err
	}
	le := binary.LittleEndian
	return le.Uint32(p), le.Uint64(p[8:]), le.Uint64(p[16:]), nil
}

// prefixOf is the length of the fixed part of a payload of type t that
// checkContents checks: the prefix of PAGES, PASS and FILEDATA, the whole
// of DROP.
func prefixOf(t RecordType) int {
	switch t {
	case TypePages, TypePass:
		return pagesPrefix
	case TypeFileData:
		return fileDataPrefix
	case TypeDrop:
		return dropSize
	}
	return 0
}

func (r *Reader) readBulk(t RecordType, buf []byte, pre int) (prefix, data []byte, err error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	if !r.pending || r.cur.Type != t {
		return nil, nil, fmt.Errorf("format: current record is not %v", t)
	}
	n := r.cur.Raw - pre
	if cap(buf) < n {
		return nil, nil, fmt.Errorf("format: buffer of %d bytes for %d bytes of %v", cap(buf), n, t)
	}
	prefix, data, err = r.read(buf, pre)
	if err != nil {
		return nil, nil, err
	}
	if err := r.checkContents(prefix, len(data)); err != nil {
		return nil, nil, err
	}
	return prefix, data, nil
}

// checkContents checks the prefix of a PAGES or FILEDATA payload
// followed by n bytes.
func (r *Reader) checkContents(prefix []byte, n int) error {
	poff := r.cur.Offset + recordHeaderSize
	switch r.cur.Type {
	case TypePages:
		task := binary.LittleEndian.Uint32(prefix)
		addr := binary.LittleEndian.Uint64(prefix[8:])
		end := addr + uint64(n)
		switch {
		case int64(task) >= int64(r.processes):
			return r.failAt(Corrupt, poff, fmt.Sprintf("PAGES of process %d; the image has %d", task, r.processes))
		case binary.LittleEndian.Uint32(prefix[4:]) != 0:
			return r.failAt(Corrupt, poff, "PAGES reserved field is not zero")
		case r.pagesRead && task < r.task:
			return r.failAt(Corrupt, poff, fmt.Sprintf("PAGES of process %d after those of process %d", task, r.task))
		case addr%PageSize != 0:
			return r.failAt(Corrupt, poff, fmt.Sprintf("PAGES address 0x%x is not page aligned", addr))
		case end != 0 && end < addr:
			return r.failAt(Corrupt, poff, fmt.Sprintf("PAGES at 0x%x of %d bytes go beyond the address space", addr, n))
		case r.pagesRead && task == r.task && addr < r.nextAddr:
			return r.failAt(Corrupt, poff, fmt.Sprintf("PAGES at 0x%x below the end of the previous PAGES at 0x%x", addr, r.nextAddr))
		}
		r.pagesRead = true
		r.task = task
		r.nextAddr = end
		if end == 0 {
			r.nextAddr = ^uint64(0)
		}
	case TypePass, TypeDrop:
		le := binary.LittleEndian
		name := r.cur.Type.String()
		task, addr := le.Uint32(prefix), le.Uint64(prefix[8:])
		length := uint64(n)
		if r.cur.Type == TypeDrop {
			length = le.Uint64(prefix[16:])
		}
		switch {
		case le.Uint32(prefix[4:]) != 0:
			return r.failAt(Corrupt, poff, name+" reserved field is not zero")
		case addr%PageSize != 0 || length%PageSize != 0 || length == 0:
			return r.failAt(Corrupt, poff, fmt.Sprintf("%s at 0x%x of %d bytes: not whole pages", name, addr, length))
		case addr > MaxPassAddress || length > MaxPassAddress-addr:
			return r.failAt(Corrupt, poff, fmt.Sprintf("%s at 0x%x of %d bytes goes beyond 2^56", name, addr, length))
		case task >= MaxProcesses:
			return r.failAt(Corrupt, poff, fmt.Sprintf("%s of process %d; an image has at most %d", name, task, MaxProcesses))
		}
	case TypeFileData:
		off := binary.LittleEndian.Uint64(prefix[8:])
		switch {
		case binary.LittleEndian.Uint32(prefix[4:]) != 0:
			return r.failAt(Corrupt, poff, "FILEDATA reserved field is not zero")
		case off > 1<<63 || uint64(n) > 1<<63-off:
			return r.failAt(Corrupt, poff, fmt.Sprintf("FILEDATA at offset %d of %d bytes goes beyond 2^63", off, n))
		}
	}
	return nil
}

// read reads the current stored payload and checks it. Uncompressed, the
// first pre bytes go to r.hdr and the rest to buf. Compressed, the raw
// payload is decompressed into buf when its capacity allows, else into a
// buffer of its own and the part after the prefix copied to buf.
func (r *Reader) read(buf []byte, pre int) (prefix, data []byte, err error) {
	r.pending = false
	poff := r.off
	raw := r.cur.Raw
	if r.curComp == None {
		var sum uint32
		if pre > 0 {
			if err := r.readFull(r.hdr[:pre], r.cur.Index, "a payload"); err != nil {
				return nil, nil, err
			}
			sum = crc(r.hdr[:pre])
		}
		b := buf[:cap(buf)][:raw-pre]
		if err := r.readFull(b, r.cur.Index, "a payload"); err != nil {
			return nil, nil, err
		}
		if crc32c.Update(sum, b) != r.sum {
			return nil, nil, r.failAt(Corrupt, poff, "payload checksum mismatch")
		}
		return r.hdr[:pre], b, nil
	}
	if cap(r.scratch) < r.stored {
		r.scratch = make([]byte, r.stored)
	}
	s := r.scratch[:r.stored]
	if err := r.readFull(s, r.cur.Index, "a payload"); err != nil {
		return nil, nil, err
	}
	if crc(s) != r.sum {
		return nil, nil, r.failAt(Corrupt, poff, "payload checksum mismatch")
	}
	dst := buf[:cap(buf)]
	inPlace := len(dst) >= raw
	if !inPlace {
		if cap(r.dec) < raw {
			r.dec = make([]byte, raw)
		}
		dst = r.dec
	}
	dst = dst[:raw]
	if err := decompress(r.curComp, dst, s); err != nil {
		return nil, nil, r.failAt(Corrupt, poff, err.Error())
	}
	if inPlace {
		return dst[:pre], dst[pre:], nil
	}
	n := copy(buf[:raw-pre], dst[pre:])
	return dst[:pre], buf[:n], nil
}

// payloadSource yields the stored payload of the current record from the
// input, checksumming it on the way.
type payloadSource struct {
	r    *Reader
	left int
	sum  uint32
	err  error // from the input, not io.EOF
}

func (p *payloadSource) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if len(b) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.src.Read(b)
	p.r.off += int64(n)
	p.left -= n
	p.sum = crc32c.Update(p.sum, b[:n])
	if err == io.EOF && p.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	if p.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// drain reads what is left of the payload.
func (p *payloadSource) drain(buf []byte) {
	for p.left > 0 && p.err == nil {
		if _, err := p.Read(buf); err != nil && err != io.EOF {
			return
		}
	}
}

// check reads the current payload and checks what Payload, ReadPages and
// ReadFileData check (its checksum, that it decompresses to its raw
// length, the PAGES and FILEDATA prefixes) while holding none of it:
// memory is a small buffer and, for a compressed payload, a decompressor
// of at most MaxRecordWindow. It is how Verify reads every payload.
func (r *Reader) check() error { return r.checkTo(io.Discard) }

// checkTo is check that also writes the payload (past any prefix) to w as
// it streams, holding none of it.
func (r *Reader) checkTo(w io.Writer) error {
	if r.err != nil {
		return r.err
	}
	r.pending = false
	poff := r.off
	pre := prefixOf(r.cur.Type)
	if len(r.scratch) < 64<<10 {
		r.scratch = make([]byte, 64<<10)
	}
	src := &payloadSource{r: r, left: r.stored}
	var in io.Reader = src
	done := func() {}
	var derr error // from the decompressor
	if r.curComp != None {
		var err error
		if in, done, err = decompressor(r.curComp, src); err != nil {
			derr, in = err, nil
		}
	}
	var n int64
	if in != nil {
		k, err := io.ReadFull(in, r.hdr[:pre])
		n = int64(k)
		if err == nil {
			// One byte more than the raw length, to see a longer one.
			var m int64
			m, err = io.CopyBuffer(w, io.LimitReader(in, int64(r.cur.Raw-pre)+1), r.scratch)
			n += m
		}
		done()
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = nil // short: n says it
		}
		if err != nil && src.err == nil && r.curComp != None {
			derr = fmt.Errorf("%v: %v", r.curComp, err)
		}
	}
	src.drain(r.scratch)
	if src.err != nil {
		return r.inputError(src.err, "a payload")
	}
	if src.sum != r.sum {
		return r.failAt(Corrupt, poff, "payload checksum mismatch")
	}
	if derr != nil {
		return r.failAt(Corrupt, poff, derr.Error())
	}
	if n != int64(r.cur.Raw) {
		return r.failAt(Corrupt, poff, errRawLength.Error())
	}
	if pre > 0 {
		return r.checkContents(r.hdr[:pre], r.cur.Raw-pre)
	}
	return nil
}
