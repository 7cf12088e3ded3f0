package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"procs/tests/bench/floor"
	"strconv"
	"strings"
)

// The tree: a parent holding treeMiB MiB and treeChildren children
// forked from it, each of which keeps the first half shared
// copy-on-write and writes the second half (memhog MIB CHILDREN).
const (
	treeMiB      = 128
	treeChildren = 8
)

// treeSize is the tree's distinct memory: the parent's, and each child's
// half of its own.
const treeSize = int64(treeMiB)<<20 + treeChildren*int64(treeMiB)<<19

// benchTree measures the tree as benchSize measures a process: procs-dump
// of the tree against a floor that reads its distinct memory from each
// process in turn into the same sink, procs-load -d until every process
// runs and until done against the first touch of as many bytes of fresh
// memory, the image against the tree's summed PSS, and the restored
// tree's summed PSS against the original's.
//
// A dump reads memory with process_vm_readv, which copies each page the
// tree shares copy-on-write before it reads it (see floor.Range): a tree
// once dumped shares nothing any more, and its next image holds every
// page of every process. So that each run measures the tree as a user
// has it, each run of the dumps gets a new tree, and one more is
// dumped, for the image the restores read and procs-dump's peak RSS,
// with its summed PSS read before and after (the growth a dump caused).
// Every tree is killed before the next starts; the last one before the
// restores, which give the tree its PIDs.
func benchTree(tw io.Writer, tg *targets, hog, dir string) error {
	v, err := startTree(hog)
	if err != nil {
		return err
	}
	sub := newSubject(v, "tree "+human(treeSize), treeRanges(v))
	defer func() { sub.v.stop() }()
	sub.renew = func() error {
		sub.v.stop()
		v, err := startTree(hog)
		if err != nil {
			return err
		}
		sub.set(v, treeRanges(v))
		return nil
	}
	stopped, _, err := sub.dumpRows(tw, dir, tg.treeDump)
	if err != nil {
		return err
	}

	if err := sub.renew(); err != nil {
		return err
	}
	pids := sub.v.pids()
	before, err := summedPSS(pids)
	if err != nil {
		return err
	}
	img := filepath.Join(dir, "image")
	defer os.Remove(img)
	r, err := timeDump(sub.pid, sinkNamed(dir, "file"), true)
	if err != nil {
		return fmt.Errorf("procs-dump to file: %v", err)
	}
	peakDump := r.maxrss
	dumped, err := summedPSS(pids)
	if err != nil {
		return err
	}
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	sizeRow(tw, sub.label, "image / summed PSS", st.Size(), before)
	tg.treeImage(float64(st.Size()) / float64(before))
	sizeRow(tw, sub.label, "summed PSS after a dump / before", dumped, before)
	tg.treeDumped(float64(dumped) / float64(before))
	sub.stoppedRows(tw, dir, stopped)

	sub.v.stop() // the restored trees take its PIDs
	var after int64
	var pssErr error
	peakLoad, err := sub.loadRows(tw, img, tg.treeRestore, func(pids []int) {
		n, err := summedPSS(pids)
		if err != nil {
			pssErr = err
		}
		after = max(after, n) // the largest restored tree
	})
	if err != nil {
		return err
	}
	if pssErr != nil {
		return fmt.Errorf("restored tree: %v", pssErr)
	}
	sizeRow(tw, sub.label, "summed PSS restored / before", after, before)
	tg.treePSS(float64(after) / float64(before))
	line(tw, sub.label, "peak RSS procs-dump", human(peakDump))
	line(tw, sub.label, "peak RSS procs-load", human(peakLoad))
	return nil
}

// sizeRow prints a size against another and their ratio.
func sizeRow(tw io.Writer, label, what string, n, of int64) {
	line(tw, label, what, human(n), "", human(of), "", fmt.Sprintf("%.3f", float64(n)/float64(of)))
}

// startTree starts memhog's tree: treeMiB MiB in a parent and
// treeChildren children.
func startTree(hog string) (*victim, error) {
	v, err := startVictim(hog, strconv.Itoa(treeMiB), strconv.Itoa(treeChildren))
	if err != nil {
		return nil, err
	}
	if len(v.kids) != treeChildren {
		v.stop()
		return nil, fmt.Errorf("memhog made %d children, not %d", len(v.kids), treeChildren)
	}
	return v, nil
}

// treeRanges is the tree's distinct memory, as procs-dump reads it: the
// parent's, the first half of which its children share, then each
// child's own second half.
func treeRanges(v *victim) []floor.Range {
	half := v.len / 2
	root := v.cmd.Process.Pid
	ranges := []floor.Range{
		{PID: root, Addr: v.addr, Len: half, Shared: true},
		{PID: root, Addr: v.addr + uintptr(half), Len: half},
	}
	for _, k := range v.kids {
		ranges = append(ranges, floor.Range{PID: k, Addr: v.addr + uintptr(half), Len: half})
	}
	return ranges
}

// summedPSS is the sum of the proportional set sizes of pids, in bytes
// (Pss of /proc/PID/smaps_rollup): memory shared by n of them counts
// 1/n in each.
func summedPSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			return 0, err
		}
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				kib, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/smaps_rollup: %q", pid, l)
				}
				total += kib << 10
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
		}
	}
	return total, nil
}
