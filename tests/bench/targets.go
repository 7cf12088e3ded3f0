package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// The project's targets: from above a small process, a dump within
// dumpTarget of its floor and a restore within restoreTarget of its; a
// small process (smallMiB) dumped, and restored, within smallTarget.
const (
	dumpTarget    = 1.25
	restoreTarget = 1.5
	smallMiB      = 4
	smallTarget   = 20 * time.Millisecond
)

// targets gathers the figures the targets are about.
type targets struct {
	dumps, restores ratios
	smallDump       worst
	smallRestore    worst
}

// ratios are figures against their floors.
type ratios struct {
	n          int
	best, most float64
	what       string // the row of most
}

func (r *ratios) add(what string, d, floor time.Duration) {
	x := float64(d) / float64(floor)
	if r.n == 0 || x < r.best {
		r.best = x
	}
	if r.n == 0 || x > r.most {
		r.most, r.what = x, what
	}
	r.n++
}

// worst is the longest of some figures.
type worst struct {
	n    int
	d    time.Duration
	what string
}

func (w *worst) add(what string, d time.Duration) {
	if w.n == 0 || d > w.d {
		w.d, w.what = d, what
	}
	w.n++
}

// dump records the figure of a dump row of a victim of mib MiB.
func (t *targets) dump(mib int, what string, d, floor time.Duration) {
	if mib <= smallMiB {
		t.smallDump.add(what, d)
		return
	}
	t.dumps.add(what, d, floor)
}

// restore records the figure of a restore row of a victim of mib MiB.
func (t *targets) restore(mib int, what string, d, floor time.Duration) {
	if mib <= smallMiB {
		t.smallRestore.add(what, d)
		return
	}
	t.restores.add(what, d, floor)
}

// print says for each target whether it was met, and by how much.
func (t *targets) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tresult\t")
	ratioLine(tw, fmt.Sprintf("dump within %.2fx of its floor (over %d MiB)", dumpTarget, smallMiB), t.dumps, dumpTarget)
	ratioLine(tw, fmt.Sprintf("restore within %.2fx of its floor (over %d MiB)", restoreTarget, smallMiB), t.restores, restoreTarget)
	timeLine(tw, fmt.Sprintf("%d MiB process dumped in under %v", smallMiB, smallTarget), t.smallDump)
	timeLine(tw, fmt.Sprintf("%d MiB process restored in under %v", smallMiB, smallTarget), t.smallRestore)
	tw.Flush()
}

func ratioLine(tw io.Writer, target string, r ratios, limit float64) {
	if r.n == 0 {
		fmt.Fprintf(tw, "%s\tnot measured\t\n", target)
		return
	}
	fmt.Fprintf(tw, "%s\t%s: %.2fx to %.2fx in %d rows, worst %s\t\n", target, verdict(r.most <= limit), r.best, r.most, r.n, r.what)
}

func timeLine(tw io.Writer, target string, m worst) {
	if m.n == 0 {
		fmt.Fprintf(tw, "%s\tnot measured\t\n", target)
		return
	}
	fmt.Fprintf(tw, "%s\t%s: at most %s, in %s\t\n", target, verdict(m.d < smallTarget), dur(m.d), m.what)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
