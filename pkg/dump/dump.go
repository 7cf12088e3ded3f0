// Package dump freezes a running process and its descendants (the tree),
// reads their state and writes it as one image in the procs image format
// (see format/SPEC.md). Dump reads as its phases; the objects each have a
// file (tree.go, mm.go, cow.go, threads.go, timers.go, fds.go, calls.go...).
//
// The tree is never harmed: if anything fails, every thread is detached
// and every change made to it is undone before Dump returns.
package dump

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/inject"
	"procs/pkg/pagebuf"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// Options control one dump.
type Options struct {
	PID         int                // process to dump
	Kill        bool               // kill the process once Commit succeeded
	FileSave    bool               // carry the contents of every open regular file
	Compression format.Compression // compression of page records
	// CloseExternal: a unix socket connected to one outside the tree
	// comes back as if its peer had closed, instead of being refused
	// (--external=close).
	CloseExternal bool
	// TCPClose: connections travel as their addresses alone, to come
	// back reset (--tcp=close), and are not held in repair mode.
	TCPClose bool
	// Commit is called once the whole image has been written to out, while
	// the process is still frozen. It must make the image durable (flush,
	// fsync, wait for a server's acknowledgement). If it fails, the process
	// is let go unharmed and Dump returns its error. Nil means no-op.
	Commit func() error
	// Log receives one line per phase with times and sizes (-v); nil
	// means quiet.
	Log func(format string, args ...any)
	// Progress, if set, is called now and then with bytes of memory done
	// and total (for a progress display on a terminal).
	Progress func(done, total int64)
	// Live, if set, writes the memory in passes while the process runs,
	// and freezes it only for the last (see live.go).
	Live *LiveOptions
	// Warn says what went less well than asked (a live dump done
	// plain); nil means Log.
	Warn func(format string, args ...any)
}

// Stats describes a finished dump.
type Stats struct {
	Frozen     time.Duration // how long the process was stopped
	Total      time.Duration
	PageBytes  int64 // bytes of memory stored
	ImageBytes int64 // bytes written to out
	Threads    int
}

// ErrUnsupported wraps every refusal to dump a process because it holds
// something procs cannot carry (a socket, a pipe, a child...). Such a
// refusal happens before the process is touched.
var ErrUnsupported = files.ErrUnsupported

// ErrExternal is matched by the refusal of a socket connected to one
// outside the tree, which Options.CloseExternal would carry.
var ErrExternal = files.ErrExternal

// Version is stamped into images as the writing tool's version.
var Version = "dev"

// Dump writes an image of process opts.PID to out.
//
// A thread that went back to its program in the middle of the calls
// injected in it (procs-dump was kept off the CPU for a second, on a
// machine loaded far beyond its CPUs) runs on unharmed, but what was read
// of it is stale: the dump is made again, a few times, while nothing of
// it was written yet.
func Dump(opts Options, out io.Writer) (Stats, error) {
	for try := 1; ; try++ {
		w := &countingWriter{w: out}
		st, err := dumpOnce(opts, w)
		if err == nil || !errors.Is(err, inject.ErrEscaped) || w.n > 0 || try == escapeTries {
			return st, err
		}
		if opts.Log != nil {
			opts.Log("%v: dumping again", err)
		}
	}
}

// escapeTries bounds the dumps made again after inject.ErrEscaped.
const escapeTries = 3

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// dumpOnce is one try of Dump.
func dumpOnce(opts Options, out io.Writer) (Stats, error) {
	start := time.Now()
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.PID == os.Getpid() {
		return Stats{}, &refusal{"procs cannot dump itself"}
	}
	// The first encoding of a type builds encoding/json's encoders for
	// it (~0.5 ms for a Process): done meanwhile, off the frozen time.
	go func() { json.Marshal(&format.Process{}); json.Marshal(format.Info{}) }()
	warn := opts.Warn
	if warn == nil {
		warn = logf
	}
	if opts.Live != nil {
		if pid := treeUsesUserfaultfd(opts.PID); pid != 0 {
			warn("process %d uses userfaultfd itself, which --live would conflict with: dumping it as without --live", pid)
			opts.Live = nil
		}
	}
	status, err := precheck(opts.PID)
	if err != nil {
		return Stats{}, err
	}
	// Page buffers are made and touched while the state is read.
	prepared := prepareBuffers(int64(status.RssAnon))
	// They are freed once the process is let go (1024 pages of buffers
	// took ~0.5 ms to unmap).
	var bufs [][]byte
	received := false
	defer func() {
		if !received {
			bufs = <-prepared
		}
		for _, b := range bufs {
			pagebuf.Free(b)
		}
	}()
	var st Stats
	var w *format.Writer // made before the freeze by a live dump
	var lt *liveTree
	var presmaps map[int][]procfs.Mapping // a live dump's, read before the freeze
	if opts.Live != nil {
		lt, err = startLiveTree(opts.PID, warn)
		defer lt.close()
		if err != nil {
			return Stats{}, err
		}
		if w, err = newImage(out, opts, lt.info()); err != nil {
			return Stats{}, err
		}
		bufs, received = <-prepared, true
		if st.PageBytes, err = lt.passes(w, opts.Live.withDefaults(), logf, &bufs); err != nil {
			return Stats{}, err
		}
		presmaps = lt.presmaps() // or read frozen
	}
	err = ptrace.Run(func() error {
		// What the kinds hold while the tree is frozen (connections in
		// repair mode, listeners) goes back as it was before the tree
		// goes on, or is closed once it is killed.
		var holds held
		defer files.CloseHolder()
		ft, err := freezeAccepted(opts.PID, &holds, logf)
		if err != nil {
			return err
		}
		if lt != nil {
			lt.order(ft)
		}
		frozenAt := time.Now()
		frozen := true
		letGo := func() {
			if frozen {
				frozen = false
				holds.letGo(true)
				ft.release()
				st.Frozen = time.Since(frozenAt)
			}
		}
		defer letGo()
		st.Threads = ft.threads()
		if len(ft.procs) > 1 {
			logf("froze %d processes, %s in %v", len(ft.procs), format.Threads(st.Threads), frozenAt.Sub(start).Round(time.Microsecond))
		} else {
			logf("froze %s in %v", format.Threads(st.Threads), frozenAt.Sub(start).Round(time.Microsecond))
		}
		snap, err := collectTree(ft, opts, presmaps, &holds)
		defer snap.close()
		if err != nil {
			return err
		}
		logf("collected state: %d mappings, %d fds, about %d MiB resident, in %v",
			snap.maps, snap.fds, snap.resident>>20, time.Since(frozenAt).Round(time.Microsecond))
		if lt != nil {
			// Its INFO was written before the tree was frozen.
			if req := slices.DeleteFunc(snap.requires(), func(f string) bool { return slices.Contains(liveFeatures, f) }); len(req) > 0 {
				return &refusal{fmt.Sprintf("--live cannot carry yet what the image would require (%s): dump without --live", strings.Join(req, ", "))}
			}
			t := time.Now()
			n, err := snap.writeLastPass(w, lt, &bufs)
			st.PageBytes += n
			if err != nil {
				return err
			}
			logf("last pass, frozen: %d KiB stored in %v", n>>10, time.Since(t).Round(time.Microsecond))
			if err := snap.writeState(w); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		if lt == nil {
			if w, err = newImage(out, opts, snap.info(opts.PID, st.Threads)); err != nil {
				return err
			}
			if err := snap.writeState(w); err != nil {
				return err
			}
			t := time.Now()
			// Off this goroutine, which is locked to its thread for ptrace:
			// waking a locked goroutine costs a thread switch, and the
			// writer waits on the readers often.
			pagesDone := make(chan error)
			go func() {
				bufs, received = <-prepared, true
				var err error
				st.PageBytes, err = snap.writeMemory(w, opts.Progress, &bufs)
				pagesDone <- err
			}()
			if err := <-pagesDone; err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			logf("wrote %d MiB of pages in %v", st.PageBytes>>20, time.Since(t).Round(time.Microsecond))
		}
		st.ImageBytes = w.Written()
		if !opts.Kill {
			// The image has all of the tree: it may go on while the
			// image is made durable (an fsync can take seconds).
			letGo()
		}
		if opts.Commit != nil {
			if err := opts.Commit(); err != nil {
				return err
			}
		}
		if opts.Kill {
			frozen = false
			st.Frozen = time.Since(frozenAt)
			holds.letGo(false)
			err := ft.kill()
			if err != nil {
				return fmt.Errorf("image written, but killing the process failed: %w", err)
			}
			if err := snap.removeIPC(); err != nil {
				// The image holds them: a restore here makes them in
				// an IPC namespace of the tree's own.
				logf("System V IPC objects of the tree stay here: %v", err)
			}
		}
		return nil
	})
	st.Total = time.Since(start)
	return st, err
}

// snapshot is what a dump read of a frozen tree: each process's record
// and collector (whose maps and skips writeMemory reads), the image's
// files.
type snapshot struct {
	ft       *frozenTree
	table    *fileTable
	cs       []*collector
	procs    []format.Process
	maps     int   // mappings, of all processes
	fds      int   // fds, of all processes
	resident int64 // bytes of memory to read, about
	ipc      *format.IPC
	shmat    [][]byte // segments procs-dump attached to read them (sysv.go)
	// hostIPC: the tree's objects are in procs-dump's IPC namespace,
	// where they outlive the tree (removeIPC).
	hostIPC bool
}

// collectTree reads the state of every process of the frozen tree, then
// what only the whole tree tells: sessions and groups a restore can make
// (checkTree), pages shared with parents (shareWithParents), locks held
// through no fd (checkUnseenLocks: a mapping's, or refused), files held
// outside the tree (files.CheckTree); then the ids become the programs'
// own (toInnerPIDs). close must be called, error or not.
func collectTree(ft *frozenTree, opts Options, presmaps map[int][]procfs.Mapping, holds *held) (*snapshot, error) {
	s := &snapshot{ft: ft, table: newFileTable()}
	s.table.holds, s.table.tcpClose = holds, opts.TCPClose
	var pids []int
	for _, f := range ft.procs {
		pids = append(pids, f.pid)
	}
	paired := files.PairedSlaves(pids)
	for i, f := range ft.procs {
		c := &collector{pid: f.pid, root: i == 0, f: f, fileSave: opts.FileSave, t: s.table, paired: paired, tree: ft,
			stoppedKids: ft.stoppedKids(f.pid), waited: map[int]bool{}, smaps: presmaps[f.pid]}
		s.cs = append(s.cs, c)
		if err := c.collect(); err != nil {
			if len(ft.procs) > 1 && i > 0 {
				return s, fmt.Errorf("process %d: %w", f.pid, err)
			}
			return s, err
		}
		if !f.zombie {
			c.p.Clocks = clocksOf(f.pid)
		}
		s.procs = append(s.procs, c.p)
		s.maps, s.fds, s.resident = s.maps+len(c.p.Maps), s.fds+len(c.p.FDs), s.resident+residentBytes(c.maps)
	}
	for i := range s.procs {
		if p := &s.procs[i]; p.Stopped != nil && i > 0 {
			p.Stopped.Waited = s.cs[slices.IndexFunc(s.cs, func(c *collector) bool { return c.pid == p.PPID })].waited[p.PID]
		}
	}
	if err := checkTree(s.procs); err != nil {
		return s, err
	}
	// It marks the mappings in place: procs[i].Maps is c.p.Maps.
	if err := shareWithParents(s.cs); err != nil {
		return s, err
	}
	in := func(pid int) bool { return ft.find(pid) != nil }
	if err := s.checkUnseenLocks(in); err != nil {
		return s, err
	}
	if err := s.collectIPC(); err != nil {
		return s, err
	}
	if err := files.CheckTree(s.table.files, s.procs, in, opts.CloseExternal, s.table.carried()); err != nil {
		return s, err
	}
	return s, s.toInnerPIDs()
}

// close closes the files the collectors opened.
func (s *snapshot) close() {
	for _, c := range s.cs {
		c.close()
	}
	for _, b := range s.shmat {
		unix.SysvShmDetach(b)
	}
}

// info is the INFO record of the image of the snapshot.
func (s *snapshot) info(pid, threads int) format.Info {
	return format.Info{Comm: s.procs[0].Comm, PID: pid, Threads: threads, Processes: len(s.procs), Requires: s.requires()}
}

// requires lists the features (INFO.requires) a reader of the image of
// the snapshot must know, but the live dump's page passes.
func (s *snapshot) requires() []string {
	var r []string
	if len(s.table.locks) > 0 {
		r = append(r, format.FeatureFileLocks)
	}
	if s.ipc != nil {
		r = append(r, format.FeatureSysVIPC)
	}
	if peerProcFiles(s.table.files, s.procs) {
		r = append(r, format.FeatureProcPID)
	}
	if slices.ContainsFunc(s.table.files, func(f format.File) bool { return f.TCP != nil && len(f.TCP.Options.Filter) > 0 }) {
		r = append(r, format.FeatureSocketFilters)
	}
	return r
}

// peerProcFiles says whether a process holds a file of the /proc folder
// of another (File.ProcPID): a reader that does not know proc_pid would
// open its own instead.
func peerProcFiles(fs []format.File, procs []format.Process) bool {
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.File >= 0 && fs[fd.File].ProcPID != 0 && fs[fd.File].ProcPID != p.PID {
				return true
			}
		}
	}
	return false
}

// newImage starts the image on out with its INFO record, info completed
// with what describes this machine and tool.
func newImage(out io.Writer, opts Options, info format.Info) (*format.Writer, error) {
	info.Host, _ = os.Hostname()
	var uts unix.Utsname
	unix.Uname(&uts)
	info.Kernel, info.Arch = unix.ByteSliceToString(uts.Release[:]), "x86_64"
	info.Created, info.Procs = time.Now().UTC(), Version
	return format.NewWriter(out, info, format.WriterOptions{Compression: opts.Compression})
}

// writeState writes FILES, a PROCESS record per process, the carried
// files' contents.
func (s *snapshot) writeState(w *format.Writer) error {
	if err := w.WriteJSON(format.TypeFiles, &format.FileTable{Files: s.table.files, IPC: s.ipc}); err != nil {
		return err
	}
	for i := range s.procs {
		if err := w.WriteJSON(format.TypeProcess, s.procs[i].Record()); err != nil {
			return err
		}
	}
	return writeFileData(w, s.table.carry)
}

// writeMemory writes the pages of every process, in the image's order,
// and returns the bytes of memory stored. progress, if set, hears of the
// whole tree's.
func (s *snapshot) writeMemory(w *format.Writer, progress func(done, total int64), bufs *[][]byte) (int64, error) {
	var stored, done int64
	for i, c := range s.cs {
		if c.f.zombie {
			continue // no memory
		}
		each := progress
		if progress != nil {
			before := done
			each = func(d, _ int64) { progress(before+d, max(s.resident, before+d)) }
		}
		n, err := writePages(uint32(i), c.pid, c.maps, c.skip, w, each, bufs)
		stored += n
		done += residentBytes(c.maps)
		if err != nil {
			return stored, err
		}
	}
	return stored, nil
}

// writeFileData writes the contents of carried files as FILEDATA records:
// their data extents only (holes are not read), and of those, the pages
// that are not all zero (the file's extents tell the loader which zeros
// were written).
func writeFileData(w *format.Writer, files []carried) error {
	if len(files) == 0 {
		return nil // and no 4 MiB buffer, which would start the GC
	}
	const chunk = 4 << 20
	buf := make([]byte, chunk)
	for _, cf := range files {
		fd, err := openNoAtime(cf.path)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), cf.path)
		for _, e := range cf.extents {
			for off := e[0]; off < e[1]; off += chunk {
				n, err := f.ReadAt(buf[:min(chunk, e[1]-off)], off)
				if err != nil && err != io.EOF {
					f.Close()
					return fmt.Errorf("reading %s: %w", cf.path, err)
				}
				if err := writeNonZero(w, cf.index, off, buf[:n]); err != nil {
					f.Close()
					return err
				}
			}
		}
		f.Close()
	}
	return nil
}

// writeNonZero writes data, found at off in file index, as FILEDATA
// records of its runs of pages that are not all zero.
func writeNonZero(w *format.Writer, index int, off int64, data []byte) error {
	for len(data) > 0 {
		n := 0 // zero pages first
		for n < len(data) && isZero(data[n:min(n+format.PageSize, len(data))]) {
			n += format.PageSize
		}
		n = min(n, len(data))
		data, off = data[n:], off+int64(n)
		m := 0 // then the run of pages with data
		for m < len(data) && !isZero(data[m:min(m+format.PageSize, len(data))]) {
			m += format.PageSize
		}
		m = min(m, len(data))
		if m > 0 {
			if err := w.WriteFileData(uint32(index), uint64(off), data[:m]); err != nil {
				return err
			}
		}
		data, off = data[m:], off+int64(m)
	}
	return nil
}

func isZero(b []byte) bool {
	for len(b) >= format.PageSize {
		if !bytes.Equal(b[:format.PageSize], zeroPage[:]) {
			return false
		}
		b = b[format.PageSize:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
