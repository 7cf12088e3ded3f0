package tests

// The event-loop kinds, owners of open files and /proc files of the
// tree, crafted out of range in the image of a real event loop: each is
// refused by name, nothing is left; a watch descriptor far away (within
// the bounds) comes back under its number.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"procs/format"
)

// TestEventLoopCraftedImages crafts each member the event-loop kinds add
// out of range: refused by name, before anything runs.
func TestEventLoopCraftedImages(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p, dir, el := startEventLoop(t)
	pid0, wfile, wdir, sigio := el.pid, el.wfile, el.wdir, el.sigio
	img, _ := dumpKilled(t, p)
	base := decodeTree(t, img)
	root := &base.Procs[0]
	tfd, sfd, ino := fileOf(t, base, format.FileTimerfd), fileOf(t, base, format.FileSignalfd), fileOf(t, base, format.FileInotify)
	owned := slices.IndexFunc(root.FDs, func(fd format.FD) bool { return fd.Owner != nil })
	if owned < 0 || root.FDs[owned].Num != sigio || root.FDs[owned].Sig != 35 {
		t.Fatalf("fds of the image: %+v; want fd %d owned, with signal 35", root.FDs, sigio)
	}
	timer := func(e *treeEdit) *format.Timerfd { return e.Files[tfd].Timerfd }
	watch := func(e *treeEdit, wd int) *format.InotifyWatch {
		ws := e.Files[ino].Inotify.Watches
		return &ws[slices.IndexFunc(ws, func(w format.InotifyWatch) bool { return w.WD == wd })]
	}
	for _, tc := range []struct {
		name  string
		edit  func(e *treeEdit)
		wants []string
	}{
		{"timerfd-no-state", func(e *treeEdit) { e.Files[tfd].Timerfd = nil }, []string{fmt.Sprintf("file %d, a timerfd, has no timerfd state", tfd)}},
		{"timerfd-alarm-clock", func(e *treeEdit) { timer(e).Clock = 8 }, []string{"timerfd clock 8"}},
		{"timerfd-flags", func(e *treeEdit) { timer(e).Flags = 4 }, []string{"timerfd flags 0x4"}},
		{"timerfd-interval", func(e *treeEdit) { timer(e).Interval = -1 }, []string{"timerfd interval -1 ns"}},
		{"timerfd-value", func(e *treeEdit) { timer(e).Value = 1<<62 + 1 }, []string{"out of range"}},
		{"timerfd-deadline-relative-realtime", func(e *treeEdit) { timer(e).Clock, timer(e).Flags, timer(e).Deadline = 0, 0, 5 }, []string{"timerfd deadline 5 ns"}},
		{"signalfd-no-state", func(e *treeEdit) { e.Files[sfd].Signalfd = nil }, []string{fmt.Sprintf("file %d, a signalfd, has no signalfd state", sfd)}},
		{"inotify-no-state", func(e *treeEdit) { e.Files[ino].Inotify = nil }, []string{"has no inotify state"}},
		{"inotify-wd-zero", func(e *treeEdit) { watch(e, wdir).WD = 0 }, []string{"inotify watch descriptor 0"}},
		{"inotify-wd-far", func(e *treeEdit) { watch(e, wdir).WD = 1<<20 + 1 }, []string{fmt.Sprintf("inotify watch descriptor %d", 1<<20+1)}},
		{"inotify-wd-twice", func(e *treeEdit) { watch(e, wdir).WD = wfile }, []string{fmt.Sprintf("inotify watch descriptor %d is out of range (1 to %d) or twice", wfile, 1<<20)}},
		{"inotify-path-relative", func(e *treeEdit) { watch(e, wdir).Path = "etc" }, []string{`has path "etc"`}},
		{"inotify-mask-empty", func(e *treeEdit) { watch(e, wdir).Mask = 0x4000000 }, []string{"has mask 0x4000000"}},
		{"inotify-mask-bits", func(e *treeEdit) { watch(e, wdir).Mask |= 0x8000 }, []string{"has mask"}},
		{"inotify-million-watches", func(e *treeEdit) {
			ws := make([]format.InotifyWatch, 1<<20)
			for i := range ws {
				ws[i] = format.InotifyWatch{WD: i + 1, Path: "/", Mask: 2}
			}
			e.Files[ino].Inotify.Watches = ws
		}, []string{"an inotify with 1048576 watches (at most 65536)"}},
		{"inotify-far-in-all", func(e *treeEdit) {
			watch(e, wdir).WD = 1 << 20
			f := e.Files[ino]
			f.Inotify = &format.Inotify{Watches: slices.Clone(f.Inotify.Watches)}
			e.Files = append(e.Files, f)
		}, []string{"up to descriptor 2097152 in all"}},
		{"owner-outside", func(e *treeEdit) { e.Procs[0].FDs[owned].Owner.PID = 1 }, []string{fmt.Sprintf("fd %d sends its I/O signals (F_SETOWN) to process 1, outside the tree", sigio)}},
		{"owner-type", func(e *treeEdit) { e.Procs[0].FDs[owned].Owner.Type = 3 }, []string{"has an owner of type 3"}},
		{"owner-signal", func(e *treeEdit) { e.Procs[0].FDs[owned].Sig = 65 }, []string{"signal 65 is out of range"}},
		{"owner-on-a-stream", func(e *treeEdit) {
			i := slices.IndexFunc(e.Procs[0].FDs, func(fd format.FD) bool { return fd.File < 0 })
			e.Procs[0].FDs[i].Sig = 10
		}, []string{"has an owner or signal, and is not the first fd of a file the process opens"}},
		{"proc-pid-without-self", func(e *treeEdit) { e.Files[e.Procs[0].Exe].ProcPID = pid0 }, []string{fmt.Sprintf("is of the /proc folder of process %d, which is no running process of the image", pid0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failsClean(t, loadCmd(editTree(t, img, tc.edit)), tc.wants...)
		})
	}
	// A watch descriptor far away, within the bounds, comes back as it
	// was: the program reports events under it.
	t.Run("inotify-wd-5000", func(t *testing.T) {
		ld := startLoad(t, editTree(t, img, func(e *treeEdit) { watch(e, wdir).WD = 5000 }))
		ld.find(t, "eventloop", 10*time.Second)
		expect(t, ld.out, "rel ", 0)
		if err := os.WriteFile(filepath.Join(dir, "far"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		expect(t, ld.out, "ino ", 0, "wd=5000 ", "name=far")
	})
}
