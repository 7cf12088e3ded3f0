package restore

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/linux"
	"procs/pkg/safetext"
)

// Bounds of what an image may hold, checked before anything is started.
// Each is what Linux itself allows, or far beyond what a process holds.
const (
	maxID        = 1<<32 - 2 // uid, gid (-1 is "no change")
	maxPID       = 1 << 22   // PID_MAX_LIMIT
	maxThreads   = format.MaxThreads
	maxMaps      = 1 << 20 // vm.max_map_count is 65530 by default
	maxFiles     = 1 << 20
	maxFD        = files.MaxFD
	maxGroups    = 1 << 16 // NGROUPS_MAX
	maxSignals   = 64
	maxPending   = 1 << 16 // queued signals, of a process or a thread
	maxTimers    = 1 << 16
	maxAuxv      = 2 * 64 // AT_VECTOR_SIZE words
	maxPath      = 4095   // PATH_MAX without its NUL
	maxComm      = 15     // TASK_COMM_LEN without its NUL
	maxXState    = 1 << 16
	maxVdso      = 1 << 20
	maxAdvice    = 16
	maxSize      = 1 << 47 // a file's size or offset
	userTop      = 0x7ffffffff000
	sigInfoBytes = 128
	rlimNLimits  = 16 // RLIM_NLIMITS
)

// validate refuses images that cannot be restored here and now, before
// anything is started: every number in range, every index naming
// something that exists, every string of a sane length. An image is
// untrusted input: messages quote its strings with safetext.Quote.
// Each process is checked as a process of its own, and then the tree
// they make and the files they share.
func validate(fs []format.File, procs []format.Process) error {
	if len(procs) == 0 {
		return fmt.Errorf("image holds no process")
	}
	if err := validateFiles(fs); err != nil {
		return err
	}
	for i := range procs {
		img := &procs[i]
		var err error
		if img.Zombie != nil {
			err = validateZombie(img, i == 0)
		} else if err = validateOne(img, fs); err == nil {
			err = validateExact(img)
		}
		if err != nil {
			if len(procs) > 1 {
				err = fmt.Errorf("process %d: %w", img.PID, err)
			}
			return err
		}
	}
	if err := validateTree(procs); err != nil {
		return err
	}
	if err := validateOpens(fs, procs); err != nil {
		return err
	}
	if err := validateLocks(fs, procs); err != nil {
		return err
	}
	if err := validateProcPIDs(fs, procs); err != nil {
		return err
	}
	return files.Validate(fs, procs)
}

// validateProcPIDs checks the process of every file of a /proc folder
// that names one: a process of the image that runs (not a zombie).
func validateProcPIDs(fs []format.File, procs []format.Process) error {
	for i, f := range fs {
		if f.ProcPID == 0 {
			continue
		}
		live := slices.ContainsFunc(procs, func(p format.Process) bool { return p.PID == f.ProcPID && p.Zombie == nil })
		if f.Self == "" || !live {
			return fmt.Errorf("image file %d is of the /proc folder of process %d, which is no running process of the image", i, f.ProcPID)
		}
	}
	return nil
}

// validateOne checks process img, whose fds and mappings name files of fs.
func validateOne(img *format.Process, fs []format.File) error {
	for _, check := range []func(*format.Process) error{validateProcess, validateThreads, validateTimers, validateJob} {
		if err := check(img); err != nil {
			return err
		}
	}
	if err := validateMaps(img, fs); err != nil {
		return err
	}
	if err := validateFDs(img, fs); err != nil {
		return err
	}
	if img.Exe < 0 || img.Exe >= len(fs) {
		return fmt.Errorf("image names no executable")
	}
	if f := fs[img.Exe]; !files.TraitsOf(f.Kind).Exe {
		return fmt.Errorf("image executable %s is of kind %s", safetext.Quote(f.Path), safetext.Quote(f.Kind))
	}
	if os.Geteuid() != 0 {
		if c := img.Creds; !callersCreds(c) {
			return fmt.Errorf("the process ran as uid %d gid %d; restoring it as uid %d needs root (a restore never changes credentials otherwise)", c.UID[1], c.GID[1], os.Geteuid())
		}
	}
	return nil
}

// validateTree checks the links between the processes: every PID and
// TID once in the whole image, the root first, every other process's
// parent before it; sessions and process groups that the restore can
// make again by forking in the image's order (see tree.go).
func validateTree(procs []format.Process) error {
	byPID := map[int]*format.Process{}
	tids := map[int]bool{}
	for i := range procs {
		p := &procs[i]
		if _, ok := byPID[p.PID]; ok {
			return fmt.Errorf("image process %d is there twice", p.PID)
		}
		ids := p.Threads
		if p.Zombie != nil {
			ids = []format.Thread{{TID: p.PID}} // it had its PID
		}
		for _, t := range ids {
			if tids[t.TID] {
				return fmt.Errorf("image thread %d is in two processes", t.TID)
			}
			tids[t.TID] = true
		}
		if ids[0].TID != p.PID {
			return fmt.Errorf("image process %d has first thread %d", p.PID, ids[0].TID)
		}
		if !inRange(p.Sid, 0, maxPID) || !inRange(p.PPID, 0, maxPID) {
			return fmt.Errorf("image process %d has session %d, parent %d: out of range", p.PID, p.Sid, p.PPID)
		}
		if i > 0 {
			parent := byPID[p.PPID]
			if parent == nil {
				return fmt.Errorf("image process %d has parent %d, which comes nowhere before it", p.PID, p.PPID)
			}
			if parent.Zombie != nil {
				return fmt.Errorf("image process %d has parent %d, a zombie, which has no children", p.PID, p.PPID)
			}
			// A child is in its parent's session (fork), or leads
			// its own (setsid); the root is in the restorer's.
			if p.Sid != p.PID && p.Sid != parent.Sid {
				return fmt.Errorf("image process %d is in session %d, which neither it nor its parent %d leads or is in", p.PID, p.Sid, parent.PID)
			}
		}
		byPID[p.PID] = p
	}
	root := &procs[0]
	for i := range procs {
		if err := inheritsFrom(&procs[i], byPID[procs[i].PPID], i == 0); err != nil {
			return err
		}
	}
	for _, p := range procs[1:] {
		if p.Pgid == root.Pgid || p.Pgid == p.PID {
			continue
		}
		// Another member's group: it must lead it, in the same session.
		if l := byPID[p.Pgid]; l == nil || l.Pgid != l.PID || l.Sid != p.Sid {
			return fmt.Errorf("image process %d is in process group %d, which no process of its session in the image leads", p.PID, p.Pgid)
		}
	}
	return nil
}

// inheritsFrom checks that every mapping of p that inherits pages has its
// like in parent (nil for the root, which inherits nothing): what a fork
// gives the child.
func inheritsFrom(p, parent *format.Process, root bool) error {
	for _, m := range p.Maps {
		if len(m.Inherit) == 0 {
			continue
		}
		if root || parent == nil || !format.ForkedFrom(parent.Maps, &m) {
			return fmt.Errorf("image process %d mapping %x-%x inherits pages its parent has no mapping for", p.PID, m.Start, m.End)
		}
	}
	return nil
}

// validateOpens checks the open file descriptions: each named by fds of
// one file with the same flags and offset; one that is a restorer's
// stream (file -1) must be one of the root's fds 0-2.
func validateOpens(fs []format.File, procs []format.Process) error {
	first := map[int]format.FD{}
	holder := map[int]int{}
	opens := map[int]int{} // file id -> its open id, for files of one description
	for i, p := range procs {
		for _, fd := range p.FDs {
			if fd.Open < 1 {
				return fmt.Errorf("image process %d fd %d has open file description %d", p.PID, fd.Num, fd.Open)
			}
			if fd.File >= 0 && files.TraitsOf(fs[fd.File].Kind).OneOpen {
				if o, ok := opens[fd.File]; ok && o != fd.Open {
					return fmt.Errorf("image process %d fd %d: a %s has one open file description, and two are named", p.PID, fd.Num, fs[fd.File].Kind)
				}
				opens[fd.File] = fd.Open
			}
			f, ok := first[fd.Open]
			if !ok {
				if fd.File < 0 && (i > 0 || fd.Num > 2) {
					return fmt.Errorf("image process %d fd %d is a restorer's stream, and no standard stream of the root", p.PID, fd.Num)
				}
				first[fd.Open], holder[fd.Open] = fd, p.PID
				continue
			}
			if fd.File != f.File || fd.Flags != f.Flags || fd.Pos != f.Pos {
				return fmt.Errorf("image process %d fd %d shares open file description %d with another fd, and differs from it", p.PID, fd.Num, fd.Open)
			}
			if fd.File >= 0 && fs[fd.File].Self != "" && holder[fd.Open] != p.PID {
				return fmt.Errorf("image process %d fd %d shares a file of another process's own /proc folder", p.PID, fd.Num)
			}
		}
	}
	return nil
}

func inRange[T ~int | ~int32 | ~int64 | ~uint32 | ~uint64](v, lo, hi T) bool {
	return v >= lo && v <= hi
}

// badPath says what is wrong with a path of the image, or "".
func badPath(p string) string {
	switch {
	case p == "":
		return "is empty"
	case len(p) > maxPath:
		return fmt.Sprintf("is %d bytes long (at most %d)", len(p), maxPath)
	case strings.IndexByte(p, 0) >= 0:
		return "holds a NUL byte"
	case p[0] != '/':
		return "is not absolute"
	}
	return ""
}

func validateProcess(img *format.Process) error {
	if !inRange(img.PID, 1, maxPID) {
		return fmt.Errorf("image PID %d is out of range", img.PID)
	}
	if !inRange(img.Pgid, 0, maxPID) {
		return fmt.Errorf("image process group %d is out of range", img.Pgid)
	}
	if why := badPath(img.Cwd); why != "" {
		return fmt.Errorf("image working directory %s %s", safetext.Quote(img.Cwd), why)
	}
	if img.Umask > 0o777 {
		return fmt.Errorf("image umask %#o is out of range", img.Umask)
	}
	c := img.Creds
	for i := range 4 {
		if !inRange(c.UID[i], 0, maxID) || !inRange(c.GID[i], 0, maxID) {
			return fmt.Errorf("image credentials uid %v gid %v are out of range", c.UID, c.GID)
		}
	}
	if len(c.Groups) > maxGroups {
		return fmt.Errorf("image holds %d supplementary groups (at most %d)", len(c.Groups), maxGroups)
	}
	for _, g := range c.Groups {
		if !inRange(g, 0, maxID) {
			return fmt.Errorf("image supplementary group %d is out of range", g)
		}
	}
	if len(img.Limits) > rlimNLimits {
		return fmt.Errorf("image holds %d resource limits (at most %d)", len(img.Limits), rlimNLimits)
	}
	for i, l := range img.Limits {
		if l.Cur > l.Max {
			return fmt.Errorf("image resource limit %d: soft limit %d above hard limit %d", i, l.Cur, l.Max)
		}
	}
	if len(img.MM.Auxv) > maxAuxv {
		return fmt.Errorf("image auxiliary vector holds %d words (at most %d)", len(img.MM.Auxv), maxAuxv)
	}
	if len(img.Sigactions) > maxSignals {
		return fmt.Errorf("image holds %d signal actions (at most %d)", len(img.Sigactions), maxSignals)
	}
	if err := validatePending(img.Pending, "process"); err != nil {
		return err
	}
	for i, it := range img.Itimers {
		if it.IntervalUsec < 0 || it.ValueUsec < 0 {
			return fmt.Errorf("image interval timer %d is negative", i)
		}
	}
	if len(img.Vdso) > maxVdso {
		return fmt.Errorf("image vDSO is %d bytes (at most %d)", len(img.Vdso), maxVdso)
	}
	if t := img.Terminal; t != nil && (!inRange(t.FD, 0, maxFD-1) || len(t.Cc) > 19) {
		return fmt.Errorf("image terminal (fd %d, %d control characters) is out of range", t.FD, len(t.Cc))
	}
	return nil
}

// validatePending checks queued signals: 128 bytes of siginfo each, of
// a signal number in range.
func validatePending(infos [][]byte, whose string) error {
	if len(infos) > maxPending {
		return fmt.Errorf("image %s has %d pending signals (at most %d)", whose, len(infos), maxPending)
	}
	for _, info := range infos {
		if len(info) != sigInfoBytes {
			return fmt.Errorf("image %s has a pending signal of %d bytes of siginfo, not %d", whose, len(info), sigInfoBytes)
		}
		if sig := int32(uint32(info[0]) | uint32(info[1])<<8 | uint32(info[2])<<16 | uint32(info[3])<<24); !inRange(sig, 1, maxSignals) {
			return fmt.Errorf("image %s has a pending signal %d, out of range", whose, sig)
		}
	}
	return nil
}

func validateThreads(img *format.Process) error {
	if len(img.Threads) == 0 {
		return fmt.Errorf("image holds no thread")
	}
	if len(img.Threads) > maxThreads {
		return fmt.Errorf("image holds %d threads (at most %d)", len(img.Threads), maxThreads)
	}
	seen := map[int]bool{}
	for i, t := range img.Threads {
		if !inRange(t.TID, 1, maxPID) || seen[t.TID] {
			return fmt.Errorf("image thread %d has id %d, out of range or twice", i, t.TID)
		}
		seen[t.TID] = true
		if len(t.Regs) != linux.NumUserRegs {
			return fmt.Errorf("image thread %d has %d register words, want %d", t.TID, len(t.Regs), linux.NumUserRegs)
		}
		if why := badRegs(t.Regs); why != "" {
			return fmt.Errorf("image thread %d has %s", t.TID, why)
		}
		if len(t.Comm) > maxComm || strings.IndexByte(t.Comm, 0) >= 0 {
			return fmt.Errorf("image thread %d has name %s, longer than %d bytes or with a NUL", t.TID, safetext.Quote(t.Comm), maxComm)
		}
		if len(t.XState) > maxXState {
			return fmt.Errorf("image thread %d has %d bytes of extended state (at most %d)", t.TID, len(t.XState), maxXState)
		}
		if err := validatePending(t.Pending, fmt.Sprintf("thread %d", t.TID)); err != nil {
			return err
		}
		if r := t.Rseq; r.Addr != 0 && (r.Addr%32 != 0 || !inRange(r.Size, 32, 4096) || !mapped(img, r.Addr, uint64(r.Size), unix.PROT_READ|unix.PROT_WRITE)) {
			return fmt.Errorf("image thread %d has an rseq area at %#x (%d bytes) misaligned or outside its writable memory", t.TID, r.Addr, r.Size)
		}
		if !inRange(t.Policy, 0, 7) || !inRange(t.Nice, -20, 19) || !inRange(t.Priority, 0, 99) {
			return fmt.Errorf("image thread %d has scheduling policy %d priority %d nice %d, out of range", t.TID, t.Policy, t.Priority, t.Nice)
		}
	}
	return nil
}

// badRegs says what in regs no user thread of x86-64 can have, or "".
func badRegs(regs []uint64) string {
	switch {
	case regs[linux.CS] != 0x33:
		return fmt.Sprintf("code segment %#x, not a 64-bit process's", regs[linux.CS])
	case regs[linux.SS] != 0x2b:
		return fmt.Sprintf("stack segment %#x, not a 64-bit process's", regs[linux.SS])
	case regs[linux.FS_BASE] >= userTop || regs[linux.GS_BASE] >= userTop:
		return fmt.Sprintf("fs base %#x or gs base %#x outside user space", regs[linux.FS_BASE], regs[linux.GS_BASE])
	}
	for i, sel := range regs[linux.DS : linux.GS+1] {
		if sel > 0xffff || sel != 0 && sel&3 != 3 {
			return fmt.Sprintf("segment register %d holding %#x", linux.DS+i, sel)
		}
	}
	return ""
}

// mapped says whether [addr, addr+n) lies in one mapping of img with
// protection prot at least.
func mapped(img *format.Process, addr, n uint64, prot int) bool {
	for _, m := range img.Maps {
		if addr >= m.Start && addr+n <= m.End && addr+n > addr && m.Prot&prot == prot {
			return true
		}
	}
	return false
}

func validateFiles(fs []format.File) error {
	if len(fs) > maxFiles {
		return fmt.Errorf("image holds %d files (at most %d)", len(fs), maxFiles)
	}
	for i, f := range fs {
		if files.Lookup(f.Kind) == nil {
			// An open file of a kind this restorer cannot make again
			// (from a later writer): opening its path would be wrong.
			return fmt.Errorf("image file %d (%s) is of kind %s, which this procs-load cannot restore", i, safetext.Quote(f.Path), safetext.Quote(f.Kind))
		}
		if len(f.Path) > maxPath || strings.IndexByte(f.Path, 0) >= 0 {
			return fmt.Errorf("image file %d has path %s, longer than %d bytes or with a NUL", i, safetext.Quote(f.Path), maxPath)
		}
		if files.TraitsOf(f.Kind).ByPath {
			if why := badPath(f.Path); why != "" {
				return fmt.Errorf("image file %d has path %s, which %s", i, safetext.Quote(f.Path), why)
			}
		}
		if f.Seals != nil && (f.Kind != format.FileMemfd || *f.Seals&^format.SealsAll != 0) {
			return fmt.Errorf("image file %d (%s) has seals %#x", i, safetext.Quote(f.Path), *f.Seals)
		}
		if !inRange(f.UID, 0, maxID) || !inRange(f.GID, 0, maxID) {
			return fmt.Errorf("image file %d (%s) has owner %d:%d, out of range", i, safetext.Quote(f.Path), f.UID, f.GID)
		}
		if f.Self != "" {
			why := badSelf(f.Self)
			if tr := files.TraitsOf(f.Kind); !f.Pseudo || !tr.ByPath || tr.Mode != unix.S_IFREG && tr.Mode != unix.S_IFDIR {
				why = "is no file of proc"
			}
			if why != "" {
				return fmt.Errorf("image file %d is %s of the process's own /proc folder, which %s", i, safetext.Quote(f.Self), why)
			}
		}
		if f.Extents != nil {
			if err := validateExtents(*f.Extents, f.Size, f.Carried); err != nil {
				return fmt.Errorf("image file %d (%s) %v", i, safetext.Quote(f.Path), err)
			}
		}
		if f.Atime < 0 || f.Mtime < 0 && f.Atime != 0 {
			return fmt.Errorf("image file %d (%s) has times %d and %d, out of range", i, safetext.Quote(f.Path), f.Atime, f.Mtime)
		}
		if !inRange(f.Size, 0, maxSize) {
			return fmt.Errorf("image file %d (%s) has size %d, out of range", i, safetext.Quote(f.Path), f.Size)
		}
	}
	return nil
}

// badSelf says what is wrong with self, a path within the /proc folder
// of a process, or "": it must stay in it (which thread it names, the
// process's fds that hold it say: validateFDs).
func badSelf(self string) string {
	if self == "." {
		return ""
	}
	if len(self) > maxPath || strings.IndexByte(self, 0) >= 0 || strings.HasPrefix(self, "/") {
		return "is too long, holds a NUL or is absolute"
	}
	parts := strings.Split(self, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "leaves it"
		}
	}
	return ""
}

// selfOf checks that self, of a file of the /proc folder of process pid,
// names no thread but its main one.
func selfOf(self string, pid int) string {
	parts := strings.Split(self, "/")
	if parts[0] == "task" && len(parts) > 1 && parts[1] != strconv.Itoa(pid) {
		return "names another thread"
	}
	return ""
}

// maxExtents bounds the data extents of a carried file.
const maxExtents = 1 << 20

// validateExtents checks the data extents of a carried file of size
// bytes: in order, apart, not empty, within the file.
func validateExtents(ext [][2]int64, size int64, carried bool) error {
	if !carried {
		return fmt.Errorf("has data extents, and no contents")
	}
	if len(ext) > maxExtents {
		return fmt.Errorf("has %d data extents (at most %d)", len(ext), maxExtents)
	}
	var end int64
	for _, e := range ext {
		if e[0] < end || e[1] <= e[0] || e[1] > size {
			return fmt.Errorf("has data extent %d-%d, overlapping, empty, out of order or past its size %d", e[0], e[1], size)
		}
		end = e[1]
	}
	return nil
}

var mapKinds = []string{format.MapAnon, format.MapFile, format.MapShmem, format.MapVdso, format.MapVsyscall, format.MapSysV}

func validateMaps(img *format.Process, fs []format.File) error {
	if len(img.Maps) > maxMaps {
		return fmt.Errorf("image holds %d mappings (at most %d)", len(img.Maps), maxMaps)
	}
	var prev uint64
	for _, m := range img.Maps {
		at := fmt.Sprintf("image mapping %x-%x", m.Start, m.End)
		if !slices.Contains(mapKinds, m.Kind) {
			return fmt.Errorf("%s is of kind %s", at, safetext.Quote(m.Kind))
		}
		if m.Kind == format.MapVsyscall {
			continue // the kernel's, above user space
		}
		if m.Start >= m.End || m.Start%format.PageSize != 0 || m.End%format.PageSize != 0 || m.End > userTop || m.Start < prev {
			return fmt.Errorf("%s is out of range, unaligned, or out of order", at)
		}
		prev = m.End
		if m.Prot&^(unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC) != 0 {
			return fmt.Errorf("%s has protection %#x", at, m.Prot)
		}
		if len(m.Name) > maxPath || len(m.Advice) > maxAdvice || slices.ContainsFunc(m.Advice, func(a string) bool { return len(a) > 8 }) {
			return fmt.Errorf("%s has a name of %d bytes, or %d advice flags, or one too long", at, len(m.Name), len(m.Advice))
		}
		if m.File < -1 || m.File >= len(fs) {
			return fmt.Errorf("%s names file %d of %d", at, m.File, len(fs))
		}
		switch {
		case m.Access == "":
		case m.File < 0 || !m.Shared || m.Access != format.AccessRead && m.Access != format.AccessReadWrite:
			return fmt.Errorf("%s has file access %s, which is none of a shared file mapping", at, safetext.Quote(m.Access))
		case m.Prot&unix.PROT_WRITE != 0 && m.Access != format.AccessReadWrite:
			return fmt.Errorf("%s is shared and writable, of a file that was open read-only", at)
		}
		if m.File >= 0 {
			if k := fs[m.File].Kind; !files.TraitsOf(k).Mappable || fs[m.File].Self != "" {
				return fmt.Errorf("%s maps a file of kind %s", at, safetext.Quote(k))
			}
			if m.Offset%format.PageSize != 0 || m.Offset > maxSize {
				return fmt.Errorf("%s has file offset %#x, unaligned or out of range", at, m.Offset)
			}
		} else if m.Kind == format.MapFile {
			return fmt.Errorf("%s is of a file, and names none", at)
		}
		if err := validateInherit(m); err != nil {
			return fmt.Errorf("%s %v", at, err)
		}
		if (m.Kind == format.MapSysV) != (m.File >= 0 && fs[m.File].Kind == format.FileSysvShm) || m.Kind == format.MapSysV && (!m.Shared || m.Access == "") {
			return fmt.Errorf("%s is of kind %s and maps a file of kind %s: a System V segment is mapped shared, by an attachment, and only so", at,
				safetext.Quote(m.Kind), safetext.Quote(kindAt(fs, m.File)))
		}
	}
	return nil
}

// kindAt is the kind of file i, "" for none.
func kindAt(fs []format.File, i int) string {
	if i < 0 {
		return ""
	}
	return fs[i].Kind
}

// validateInherit checks the ranges of mapping m shared with the parent:
// whole pages of m, in order, apart; m private memory.
func validateInherit(m format.Mapping) error {
	if len(m.Inherit) == 0 {
		return nil
	}
	if m.Shared || m.Kind != format.MapAnon && m.Kind != format.MapFile {
		return fmt.Errorf("is shared or of kind %s, and inherits pages", safetext.Quote(m.Kind))
	}
	if uint64(len(m.Inherit)) > (m.End-m.Start)/format.PageSize {
		return fmt.Errorf("inherits %d ranges", len(m.Inherit))
	}
	end := m.Start
	for _, r := range m.Inherit {
		if r[0] < end || r[1] <= r[0] || r[1] > m.End || r[0]%format.PageSize != 0 || r[1]%format.PageSize != 0 {
			return fmt.Errorf("inherits %x-%x: out of it, out of order, or not whole pages", r[0], r[1])
		}
		end = r[1]
	}
	return nil
}

func validateFDs(img *format.Process, fs []format.File) error {
	if len(img.FDs) > maxFD {
		return fmt.Errorf("image holds %d fds (at most %d)", len(img.FDs), maxFD)
	}
	kind := map[int]string{} // fd number -> kind of its file
	for _, fd := range img.FDs {
		if !inRange(fd.Num, 0, maxFD-1) {
			return fmt.Errorf("image fd %d is out of range", fd.Num)
		}
		if _, ok := kind[fd.Num]; ok {
			return fmt.Errorf("image fd %d is there twice", fd.Num)
		}
		switch {
		case fd.File == -1:
			kind[fd.Num] = "" // validateOpens: a stream of the root's
		case fd.File < 0 || fd.File >= len(fs):
			return fmt.Errorf("image fd %d names file %d of %d", fd.Num, fd.File, len(fs))
		default:
			kind[fd.Num] = fs[fd.File].Kind
			if self := fs[fd.File].Self; self != "" {
				if why := selfOf(self, cmp.Or(fs[fd.File].ProcPID, img.PID)); why != "" {
					return fmt.Errorf("image fd %d is %s of the process's own /proc folder, which %s", fd.Num, safetext.Quote(self), why)
				}
			}
		}
		if fd.Flags&unix.O_ACCMODE == unix.O_ACCMODE || fd.Flags < 0 {
			return fmt.Errorf("image fd %d has open flags %#x", fd.Num, fd.Flags)
		}
		if fd.File >= 0 && files.TraitsOf(kind[fd.Num]).PathOnly && fd.Flags&unix.O_PATH == 0 {
			// Opening it for real would read a named pipe, a device...
			return fmt.Errorf("image fd %d opens a file of kind %s, which only an O_PATH fd may", fd.Num, kind[fd.Num])
		}
		if fd.Flags&unix.O_PATH != 0 && fd.Pos != 0 {
			return fmt.Errorf("image fd %d is O_PATH, with an offset", fd.Num)
		}
		if !inRange(fd.Pos, 0, maxSize) {
			return fmt.Errorf("image fd %d has offset %d, out of range", fd.Num, fd.Pos)
		}
	}
	return nil
}

// clocks a POSIX timer may run on: REALTIME, MONOTONIC, PROCESS_CPUTIME,
// THREAD_CPUTIME, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM, TAI.
var timerClocks = []int{0, 1, 2, 3, 7, 8, 9, 11}

func validateTimers(img *format.Process) error {
	if len(img.Timers) > maxTimers {
		return fmt.Errorf("image holds %d POSIX timers (at most %d)", len(img.Timers), maxTimers)
	}
	ids := map[int]bool{}
	for _, t := range img.Timers {
		if !inRange(t.ID, 0, 1<<31-1) || ids[t.ID] {
			return fmt.Errorf("image POSIX timer %d: id out of range or twice", t.ID)
		}
		ids[t.ID] = true
		if !slices.Contains(timerClocks, t.Clock) {
			return fmt.Errorf("image POSIX timer %d runs on clock %d", t.ID, t.Clock)
		}
		if n := t.Notify &^ linux.SIGEV_THREAD_ID; n != 0 && n != 1 || t.Notify == linux.SIGEV_THREAD_ID|1 {
			return fmt.Errorf("image POSIX timer %d has notification %d", t.ID, t.Notify)
		}
		if !inRange(t.Signo, 0, maxSignals) || t.IntervalNsec < 0 || t.ValueNsec < 0 {
			return fmt.Errorf("image POSIX timer %d has signal %d, interval %d, value %d: out of range", t.ID, t.Signo, t.IntervalNsec, t.ValueNsec)
		}
		if t.Notify&linux.SIGEV_THREAD_ID != 0 && !slices.ContainsFunc(img.Threads, func(th format.Thread) bool { return th.TID == t.Target }) {
			return fmt.Errorf("image POSIX timer %d signals thread %d, which the image lacks", t.ID, t.Target)
		}
	}
	return nil
}
