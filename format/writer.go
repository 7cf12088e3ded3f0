package format

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"procs/format/internal/crc32c"
)

func crc(p []byte) uint32 { return crc32c.Checksum(p) }

// Magic is the first eight bytes of every image.
const Magic = "\x89PROCS\r\n"

// WriterOptions say how a Writer compresses PAGES and FILEDATA payloads.
// Other records are never compressed.
type WriterOptions struct {
	Compression Compression
	// Level is the zstd level as in zstd(1), 1 to 22; 0 means the
	// default (3). It is ignored for xz.
	Level int
	// Concurrency is how many records are compressed at once, in
	// goroutines, when Compression is not None. 0 and 1 mean the caller's
	// goroutine only. Each unit costs about 17 MiB (buffers and encoder
	// state) with zstd.
	Concurrency int
}

// A Writer writes one image. It is unusable after its first error: every
// later call returns that error. It is not safe for concurrent use.
type Writer struct {
	w    io.Writer
	opts WriterOptions
	cp   *compressor
	err  error
	n    int64

	// what END will hold
	records   uint64
	pageBytes uint64
	rawBytes  uint64
	chain     uint32

	inPages   bool   // a PAGES record was written
	task      uint32 // the process of the last PAGES record
	nextAddr  uint64 // its PAGES may start at or after this address
	processes int    // PROCESS records written
	files     bool   // the FILES record was written
	meta      uint64 // bytes of FILES and PROCESS payloads
	passes    bool   // INFO requires page-passes: PASS and DROP may come
	closed    bool

	hdr [recordHeaderSize + fileDataPrefix]byte

	// jobs: compressed records in flight, oldest first; free: spare jobs.
	jobs []*job
	free []*job
}

// job is one PAGES or FILEDATA record being compressed.
type job struct {
	t    RecordType
	raw  []byte // prefix and data: the raw payload
	out  []byte // compressed
	err  error
	done chan struct{}
}

var errClosed = errors.New("format: write to closed image writer")

// NewWriter writes the file header and the INFO record to w.
func NewWriter(w io.Writer, info Info, opts WriterOptions) (*Writer, error) {
	cp, err := newCompressor(opts.Compression, opts.Level, max(opts.Concurrency, 1))
	if err != nil {
		return nil, fmt.Errorf("format: %v", err)
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	iw := &Writer{w: w, opts: opts, cp: cp}
	iw.passes = slices.Contains(info.Requires, FeaturePagePasses)
	var h [fileHeaderSize]byte
	copy(h[:], Magic)
	binary.LittleEndian.PutUint16(h[8:], MajorVersion)
	binary.LittleEndian.PutUint16(h[10:], MinorVersion)
	binary.LittleEndian.PutUint16(h[12:], MachineX8664)
	binary.LittleEndian.PutUint16(h[14:], pageShift)
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[20:], crc(h[:20]))
	if err := iw.write(h[:]); err != nil {
		cp.close()
		return nil, err
	}
	p, err := json.Marshal(info)
	if err != nil {
		cp.close()
		return nil, fmt.Errorf("format: INFO: %v", err)
	}
	if err := iw.emit(TypeInfo, None, nil, p, len(p)); err != nil {
		cp.close()
		return nil, err
	}
	return iw, nil
}

// Written returns the number of bytes written to the underlying writer.
func (w *Writer) Written() int64 { return w.n }

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
	}
	return err
}

// fail records err as the writer's error and returns it.
func (w *Writer) fail(format string, args ...any) error {
	w.err = fmt.Errorf("format: "+format, args...)
	return w.err
}

// emit writes one record whose stored payload is prefix followed by body,
// compressed with c, and of raw length raw. The header and prefix go out
// in one write, body in a second.
func (w *Writer) emit(t RecordType, c Compression, prefix, body []byte, raw int) error {
	return w.emitSum(t, c, prefix, body, raw, payloadSum(prefix, body))
}

// payloadSum is the checksum of a stored payload made of prefix and body.
func payloadSum(prefix, body []byte) uint32 {
	return crc32c.Update(crc(prefix), body)
}

// emitSum is emit with the payload's checksum sum already computed.
func (w *Writer) emitSum(t RecordType, c Compression, prefix, body []byte, raw int, sum uint32) error {
	if w.err != nil {
		return w.err
	}
	stored := len(prefix) + len(body)
	if stored > capOf(t) || raw > capOf(t) {
		return w.fail("%v payload of %d bytes exceeds the cap of %d", t, max(stored, raw), capOf(t))
	}
	h := w.hdr[:recordHeaderSize+len(prefix)]
	binary.LittleEndian.PutUint16(h[0:], uint16(t))
	binary.LittleEndian.PutUint16(h[2:], uint16(c))
	binary.LittleEndian.PutUint32(h[4:], uint32(stored))
	binary.LittleEndian.PutUint32(h[8:], uint32(raw))
	binary.LittleEndian.PutUint32(h[12:], sum)
	binary.LittleEndian.PutUint32(h[16:], crc(h[:16]))
	copy(h[recordHeaderSize:], prefix)
	w.records++
	w.rawBytes += uint64(raw)
	w.chain = crc32c.Update(w.chain, h[16:20])
	if err := w.write(h); err != nil {
		return err
	}
	if len(body) > 0 {
		return w.write(body)
	}
	return nil
}

func (w *Writer) check() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		w.err = errClosed
		return w.err
	}
	return nil
}

// WriteRecord writes a record of type t with an uncompressed payload. t
// must be a known type or an ancillary one, and not INFO, END or PAGES,
// which the Writer writes itself. Critical records must come before the
// first PAGES record.
func (w *Writer) WriteRecord(t RecordType, payload []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	switch t {
	case TypeInfo, TypeEnd, TypePages, TypePass, TypeDrop:
		return w.fail("WriteRecord cannot write %v records", t)
	case 0:
		return w.fail("record type 0 is invalid")
	case TypeFileData:
		if len(payload) < fileDataPrefix || binary.LittleEndian.Uint32(payload[4:]) != 0 {
			return w.fail("malformed FILEDATA payload")
		}
	}
	if _, ok := recordTypes[t]; !ok && t.Critical() {
		return w.fail("unknown critical record type 0x%04x", uint16(t))
	}
	if t.Critical() && w.inPages {
		return w.fail("%v record after PAGES records", t)
	}
	switch {
	case t == TypeFiles && w.files:
		return w.fail("second FILES record")
	case t == TypeProcess && !w.files:
		return w.fail("PROCESS record before the FILES record")
	case t == TypeProcess && w.processes >= MaxProcesses:
		return w.fail("more than %d PROCESS records", MaxProcesses)
	case (t == TypeFiles || t == TypeProcess) && w.meta+uint64(len(payload)) > MaxMeta:
		return w.fail("FILES and PROCESS records of more than %d bytes together", MaxMeta)
	}
	switch t {
	case TypeFiles:
		w.files = true
		w.meta += uint64(len(payload))
	case TypeProcess:
		w.processes++
		w.meta += uint64(len(payload))
	}
	if err := w.flush(); err != nil {
		return err
	}
	return w.emit(t, None, nil, payload, len(payload))
}

// WriteJSON writes v encoded as JSON as a record of type t, as
// WriteRecord does.
func (w *Writer) WriteJSON(t RecordType, v any) error {
	if err := w.check(); err != nil {
		return err
	}
	p, err := json.Marshal(v)
	if err != nil {
		return w.fail("%v: %v", t, err)
	}
	return w.WriteRecord(t, p)
}

// WritePages writes the memory data found at address addr of the
// process numbered task (the order of its PROCESS record, from 0), as one
// or more PAGES records of at most MaxPageRun bytes each. addr must be a
// multiple of PageSize, len(data) a positive multiple of it, and (task,
// addr) at or after the end of the previous call's run: a process's pages
// in increasing address order, processes in the order of their records.
// data is not used after WritePages returns.
func (w *Writer) WritePages(task uint32, addr uint64, data []byte) error {
	return w.WritePageRun(w.PreparePages(task, addr, data))
}

// A PageRun is memory data found at an address, made ready by
// PreparePages to be written by WritePageRun.
type PageRun struct {
	t    RecordType // PAGES or PASS
	task uint32
	addr uint64
	data []byte
	sums []uint32 // checksum of each record's payload; nil if compressed
}

// Len is the number of bytes of memory in r.
func (r PageRun) Len() int { return len(r.data) }

// pagesHead is the prefix of a PAGES payload.
func pagesHead(task uint32, addr uint64) (p [pagesPrefix]byte) {
	binary.LittleEndian.PutUint32(p[0:], task)
	binary.LittleEndian.PutUint64(p[8:], addr)
	return p
}

// PreparePages does the part of WritePages that needs no order: it
// checksums data, found at addr, for WritePageRun (when the Writer
// compresses, WritePageRun does that work instead). Unlike the Writer's
// other methods it may be called from several goroutines at once, also
// while they run: it is how a caller spreads the checksums of a large
// image over the machine's cores. data must stay unchanged until the
// PageRun is written.
func (w *Writer) PreparePages(task uint32, addr uint64, data []byte) PageRun {
	return w.prepare(TypePages, task, addr, data)
}

// PreparePass is PreparePages for a PASS record (see WritePass).
func (w *Writer) PreparePass(task uint32, addr uint64, data []byte) PageRun {
	return w.prepare(TypePass, task, addr, data)
}

func (w *Writer) prepare(t RecordType, task uint32, addr uint64, data []byte) PageRun {
	r := PageRun{t: t, task: task, addr: addr, data: data}
	if w.opts.Compression != None || len(data)%PageSize != 0 {
		return r // WritePageRun checksums, or refuses
	}
	for off := 0; off < len(data); off += MaxPageRun {
		prefix := pagesHead(task, addr+uint64(off))
		r.sums = append(r.sums, payloadSum(prefix[:], data[off:min(len(data), off+MaxPageRun)]))
	}
	return r
}

// WritePageRun writes a PageRun made by PreparePages, as WritePages
// writes the same address and data.
func (w *Writer) WritePageRun(r PageRun) error {
	if err := w.check(); err != nil {
		return err
	}
	addr, data := r.addr, r.data
	if addr%PageSize != 0 || len(data) == 0 || len(data)%PageSize != 0 {
		return w.fail("%v at 0x%x of %d bytes: not whole pages", r.t, addr, len(data))
	}
	if r.t == TypePass {
		return w.writePass(r)
	}
	if int64(r.task) >= int64(w.processes) {
		return w.fail("PAGES of process %d: the image has %d PROCESS records", r.task, w.processes)
	}
	if w.inPages && (r.task < w.task || r.task == w.task && addr < w.nextAddr) {
		return w.fail("PAGES of process %d at 0x%x: before the end of the previous run (process %d, 0x%x)", r.task, addr, w.task, w.nextAddr)
	}
	end := addr + uint64(len(data))
	if end != 0 && end < addr {
		return w.fail("PAGES at 0x%x of %d bytes: beyond the address space", addr, len(data))
	}
	summed := w.opts.Compression == None && len(r.sums) == (len(data)+MaxPageRun-1)/MaxPageRun
	w.inPages = true
	w.task = r.task
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), MaxPageRun)
		prefix := pagesHead(r.task, addr)
		var err error
		if summed {
			err = w.emitSum(TypePages, None, prefix[:], data[:n], pagesPrefix+n, r.sums[i])
		} else {
			err = w.bulk(TypePages, prefix[:], data[:n])
		}
		if err != nil {
			return err
		}
		w.pageBytes += uint64(n)
		addr += uint64(n)
		data = data[n:]
	}
	w.nextAddr = end
	if end == 0 { // the run ends at the top of the address space
		w.nextAddr = ^uint64(0)
	}
	return nil
}

// WritePass writes the memory data found at address addr of the process
// numbered task as one or more PASS records: a copy of its pages made
// while the processes ran, which supersedes every earlier copy (SPEC.md,
// "Page passes"). The image's INFO must require FeaturePagePasses; PASS
// records come before the FILES record, in any order, and task must be
// below the number of PROCESS records written later.
func (w *Writer) WritePass(task uint32, addr uint64, data []byte) error {
	return w.WritePageRun(w.PreparePass(task, addr, data))
}

// writePass writes a PageRun of PASS records.
func (w *Writer) writePass(r PageRun) error {
	if err := w.passAllowed(TypePass, r.task, r.addr, uint64(len(r.data))); err != nil {
		return err
	}
	summed := w.opts.Compression == None && len(r.sums) == (len(r.data)+MaxPageRun-1)/MaxPageRun
	for i, addr, data := 0, r.addr, r.data; len(data) > 0; i++ {
		n := min(len(data), MaxPageRun)
		prefix := pagesHead(r.task, addr)
		var err error
		if summed {
			err = w.emitSum(TypePass, None, prefix[:], data[:n], pagesPrefix+n, r.sums[i])
		} else {
			err = w.bulk(TypePass, prefix[:], data[:n])
		}
		if err != nil {
			return err
		}
		w.pageBytes += uint64(n)
		addr += uint64(n)
		data = data[n:]
	}
	return nil
}

// WriteDrop writes a DROP record: the pages [addr, addr+length) of the
// process numbered task are no longer those of any earlier PASS record
// (unmapped, or dropped as MADV_DONTNEED drops them). The rules of
// WritePass apply.
func (w *Writer) WriteDrop(task uint32, addr, length uint64) error {
	if err := w.check(); err != nil {
		return err
	}
	if addr%PageSize != 0 || length%PageSize != 0 || length == 0 {
		return w.fail("DROP at 0x%x of %d bytes: not whole pages", addr, length)
	}
	if err := w.passAllowed(TypeDrop, task, addr, length); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	var p [dropSize]byte
	binary.LittleEndian.PutUint32(p[0:], task)
	binary.LittleEndian.PutUint64(p[8:], addr)
	binary.LittleEndian.PutUint64(p[16:], length)
	return w.emit(TypeDrop, None, nil, p[:], dropSize)
}

// passAllowed checks what PASS and DROP records share: the feature, their
// place before FILES, the range.
func (w *Writer) passAllowed(t RecordType, task uint32, addr, length uint64) error {
	switch {
	case !w.passes:
		return w.fail("%v record in an image whose INFO does not require %s", t, FeaturePagePasses)
	case w.files:
		return w.fail("%v record after the FILES record", t)
	case addr > MaxPassAddress || length > MaxPassAddress-addr:
		return w.fail("%v at 0x%x of %d bytes: beyond 2^56", t, addr, length)
	case task >= MaxProcesses:
		return w.fail("%v of process %d; an image has at most %d", t, task, MaxProcesses)
	}
	return nil
}

// WriteFileData writes contents of file number index (as the engine
// records define it) found at offset off, as one or more FILEDATA
// records. It must be called before the first WritePages.
func (w *Writer) WriteFileData(index uint32, off uint64, data []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	if w.inPages {
		return w.fail("FILEDATA record after PAGES records")
	}
	if off > 1<<63 || uint64(len(data)) > 1<<63-off {
		return w.fail("FILEDATA at offset %d of %d bytes: beyond 2^63", off, len(data))
	}
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), MaxFileRun)
		var prefix [fileDataPrefix]byte
		binary.LittleEndian.PutUint32(prefix[0:], index)
		binary.LittleEndian.PutUint64(prefix[8:], off)
		if err := w.bulk(TypeFileData, prefix[:], data[:n]); err != nil {
			return err
		}
		off += uint64(n)
		data = data[n:]
	}
	return nil
}

// bulk writes a PAGES or FILEDATA record, compressed as the options say.
func (w *Writer) bulk(t RecordType, prefix, data []byte) error {
	raw := len(prefix) + len(data)
	if w.opts.Compression == None {
		return w.emit(t, None, prefix, data, raw)
	}
	var j *job
	if len(w.jobs) >= w.opts.Concurrency {
		if err := w.finish(); err != nil {
			return err
		}
	}
	if n := len(w.free); n > 0 {
		j, w.free = w.free[n-1], w.free[:n-1]
	} else {
		j = &job{}
	}
	j.t = t
	j.raw = append(append(j.raw[:0], prefix...), data...)
	j.done = make(chan struct{})
	if w.opts.Concurrency == 1 {
		j.out, j.err = w.cp.compress(j.out, j.raw)
		close(j.done)
	} else {
		go func() {
			j.out, j.err = w.cp.compress(j.out, j.raw)
			close(j.done)
		}()
	}
	w.jobs = append(w.jobs, j)
	if w.opts.Concurrency == 1 {
		return w.finish()
	}
	return nil
}

// finish waits for the oldest job and writes its record.
func (w *Writer) finish() error {
	j := w.jobs[0]
	<-j.done
	w.jobs = append(w.jobs[:0], w.jobs[1:]...)
	defer func() { w.free = append(w.free, j) }()
	if w.err != nil {
		return w.err
	}
	if j.err != nil {
		return w.fail("%v compression: %v", w.opts.Compression, j.err)
	}
	if len(j.out) >= len(j.raw) {
		return w.emit(j.t, None, nil, j.raw, len(j.raw))
	}
	return w.emit(j.t, w.opts.Compression, nil, j.out, len(j.raw))
}

// flush writes every record in flight.
func (w *Writer) flush() error {
	for len(w.jobs) > 0 {
		if err := w.finish(); err != nil {
			for _, j := range w.jobs {
				<-j.done
			}
			w.jobs = w.jobs[:0]
			return err
		}
	}
	return nil
}

// Close writes the records in flight and the END record. It does not
// close the underlying writer. Closing a closed Writer returns what the
// first Close returned.
func (w *Writer) Close() error {
	if w.closed {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	w.closed = true
	if w.err == nil && w.flush() == nil {
		var p [endPayloadSize]byte
		binary.LittleEndian.PutUint64(p[0:], w.records)
		binary.LittleEndian.PutUint64(p[8:], w.pageBytes)
		binary.LittleEndian.PutUint64(p[16:], w.rawBytes)
		binary.LittleEndian.PutUint32(p[24:], w.chain)
		w.emit(TypeEnd, None, nil, p[:], len(p))
	}
	w.release()
	return w.err
}

// release waits for jobs in flight and frees the compressor.
func (w *Writer) release() {
	for _, j := range w.jobs {
		<-j.done
	}
	w.jobs, w.free = nil, nil
	if w.cp != nil {
		w.cp.close()
		w.cp = nil
	}
}
