// Lazy restores from a server (Options.Remote): the image is stored, and
// any record of it may be asked for by range. The process then runs as
// soon as its description and the pages that cannot wait are in, all of
// them asked for out of order; a page it touches first is asked for at
// once (the record that holds its last copy); and the whole image
// streams behind it, front to back, checked as always, into the pages
// no fault took. The server's list of records says where each record
// lies: it is checked against the image as the image streams, and each
// record asked for by itself against the stream's copy, so that a
// server that lies is found out by the END record at the latest (the
// process is then killed, as for any bad record).

package restore

import (
	"container/heap"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"procs/format"
	"procs/pkg/pagebuf"
)

// Remote lets a lazy restore read any record of its image.
type Remote struct {
	// Records is the list of every record of the image, in order, as
	// the server tells it.
	Records []Record
	// Fetch reads n bytes of the image at offset off.
	Fetch func(off, n int64) ([]byte, error)
}

// Record is where a record of the image lies, and for PAGES, PASS and
// DROP records whose memory it holds (Task, Addr, Len bytes).
type Record struct {
	Offset, Size int64
	Type         format.RecordType
	Task         uint32
	Addr, Len    uint64
}

// errDescEnd ends the description's stream (remote.desc): the pages
// come after.
var errDescEnd = errors.New("end of the description")

// remote is the state of a restore from a server.
type remote struct {
	*Remote
	// infoEnd, filesAt, descEnd: the description is [0, infoEnd) and
	// [filesAt, descEnd) of the image (INFO; FILES to the first PAGES or
	// END record), read by range; descSum is its checksum.
	infoEnd, filesAt, descEnd int64
	descSum                   hash.Hash32
	final                     finalMaps
	mu                        sync.Mutex
	asked                     map[int]bool   // records asked for by themselves
	sums                      map[int]uint32 // their memory's checksum
	want                      chan int
	// streamAt is the offset of the image up to which the stream has
	// given the pagers its records, or -1 before it starts.
	streamAt atomic.Int64
}

// castagnoli is the table of the checksums that compare a record read by
// itself with the stream's.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// newRemote checks the shape of the record list and returns the stream
// of the image's description, read by range.
func newRemote(rm *Remote) (*remote, io.Reader, error) {
	recs := rm.Records
	bad := func(why string, args ...any) (*remote, io.Reader, error) {
		return nil, nil, fmt.Errorf("the server's list of the image's records is wrong: "+why, args...)
	}
	if len(recs) < 4 || recs[0].Offset != 24 || recs[0].Type != format.TypeInfo || recs[len(recs)-1].Type != format.TypeEnd {
		return bad("%d records", len(recs))
	}
	r := &remote{Remote: rm, infoEnd: recs[0].Offset + recs[0].Size, descSum: crc32.New(castagnoli),
		asked: map[int]bool{}, sums: map[int]uint32{}, want: make(chan int, 1024)}
	r.streamAt.Store(-1)
	files := -1
	for i, rec := range recs {
		if rec.Size < 20 || i > 0 && rec.Offset != recs[i-1].Offset+recs[i-1].Size {
			return bad("record %d at %d", i, rec.Offset)
		}
		switch rec.Type {
		case format.TypeFiles:
			if files < 0 {
				files, r.filesAt = i, rec.Offset
			}
		case format.TypePages, format.TypeEnd:
			if files >= 0 && r.descEnd == 0 {
				r.descEnd = rec.Offset
			}
		}
		switch rec.Type {
		case format.TypePages, format.TypePass, format.TypeDrop:
			// (rec.Task is checked once the processes are known:
			// checkTasks.)
			if rec.Addr%format.PageSize != 0 || rec.Len%format.PageSize != 0 || rec.Len == 0 || rec.Addr+rec.Len < rec.Addr {
				return bad("record %d of memory %#x+%#x", i, rec.Addr, rec.Len)
			}
		}
	}
	r.final = finalMaps{}
	for _, rec := range recs {
		if _, ok := r.final[rec.Task]; !ok && (rec.Type == format.TypePages || rec.Type == format.TypePass || rec.Type == format.TypeDrop) {
			r.final[rec.Task] = buildFinal(recs, rec.Task)
		}
	}
	if files < 0 || r.descEnd == 0 {
		return bad("no FILES record")
	}
	r.warm()
	desc := io.MultiReader(r.reader(0, r.infoEnd), r.reader(r.filesAt, r.descEnd), errorReader{errDescEnd})
	return r, io.TeeReader(desc, r.descSum), nil
}

// checkTasks fails if a record of memory of the server's list names a
// process the image does not hold (n processes).
func (r *remote) checkTasks(n int) error {
	for i, rec := range r.Records {
		if int64(rec.Task) >= int64(n) {
			return fmt.Errorf("the server's list of the image's records is wrong: record %d holds memory of process %d of %d", i, rec.Task, n)
		}
	}
	return nil
}

// warm has the connections that the range requests of threads waiting
// for pages will use opened while the processes are built: fetchers
// small requests at once (the INFO record), each on a connection of its
// own, which the client then keeps. A new connection costs procs-serve
// on loopback a look-up of its owner in /proc/net/tcp, 20 ms on a busy
// machine, that a waiting thread would wait too.
func (r *remote) warm() {
	info := r.Records[0]
	for range fetchers {
		go r.Fetch(info.Offset, info.Size)
	}
}

// errorReader returns its error.
type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// rangeChunk is how much reader fetches at a time.
const rangeChunk = 8 << 20

// reader reads [off, end) of the image by ranges.
func (r *remote) reader(off, end int64) io.Reader {
	var buf []byte
	return readerFunc(func(p []byte) (int, error) {
		if len(buf) == 0 {
			if off >= end {
				return 0, io.EOF
			}
			n := min(end-off, rangeChunk)
			var err error
			if buf, err = r.Fetch(off, n); err != nil {
				return 0, err
			}
			off += n
		}
		n := copy(p, buf)
		buf = buf[n:]
		return n, nil
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// record fetches record i by itself, checks it, and returns its memory:
// whose, where, what.
func (r *remote) record(i int) (uint32, uint64, []byte, error) {
	rec := r.Records[i]
	b, err := r.Fetch(rec.Offset, rec.Size)
	if err != nil {
		return 0, 0, nil, err
	}
	return r.check(i, b)
}

// records fetches the records [lo, hi), which lie one after the other
// in the image, in one range, checks each, and gives each's memory to
// each: whose, where, what.
func (r *remote) records(lo, hi int, each func(i int, task uint32, addr uint64, data []byte) error) error {
	first, last := r.Records[lo], r.Records[hi-1]
	b, err := r.Fetch(first.Offset, last.Offset+last.Size-first.Offset)
	if err != nil {
		return err
	}
	for i := lo; i < hi; i++ {
		at := r.Records[i].Offset - first.Offset
		task, addr, data, err := r.check(i, b[at:at+r.Records[i].Size])
		if err == nil {
			err = each(i, task, addr, data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// check checks b, record i read by itself, and returns its memory:
// whose, where, what.
func (r *remote) check(i int, b []byte) (uint32, uint64, []byte, error) {
	rec := r.Records[i]
	task, addr, data, err := format.MemoryRecord(b, rec.Type)
	if err == nil && (task != rec.Task || addr != rec.Addr || uint64(len(data)) != rec.Len) {
		err = errors.New("it is not what the server's list says")
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("record %d of the image at byte %d, read by itself: %w", i, rec.Offset, err)
	}
	r.mu.Lock()
	r.sums[i] = crc32.Checksum(data, castagnoli)
	r.mu.Unlock()
	return task, addr, data, nil
}

// fillEager makes each process not made yet, and writes, before the
// processes run, the last copy of every page of its mappings that are
// not lazy and of those its children share, each record asked for by
// itself: a child is forked once its parent's are in.
func (t *tree) fillEager(r *remote) error {
	pw := newPageWriters(false)
	defer pw.close()
	for _, b := range t.procs {
		if err := t.makeUpTo(b.task, pw); err != nil {
			return err
		}
		if err := b.fillEager(r); err != nil {
			return b.wrap(err)
		}
	}
	return nil
}

// fillEager writes the process's pages that cannot wait (see the tree's).
func (b *builder) fillEager(r *remote) error {
	task := uint32(b.task)
	done := map[int]bool{}
	for _, m := range b.img.Maps {
		var ranges [][2]uint64
		switch {
		case m.Shared || m.Kind == format.MapVdso || m.Kind == format.MapVsyscall:
		case lazyMapping(m):
			ranges = b.sharedIn(m.Start, m.End)
		default:
			ranges = [][2]uint64{{m.Start, m.End}}
		}
		for _, run := range r.final.within(task, ranges) {
			if done[run.rec] {
				continue
			}
			done[run.rec] = true
			_, addr, data, err := r.record(run.rec)
			if err != nil {
				return err
			}
			err = b.eachPiece(r.final.pieces(task, addr, addr+uint64(len(data)), run.rec), func(lo, hi uint64, lazy bool) error {
				if lazy {
					return nil // given when asked for, or as it streams
				}
				if err := b.writePages(lo, data[lo-addr:hi-addr]); err != nil {
					return fmt.Errorf("pages at %#x: %w", lo, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// streamAhead is how far ahead of the stream a record a thread waits
// for is left to it: the stream brings it sooner than a range request
// would (it may be in the stream's buffers already).
const streamAhead = 2 << 20

// fetchers is how many range requests are in flight at most, for the
// whole tree: a thread waits for its own record, not behind another
// thread's.
const fetchers = 4

// prefetchRun is how many bytes of records beside the one a thread
// waits for come with it in its range request: small records (a
// thread's stack, its TLS, a library's data) that threads touch
// together.
const prefetchRun = 256 << 10

// ask has the record that holds the last copy of the page at addr of
// process task fetched (once), for a thread that waits for it, unless
// the stream is about to bring it. It must not block.
func (r *remote) ask(task uint32, addr uint64) {
	i, ok := r.final.at(task, addr)
	if !ok {
		return
	}
	if at := r.streamAt.Load(); at >= 0 && r.Records[i].Offset >= at && r.Records[i].Offset < at+streamAhead {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.asked[i] {
		return
	}
	select {
	case r.want <- i:
		r.asked[i] = true
	default: // full: the next fault asks again
	}
}

// smallMapping is the size up to which a lazy mapping's pages are asked
// for as the process starts (askSmall).
const smallMapping = 1 << 20

// askSmall asks for the pages of the process's small lazy mappings as
// it starts, before any thread waits for them: a library's data, a main
// thread's stack, which threads touch first and share; a big mapping (a
// heap, a thread's stack) is left to its faults and the stream, and the
// pages its children share are in already.
func (b *builder) askSmall(r *remote) {
	task := uint32(b.task)
	for _, m := range b.img.Maps {
		if !lazyMapping(m) || m.End-m.Start > smallMapping {
			continue
		}
		for _, run := range r.final.within(task, b.ownLazy(m.Start, m.End)) {
			r.ask(task, run.start)
		}
	}
}

// around is the run of records [lo, hi) to fetch for record i: it and
// the memory records beside it in the image of the same process that no
// one asked for and the stream has not given yet, while the run stays
// within prefetchRun bytes (or is record i alone); they are asked for
// by that.
func (r *remote) around(i int) (lo, hi int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	size, at := r.Records[i].Size, r.streamAt.Load()
	grow := func(k int) bool {
		if k < 0 || k >= len(r.Records) || r.asked[k] || r.Records[k].Offset < at || size+r.Records[k].Size > prefetchRun {
			return false
		}
		if r.Records[k].Task != r.Records[i].Task {
			return false // another process's memory: not touched with it
		}
		if typ := r.Records[k].Type; typ != format.TypePages && typ != format.TypePass {
			return false
		}
		r.asked[k] = true
		size += r.Records[k].Size
		return true
	}
	lo, hi = i, i+1
	for grow(hi) {
		hi++
	}
	for grow(lo - 1) {
		lo--
	}
	return lo, hi
}

// fetchWanted fetches the records threads wait for, with the small
// ones around them, and gives their last copies to the pagers of their
// processes, until the stream is done. fetchers of it run at once, for
// the whole tree.
func (t *tree) fetchWanted(r *remote) {
	for {
		var i int
		select {
		case i = <-r.want:
		case <-t.lazy.done:
			return
		}
		lo, hi := r.around(i)
		err := r.records(lo, hi, func(k int, task uint32, addr uint64, data []byte) error {
			return t.fillFinal(r, k, task, addr, data)
		})
		if err != nil {
			t.lazy.fail(err)
			return
		}
	}
}

// fillFinal gives the pager of process task the pages of record i (its
// memory data at addr) of which it holds the last copy, in lazy memory.
func (t *tree) fillFinal(r *remote, i int, task uint32, addr uint64, data []byte) error {
	p := t.lazy.pager(task)
	return t.procs[task].eachPiece(r.final.pieces(task, addr, addr+uint64(len(data)), i), func(lo, hi uint64, lazy bool) error {
		if !lazy {
			return nil // in before the process ran
		}
		if p == nil {
			return fmt.Errorf("corrupt image: pages at %#x-%#x, outside the lazy memory of process %d", lo, hi, t.imgs[task].PID)
		}
		return p.Fill(lo, data[lo-addr:hi-addr])
	})
}

// eachPiece calls do with each part of the ranges that lies in one
// mapping of the process that may hold pages, saying whether it is lazy
// (pages its children share are not); a range elsewhere is a corrupt
// image.
func (b *builder) eachPiece(ranges [][2]uint64, do func(lo, hi uint64, lazy bool) error) error {
	maps := b.img.Maps
	for _, r := range ranges {
		if !b.inMemory(r[0], r[1]-r[0]) {
			return fmt.Errorf("corrupt image: pages at %#x-%#x, outside the memory of process %d", r[0], r[1], b.img.PID)
		}
		for i := sort.Search(len(maps), func(i int) bool { return maps[i].End > r[0] }); i < len(maps) && maps[i].Start < r[1]; i++ {
			m := maps[i]
			lo, hi := max(r[0], m.Start), min(r[1], m.End)
			if !lazyMapping(m) {
				if err := do(lo, hi, false); err != nil {
					return err
				}
				continue
			}
			at := lo
			for _, own := range append(b.ownLazy(lo, hi), [2]uint64{hi, hi}) {
				if at < own[0] {
					if err := do(at, own[0], false); err != nil {
						return err
					}
				}
				if own[0] < own[1] {
					if err := do(own[0], own[1], true); err != nil {
						return err
					}
				}
				at = own[1]
			}
		}
	}
	return nil
}

// streamRemote reads the whole image from in, checking it against the
// server's list and against what was read by range, and gives the pager
// the last copies of pages no fault took.
func (t *tree) streamRemote(r *remote, in io.Reader) error {
	sum := crc32.New(castagnoli)
	var off int64
	// The description's bytes, as the stream has them.
	src := in
	in = readerFunc(func(p []byte) (int, error) {
		n, err := src.Read(p)
		lo, hi := off, off+int64(n)
		for _, w := range [][2]int64{{0, r.infoEnd}, {r.filesAt, r.descEnd}} {
			if a, b := max(lo, w[0]), min(hi, w[1]); a < b {
				sum.Write(p[a-lo : b-lo])
			}
		}
		off = hi
		return n, err
	})
	fr, err := format.NewReader(in)
	if err != nil {
		return err
	}
	buf, err := pagebuf.New(format.PageBufSize)
	if err != nil {
		return err
	}
	defer pagebuf.Free(buf)
	for t.lazy.live() {
		h, err := fr.Next()
		if last := r.Records[len(r.Records)-1]; err == io.EOF {
			if fr.Offset() != last.Offset+last.Size || sum.Sum32() != r.descSum.Sum32() {
				return errors.New("the image streamed is not the one read by parts")
			}
			return nil
		}
		if err != nil {
			return err
		}
		i := h.Index
		rec := Record{}
		if i < len(r.Records) {
			rec = r.Records[i]
		}
		if rec.Offset != h.Offset || rec.Type != h.Type || rec.Size != 20+int64(h.Stored) {
			return fmt.Errorf("record %d of the image at byte %d is not what the server's list says", h.Index, h.Offset)
		}
		var task uint32
		var addr uint64
		var data []byte
		switch h.Type {
		case format.TypePages:
			task, addr, data, err = fr.ReadPages(buf)
		case format.TypePass:
			task, addr, data, err = fr.ReadPass(buf)
		case format.TypeDrop:
			var n uint64
			task, addr, n, err = fr.ReadDrop()
			if err == nil && (task != rec.Task || addr != rec.Addr || n != rec.Len) {
				err = fmt.Errorf("record %d of the image at byte %d is not what the server's list says", h.Index, h.Offset)
			}
			if err != nil {
				return err
			}
			continue
		default:
			continue // checked as it is skipped
		}
		if err != nil {
			return err
		}
		if task != rec.Task || addr != rec.Addr || uint64(len(data)) != rec.Len {
			return fmt.Errorf("record %d of the image at byte %d is not what the server's list says", h.Index, h.Offset)
		}
		r.mu.Lock()
		s, read := r.sums[i]
		r.mu.Unlock()
		if read && s != crc32.Checksum(data, castagnoli) {
			return fmt.Errorf("record %d of the image at byte %d differs from its copy read by itself", h.Index, h.Offset)
		}
		if err := t.fillFinal(r, i, task, addr, data); err != nil {
			return err
		}
		r.streamAt.Store(fr.Offset())
	}
	return nil
}

// finalMap says, for each page of the image, which record holds its
// last copy (PASS records replaced by later ones, DROP records voiding
// them): sorted runs apart.
type finalMap struct{ runs []finalRun }

type finalRun struct {
	start, end uint64
	rec        int
}

// finalMaps are the finalMap of each process, by task.
type finalMaps map[uint32]finalMap

// at is the record of the last copy of the page at addr of process task.
func (fs finalMaps) at(task uint32, addr uint64) (int, bool) {
	f := fs[task]
	return f.at(addr)
}

// within is the runs of process task that lie in ranges, cut to them.
func (fs finalMaps) within(task uint32, ranges [][2]uint64) []finalRun {
	f := fs[task]
	var out []finalRun
	for _, r := range ranges {
		out = append(out, f.within(r[0], r[1])...)
	}
	return out
}

// pieces is the ranges of [start, end) of process task whose last copy
// rec holds.
func (fs finalMaps) pieces(task uint32, start, end uint64, rec int) [][2]uint64 {
	f := fs[task]
	return f.pieces(start, end, rec)
}

// buildFinal finds, for each page of process task, the last of recs
// that holds it (a DROP holding it voids it): a sweep over the records'
// ends, with the records open at each address in a heap (a live image
// has thousands of records, which overwrite each other).
func buildFinal(recs []Record, task uint32) finalMap {
	type edge struct {
		at   uint64
		rec  int
		open bool
	}
	var edges []edge
	for i, r := range recs {
		if r.Task == task && (r.Type == format.TypePages || r.Type == format.TypePass || r.Type == format.TypeDrop) {
			edges = append(edges, edge{r.Addr, i, true}, edge{r.Addr + r.Len, i, false})
		}
	}
	sort.Slice(edges, func(a, b int) bool { return edges[a].at < edges[b].at })
	var f finalMap
	open := &recHeap{}
	closed := map[int]bool{}
	for k := 0; k < len(edges); {
		at := edges[k].at
		for ; k < len(edges) && edges[k].at == at; k++ {
			if edges[k].open {
				heap.Push(open, edges[k].rec)
			} else {
				closed[edges[k].rec] = true
			}
		}
		for open.Len() > 0 && closed[(*open)[0]] {
			heap.Pop(open)
		}
		if open.Len() == 0 || k == len(edges) {
			continue
		}
		top, next := (*open)[0], edges[k].at
		if recs[top].Type == format.TypeDrop {
			continue // voided: a hole
		}
		if n := len(f.runs); n > 0 && f.runs[n-1].rec == top && f.runs[n-1].end == at {
			f.runs[n-1].end = next
		} else {
			f.runs = append(f.runs, finalRun{at, next, top})
		}
	}
	return f
}

// recHeap is a max-heap of record indexes.
type recHeap []int

func (h recHeap) Len() int           { return len(h) }
func (h recHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h recHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *recHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// at is the record of the last copy of the page at addr.
func (f *finalMap) at(addr uint64) (int, bool) {
	i := sort.Search(len(f.runs), func(i int) bool { return f.runs[i].end > addr })
	if i < len(f.runs) && f.runs[i].start <= addr {
		return f.runs[i].rec, true
	}
	return 0, false
}

// within is the runs that lie in [start, end), cut to it.
func (f *finalMap) within(start, end uint64) []finalRun {
	var out []finalRun
	for i := sort.Search(len(f.runs), func(i int) bool { return f.runs[i].end > start }); i < len(f.runs) && f.runs[i].start < end; i++ {
		r := f.runs[i]
		out = append(out, finalRun{max(r.start, start), min(r.end, end), r.rec})
	}
	return out
}

// pieces is the ranges of [start, end) whose last copy rec holds.
func (f *finalMap) pieces(start, end uint64, rec int) [][2]uint64 {
	var out [][2]uint64
	for _, r := range f.within(start, end) {
		if r.rec == rec {
			out = append(out, [2]uint64{r.start, r.end})
		}
	}
	return out
}
