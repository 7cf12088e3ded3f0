package dump

import (
	"fmt"
	"os"
	"strings"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

type collector struct {
	pid      int
	root     bool // the root of the tree: its fds 0-2 may be the restorer's streams
	f        *frozen
	tree     *frozenTree // every process of the tree, this one too
	fileSave bool
	p        format.Process
	t        *fileTable
	maps     []procfs.Mapping
	ttys     terminals       // the process's own terminals
	paired   map[uint64]bool // the slaves whose master the tree holds
	fds      []procfs.FD
	// skip are the ranges of memory the process shares with its parent,
	// which its pages leave out (see cow.go), sorted.
	skip      [][2]uint64
	held      []*os.File // files opened to reach mapped files (see mappedFile)
	vdso      []byte     // the [vdso], its padding wiped (see vdsopad.go)
	vdsoStart uint64
	vdsoPad   uint64 // where its padding starts
	// stoppedKids are the children of the process that are stopped;
	// waited says for each whether the process has collected its stop
	// (treeCalls).
	stoppedKids []int
	waited      map[int]bool
	// smaps, if set, is /proc/PID/smaps read just before the freeze (a
	// live dump's, whose 50 ms a GiB are then not frozen time): used
	// when /proc/PID/maps still lists the same mappings (see liveSmaps).
	smaps []procfs.Mapping
}

func (c *collector) collect() error {
	if c.f.zombie {
		return c.collectZombie()
	}
	pid := c.pid
	c.p.PID = pid
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return err
	}
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return err
	}
	c.p.Comm = st.Comm
	c.p.PPID, c.p.Pgid, c.p.Sid = st.PPID, st.PGRP, st.Session
	if c.f.stopped != 0 {
		c.p.Stopped = &format.Stop{Signal: int(c.f.stopped)}
	}
	c.p.Umask = status.Umask
	c.p.Creds = format.Creds{UID: status.Uid, GID: status.Gid, Groups: status.Groups, NoNewPrivs: status.NoNewPrivs}
	if c.p.Personality, err = procfs.Personality(pid); err != nil {
		return err
	}
	if c.p.Cwd, err = procfs.Cwd(pid); err != nil {
		return err
	}
	if cwd, ok := strings.CutSuffix(c.p.Cwd, " (deleted)"); ok {
		// Made again for the restore: its mode and owner.
		c.p.Cwd, c.p.CwdDeleted = cwd, true
		if _, err := c.fileAt(fmt.Sprintf("/proc/%d/cwd", pid), format.FileDir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if c.p.Root, err = procfs.Root(pid); err != nil {
		return err
	}
	lims, err := procfs.Limits(pid)
	if err != nil {
		return err
	}
	for _, l := range lims {
		c.p.Limits = append(c.p.Limits, format.Rlimit{Cur: l.Cur, Max: l.Max})
	}
	auxv, err := procfs.Auxv(pid)
	if err != nil {
		return err
	}
	c.p.MM = format.MM{StartCode: st.StartCode, EndCode: st.EndCode, StartData: st.StartData,
		EndData: st.EndData, StartBrk: st.StartBrk, StartStack: st.StartStack,
		ArgStart: st.ArgStart, ArgEnd: st.ArgEnd, EnvStart: st.EnvStart, EnvEnd: st.EnvEnd, Auxv: auxv}

	if c.maps, err = c.readSmaps(); err != nil {
		return err
	}
	if p := checkMaps(c.maps); len(p) > 0 {
		return p.err(pid)
	}
	fds, err := procfs.FDs(pid)
	if err != nil {
		return err
	}
	c.fds = fds
	c.ttys = terminalsOf(st.TTY, fds, c.paired)
	if p := checkFDs(fds, c.ttys); len(p) > 0 {
		return p.err(pid)
	}
	exe, err := c.fileAt(fmt.Sprintf("/proc/%d/exe", pid), format.FileRegular)
	if err != nil {
		return fmt.Errorf("exe: %w", err)
	}
	c.p.Exe = exe
	if err := c.collectMaps(); err != nil {
		return err
	}
	if err := c.collectFDs(fds); err != nil {
		return err
	}
	lo := c.vdsoStart
	if c.f.stopped != 0 {
		// A stopped process does not run on: a thread of it in the
		// vDSO is saved there (the image restores on this kernel
		// build), but for one on its way back from a trampoline.
		lo = c.vdsoPad
	}
	if err := c.f.leaveVdso(lo, c.vdsoPad, c.vdsoStart+uint64(len(c.vdso))); err != nil {
		return err
	}
	if err := c.collectThreads(); err != nil {
		return err
	}
	if err := c.collectExact(); err != nil {
		return err
	}
	if err := c.collectSeccomp(); err != nil {
		return err
	}
	if c.p.Pending, err = ptrace.PeekSiginfo(pid, true); err != nil {
		return err
	}
	if err := c.collectTimers(); err != nil {
		return err
	}
	return c.inject(status)
}

// close closes the files the collector opened.
func (c *collector) close() {
	for _, f := range c.held {
		f.Close()
	}
	c.held = nil
}
