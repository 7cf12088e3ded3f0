package tests

// The members format 2.0 added are untrusted input: each crafted out of
// range in the image of a real tree (checksums made right) is refused by
// procs-load with exit 125 and one line naming what is wrong, in bounded
// time, leaving no process of the tree behind, zombies included.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// attackTreePy is a tree of three: the root holds an eventfd, an epoll
// watching it and the read end of a pipe; child a writes into the pipe;
// child b holds /dev/null at fd 20, which no other process has.
const attackTreePy = `
import os, select, time
efd = os.eventfd(5)
r, w = os.pipe()
ep = select.epoll()
ep.register(efd, select.EPOLLIN)
ep.register(r, select.EPOLLIN)
if os.fork() == 0:
    os.close(r)
    print("a ready", flush=True)
    while True:
        os.write(w, b"x")
        time.sleep(0.05)
if os.fork() == 0:
    os.close(r); os.close(w)
    os.dup2(os.open("/dev/null", os.O_RDONLY), 20)
    print("b ready", flush=True)
    while True:
        time.sleep(1)
os.close(w)
print("root ready", flush=True)
while True:
    ep.poll(1)
    os.read(r, 1)
    time.sleep(0.2)
`

// attackTree dumps a running attackTreePy tree, killing it, and returns
// the image and what it holds.
func attackTree(t *testing.T) (string, *treeEdit) {
	t.Helper()
	needTools(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "log", py, "-c", attackTreePy)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		if strings.Count(string(b), "ready") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree did not start: %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	return img, decodeTree(t, img)
}

// decodeTree reads the FILES and PROCESS records of the image at path.
func decodeTree(t *testing.T, path string) *treeEdit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := format.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	e := &treeEdit{}
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) || err == nil && h.Type == format.TypePages {
			return e
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case format.TypeFiles:
			var ft format.FileTable
			err = r.DecodeJSON(&ft)
			e.Files = ft.Files
		case format.TypeProcess:
			var p format.Process
			err = r.DecodeJSON(&p)
			e.Procs = append(e.Procs, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// fileOf returns the id of the first file of e of kind.
func fileOf(t *testing.T, e *treeEdit, kind string) int {
	t.Helper()
	i := slices.IndexFunc(e.Files, func(f format.File) bool { return f.Kind == kind })
	if i < 0 {
		t.Fatalf("no file of kind %s in the image", kind)
	}
	return i
}

// fdOf returns process p's first fd naming file id.
func fdOf(t *testing.T, p *format.Process, id int) *format.FD {
	t.Helper()
	return fdWhere(t, p, fmt.Sprintf("fd of file %d", id), func(fd format.FD) bool { return fd.File == id })
}

// fdNum returns process p's fd num.
func fdNum(t *testing.T, p *format.Process, num int) *format.FD {
	t.Helper()
	return fdWhere(t, p, fmt.Sprintf("fd %d", num), func(fd format.FD) bool { return fd.Num == num })
}

// fdWhere returns process p's first fd that ok accepts, failing t,
// saying p has no such fd as what, when none.
func fdWhere(t *testing.T, p *format.Process, what string, ok func(format.FD) bool) *format.FD {
	t.Helper()
	i := slices.IndexFunc(p.FDs, ok)
	if i < 0 {
		t.Fatalf("process %d has no %s", p.PID, what)
	}
	return &p.FDs[i]
}

// TestTreeCraftedImages crafts, in the image of a real tree, each member
// of format 2.0 out of range (the FILES record, any PROCESS record,
// PAGES, INFO.requires): each is refused by name, nothing is left.
func TestTreeCraftedImages(t *testing.T) {
	noLeftovers(t)
	img, base := attackTree(t)
	if len(base.Procs) != 3 {
		t.Fatalf("image of %d processes; want 3", len(base.Procs))
	}
	efd, ep, pipe := fileOf(t, base, format.FileEventfd), fileOf(t, base, format.FileEpoll), fileOf(t, base, format.FilePipe)
	// The processes by what they hold: a the pipe's write end, b fd 20.
	ia := slices.IndexFunc(base.Procs, func(p format.Process) bool {
		return p.PID != base.Procs[0].PID && slices.ContainsFunc(p.FDs, func(fd format.FD) bool { return fd.File == pipe })
	})
	ib := slices.IndexFunc(base.Procs, func(p format.Process) bool {
		return slices.ContainsFunc(p.FDs, func(fd format.FD) bool { return fd.Num == 20 })
	})
	if ia < 1 || ib < 1 || ia == ib {
		t.Fatalf("children not found in the image: a %d, b %d", ia, ib)
	}
	root, a, b := &base.Procs[0], &base.Procs[ia], &base.Procs[ib]
	n := len(base.Files)
	in := func(p *format.Process) string { return fmt.Sprintf("process %d:", p.PID) }
	rootEP, aPipe := fdOf(t, root, ep).Num, fdOf(t, a, pipe).Num
	mapped := slices.IndexFunc(b.Maps, func(m format.Mapping) bool { return m.File >= 0 })
	page := bytes.Repeat([]byte{0xcc}, format.PageSize)
	const away = 0x100000000 // mapped by no process of the tree
	for _, tc := range []struct {
		name  string
		edit  func(e *treeEdit)
		rw    imageRewrite
		patch func(t format.RecordType, payload []byte)
		wants []string
	}{
		// FILES: ids, and each kind's state.
		{name: "fd-file-out-of-range", edit: func(e *treeEdit) {
			fdOf(t, &e.Procs[ia], pipe).File = n
		}, wants: []string{in(a), fmt.Sprintf("fd %d names file %d of %d", aPipe, n, n)}},
		{name: "mapping-file-out-of-range", edit: func(e *treeEdit) {
			e.Procs[ib].Maps[mapped].File = n + 5
		}, wants: []string{in(b), "mapping", fmt.Sprintf("names file %d of %d", n+5, n)}},
		{name: "exe-out-of-range", edit: func(e *treeEdit) {
			e.Procs[ib].Exe = n
		}, wants: []string{in(b), "names no executable"}},
		{name: "exe-negative", edit: func(e *treeEdit) {
			e.Procs[0].Exe = -1
		}, wants: []string{in(root), "names no executable"}},
		{name: "exe-a-pipe", edit: func(e *treeEdit) {
			e.Procs[ia].Exe = pipe
		}, wants: []string{in(a), "executable", `kind "pipe"`}},
		{name: "eventfd-count", edit: func(e *treeEdit) {
			e.Files[efd].Eventfd.Count = ^uint64(0)
		}, wants: []string{fmt.Sprintf("file %d", efd), "eventfd counter 18446744073709551615"}},
		{name: "eventfd-no-state", edit: func(e *treeEdit) {
			e.Files[efd].Eventfd = nil
		}, wants: []string{fmt.Sprintf("file %d", efd), "no eventfd state"}},
		{name: "epoll-target-holder-lacks", edit: func(e *treeEdit) {
			// fd 20 is b's; the root holds the epoll first.
			e.Files[ep].Epoll.Targets = append(e.Files[ep].Epoll.Targets, format.EpollEntry{FD: 20, Events: 1})
		}, wants: []string{fmt.Sprintf("epoll fd %d (process %d) watches fd 20", rootEP, root.PID), "lacks"}},
		{name: "epoll-target-itself", edit: func(e *treeEdit) {
			e.Files[ep].Epoll.Targets[0].FD = rootEP
		}, wants: []string{fmt.Sprintf("epoll fd %d (process %d) watches fd %d", rootEP, root.PID, rootEP)}},
		{name: "epoll-no-state", edit: func(e *treeEdit) {
			e.Files[ep].Epoll = nil
		}, wants: []string{fmt.Sprintf("file %d", ep), "no interest list"}},
		{name: "pipe-size-small", edit: func(e *treeEdit) {
			e.Files[pipe].Pipe.Size = 4095
		}, wants: []string{fmt.Sprintf("pipe %d: size 4095", pipe), "out of range"}},
		{name: "pipe-size-huge", edit: func(e *treeEdit) {
			e.Files[pipe].Pipe.Size = 1 << 40
		}, wants: []string{fmt.Sprintf("pipe %d: size %d", pipe, 1<<40), "out of range"}},
		{name: "pipe-data-over-size", edit: func(e *treeEdit) {
			e.Files[pipe].Pipe.Size = 4096
			e.Files[pipe].Pipe.Data = bytes.Repeat([]byte("x"), 4097)
		}, wants: []string{fmt.Sprintf("pipe %d: size 4096 with 4097 bytes unread", pipe)}},
		{name: "pipe-no-state", edit: func(e *treeEdit) {
			e.Files[pipe].Pipe = nil
		}, wants: []string{fmt.Sprintf("file %d", pipe), "no pipe state"}},
		{name: "pipe-opath-end", edit: func(e *treeEdit) {
			fd := fdOf(t, &e.Procs[ia], pipe)
			fd.Flags = unix.O_PATH
			fd.Open = 1 << 20 // a description of its own
		}, wants: []string{fmt.Sprintf("process %d fd %d", a.PID, aPipe), "O_PATH end of a pipe"}},
		{name: "kind-unknown", edit: func(e *treeEdit) {
			e.Files[pipe].Kind = "sctp"
		}, wants: []string{fmt.Sprintf("file %d", pipe), `kind "sctp"`, "cannot restore"}},

		// PROCESS: the tree.
		{name: "ppid-later", edit: func(e *treeEdit) {
			e.Procs[1].PPID = e.Procs[2].PID
		}, wants: []string{fmt.Sprintf("process %d has parent %d, which comes nowhere before it", base.Procs[1].PID, base.Procs[2].PID)}},
		{name: "ppid-absent", edit: func(e *treeEdit) {
			e.Procs[2].PPID = 4000000
		}, wants: []string{fmt.Sprintf("process %d has parent 4000000, which comes nowhere before it", base.Procs[2].PID)}},
		{name: "ppid-itself", edit: func(e *treeEdit) {
			e.Procs[ib].PPID = b.PID
		}, wants: []string{fmt.Sprintf("process %d has parent %d, which comes nowhere before it", b.PID, b.PID)}},
		{name: "ppid-out-of-range", edit: func(e *treeEdit) {
			e.Procs[ia].PPID = 1 << 23
		}, wants: []string{fmt.Sprintf("process %d has session", a.PID), fmt.Sprintf("parent %d: out of range", 1<<23)}},
		{name: "pid-twice", edit: func(e *treeEdit) {
			e.Procs[ib].PID, e.Procs[ib].Threads[0].TID = a.PID, a.PID
		}, wants: []string{fmt.Sprintf("image process %d is there twice", a.PID)}},
		{name: "tid-twice", edit: func(e *treeEdit) {
			th := e.Procs[ib].Threads[0]
			th.TID = a.PID
			e.Procs[ib].Threads = append(e.Procs[ib].Threads, th)
		}, wants: []string{fmt.Sprintf("image thread %d is in two processes", a.PID)}},
		{name: "first-thread-not-pid", edit: func(e *treeEdit) {
			e.Procs[ib].Threads[0].TID = 4000001
		}, wants: []string{fmt.Sprintf("process %d has first thread 4000001", b.PID)}},
		{name: "sid-foreign", edit: func(e *treeEdit) {
			e.Procs[ia].Sid = 4000002
		}, wants: []string{fmt.Sprintf("process %d is in session 4000002, which neither it nor its parent %d leads or is in", a.PID, root.PID)}},
		{name: "sid-out-of-range", edit: func(e *treeEdit) {
			e.Procs[ia].Sid = -1
		}, wants: []string{fmt.Sprintf("process %d has session -1", a.PID), "out of range"}},
		{name: "pgid-foreign", edit: func(e *treeEdit) {
			e.Procs[ia].Pgid = 4000003
		}, wants: []string{fmt.Sprintf("process %d is in process group 4000003, which no process of its session in the image leads", a.PID)}},
		{name: "pgid-of-a-non-leader", edit: func(e *treeEdit) {
			e.Procs[ia].Pgid = b.PID // b is in the root's group
		}, wants: []string{fmt.Sprintf("process %d is in process group %d, which no process", a.PID, b.PID)}},
		{name: "pgid-out-of-range", edit: func(e *treeEdit) {
			e.Procs[ib].Pgid = 1 << 23
		}, wants: []string{in(b), fmt.Sprintf("process group %d is out of range", 1<<23)}},

		// PROCESS: open file descriptions.
		{name: "open-below-1", edit: func(e *treeEdit) {
			fdOf(t, &e.Procs[ia], pipe).Open = 0
		}, wants: []string{fmt.Sprintf("process %d fd %d has open file description 0", a.PID, aPipe)}},
		{name: "open-other-file", edit: func(e *treeEdit) {
			// The root's eventfd fd claims the epoll's description.
			fdOf(t, &e.Procs[0], efd).Open = fdOf(t, &e.Procs[0], ep).Open
		}, wants: []string{"shares open file description", "differs from it"}},
		{name: "open-other-flags", edit: func(e *treeEdit) {
			fdOf(t, &e.Procs[ib], efd).Flags |= unix.O_NONBLOCK
		}, wants: []string{fmt.Sprintf("process %d fd %d shares open file description %d with another fd, and differs from it", b.PID, fdOf(t, b, efd).Num, fdOf(t, b, efd).Open)}},
		{name: "open-other-pos", edit: func(e *treeEdit) {
			fdOf(t, &e.Procs[ia], efd).Pos = 8
		}, wants: []string{fmt.Sprintf("process %d fd %d shares open file description", a.PID, fdOf(t, a, efd).Num), "differs from it"}},
		{name: "stream-in-a-child", edit: func(e *treeEdit) {
			fd := fdOf(t, &e.Procs[ia], pipe)
			fd.File, fd.Open = -1, 1<<20
		}, wants: []string{fmt.Sprintf("process %d fd %d is a restorer's stream, and no standard stream of the root", a.PID, aPipe)}},
		{name: "stream-above-2", edit: func(e *treeEdit) {
			fd := fdNum(t, &e.Procs[0], rootEP)
			fd.File, fd.Open = -1, 1<<20
		}, wants: []string{fmt.Sprintf("process %d fd %d is a restorer's stream", root.PID, rootEP)}},

		// PAGES and INFO.
		{name: "pages-task-out-of-range", rw: imageRewrite{pages: []pageRun{{task: 2, addr: away, data: page}}},
			patch: func(typ format.RecordType, p []byte) {
				if typ == format.TypePages && binary.LittleEndian.Uint32(p) == 2 && binary.LittleEndian.Uint64(p[8:]) == away {
					binary.LittleEndian.PutUint32(p, 3)
				}
			}, wants: []string{"corrupt image", "PAGES of process 3; the image has 3"}},
		{name: "pages-outside-the-task", edit: func(e *treeEdit) {
			// The root maps it; a does not.
			m := format.Mapping{Start: away, End: away + format.PageSize, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: format.MapAnon, File: -1}
			e.Procs[0].Maps = append([]format.Mapping{m}, e.Procs[0].Maps...)
		}, rw: imageRewrite{pages: []pageRun{{task: uint32(ia), addr: away, data: page}}},
			wants: []string{fmt.Sprintf("pages at %#x-%#x, outside the memory of process %d", away, away+format.PageSize, a.PID)}},
		{name: "requires-unknown", rw: imageRewrite{info: func(i *format.Info) {
			i.Requires = []string{"no-such-feature"}
		}}, wants: []string{`the image requires "no-such-feature", which this reader does not know`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw := tc.rw
			if tc.edit != nil {
				rw.edit = treeEditor(tc.edit)
			}
			bad := craftImage(t, img, rw)
			if tc.patch != nil {
				if err := patchRecords(bad, tc.patch); err != nil {
					t.Fatal(err)
				}
			}
			failsClean(t, loadCmd(bad), tc.wants...)
		})
	}
	// The image itself restores: what was refused was the crafting.
	t.Run("honest", func(t *testing.T) {
		restoredTree(t, img, root.PID, 3)
	})
	// What the rules allow restores: a in the group of b, which leads it
	// and comes after a (a pipeline whose first command got the higher
	// PID, after the PIDs wrapped around).
	t.Run("group-of-a-later-sibling", func(t *testing.T) {
		restoredTree(t, editTree(t, img, func(e *treeEdit) {
			e.Procs[ia].Pgid, e.Procs[ib].Pgid = b.PID, b.PID
		}), root.PID, 3)
		ga, _ := unix.Getpgid(a.PID)
		gb, _ := unix.Getpgid(b.PID)
		if ga != b.PID || gb != b.PID {
			t.Errorf("process groups of a %d and b %d: %d and %d; want %d", a.PID, b.PID, ga, gb, b.PID)
		}
	})
}

// restoredTree restores img, whose root is pid, and waits until the
// tree of n processes runs below procs-load; it is killed when t ends.
func restoredTree(t *testing.T, img string, pid, n int) {
	t.Helper()
	ld := startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	deadline := time.Now().Add(10 * time.Second)
	// Until it runs: while it is built, its processes are traced.
	running := func(tr []pinfo) bool {
		return len(tr) == n && tr[0].ppid == ld.pid() && !slices.ContainsFunc(tr, func(p pinfo) bool { return !untraced(p.pid) })
	}
	for tr := treeOf(pid); !running(tr); tr = treeOf(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("restored: %v below %d; want a tree of %d (procs-load: %s)", tr, pid, n, ld.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
