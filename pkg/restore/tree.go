package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/ptrace"
)

// A restore builds every process of the image, then lets them all run at
// once. In order:
//
//  1. readMeta and validate: the FILES and PROCESS records, checked whole.
//  2. prepareFiles: the loader opens and makes the image's files, for
//     each process as that process (its opener), and one open file
//     description for each that fds of the processes share.
//  3. spawn: the root is cloned from the stub as a child of procs-load
//     (in a new PID namespace, as the child of the namespace's init:
//     pidns.go); each other process is cloned by its parent, in the
//     image's order (a parent comes before its children), with its PID
//     (set_tid), while all are still copies of the stub. A process that led its
//     session calls setsid as soon as it exists, so that its children
//     are born in it; then each process joins its process group.
//  4. each process's memory is laid out, and filled from the PAGES
//     records, which say whose memory they hold; FILEDATA fills files.
//  5. each process gets the rest of its state (files, threads, signals,
//     credentials...), in the image's order; none runs yet.
//  6. release: procs-load lets every thread of every process go.
//
// On any failure every process made so far is killed and collected.

// readMeta reads the FILES record and the PROCESS records that follow it,
// and keeps the header of the record after them for readContents.
func (t *tree) readMeta() error {
	r := t.r
	h, err := r.Next()
	if err == io.EOF {
		return errors.New("corrupt image: it holds no FILES record")
	}
	if err != nil {
		return err
	}
	if h, err = t.readPasses(h); err == io.EOF {
		return errors.New("corrupt image: it holds no FILES record")
	} else if err != nil {
		return err
	}
	if h.Type != format.TypeFiles {
		return fmt.Errorf("corrupt image at byte %d (record %d): expected a FILES record, found %v", h.Offset, h.Index, h.Type)
	}
	var ft format.FileTable
	if err := r.DecodeJSON(&ft); err != nil {
		return err
	}
	t.files, t.ipc = ft.Files, ft.IPC
	for {
		h, err := r.Next()
		if err == io.EOF || t.remote != nil && errors.Is(err, errDescEnd) {
			break // (the pages come by parts: readContents)
		}
		if err != nil {
			return err
		}
		if h.Type != format.TypeProcess {
			if len(t.imgs) == 0 {
				return fmt.Errorf("corrupt image at byte %d (record %d): expected a PROCESS record, found %v", h.Offset, h.Index, h.Type)
			}
			t.next = &h
			break
		}
		var p format.Process
		if err := r.DecodeJSON(&p); err != nil {
			return err
		}
		t.imgs = append(t.imgs, p)
	}
	if len(t.imgs) == 0 {
		return errors.New("corrupt image: it holds no PROCESS record")
	}
	for i := range t.imgs {
		t.procs = append(t.procs, &builder{tree: t, img: &t.imgs[i], task: i})
	}
	t.staged.discardBeyond(len(t.imgs))
	return nil
}

// byPID is the builder of the image's process pid, or nil.
func (t *tree) byPID(pid int) *builder {
	for _, b := range t.procs {
		if b.img.PID == pid {
			return b
		}
	}
	return nil
}

// prepareFiles readies every file the processes use (see the builder's
// prepareFiles), each process's first with its own opener.
func (t *tree) prepareFiles() error {
	t.local = map[int]*os.File{}
	t.fill = map[int]*os.File{}
	t.own = map[int]bool{}
	t.descs = map[int]*os.File{}
	t.mapFiles = map[mapKey]*os.File{}
	t.memfdGiven = map[int]bool{}
	t.modes = map[int]uint32{}
	t.covered = map[int][][2]int64{}
	if err := t.makeIPC(); err != nil {
		return err
	}
	prepared := map[int]bool{}
	for _, b := range t.procs {
		if b.img.Zombie != nil {
			continue // no files
		}
		var err error
		if t.op, err = newOpener(b.img.Creds); err != nil {
			return err
		}
		err = b.prepareFiles(prepared)
		t.op.close()
		if t.op.asUser {
			// Changing a thread's fs ids made procs-load not dumpable.
			unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		}
		if err != nil {
			return err
		}
	}
	for _, f := range t.later {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// build makes every process, fills it, and lets them all run.
func (t *tree) build() error {
	if err := t.spawnRoot(); err != nil {
		return err
	}
	if err := t.procs[0].layout(); err != nil {
		return err
	}
	t.made = 1
	// The other processes are made as the pages of those before them
	// are in (makeUpTo).
	if err := t.readContents(); err != nil {
		return err
	}
	if t.lazy != nil {
		if err := t.startLazy(); err != nil {
			return err
		}
		t.logf("eager memory filled, description verified; the rest comes as the process runs")
	} else {
		t.logf("memory filled, image verified")
	}
	if err := t.joinGroups(); err != nil {
		return err
	}
	if err := t.foregrounds(); err != nil {
		return err
	}
	// Once every group exists: a zombie may lead one.
	if err := t.settle(); err != nil {
		return err
	}
	if err := t.finishFiles(); err != nil {
		return err
	}
	if err := t.sealMemfds(); err != nil {
		return err
	}
	for _, b := range t.procs {
		if b.img.Zombie != nil {
			continue
		}
		if err := b.finish(); err != nil {
			return b.wrap(err)
		}
	}
	return t.release()
}

// layout gives the process its memory layout: what it does not keep of
// the stub's or its parent's goes, the vDSO moves to its place, its
// mappings are made, and of what it inherits from its parent only the
// pages it shares with it stay.
func (b *builder) layout() error {
	if err := b.clearLayout(); err != nil {
		return b.wrap(err)
	}
	if err := b.mapMemory(); err != nil {
		return b.wrap(err)
	}
	if err := b.dropNotInherited(); err != nil {
		return b.wrap(err)
	}
	return b.wrap(b.fillFromPasses())
}

// dropNotInherited empties, in each mapping the process inherited from
// its parent, the pages it does not share with it (MADV_DONTNEED: zeros,
// or the file's pages again); its own pages come from the image.
func (b *builder) dropNotInherited() error {
	var parts [][2]uint64
	for _, m := range b.img.Maps {
		if len(m.Inherit) == 0 {
			continue
		}
		parts, _ = format.Outside(parts[:0], m.Start, m.End, m.Inherit)
		for _, p := range parts {
			if _, err := b.main.Syscall("madvise(MADV_DONTNEED)", unix.SYS_MADVISE, p[0], p[1]-p[0], unix.MADV_DONTNEED); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeUpTo makes every process up to the one numbered n that is not made
// yet, each forked from its parent once every page of the parent is in.
func (t *tree) makeUpTo(n int, pw *pageWriters) error {
	for ; t.made <= n; t.made++ {
		if err := pw.drain(); err != nil {
			return err
		}
		b := t.procs[t.made]
		if err := b.spawnChild(t.byPID(b.img.PPID)); err != nil {
			return b.wrap(err)
		}
		if b.img.Zombie != nil {
			continue // it only ends (settle)
		}
		if err := b.layout(); err != nil {
			return err
		}
		if t.made == len(t.procs)-1 {
			t.logf("%d processes created", len(t.procs))
		}
	}
	return nil
}

// wrap names the process in err when the image holds a tree.
func (b *builder) wrap(err error) error {
	if len(b.procs) > 1 && err != nil {
		return fmt.Errorf("process %d: %w", b.img.PID, err)
	}
	return err
}

func (t *tree) logf(format string, args ...any) {
	t.opts.Log("%v: "+format, append([]any{time.Since(t.start).Round(time.Microsecond)}, args...)...)
}

func (t *tree) mappings() int {
	n := 0
	for _, b := range t.procs {
		n += len(b.img.Maps)
	}
	return n
}

// spawnRoot makes the root, from the stub, and its process group.
func (t *tree) spawnRoot() error {
	root := t.procs[0]
	if err := root.spawn(); err != nil {
		return err
	}
	if err := t.joinIPC(root); err != nil {
		return root.wrap(err)
	}
	t.logf("process %d created", root.pid)
	// The root leads its group again when it led one and has its PID:
	// in the terminal's foreground (see finish), or for members of its
	// group to join.
	if img := root.img; img.Pgid == img.PID && root.innerTID(0) == img.PID {
		joined := false
		for _, p := range t.imgs[1:] {
			joined = joined || p.Pgid == img.PID
		}
		if joined || t.opts.Terminal && img.Terminal != nil && t.opts.modesTerminal(img) != nil {
			if _, err := root.main.Syscall("setpgid", unix.SYS_SETPGID, 0, 0); err != nil {
				t.warnf("the process stays in procs-load's process group: %v", err)
			} else {
				t.rootGroup = true
			}
		}
	}
	return nil
}

// joinGroups puts every process but the root in its process group: the
// leaders of groups first, so that the others find them.
func (t *tree) joinGroups() error {
	for _, leaders := range []bool{true, false} {
		for _, b := range t.procs[1:] {
			if (b.img.Pgid == b.img.PID) != leaders {
				continue
			}
			if err := b.joinGroup(); err != nil {
				return b.wrap(err)
			}
		}
	}
	return nil
}

func (t *tree) warnf(format string, args ...any) { t.opts.Warn(format, args...) }

// spawnChild clones the process from its parent, whose memory is in place
// and which is still being built (the child gets the same scratch area,
// the parent's vDSO and memory), with its PID; a session leader makes its
// session at once, before its own children are forked.
func (b *builder) spawnChild(parent *builder) error {
	if _, err := b.clone3(parent.main, parent.pid, 0, uint64(unix.SIGCHLD), b.img.PID, b.mode); err != nil {
		return err
	}
	b.mem = &ptrace.ProcMem{PID: b.pid, Write: true}
	var err error
	if b.main, err = inject.NewRemote(b.pid, b.scratch); err != nil {
		return err
	}
	b.main.Forget()
	b.tids = []int{b.pid}
	b.sock = parent.sock // the parent's, where it is now
	if b.img.Sid == b.img.PID {
		if _, err := b.main.Syscall("setsid", unix.SYS_SETSID); err != nil {
			return err
		}
		return b.controlTerminal()
	}
	return nil
}

// joinGroup puts the process in its process group: its own, the root's
// (wherever the root is), or that of another member, which leads it.
// The member has its image PID in the process (in the caller's PID
// namespace or in the tree's), and procs-load sees it as leader.pid.
func (b *builder) joinGroup() error {
	img := b.img
	if img.Sid == img.PID {
		return nil // setsid made it lead a group too
	}
	leader := b.byPID(img.Pgid)
	want, inner := 0, img.Pgid // as procs-load sees it, as the process does
	switch {
	case img.Pgid == img.PID:
		want, inner = b.pid, 0
	case img.Pgid == b.procs[0].img.Pgid && !b.rootGroup:
		// procs-load's, which the root stayed in.
		want, inner = unix.Getpgrp(), unix.Getpgrp()
		if b.ns != nil {
			inner = -1 // not to be seen from the namespace
		}
	case leader != nil:
		want = leader.pid
	}
	if cur, err := unix.Getpgid(b.pid); err == nil && cur == want {
		return nil
	}
	if inner < 0 {
		return fmt.Errorf("joining process group %d: it stayed procs-load's, outside the PID namespace", img.Pgid)
	}
	if _, err := b.main.Syscall("setpgid", unix.SYS_SETPGID, 0, uint64(inner)); err != nil {
		return fmt.Errorf("joining process group %d: %w", img.Pgid, err)
	}
	return nil
}

// release lets every process run: the others first, the root last.
func (t *tree) release() error {
	root := t.procs[0]
	if t.opts.BeforeRun != nil {
		if err := t.opts.BeforeRun(root.pid); err != nil {
			return err
		}
	}
	for _, f := range t.atRun {
		if err := f(); err != nil {
			return err
		}
	}
	// Its pidfd, for signals: taken while it cannot end.
	fd, err := unix.PidfdOpen(root.pid, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	t.rootPidfd = fd
	for i := len(t.procs) - 1; i >= 0; i-- {
		if err := t.procs[i].detach(); err != nil {
			return t.procs[i].wrap(err)
		}
	}
	if t.ns != nil {
		if err := t.ns.start(); err != nil {
			return err
		}
	}
	if root.tty != nil {
		// Once it sleeps in the system call it was in (most programs on
		// a terminal wait in read, poll or select): a signal that came
		// before would run its handler and then let it block again,
		// with the news of the new window unread (vim does that).
		// Stopped, it gets it when continued.
		if root.img.Stopped == nil {
			untilSleeping(root.pid, 100*time.Millisecond)
		}
		unix.Kill(root.pid, unix.SIGWINCH)
	}
	return nil
}

// detach lets every thread of the process go, the main one last.
func (b *builder) detach() error {
	for i := len(b.tids) - 1; i >= 0; i-- {
		if err := ptrace.Detach(b.tids[i], 0); err != nil {
			// Once one thread runs, the process may end on its own
			// before the next is let go (a signal due at once, an
			// exit): it ran, and its status tells.
			if i < len(b.tids)-1 && errors.Is(err, unix.ESRCH) {
				break
			}
			return err
		}
	}
	return nil
}

// abort kills whatever was started and collects every thread made so
// far: the threads first, for a traced thread group's leader is not
// reported before its other threads are collected. Precondition: tracer
// thread.
func (t *tree) abort() {
	t.procs[0].tty.reset()
	t.procs[0].tty = nil
	for _, b := range t.procs {
		if b.pid > 0 {
			unix.Kill(b.pid, unix.SIGKILL)
		}
	}
	if t.helper > 0 {
		unix.Kill(t.helper, unix.SIGKILL)
	}
	if t.ns != nil && t.ns.pid > 0 {
		unix.Kill(t.ns.pid, unix.SIGKILL)
	}
	if t.rootPidfd > 0 {
		unix.Close(t.rootPidfd)
		t.rootPidfd = 0
	}
	for i := len(t.procs) - 1; i >= 0; i-- {
		b := t.procs[i]
		for k := len(b.tids) - 1; k >= 0; k-- {
			reap(b.tids[k])
		}
		if b.pid > 0 && !slices.Contains(b.tids, b.pid) {
			reap(b.pid)
		}
	}
	if t.helper > 0 {
		reap(t.helper)
	}
	// A member whose parent died first came to procs-load (see
	// subreaper), a zombie once its tracer collected it above: now
	// procs-load's own to collect.
	for _, b := range t.procs[1:] {
		if b.pid > 0 {
			reap(b.pid)
		}
	}
	if t.ns != nil {
		t.ns.collect()
	}
	t.removeCreated()
}

// removeCreated removes the files created at their paths.
func (t *tree) removeCreated() {
	for _, p := range t.created {
		os.Remove(p)
	}
	t.created = nil
	t.removeMadeDirs()
	t.removeIPC()
}

// closeLocal closes every file the loader opened for the processes.
func (t *tree) closeLocal() {
	t.detachShm()
	for _, m := range []map[int]*os.File{t.local, t.descs} {
		for _, f := range m {
			f.Close()
		}
	}
	for _, f := range t.mapFiles {
		f.Close()
	}
	for _, f := range append(t.kept, t.loaderSock, t.ipcNS, t.pts) {
		if f != nil {
			f.Close()
		}
	}
	for _, b := range t.procs {
		for _, f := range []*os.File{b.exeFile, b.cwdFile} {
			if f != nil {
				f.Close()
			}
		}
	}
}

// shareMade gives the loader the open file description that process b
// made at fd num (a Maker kind's), for the fds of later processes that
// share it.
func (b *builder) shareMade(open, num int) error {
	lf, err := b.fdOf(num)
	if err != nil {
		return err
	}
	b.descs[open] = lf
	return nil
}

// fdOf takes fd num of process b, built (pidfd_getfd).
func (b *builder) fdOf(num int) (*os.File, error) {
	pidfd, err := unix.PidfdOpen(b.pid, 0)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, num, 0)
	if err != nil {
		return nil, fmt.Errorf("taking fd %d of process %d: %w", num, b.pid, err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("fd %d of process %d", num, b.img.PID)), nil
}

// sharedLater tells whether a process after b holds open file
// description open.
func (b *builder) sharedLater(open int) bool {
	for _, p := range b.imgs[b.task+1:] {
		for _, fd := range p.FDs {
			if fd.Open == open {
				return true
			}
		}
	}
	return false
}
