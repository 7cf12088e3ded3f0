// Package show reads a procs image into a summary of what it holds,
// without restoring it: what procs show prints. It streams: PAGES and
// FILEDATA records are read, checked and counted into one reused buffer,
// never held, so memory stays the same whatever the size of the image. A
// damaged image yields what came before the damage, with the error the
// format reader gives (the one procs-load prints).
//
// The summary is also the JSON form of procs show --json: its member
// names are an interface (schema version Schema, written down in
// procs(1)). A change that renames or removes a member, or changes its
// meaning, needs a new Schema; adding members does not.
//
// An image is untrusted: every index is checked before use, and strings
// are kept as they are (the text form escapes them with safetext, the
// JSON form with JSON's own escapes).
package show

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

// Schema is the version of the JSON form.
const Schema = 1

// maxArgs is how many bytes of the command line a summary keeps.
const maxArgs = 64 << 10

// Image is what an image holds.
type Image struct {
	Schema int `json:"schema"`
	// Format is the format version ("1.0"), Machine the ELF machine
	// number of the header and Arch its name.
	Format  string `json:"format"`
	Machine int    `json:"machine"`
	Arch    string `json:"arch"`
	// Compression is how the whole input is compressed (none, zstd, xz);
	// RecordCompression lists the compressions of records (besides none).
	Compression       string   `json:"compression"`
	RecordCompression []string `json:"record_compression"`
	// Bytes is the length of the image read (decompressed), Records the
	// number of records read (INFO and END included).
	Bytes   int64 `json:"bytes"`
	Records int   `json:"records"`
	// PageBytes is the memory in PAGES records, PageStored the bytes
	// those records take in the image (less when compressed).
	PageBytes  int64 `json:"page_bytes"`
	PageStored int64 `json:"page_stored_bytes"`
	// FileBytes is the file contents in FILEDATA records.
	FileBytes int64 `json:"file_bytes"`
	// Complete says the image was read to its END record and found
	// sound; otherwise Error says what is wrong and where, and the rest
	// is what came before.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Dump     Dump   `json:"dump"`
	// Processes are the image's processes, the root of the tree first,
	// each after its parent.
	Processes []Process `json:"processes"`
	// IPC is the tree's System V IPC, when it has any.
	IPC   *IPC  `json:"ipc,omitempty"`
	Needs Needs `json:"needs"`
	// Problems are what procs-load refuses that show sees without
	// restoring (a restore checks much more).
	Problems []string `json:"problems"`
}

// Dump is the INFO record: where and when the image was made.
type Dump struct {
	Host    string            `json:"host"`
	Kernel  string            `json:"kernel"`
	Arch    string            `json:"arch"`
	Time    time.Time         `json:"time"`
	Procs   string            `json:"procs"` // version of procs-dump
	PID     int               `json:"pid"`
	Comm    string            `json:"comm"`
	Threads int               `json:"threads"`
	Extra   map[string]string `json:"extra,omitempty"`
}

// Process is one process of the image.
type Process struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	PGID int    `json:"pgid"`
	SID  int    `json:"sid"`
	Comm string `json:"comm"`
	// Cmdline is the process's argv as its memory held it (what
	// /proc/PID/cmdline showed); CmdlineCut says it was longer than the
	// 64 KiB kept.
	Cmdline    []string  `json:"cmdline"`
	CmdlineCut bool      `json:"cmdline_cut,omitempty"`
	Exe        string    `json:"exe"`
	Cwd        string    `json:"cwd"`
	Root       string    `json:"root"`
	Umask      string    `json:"umask"`
	Creds      Creds     `json:"creds"`
	Threads    []Thread  `json:"threads"`
	Memory     Memory    `json:"memory"`
	Mappings   []Mapping `json:"mappings"`
	Files      []OpenFD  `json:"files"`
	Terminal   *Terminal `json:"terminal,omitempty"`
	Timers     []Timer   `json:"timers"`
	Itimers    []Itimer  `json:"itimers"`
	// Zombie is set for a zombie (a process that had exited, whose
	// parent had not collected it): it has nothing but its ids, name,
	// credentials and exit status. Stopped names the signal that
	// stopped a process (job control); Subreaper says it was a child
	// subreaper.
	Zombie    *Zombie `json:"zombie,omitempty"`
	Stopped   string  `json:"stopped,omitempty"`
	Subreaper bool    `json:"subreaper,omitempty"`
}

// Zombie is how a zombie ended: its wait status, and either its exit
// code or the signal that killed it (and whether it dumped core).
type Zombie struct {
	Status int    `json:"status"`
	Exit   int    `json:"exit"`
	Signal string `json:"signal,omitempty"`
	Core   bool   `json:"core,omitempty"`
}

// Creds are the process's credentials: real, effective, saved and fs
// ids.
type Creds struct {
	UID        [4]int `json:"uid"`
	GID        [4]int `json:"gid"`
	Groups     []int  `json:"groups"`
	NoNewPrivs bool   `json:"no_new_privs"`
}

// Thread is one thread.
type Thread struct {
	TID  int    `json:"tid"`
	Comm string `json:"comm"`
	// Syscall is the number of the system call the thread was in, -1
	// when it was not in one; SyscallName names it when show knows it.
	Syscall     int    `json:"syscall"`
	SyscallName string `json:"syscall_name,omitempty"`
	Policy      string `json:"policy"`
	Priority    int    `json:"priority"`
	Nice        int    `json:"nice"`
	XCR0        uint64 `json:"xcr0"`
}

// Memory sums the mappings of a process.
type Memory struct {
	Mappings int   `json:"mappings"`
	Size     int64 `json:"size"`
	Sizes
	// Outside is memory in PAGES records that no mapping holds.
	Outside int64 `json:"outside,omitempty"`
}

// Sizes split a mapping's size by where its contents come from: Stored
// in PAGES records, FromFile mapped from its file (for shmem: the memfd
// or shared memory, whose contents travel in FILEDATA), Zero never
// touched or all zeros, Kernel made by the kernel ([vdso], [vsyscall]).
type Sizes struct {
	Stored   int64 `json:"stored"`
	FromFile int64 `json:"from_file"`
	Zero     int64 `json:"zero"`
	Kernel   int64 `json:"kernel"`
}

// Mapping is one mapping.
type Mapping struct {
	Start  uint64   `json:"start"`
	End    uint64   `json:"end"`
	Size   int64    `json:"size"`
	Perms  string   `json:"perms"` // "r-xp", as /proc/PID/maps
	Kind   string   `json:"kind"`  // anon, file, shmem, vdso, vsyscall
	Name   string   `json:"name"`
	Offset uint64   `json:"offset"`
	Advice []string `json:"advice,omitempty"`
	Sizes
}

// OpenFD is one file descriptor and its file.
type OpenFD struct {
	FD int `json:"fd"`
	// Kind is the file's kind (reg, dir, chr, tty, memfd, eventfd,
	// epoll), "stdio" for fds 0-2 that become the restorer's own, or
	// "?" when the image names a file it does not have.
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Deleted bool   `json:"deleted,omitempty"`
	Flags   string `json:"flags"` // "r", "w", "rw" or "path", then ",append", ",nonblock"...
	Cloexec bool   `json:"cloexec,omitempty"`
	Pos     int64  `json:"pos"`
	Size    int64  `json:"size"`
	// Open names its open file description in the image: fds of the
	// image's processes with the same Open share one. Dup is the earlier
	// fd of the same process that shares it, or 0.
	Open int `json:"open"`
	Dup  int `json:"dup,omitempty"`
	// Carried says the contents travel in the image; CarriedBytes is
	// how much of them was read.
	Carried      bool  `json:"carried,omitempty"`
	CarriedBytes int64 `json:"carried_bytes,omitempty"`
	// Watched is the number of fds an epoll watches; Count an eventfd's
	// counter.
	Watched int    `json:"watched,omitempty"`
	Count   uint64 `json:"count,omitempty"`
	// Unread is the bytes in a pipe, a named pipe or a unix socket that
	// no one had read.
	Unread int `json:"unread,omitempty"`
	// Socket says what a unix, UDP, ping or netlink socket is: its
	// type, address, state, and what its queue holds ("stream,
	// listening on /run/x.sock, 1 queued").
	Socket string `json:"socket,omitempty"`
	// Pidfd is the PID of the process a pidfd refers to; -1 for one
	// that ended and was reaped.
	Pidfd int `json:"pidfd,omitempty"`
	// Of a pseudo-terminal's master: its number (N of /dev/pts/N), and
	// the bytes typed on it that the slave side had not read (Unread
	// is those written on the slave side that it had not read).
	PTY   int `json:"pty,omitempty"`
	Typed int `json:"typed,omitempty"`
}

// Terminal is the process's own terminal.
type Terminal struct {
	FD        int  `json:"fd"`
	Rows      int  `json:"rows"`
	Cols      int  `json:"cols"`
	Canonical bool `json:"canonical"`
	Echo      bool `json:"echo"`
}

// Timer is a POSIX timer.
type Timer struct {
	ID         int    `json:"id"`
	Clock      string `json:"clock"`
	Notify     string `json:"notify"` // signal, none, thread, thread_id
	Signal     string `json:"signal"`
	Thread     int    `json:"thread,omitempty"`
	ValueNs    int64  `json:"value_ns"` // to the next expiry; 0: disarmed
	IntervalNs int64  `json:"interval_ns"`
}

// Itimer is an armed interval timer (setitimer(2)).
type Itimer struct {
	Which      string `json:"which"` // real, virtual, prof
	ValueUs    int64  `json:"value_us"`
	IntervalUs int64  `json:"interval_us"`
}

// Needs is what a restore of the image needs.
type Needs struct {
	Arch string `json:"arch"`
	// Kernel is the release the image was made on: a restore needs the
	// same kernel family. TimerIDs says it needs
	// PR_TIMER_CREATE_RESTORE_IDS (the process has POSIX timers).
	Kernel   string `json:"kernel"`
	TimerIDs bool   `json:"timer_ids"`
	// XCR0 is the union of the threads' XSAVE feature masks, CPU its
	// components: the CPU must have them all.
	XCR0 uint64   `json:"xcr0"`
	CPU  []string `json:"cpu"`
	// UID is the effective uid the process ran as: root restores any
	// image, another user only its own processes.
	UID int `json:"uid"`
	// Terminal says the process had its terminal open beyond fds 0-2:
	// the restorer must have one.
	Terminal bool `json:"terminal"`
	// PID is the original PID, which --pid=keep needs free.
	PID int `json:"pid"`
	// Files must exist where the process had them.
	Files []NeededFile `json:"files"`
}

// NeededFile is a file a restore opens by path.
type NeededFile struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Unchanged says the file must have the size and modification time
	// below (a regular file that does not travel in the image).
	Unchanged bool      `json:"unchanged"`
	Size      int64     `json:"size"`
	Mtime     time.Time `json:"mtime,omitzero"`
	// Created says the contents travel: a missing file is made again.
	Created bool `json:"created,omitempty"`
	// Locked says the process held locks on it, which the restore takes
	// again: no other process may hold one that conflicts.
	Locked bool `json:"locked,omitempty"`
}

// Read reads an image from in and returns what it holds. When the image
// is damaged, or in fails, it returns what came before along with the
// error, which is also in Image.Error.
func Read(in io.Reader) (*Image, error) {
	img := &Image{Schema: Schema, Processes: []Process{}, RecordCompression: []string{}, Problems: []string{}}
	r, err := format.NewReader(in)
	if err != nil {
		img.Error = err.Error()
		img.Needs.Files = []NeededFile{}
		return img, err
	}
	defer r.Close()
	major, minor := r.Version()
	img.Format = fmt.Sprintf("%d.%d", major, minor)
	img.Machine = r.Machine()
	img.Arch = archName(img.Machine)
	img.Compression = r.Compression().String()
	info := r.Info()
	img.Dump = Dump{Host: info.Host, Kernel: info.Kernel, Arch: info.Arch, Time: info.Created,
		Procs: info.Procs, PID: info.PID, Comm: info.Comm, Threads: info.Threads, Extra: info.Extra}
	var procs []*reading
	err = readRecords(r, img, &procs)
	img.Bytes = r.Offset()
	for _, p := range procs {
		img.Processes = append(img.Processes, p.summary())
	}
	img.Needs = needs(img, procs)
	img.Problems = problems(img, procs, err == nil)
	if err != nil {
		img.Error = err.Error()
		return img, err
	}
	img.Complete = true
	return img, nil
}

// readRecords reads every record after INFO, adding the processes it
// finds to procs.
func readRecords(r *format.Reader, img *Image, procs *[]*reading) error {
	var buf []byte
	sh := &shared{}
	comps := map[format.Compression]bool{}
	// passed: per process, the memory its PASS records hold once the
	// DROP records after them are taken away (a page sent twice is
	// counted once), counted into its mappings once its PROCESS record
	// is read.
	passed := map[uint32][][2]uint64{}
	defer func() {
		for c := range comps {
			img.RecordCompression = append(img.RecordCompression, c.String())
		}
		slices.Sort(img.RecordCompression)
	}()
	img.Records = 1 // INFO
	for {
		h, err := r.Next()
		if err == io.EOF {
			img.Records++ // END
			return nil
		}
		if err != nil {
			return err
		}
		if h.Compression != format.None {
			comps[h.Compression] = true
		}
		switch h.Type {
		case format.TypeFiles:
			var ft format.FileTable
			if err := r.DecodeJSON(&ft); err != nil {
				return err
			}
			sh.files, sh.carried = ft.Files, make([]int64, len(ft.Files))
			img.IPC = ipcOf(&ft)
		case format.TypeProcess:
			p := new(format.Process)
			if err := r.DecodeJSON(p); err != nil {
				return err
			}
			rd := newReading(p, sh)
			for _, r := range passed[uint32(len(*procs))] {
				rd.count(r[0], r[1])
			}
			*procs = append(*procs, rd)
		case format.TypeDrop:
			task, addr, n, err := r.ReadDrop()
			if err != nil {
				return err
			}
			passed[task] = withRange(passed[task], addr, addr+n, false)
		case format.TypePass, format.TypePages, format.TypeFileData:
			if buf == nil {
				buf = make([]byte, format.PageBufSize+16)
			}
			if h.Type == format.TypePass {
				task, addr, data, err := r.ReadPass(buf)
				if err != nil {
					return err
				}
				passed[task] = withRange(passed[task], addr, addr+uint64(len(data)), true)
				img.PageBytes += int64(len(data))
				img.PageStored += int64(h.Stored) - 16
				img.Records++
				continue
			}
			if h.Type == format.TypePages {
				task, addr, data, err := r.ReadPages(buf)
				if err != nil {
					return err
				}
				img.PageBytes += int64(len(data))
				img.PageStored += int64(h.Stored) - 16
				if int(task) < len(*procs) {
					(*procs)[task].pages(addr, data)
				}
				img.Records++
				continue
			}
			index, _, data, err := r.ReadFileData(buf)
			if err != nil {
				return err
			}
			img.FileBytes += int64(len(data))
			if int(index) < len(sh.carried) {
				sh.carried[index] += int64(len(data))
			}
		default:
			// A known type show has no use for: Next checks and
			// skips its payload.
		}
		img.Records++
	}
}

// IPC is the tree's System V IPC: its objects, as ipcs(1) lists them.
type IPC struct {
	// OwnNS: the tree had an IPC namespace of its own, and gets one
	// again.
	OwnNS bool     `json:"own_ns"`
	Shm   []IPCObj `json:"shm"`
	Sem   []IPCObj `json:"sem"`
	Msg   []IPCObj `json:"msg"`
}

// IPCObj is one System V object: its id, key, owner and mode, and its
// size: a segment's bytes, a set's semaphores, a queue's messages (and
// their bytes).
type IPCObj struct {
	ID      int    `json:"id"`
	Key     uint32 `json:"key"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Mode    string `json:"mode"`
	Size    int64  `json:"size"`
	Bytes   int64  `json:"bytes,omitempty"`
	Removed bool   `json:"removed,omitempty"`
}

// ipcOf is the System V IPC of ft, or nil.
func ipcOf(ft *format.FileTable) *IPC {
	ipc := &IPC{Shm: []IPCObj{}, Sem: []IPCObj{}, Msg: []IPCObj{}}
	obj := func(p format.IPCPerm, size int64) IPCObj {
		return IPCObj{ID: p.ID, Key: uint32(p.Key), UID: p.UID, GID: p.GID, Mode: fmt.Sprintf("%04o", p.Mode&0o777), Size: size}
	}
	for _, f := range ft.Files {
		if f.Shm != nil {
			o := obj(f.Shm.IPCPerm, f.Size)
			o.Removed = f.Shm.Removed
			ipc.Shm = append(ipc.Shm, o)
		}
	}
	if ft.IPC != nil {
		ipc.OwnNS = ft.IPC.OwnNS
		for _, s := range ft.IPC.Sem {
			ipc.Sem = append(ipc.Sem, obj(s.IPCPerm, int64(len(s.Values))))
		}
		for _, q := range ft.IPC.Msg {
			o := obj(q.IPCPerm, int64(len(q.Messages)))
			for _, m := range q.Messages {
				o.Bytes += int64(len(m.Text))
			}
			ipc.Msg = append(ipc.Msg, o)
		}
	}
	if len(ipc.Shm)+len(ipc.Sem)+len(ipc.Msg) == 0 && !ipc.OwnNS {
		return nil
	}
	return ipc
}

// shared is what the processes of an image share: its files, and the
// FILEDATA bytes of each.
type shared struct {
	files   []format.File
	carried []int64
}

// reading is a process while its image is read.
type reading struct {
	*shared
	p       *format.Process
	order   []int    // indices of p.Maps by start address
	lo, hi  []uint64 // their ranges, sorted and made disjoint
	next    int      // first range that may hold the next PAGES
	stored  []int64  // PAGES bytes in each mapping, by index of p.Maps
	outside int64

	argStart uint64
	args     []byte // the command line, zeros where no PAGES covered it
	argsCut  bool
}

func newReading(p *format.Process, sh *shared) *reading {
	rd := &reading{shared: sh, p: p, stored: make([]int64, len(p.Maps))}
	rd.order = make([]int, len(p.Maps))
	for i := range rd.order {
		rd.order[i] = i
	}
	sort.SliceStable(rd.order, func(a, b int) bool { return p.Maps[rd.order[a]].Start < p.Maps[rd.order[b]].Start })
	var prev uint64
	for _, i := range rd.order {
		m := p.Maps[i]
		lo, hi := max(m.Start, prev), m.End
		if hi < lo {
			hi = lo // an empty range: a mapping that overlaps the ones before
		}
		rd.lo, rd.hi = append(rd.lo, lo), append(rd.hi, hi)
		prev = hi
	}
	if n := p.MM.ArgEnd - p.MM.ArgStart; p.MM.ArgEnd > p.MM.ArgStart {
		rd.argStart = p.MM.ArgStart
		if n > maxArgs {
			n, rd.argsCut = maxArgs, true
		}
		rd.args = make([]byte, n)
	}
	return rd
}

// pages counts a PAGES record into the mappings it covers. Records come
// in increasing address order, so each range is passed once.
func (rd *reading) pages(addr uint64, data []byte) {
	end := addr + uint64(len(data))
	if end < addr {
		end = ^uint64(0)
	}
	if rd.args != nil {
		if lo, hi := max(addr, rd.argStart), min(end, rd.argStart+uint64(len(rd.args))); lo < hi {
			copy(rd.args[lo-rd.argStart:hi-rd.argStart], data[lo-addr:hi-addr])
		}
	}
	rd.count(addr, end)
}

// count counts the memory [addr, end) stored into the mappings it
// covers; calls come in increasing address order.
func (rd *reading) count(addr, end uint64) {
	for rd.next < len(rd.hi) && rd.hi[rd.next] <= addr {
		rd.next++
	}
	in := int64(0)
	for j := rd.next; j < len(rd.lo) && rd.lo[j] < end; j++ {
		if lo, hi := max(addr, rd.lo[j]), min(end, rd.hi[j]); lo < hi {
			rd.stored[rd.order[j]] += int64(hi - lo)
			in += int64(hi - lo)
		}
	}
	rd.outside += int64(end-addr) - in
}

// withRange adds [lo, hi) to rs (sorted, apart), or takes it away.
func withRange(rs [][2]uint64, lo, hi uint64, add bool) [][2]uint64 {
	out := make([][2]uint64, 0, len(rs)+2)
	for _, r := range rs {
		if r[1] < lo || r[0] > hi || !add && (r[1] == lo || r[0] == hi) {
			out = append(out, r)
			continue
		}
		if add {
			lo, hi = min(lo, r[0]), max(hi, r[1])
			continue
		}
		if r[0] < lo {
			out = append(out, [2]uint64{r[0], lo})
		}
		if r[1] > hi {
			out = append(out, [2]uint64{hi, r[1]})
		}
	}
	if add {
		out = append(out, [2]uint64{lo, hi})
	}
	slices.SortFunc(out, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	return out
}

// file returns file i of the process, or nil when the index is out of
// range.
func (rd *reading) file(i int) *format.File {
	if i < 0 || i >= len(rd.files) {
		return nil
	}
	return &rd.files[i]
}

func (rd *reading) summary() Process {
	p := rd.p
	out := Process{
		PID: p.PID, PPID: p.PPID, PGID: p.Pgid, SID: p.Sid, Comm: p.Comm, Cwd: p.Cwd, Root: p.Root,
		Umask:      fmt.Sprintf("%04o", p.Umask),
		Cmdline:    argv(rd.args),
		CmdlineCut: rd.argsCut,
		Creds:      Creds{UID: p.Creds.UID, GID: p.Creds.GID, Groups: p.Creds.Groups, NoNewPrivs: p.Creds.NoNewPrivs},
		Threads:    []Thread{},
		Mappings:   []Mapping{},
		Files:      []OpenFD{},
		Timers:     []Timer{},
		Itimers:    []Itimer{},
	}
	if out.Creds.Groups == nil {
		out.Creds.Groups = []int{}
	}
	if z := p.Zombie; z != nil {
		out.Zombie = &Zombie{Status: z.Status, Exit: z.Status >> 8 & 0xff, Core: z.Status&0x80 != 0}
		if sig := z.Status & 0x7f; sig != 0 {
			out.Zombie.Signal = signalName(sig)
		}
		return out
	}
	if p.Stopped != nil {
		out.Stopped = signalName(p.Stopped.Signal)
	}
	out.Subreaper = p.Subreaper
	if f := rd.file(p.Exe); f != nil {
		out.Exe = f.Path
	}
	for _, t := range p.Threads {
		th := Thread{TID: t.TID, Comm: t.Comm, Syscall: -1, Policy: policyName(t.Policy),
			Priority: t.Priority, Nice: t.Nice, XCR0: xcr0(&t)}
		if len(t.Regs) > linux.ORIG_RAX && int64(t.Regs[linux.ORIG_RAX]) >= 0 && t.Regs[linux.ORIG_RAX] < 1<<20 {
			th.Syscall = int(t.Regs[linux.ORIG_RAX])
			th.SyscallName = syscallNames[th.Syscall]
		}
		out.Threads = append(out.Threads, th)
	}
	for _, j := range rd.order {
		out.Mappings = append(out.Mappings, rd.mapping(j))
	}
	out.Memory.Mappings = len(out.Mappings)
	for _, m := range out.Mappings {
		out.Memory.Size += m.Size
		out.Memory.Stored += m.Stored
		out.Memory.FromFile += m.FromFile
		out.Memory.Zero += m.Zero
		out.Memory.Kernel += m.Kernel
	}
	out.Memory.Outside = rd.outside
	out.Files = rd.fds()
	if t := p.Terminal; t != nil {
		out.Terminal = &Terminal{FD: t.FD, Rows: int(t.Rows), Cols: int(t.Cols),
			Canonical: t.Lflag&lflagICANON != 0, Echo: t.Lflag&lflagECHO != 0}
	}
	for _, t := range p.Timers {
		out.Timers = append(out.Timers, Timer{ID: t.ID, Clock: clockName(t.Clock), Notify: notifyName(t.Notify),
			Signal: signalName(t.Signo), Thread: t.Target, ValueNs: t.ValueNsec, IntervalNs: t.IntervalNsec})
	}
	for i, it := range p.Itimers {
		if it.ValueUsec != 0 || it.IntervalUsec != 0 {
			out.Itimers = append(out.Itimers, Itimer{Which: []string{"real", "virtual", "prof"}[i],
				ValueUs: it.ValueUsec, IntervalUs: it.IntervalUsec})
		}
	}
	return out
}

// xcr0 is the XSAVE feature mask of a thread, read from its XSAVE area
// when the image does not say (procs-dump wrote 0 before it read the
// area right).
func xcr0(t *format.Thread) uint64 {
	if t.XCR0 != 0 {
		return t.XCR0
	}
	return ptrace.XFeatures(t.XState)
}

// Termios local flags (termios(3)).
const (
	lflagICANON = 0x2
	lflagECHO   = 0x8
)

func (rd *reading) mapping(i int) Mapping {
	m := rd.p.Maps[i]
	out := Mapping{Start: m.Start, End: m.End, Perms: perms(m.Prot, m.Shared), Kind: m.Kind,
		Name: m.Name, Offset: m.Offset, Advice: m.Advice}
	if m.End > m.Start {
		out.Size = int64(min(m.End-m.Start, 1<<62))
	}
	out.Stored = min(rd.stored[i], out.Size)
	rest := out.Size - out.Stored
	switch m.Kind {
	case format.MapFile, format.MapShmem:
		out.FromFile = rest
	case format.MapVdso, format.MapVsyscall:
		out.Kernel = rest
	default:
		out.Zero = rest
	}
	if out.Name == "" {
		if f := rd.file(m.File); f != nil {
			out.Name = f.Path
		}
	}
	return out
}

func perms(prot int, shared bool) string {
	b := []byte("---p")
	for i, c := range "rwx" {
		if prot&(1<<i) != 0 {
			b[i] = byte(c)
		}
	}
	if shared {
		b[3] = 's'
	}
	return string(b)
}

func (rd *reading) fds() []OpenFD {
	out := []OpenFD{}
	first := map[int]int{} // open id -> the first fd of it
	for _, fd := range rd.p.FDs {
		o := OpenFD{FD: fd.Num, Flags: openFlags(fd.Flags), Cloexec: fd.Cloexec, Pos: fd.Pos, Open: fd.Open}
		if n, ok := first[fd.Open]; ok {
			o.Dup = n
		} else {
			first[fd.Open] = fd.Num
		}
		if f := rd.file(fd.File); f != nil {
			o.Kind, o.Path, o.Deleted, o.Size = f.Kind, f.Path, f.Deleted, f.Size
			o.Carried, o.CarriedBytes = f.Carried, rd.carried[fd.File]
			if f.Eventfd != nil {
				o.Count = f.Eventfd.Count
			}
			if f.Epoll != nil {
				o.Watched = len(f.Epoll.Targets)
			}
			if f.Pipe != nil {
				o.Unread = len(f.Pipe.Data)
			}
			if f.Unix != nil {
				o.Socket, o.Unread = unixSocket(f.Unix)
			}
			if f.UDP != nil {
				o.Socket, o.Unread = dgramSocket(f.UDP)
			}
			if f.Ping != nil {
				o.Socket, _ = dgramSocket(f.Ping)
			}
			if n := f.Netlink; n != nil {
				o.Socket = fmt.Sprintf("route, port id %d, %d groups", n.PortID, len(n.Groups))
			}
			if f.PTY != nil && f.Kind == format.FilePTYMaster {
				o.PTY, o.Unread, o.Typed = f.PTY.Index, len(f.PTY.Output), len(f.PTY.Input)
			}
			if f.Pidfd != nil {
				o.Pidfd = f.Pidfd.PID
				if f.Pidfd.Reaped != nil {
					o.Pidfd = -1
				}
			}
		} else if fd.File == -1 {
			o.Kind = "stdio"
		} else {
			o.Kind = "?" // a file the image does not have
		}
		out = append(out, o)
	}
	return out
}

// openFlags says an fd's access mode and the flags that matter to a
// reader of it.
func openFlags(fl int) string {
	const (
		oAppend   = 0x400
		oNonblock = 0x800
		oPath     = 0x200000
	)
	s := []string{"r", "w", "rw", "?"}[fl&3]
	if fl&oPath != 0 {
		s = "path"
	}
	if fl&oAppend != 0 {
		s += ",append"
	}
	if fl&oNonblock != 0 {
		s += ",nonblock"
	}
	return s
}

// argv splits a command line at its NULs.
func argv(b []byte) []string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	out := []string{}
	if len(b) == 0 {
		return out
	}
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

// needs is what a restore of the image needs, from all its processes.
func needs(img *Image, procs []*reading) Needs {
	n := Needs{Arch: img.Arch, Kernel: img.Dump.Kernel, Files: []NeededFile{}, CPU: []string{}}
	seen := map[string]bool{}
	need := func(f NeededFile) {
		if !seen[f.Path] {
			seen[f.Path] = true
			n.Files = append(n.Files, f)
		}
	}
	for i, rd := range procs {
		p := rd.p
		if i == 0 {
			n.UID, n.PID = p.Creds.UID[1], p.PID
		}
		if p.Zombie != nil {
			continue // nothing to open
		}
		n.TimerIDs = n.TimerIDs || len(p.Timers) > 0
		for _, t := range p.Threads {
			n.XCR0 |= xcr0(&t)
		}
		if p.Cwd != "" {
			need(NeededFile{Path: p.Cwd, Kind: format.FileDir})
		}
		used := make([]bool, len(rd.files))
		mark := func(i int) {
			if i >= 0 && i < len(used) {
				used[i] = true
			}
		}
		mark(p.Exe)
		for _, m := range p.Maps {
			mark(m.File)
		}
		for _, fd := range p.FDs {
			mark(fd.File)
		}
		for i, f := range rd.files {
			if !used[i] {
				continue
			}
			switch f.Kind {
			case format.FileTTY:
				n.Terminal = true
			case format.FileRegular, format.FileDir, format.FileChar:
				if f.Deleted && f.Carried {
					continue // comes back as an unlinked copy
				}
				nf := NeededFile{Path: f.Path, Kind: f.Kind, Created: f.Carried, Locked: len(f.Locks) > 0}
				if f.Kind == format.FileRegular && !f.Pseudo {
					nf.Unchanged, nf.Size, nf.Mtime = true, f.Size, time.Unix(0, f.Mtime).UTC()
				}
				need(nf)
			}
		}
	}
	n.CPU = append(n.CPU, ptrace.XFeatureNames(n.XCR0)...)
	return n
}

// problems lists what procs-load refuses that is plain without
// restoring; whole says the image was read to its end.
func problems(img *Image, procs []*reading, whole bool) []string {
	out := []string{}
	if img.Machine != format.MachineX8664 {
		out = append(out, fmt.Sprintf("the image is for %s; procs restores x86-64 processes", img.Arch))
	}
	if whole && len(procs) == 0 {
		out = append(out, "the image holds no PROCESS record")
	}
	for _, rd := range procs {
		if rd.p.Zombie != nil {
			continue
		}
		if len(rd.p.Threads) == 0 {
			out = append(out, fmt.Sprintf("process %d has no thread", rd.p.PID))
		}
		if rd.file(rd.p.Exe) == nil {
			out = append(out, fmt.Sprintf("process %d names no executable", rd.p.PID))
		}
	}
	return out
}

// dgramSocket describes UDP or ping socket d, and counts the bytes of
// its queued datagrams.
func dgramSocket(d *format.Dgram) (string, int) {
	s := "never bound"
	if d.Local != "" {
		s = "bound to " + d.Local
	}
	if d.Lite {
		s = "UDP-Lite, " + s
	}
	if d.Remote != "" {
		s += ", connected to " + d.Remote
	}
	n := 0
	for _, g := range d.Queue {
		n += len(g.Data)
	}
	if len(d.Queue) > 0 {
		s += fmt.Sprintf(", %d datagrams queued", len(d.Queue))
	}
	return s, n
}

// unixSocket describes unix socket u, and counts the bytes in its queue.
func unixSocket(u *format.Unix) (string, int) {
	s := map[int]string{2: "datagram", 5: "seqpacket"}[u.Type]
	if s == "" {
		s = "stream"
	}
	switch {
	case u.Listening:
		s += fmt.Sprintf(", listening, %d queued", len(u.Queue))
	case u.External:
		s += ", its peer outside the tree closed"
	case u.Listener != nil:
		s += ", an accepted connection"
	case u.Peer >= 0:
		s += ", connected"
	case u.Connected:
		s += ", connected to a closed end or queued"
	}
	switch {
	case u.Path != "":
		s += ", bound to " + u.Path
	case len(u.Abstract) > 0:
		s += ", bound to @" + string(u.Abstract)
	}
	n := len(u.Data)
	for _, m := range u.Messages {
		n += len(m)
	}
	if len(u.Messages) > 0 {
		s += fmt.Sprintf(", %d messages", len(u.Messages))
	}
	if len(u.Rights) > 0 {
		s += fmt.Sprintf(", files in flight in %d", len(u.Rights))
	}
	return s, n
}
