// Live dumps of a tree: every process of it is tracked (live.go), each
// with its index in the image. The tree changes while its passes run: a
// process forked since the last pass is tracked from the next, one that
// exited is forgotten, and the processes keep their order, those that
// came later after them. A process whose index now holds what another
// sent first voids it (a DROP of all of its address space) and sends
// all of its pages again; the frozen tree decides (liveTree.order,
// writeLastPass).

package dump

import (
	"fmt"
	"slices"
	"time"

	"procs/format"
	"procs/pkg/procfs"
)

// liveTree tracks the processes of a tree.
type liveTree struct {
	root int
	ts   []*tracker // by index in the image: the root first, parents before children
	// owner is, by index, whose pages the image holds there.
	owner []identity
	warn  func(string, ...any)
}

// member is a process of the tree as walked while it runs.
type member struct {
	id     identity
	ppid   int
	zombie bool
}

// treeMembers lists root and its descendants, each parent before its
// children, as they are now (they run: one may come or go meanwhile).
func treeMembers(root int) ([]member, error) {
	var out []member
	var walk func(pid int) error
	walk = func(pid int) error {
		st, err := procfs.ReadStat(pid)
		if err != nil {
			if pid == root {
				return err
			}
			return nil // exited and reaped meanwhile
		}
		out = append(out, member{id: identity{pid, st.StartTime}, ppid: st.PPID, zombie: st.State == 'Z' || st.State == 'X'})
		kids, _ := procfs.ChildrenOf(pid) // none: it exited meanwhile
		for _, k := range kids {
			if err := walk(k); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(root)
}

// treeUsesUserfaultfd returns a process of the tree of root that holds
// a userfaultfd of its own (which the tracking would conflict with), or
// 0.
func treeUsesUserfaultfd(root int) int {
	ms, _ := treeMembers(root)
	for _, m := range ms {
		if usesUserfaultfd(m.id.pid) {
			return m.id.pid
		}
	}
	return 0
}

// startLiveTree starts the tracking of every process of the tree of
// root. close must be called, error or not.
func startLiveTree(root int, warn func(string, ...any)) (*liveTree, error) {
	lt := &liveTree{root: root, warn: warn}
	_, _, err := lt.refresh()
	return lt, err
}

// close ends the tracking of every process.
func (lt *liveTree) close() {
	for _, t := range lt.ts {
		t.close()
	}
}

// refresh walks the tree again: processes that left it are forgotten,
// new ones tracked and put after the others. It says how many came and
// left.
func (lt *liveTree) refresh() (came, left int, err error) {
	ms, err := treeMembers(lt.root)
	if err != nil {
		return 0, 0, err
	}
	now := map[identity]member{}
	for _, m := range ms {
		now[m.id] = m
	}
	var ts []*tracker
	for _, t := range lt.ts {
		m, ok := now[t.id]
		if !ok || t.gone {
			t.close()
			left++
			continue
		}
		t.ppid = m.ppid
		ts = append(ts, t)
		delete(now, t.id)
	}
	for _, m := range ms {
		if _, ok := now[m.id]; !ok {
			continue
		}
		t, err := lt.track(m)
		if err != nil {
			if m.id.pid == lt.root {
				return 0, 0, err
			}
			continue // gone meanwhile, or the next pass tries again
		}
		ts = append(ts, t)
		came++
	}
	if !parentsFirst(ts, func(t *tracker) (int, int) { return t.id.pid, t.ppid }) {
		// A process was given to an ancestor (its parent exited):
		// the order of the walk, and what moved sends all again.
		slices.SortStableFunc(ts, func(a, b *tracker) int {
			return slices.IndexFunc(ms, func(m member) bool { return m.id == a.id }) - slices.IndexFunc(ms, func(m member) bool { return m.id == b.id })
		})
	}
	lt.ts = ts
	for i, t := range ts {
		t.parent = nil
		if j := slices.IndexFunc(ts[:i], func(p *tracker) bool { return p.id.pid == t.ppid }); j >= 0 && ts[j].uffd != nil {
			t.parent = ts[j]
		}
	}
	return came, left, nil
}

// track starts the tracking of m: a zombie, or a process that uses
// userfaultfd itself, gets a tracker that tracks nothing.
func (lt *liveTree) track(m member) (*tracker, error) {
	if m.zombie {
		return &tracker{id: m.id, ppid: m.ppid}, nil
	}
	if usesUserfaultfd(m.id.pid) {
		lt.warn("process %d uses userfaultfd itself, which --live would conflict with: its memory goes whole in the last pass", m.id.pid)
		return &tracker{id: m.id, ppid: m.ppid}, nil
	}
	t, err := startTracker(m.id)
	if err != nil {
		return nil, err
	}
	t.ppid = m.ppid
	return t, nil
}

// parentsFirst says whether every item of xs but the first has its
// parent before it (ids gives an item's PID and its parent's).
func parentsFirst[T any](xs []T, ids func(T) (int, int)) bool {
	seen := map[int]bool{}
	for i, x := range xs {
		pid, ppid := ids(x)
		if i > 0 && !seen[ppid] {
			return false
		}
		seen[pid] = true
	}
	return true
}

// claim makes index task of the image the pages of process id: if it
// held another's, they are voided. fresh says the image holds nothing
// of id there.
func (lt *liveTree) claim(w *format.Writer, task int, id identity) (fresh bool, err error) {
	for len(lt.owner) <= task {
		lt.owner = append(lt.owner, identity{})
	}
	switch lt.owner[task] {
	case id:
		return false, nil
	case identity{}:
	default:
		if err := w.WriteDrop(uint32(task), 0, format.MaxPassAddress); err != nil {
			return true, err
		}
	}
	lt.owner[task] = id
	return true, nil
}

// passes writes the passes of a live dump while the tree runs, until one
// of o's limits is met, and readies the freeze (ready). It returns the
// bytes of memory stored.
func (lt *liveTree) passes(w *format.Writer, o LiveOptions, logf func(string, ...any), bufs *[][]byte) (stored int64, err error) {
	start := time.Now()
	var last int64 = -1
	for pass := 1; ; pass++ {
		read, n, err := lt.onePass(w, pass, logf, bufs)
		stored += n
		if err != nil {
			return stored, err
		}
		switch {
		case pass > 1 && read <= o.SmallPass:
		case pass > 2 && read >= last:
		case pass >= o.MaxPasses:
		case time.Since(start) >= o.MaxTime:
		default:
			last = read
			continue
		}
		n, err = lt.ready(w, pass+1, logf, bufs)
		return stored + n, err
	}
}

// ready does, after the last pass, what a frozen tree need not wait for:
// it reads the smaps of a single process (in a tree, each pass read
// them), then makes one more pass of what the process wrote meanwhile
// (50 ms a GiB), as the lock list is warmed (warmLocks).
func (lt *liveTree) ready(w *format.Writer, pass int, logf func(string, ...any), bufs *[][]byte) (int64, error) {
	if len(lt.ts) > 1 {
		warmLocks()
		return 0, nil
	}
	t := lt.ts[0]
	maps, err := procfs.Smaps(t.id.pid)
	if err != nil {
		return 0, err
	}
	warmed := make(chan struct{})
	go func() {
		warmLocks()
		close(warmed)
	}()
	_, n, err := lt.onePass(w, pass, logf, bufs)
	<-warmed
	t.maps = maps // the collector's, if the frozen process has the same
	return n, err
}

// onePass writes pass number pass of every tracked process, and returns
// the bytes it read and stored.
func (lt *liveTree) onePass(w *format.Writer, pass int, logf func(string, ...any), bufs *[][]byte) (read, stored int64, err error) {
	t0 := time.Now()
	if pass > 1 {
		came, left, err := lt.refresh()
		if err != nil {
			return 0, 0, err
		}
		if came+left > 0 {
			logf("pass %d: the tree changed: %d processes came, %d left", pass, came, left)
		}
	}
	drops := 0
	for i, t := range lt.ts {
		if t.uffd == nil || t.gone {
			continue
		}
		pw, n, err := lt.pass(w, i, t, bufs)
		stored += n
		if err != nil && (i == 0 || t.alive()) {
			return read, stored, fmt.Errorf("process %d: %w", t.id.pid, err)
		}
		if err != nil {
			t.gone = true // it exited: what it sent is voided or discarded
			continue
		}
		read += pw.bytes
		drops += len(pw.drops)
	}
	procs := ""
	if len(lt.ts) > 1 {
		procs = fmt.Sprintf(" of %d processes", len(lt.ts))
	}
	logf("pass %d%s: %d pages read (%d MiB), %d KiB stored, %d ranges dropped, in %v", pass, procs, read/format.PageSize,
		read>>20, stored>>10, drops, time.Since(t0).Round(time.Microsecond))
	return read, stored, nil
}

// pass writes one pass of t, process task of the image.
func (lt *liveTree) pass(w *format.Writer, task int, t *tracker, bufs *[][]byte) (passWork, int64, error) {
	fresh, err := lt.claim(w, task, t.id)
	if err != nil {
		return passWork{}, 0, err
	}
	if fresh {
		t.reset()
	}
	// In a tree, pages may be shared with another process: smaps says
	// in which mappings (read through /proc/PID/mem, see batch.read).
	read := procfs.Maps
	if len(lt.ts) > 1 {
		read = procfs.Smaps
	}
	maps, err := read(t.id.pid)
	if err != nil {
		return passWork{}, 0, err
	}
	t.maps = maps
	pw, _, err := t.scan(maps, true, passChunk, nil)
	if err != nil {
		return pw, 0, err
	}
	n, err := t.writePass(w, uint32(task), pw, bufs)
	return pw, n, err
}

// alive says whether the process still runs: it is not exiting
// (PF_EXITING: its memory may be gone already), a zombie, gone, or
// another with its PID.
func (t *tracker) alive() bool {
	const pfExiting = 0x4
	st, err := procfs.ReadStat(t.id.pid)
	return err == nil && st.StartTime == t.id.start && st.State != 'Z' && st.State != 'X' && st.Flags&pfExiting == 0
}

// presmaps are the mappings of each tracked process with smaps figures
// read before the freeze (at its last pass, or by ready): the collectors
// use them if the frozen process has the same mappings.
func (lt *liveTree) presmaps() map[int][]procfs.Mapping {
	out := map[int][]procfs.Mapping{}
	for _, t := range lt.ts {
		if t.maps != nil {
			out[t.id.pid] = t.maps
		}
	}
	return out
}

// order puts the processes of the frozen tree in the order of the
// passes, those that came since after them, when that keeps every
// parent before its children.
func (lt *liveTree) order(ft *frozenTree) {
	var out []*frozen
	for _, t := range lt.ts {
		if f := ft.find(t.id.pid); f != nil {
			out = append(out, f)
		}
	}
	for _, f := range ft.procs {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) > 0 && out[0] == ft.procs[0] && parentsFirst(out, func(f *frozen) (int, int) { return f.pid, f.ppid }) {
		ft.procs = out
	}
}

// info is the INFO record of a live image: the tree as the dump starts.
// Its requires lists every feature a reader of page passes knows: the
// tree's files are read only once it is frozen (SPEC.md, "Page
// passes").
func (lt *liveTree) info() format.Info {
	info := format.Info{PID: lt.root, Processes: len(lt.ts), Requires: liveFeatures}
	if st, err := procfs.ReadStat(lt.root); err == nil {
		info.Comm = st.Comm
	}
	for _, t := range lt.ts {
		if tids, err := procfs.Tasks(t.id.pid); err == nil {
			info.Threads += len(tids)
		}
	}
	return info
}

// liveFeatures are the features of version 2.1, which a live image
// lists whether it uses them or not.
var liveFeatures = []string{format.FeaturePagePasses, format.FeatureFileLocks, format.FeatureSysVIPC, format.FeatureProcPID}

// writeLastPass writes, the tree frozen, the last pass of each of its
// processes: of a tracked one, what it wrote since its last pass and
// what the tracking does not cover (finalPass); of one that came after
// the last pass, all of its memory.
func (s *snapshot) writeLastPass(w *format.Writer, lt *liveTree, bufs *[][]byte) (int64, error) {
	var stored int64
	for i, c := range s.cs {
		if c.f.zombie {
			continue // no memory: what its index holds is discarded
		}
		st, err := procfs.ReadStat(c.pid)
		if err != nil {
			return stored, err
		}
		id := identity{c.pid, st.StartTime}
		fresh, err := lt.claim(w, i, id)
		if err != nil {
			return stored, err
		}
		var n int64
		if j := slices.IndexFunc(lt.ts, func(t *tracker) bool { return t.id == id && t.uffd != nil && !t.gone }); j >= 0 {
			t := lt.ts[j]
			if fresh {
				t.reset()
			}
			n, err = t.finalPass(w, uint32(i), c, bufs)
		} else {
			if !fresh { // what it sent is not known to be still there
				if err := w.WriteDrop(uint32(i), 0, format.MaxPassAddress); err != nil {
					return stored, err
				}
			}
			n, err = copyRuns(uint32(i), c.pid, func(chunk uint64, yield func(run) bool) error {
				return scanRuns(c.pid, c.maps, c.skip, chunk, yield)
			}, w, nil, residentBytes(c.maps), bufs, true)
		}
		stored += n
		if err != nil {
			return stored, err
		}
	}
	return stored, nil
}
