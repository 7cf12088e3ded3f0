package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// The project's targets: from above a small process, a dump within
// dumpTarget of its floor and a restore within restoreTarget of its; a
// small process (smallMiB) dumped, and restored, within smallTarget. A
// tree is held to the same ratios, its image and its restored copy's
// summed PSS to sizeTarget of its summed PSS, and its own summed PSS
// after a dump, which must leave it as it was, to harmTarget of before.
const (
	dumpTarget    = 1.25
	restoreTarget = 1.5
	smallMiB      = 4
	smallTarget   = 20 * time.Millisecond
	sizeTarget    = 1.1
	harmTarget    = 1.01
)

// targets gathers the figures the targets are about.
type targets struct {
	dumps, restores ratios
	smallDump       worst
	smallRestore    worst

	tree                    bool // the tree was asked for (-tree)
	treeDumps, treeRestores ratios
	treeImages, treePSSes   ratios // sizes against the summed PSS
	treeDumpeds             ratios // the summed PSS after a dump against before
}

// ratios are figures against their floors, or sizes against others.
type ratios struct {
	n          int
	best, most float64
	what       string // the row of most
}

func (r *ratios) add(what string, d, floor time.Duration) {
	r.addRatio(what, float64(d)/float64(floor))
}

func (r *ratios) addRatio(what string, x float64) {
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

// treeDump records the figure of a dump row of the tree.
func (t *targets) treeDump(what string, d, floor time.Duration) { t.treeDumps.add(what, d, floor) }

// treeRestore records the figure of a restore row of the tree.
func (t *targets) treeRestore(what string, d, floor time.Duration) {
	t.treeRestores.add(what, d, floor)
}

// treeImage records the tree's image size over its summed PSS.
func (t *targets) treeImage(x float64) { t.treeImages.addRatio("tree image / summed PSS", x) }

// treeDumped records the tree's summed PSS after a dump over before.
func (t *targets) treeDumped(x float64) {
	t.treeDumpeds.addRatio("tree summed PSS after a dump / before", x)
}

// treePSS records the restored tree's summed PSS over the original's.
func (t *targets) treePSS(x float64) { t.treePSSes.addRatio("tree summed PSS restored / before", x) }

// print says for each target whether it was met, and by how much.
func (t *targets) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tresult\t")
	ratioLine(tw, fmt.Sprintf("dump within %.2fx of its floor (over %d MiB)", dumpTarget, smallMiB), t.dumps, dumpTarget)
	ratioLine(tw, fmt.Sprintf("restore within %.2fx of its floor (over %d MiB)", restoreTarget, smallMiB), t.restores, restoreTarget)
	timeLine(tw, fmt.Sprintf("%d MiB process dumped in under %v", smallMiB, smallTarget), t.smallDump)
	timeLine(tw, fmt.Sprintf("%d MiB process restored in under %v", smallMiB, smallTarget), t.smallRestore)
	if t.tree {
		ratioLine(tw, fmt.Sprintf("tree dump within %.2fx of its floor", dumpTarget), t.treeDumps, dumpTarget)
		ratioLine(tw, fmt.Sprintf("tree restore within %.2fx of its floor", restoreTarget), t.treeRestores, restoreTarget)
		ratioLine(tw, fmt.Sprintf("tree image within %.2fx of its summed PSS", sizeTarget), t.treeImages, sizeTarget)
		ratioLine(tw, fmt.Sprintf("restored tree's summed PSS within %.2fx of the original's", sizeTarget), t.treePSSes, sizeTarget)
		ratioLine(tw, fmt.Sprintf("tree's summed PSS after a dump within %.2fx of before", harmTarget), t.treeDumpeds, harmTarget)
	}
	tw.Flush()
}

func ratioLine(tw io.Writer, target string, r ratios, limit float64) {
	if r.n == 0 {
		fmt.Fprintf(tw, "%s\tnot measured\t\n", target)
		return
	}
	if r.n == 1 {
		fmt.Fprintf(tw, "%s\t%s: %.2fx in %s\t\n", target, verdict(r.most <= limit), r.most, r.what)
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
