// Command bench measures procs-dump and procs-load on victims holding 4
// MiB, 64 MiB, 1 GiB and 4 GiB of touched memory (sizes that do not fit
// in this machine's memory are skipped) and prints each figure next to a
// floor measured in the same run:
//
//   - dump to /dev/null, to a pipe and to a file, against copying the
//     same memory into the same sink with process_vm_readv;
//   - how long the process was stopped, as the victim itself saw it;
//   - restore (procs-load -d from the file) until the process runs again
//     and until procs-load is done, against reading the same image bytes
//     into fresh anonymous memory;
//   - image size against the victim's RSS;
//   - peak RSS of procs-dump and procs-load (VmHWM, followed in runs of
//     their own).
//
// Then the same for a tree (tree.go): a parent holding 128 MiB and 8
// children forked from it, each sharing the first half copy-on-write and
// having written the second (640 MiB of distinct memory), with the image
// and the restored tree's summed PSS against the original's.
//
// Then a process moved through procs-serve on loopback (migrate.go), and
// a server of the same size moved to another host, network namespaces,
// with connections from a third and without (hosts.go).
//
// A floor does what procs does at least, as procs does it (package
// floor): as many process_vm_readv readers as procs-dump, in chunks of
// its size, a pipe's buffer grown and a file written around the page
// cache and fsynced; as many first-touch page writers as procs-load past
// its first 8 MiB. Under 1 GiB a floor is also a process of its own,
// bench-floor, a static Go binary started as procs-dump and procs-load
// are, so that starting a process counts on both sides: that is the
// floor a figure is held to, and the floor run within the bench is shown
// beside it for reference (in-proc). The bench ends with one line per
// target of the project: met or missed, and by how much.
//
// Run it as root from the repository root after make:
//
//	go run ./tests/bench [-bin bin] [-sizes 4,64,1024,4096] [-tree=true] [-runs 3] [-migrate 1024] [-conns 100] [-dir /var/tmp]
//
// It builds the victim and bench-floor in a folder of its own, which it
// removes, and starts and kills only its own processes, by PID, every
// process of a tree too (also when stopped by SIGINT or SIGTERM).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"procs/tests/bench/floor"
	"procs/tests/internal/testenv"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

var (
	binDir  = flag.String("bin", "bin", "folder holding procs-dump and procs-load")
	sizes   = flag.String("sizes", "4,64,1024,4096", "victim sizes in MiB, comma-separated (\"\": none)")
	dir     = flag.String("dir", os.TempDir(), "folder for image files")
	src     = flag.String("src", "tests/victims/memhog.c", "source of the victim")
	bufSize = flag.Int("buf", 0, "chunk size of the floors in bytes (0: procs-dump's, 64 KiB to 1 MiB by size)")
	runs    = flag.Int("runs", 3, "runs of each measure; the best is kept")
	migrate = flag.Int("migrate", 1024, "size in MiB of the victim moved through procs-serve (0: none)")
	conns   = flag.Int("conns", 100, "connections of the -migrate server moved to another host (network namespaces), beside none (-1: no such move)")
	tree    = flag.Bool("tree", true, fmt.Sprintf("measure a tree: 1 parent + %d children of %d MiB, half shared copy-on-write", treeChildren, treeMiB))
)

func main() {
	flag.Parse()
	testenv.CloseStrayFDs()
	if err := run(); err != nil {
		if stopping.Load() {
			select {} // cleanUpOnSignal exits
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl", err)
	}
	tmp, err := os.MkdirTemp(*dir, "procs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cleanUpOnSignal(tmp)
	hog := filepath.Join(tmp, "memhog")
	if out, err := exec.Command("gcc", "-O2", "-pthread", "-o", hog, *src).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc %s: %v\n%s", *src, err, out)
	}
	for _, b := range []string{"procs-dump", "procs-load"} {
		if _, err := os.Stat(filepath.Join(*binDir, b)); err != nil {
			return fmt.Errorf("%v (run make first, or give -bin)", err)
		}
	}
	// The floor's own process is a static Go binary, as procs-dump and
	// procs-load are, so that it starts as they do.
	floorBin = filepath.Join(tmp, "bench-floor")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", floorBin, "./tests/bench/floor/bench-floor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN="+runtime.Version()) // the bench's own
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build bench-floor: %v\n%s", err, out)
	}

	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %s/%s, %d CPUs, %s, kernel %s, %s\n", host, runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), cpuModel(), kernel(), memTotal())
	fmt.Printf("each figure is the best of %d runs (%d up to 256 MiB)\n", *runs, 3**runs)
	fmt.Printf("floors: %d readers for a dump and %d page writers for a restore, as procs-dump and procs-load;\n",
		floor.Readers(), floor.Writers())
	fmt.Printf("under %s a process of its own (in-proc: the same floor within the bench), from %[1]s in-process\n\n",
		human(processFloorBelow))

	out := &trimWriter{w: os.Stdout}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	line(tw, "size", "measure", "procs", "GB/s", "floor", "GB/s", "ratio", "in-proc", "ratio")
	tg := targets{tree: *tree}
	for _, s := range strings.FieldsFunc(*sizes, func(r rune) bool { return r == ',' }) {
		mib, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || mib <= 0 {
			return fmt.Errorf("bad size %q", s)
		}
		if why := fits(int64(mib)<<20, tmp); why != "" {
			line(tw, human(int64(mib)<<20), "skipped: "+why)
			continue
		}
		st := readSteal()
		if err := benchSize(tw, &tg, hog, tmp, mib); err != nil {
			tw.Flush()
			return fmt.Errorf("%d MiB: %v", mib, err)
		}
		stealRow(tw, human(int64(mib)<<20), st)
		tw.Flush()
	}
	if *tree {
		line(tw, "", fmt.Sprintf("(tree: 1 + %d x %d MiB)", treeChildren, treeMiB))
		if why := fits(treeSize, tmp); why != "" {
			line(tw, "tree", "skipped: "+why)
		} else {
			st := readSteal()
			if err := benchTree(tw, &tg, hog, tmp); err != nil {
				tw.Flush()
				return fmt.Errorf("tree: %v", err)
			}
			stealRow(tw, "tree "+human(treeSize), st)
			tw.Flush()
		}
	}
	if *migrate > 0 {
		line(tw, "", "(floor: procs-dump to /dev/null)")
		if why := fits(int64(*migrate)<<20, tmp); why != "" {
			line(tw, human(int64(*migrate)<<20), "migration skipped: "+why)
		} else {
			st := readSteal()
			if err := benchMigrate(tw, hog, tmp, *migrate); err != nil {
				tw.Flush()
				return fmt.Errorf("migration: %v", err)
			}
			stealRow(tw, human(int64(*migrate)<<20), st)
		}
	}
	if *migrate > 0 && *conns >= 0 {
		line(tw, "", "(to another host: network namespaces, procs-serve on B)")
		switch {
		case os.Geteuid() != 0:
			line(tw, human(int64(*migrate)<<20), "skipped: network namespaces need root")
		case fits(int64(*migrate)<<20, tmp) != "":
			line(tw, human(int64(*migrate)<<20), "skipped: "+fits(int64(*migrate)<<20, tmp))
		default:
			st := readSteal()
			if err := benchMoveHosts(tw, hog, tmp, *migrate, *conns); err != nil {
				tw.Flush()
				return fmt.Errorf("move to another host: %v", err)
			}
			stealRow(tw, human(int64(*migrate)<<20), st)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	tg.print(out)
	return nil
}

// trimWriter writes lines to w without their trailing blanks (the
// table's empty cells).
type trimWriter struct {
	w    io.Writer
	line []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != '\n' {
			t.line = append(t.line, c)
			continue
		}
		if _, err := fmt.Fprintf(t.w, "%s\n", bytes.TrimRight(t.line, " ")); err != nil {
			return 0, err
		}
		t.line = t.line[:0]
	}
	return len(p), nil
}

// columns is how many cells a line of the table has.
const columns = 9

// line prints one line of the table, its missing cells left empty (each
// line has them all, so that the columns line up).
func line(tw io.Writer, cells ...string) {
	fmt.Fprint(tw, strings.Join(cells, "\t")+strings.Repeat("\t", columns-len(cells)+1)+"\n")
}

// fits says why a victim of size bytes cannot be measured here, or "".
// It needs the victim, a restored clone, the restore floor's memory and
// the image file.
func fits(size int64, dir string) string {
	avail := memAvailable()
	if need := 3*size + size/2 + 512<<20; avail < need {
		return fmt.Sprintf("needs %s of memory, %s available", human(need), human(avail))
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		if free := int64(st.Bavail) * st.Bsize; free < size+size/8+64<<20 {
			return fmt.Sprintf("needs %s free in %s, %s there", human(size+size/8), dir, human(free))
		}
	}
	return ""
}

// victim is a running memhog: one process, or a tree.
type victim struct {
	cmd *exec.Cmd
	// exited is closed once the root is gone and reaped: at once, so
	// that its PID is free for its restore (a migration's procs send
	// kills it), which would wait for it else.
	exited chan struct{}
	out    chan said
	addr   uintptr
	len    int
	kids   []int // a tree's children
	done   bool  // stopped
}

// said is a line a victim printed, and when the bench read it.
type said struct {
	text string
	at   time.Time
}

// startVictim starts memhog with args (MIB [CHILDREN]) and waits until
// it is ready.
func startVictim(hog string, args ...string) (*victim, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	v := &victim{cmd: exec.Command(hog, args...), out: make(chan said, 1024), exited: make(chan struct{})}
	v.cmd.Stdout, v.cmd.Stderr = w, os.Stderr
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = v.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() { v.cmd.Wait(); close(v.exited) }()
	go readLines(r, v.out)
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case l, ok := <-v.out:
			if _, _, gap := gapOf(l.text); gap {
				continue // a tree's child, ticking before its parent is ready
			}
			if ok {
				err = v.ready(l.text)
			}
			if !ok || err != nil {
				v.stop()
				return nil, fmt.Errorf("memhog said %q", l.text)
			}
			return v, nil
		case <-deadline:
			v.stop()
			return nil, errors.New("memhog did not get ready")
		}
	}
}

// ready reads memhog's "ready ADDR LEN [PID...]".
func (v *victim) ready(l string) error {
	f := strings.Fields(l)
	if len(f) < 3 || f[0] != "ready" {
		return errors.New("not ready")
	}
	a, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		return err
	}
	if v.len, err = strconv.Atoi(f[2]); err != nil {
		return err
	}
	v.addr = uintptr(a)
	for _, k := range f[3:] {
		pid, err := strconv.Atoi(k)
		if err != nil {
			return err
		}
		v.kids = append(v.kids, pid)
	}
	return nil
}

// pids are the PIDs of the victim's processes, the root's first.
func (v *victim) pids() []int { return append([]int{v.cmd.Process.Pid}, v.kids...) }

// stop kills the victim's processes, by PID, and reaps them: the root,
// then its children, which are the bench's once the root is gone.
func (v *victim) stop() {
	if v.done {
		return
	}
	v.done = true
	v.cmd.Process.Kill()
	<-v.exited
	killTree(v.kids)
}

func readLines(r io.ReadCloser, out chan<- said) {
	defer r.Close()
	defer close(out)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case out <- said{sc.Text(), time.Now()}:
		default: // nobody listens: drop
		}
	}
}

// maxGap drains the "gap US [I]" lines and returns the longest.
func maxGap(out <-chan said) time.Duration {
	var g time.Duration
	for {
		select {
		case l, ok := <-out:
			if !ok {
				return g
			}
			if us, _, ok := gapOf(l.text); ok {
				g = max(g, us)
			}
		default:
			return g
		}
	}
}

// gapOf reads memhog's "gap US [I]": the gap and which process of a tree
// saw it (0 alone).
func gapOf(l string) (gap time.Duration, member int, ok bool) {
	f := strings.Fields(l)
	if len(f) < 2 || len(f) > 3 || f[0] != "gap" {
		return 0, 0, false
	}
	us, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if len(f) == 3 {
		if member, err = strconv.Atoi(f[2]); err != nil {
			return 0, 0, false
		}
	}
	return time.Duration(us) * time.Microsecond, member, true
}

// sink is where an image or the floor's bytes go.
type sink struct {
	name string
	// open opens the sink; a file sink is a file named name.
	open func(name string) (w *os.File, done func() error, err error)
}

func sinks(dir string) []sink {
	return []sink{
		{"/dev/null", func(string) (*os.File, func() error, error) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			return f, func() error { return nil }, err
		}},
		{"pipe", func(string) (*os.File, func() error, error) {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, err
			}
			drained := make(chan error, 1)
			go func() {
				buf := make([]byte, 1<<20)
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						drained <- nil
						break
					}
					if err != nil {
						drained <- err
						break
					}
				}
				r.Close()
			}()
			return w, func() error { return <-drained }, nil
		}},
		{"file", func(name string) (*os.File, func() error, error) {
			f, err := os.Create(filepath.Join(dir, name))
			return f, func() error { return nil }, err
		}},
	}
}

// sinkNamed is the sink of sinks(dir) named name.
func sinkNamed(dir, name string) sink {
	for _, s := range sinks(dir) {
		if s.name == name {
			return s
		}
	}
	panic("no sink " + name)
}

// result of one timed command.
type result struct {
	d      time.Duration
	maxrss int64 // bytes
}

// processFloorBelow is the size under which the floors are also measured
// as processes of their own: there starting a process is a good part of
// a figure, and procs pays for it; from it on it is noise.
const processFloorBelow = 1 << 30

// floorBin is the bench-floor command, built by run.
var floorBin string

// floors is the best time of a floor measured both ways: proc as a
// process of its own (0 when not measured), in within the bench.
type floors struct{ proc, in time.Duration }

func newFloors() floors { return floors{1 << 62, 1 << 62} }

func (f *floors) keep(proc, in time.Duration) {
	f.proc, f.in = min(f.proc, proc), min(f.in, in)
}

// measured says whether the process floor was measured.
func (f floors) measured() bool { return f.proc > 0 && f.proc < 1<<62 }

// main is the floor a figure is held to: the process one when there is
// one.
func (f floors) main() time.Duration {
	if f.measured() {
		return f.proc
	}
	return f.in
}

// ref is the floor shown for reference beside main, if any.
func (f floors) ref() time.Duration {
	if f.measured() {
		return f.in
	}
	return 0
}

// chunkFor is the floors' chunk size for a process of size bytes.
func chunkFor(size int64) int {
	if *bufSize > 0 {
		return *bufSize
	}
	return floor.Chunk(size)
}

func benchSize(tw io.Writer, tg *targets, hog, dir string, mib int) error {
	v, err := startVictim(hog, strconv.Itoa(mib))
	if err != nil {
		return err
	}
	defer v.stop()
	sub := newSubject(v, human(int64(v.len)), []floor.Range{{PID: v.cmd.Process.Pid, Addr: v.addr, Len: v.len}})
	stopped, peakDump, err := sub.dumpRows(tw, dir, func(what string, d, floor time.Duration) {
		tg.dump(mib, what, d, floor)
	})
	if err != nil {
		return err
	}
	img := filepath.Join(dir, "image")
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	rss := vmRSS(sub.pid)
	line(tw, sub.label, "image / RSS", human(st.Size()), "", human(rss), "", fmt.Sprintf("%.3f", float64(st.Size())/float64(rss)))
	sub.stoppedRows(tw, dir, stopped)
	peakLoad, err := sub.loadRows(tw, img, func(what string, d, floor time.Duration) {
		tg.restore(mib, what, d, floor)
	}, nil)
	if err != nil {
		return err
	}
	line(tw, sub.label, "peak RSS procs-dump", human(peakDump))
	line(tw, sub.label, "peak RSS procs-load", human(peakLoad))
	os.Remove(img)
	return nil
}

// subject is what rows of the bench are about: a victim, one process or
// a tree, and the memory a floor reads for it.
type subject struct {
	label  string
	v      *victim
	pid    int           // the root's
	ranges []floor.Range // its distinct memory, in the order procs-dump reads it
	size   int64         // bytes in ranges
	// n is how many runs each measure gets: small sizes take a few
	// milliseconds, where this VM's noise is largest, and get more.
	n int
	// asProcess says whether the floors are measured as processes too
	// (see processFloorBelow).
	asProcess bool
	// renew, if not nil, replaces the victim with a new one before each
	// run of the dumps: a dump changes it (see benchTree).
	renew func() error
}

func newSubject(v *victim, label string, ranges []floor.Range) *subject {
	sub := &subject{label: label, n: *runs}
	sub.set(v, ranges)
	if sub.size <= 256<<20 {
		sub.n = 3 * *runs
	}
	sub.asProcess = sub.size < processFloorBelow
	return sub
}

// set makes v, whose distinct memory is ranges, the subject's victim.
func (sub *subject) set(v *victim, ranges []floor.Range) {
	sub.v, sub.pid, sub.ranges, sub.size = v, v.cmd.Process.Pid, ranges, rangesSize(ranges)
}

// record takes a row's figure against its floor for the targets.
type record func(what string, d, floor time.Duration)

// dumpRows prints the rows of procs-dump -K of the subject into each
// sink, against their floors, and leaves the image in dir/image. It
// returns how long the victim was stopped in the best run to each sink,
// as its processes saw it (the longest gap any of them saw), and unless
// the subject is renewed, procs-dump's peak RSS.
func (sub *subject) dumpRows(tw io.Writer, dir string, rec record) (stopped map[string]time.Duration, peak int64, err error) {
	stopped = map[string]time.Duration{}
	for _, s := range sinks(dir) {
		best, fl := time.Duration(1<<62), newFloors()
		stopped[s.name] = 1 << 62
		for range sub.n {
			if sub.renew != nil {
				if err := sub.renew(); err != nil {
					return nil, 0, err
				}
			}
			// The floors first, which leave the victim as it was.
			var proc time.Duration
			if sub.asProcess {
				if proc, err = timeFloorDumpProcess(sub.ranges, s); err != nil {
					return nil, 0, fmt.Errorf("floor process to %s: %v", s.name, err)
				}
			}
			in, err := timeFloorDump(sub.ranges, s)
			if err != nil {
				return nil, 0, fmt.Errorf("floor to %s: %v", s.name, err)
			}
			fl.keep(proc, in)
			maxGap(sub.v.out)
			r, err := timeDump(sub.pid, s, false)
			if err != nil {
				return nil, 0, fmt.Errorf("procs-dump to %s: %v", s.name, err)
			}
			best = min(best, r.d)
			time.Sleep(20 * time.Millisecond)
			stopped[s.name] = min(stopped[s.name], maxGap(sub.v.out)) // of the best run, as the rest
		}
		what := "dump to " + s.name
		row(tw, sub.label, what, best, fl.main(), fl.ref(), sub.size)
		rec(sub.label+" "+what, best, fl.main())
		if sub.renew != nil {
			continue // a new victim for each peak run would cost too much
		}
		// Peak RSS in a run of its own: following it polls
		// /proc/PID/status every millisecond, which the timed runs
		// should not pay for.
		r, err := timeDump(sub.pid, s, true)
		if err != nil {
			return nil, 0, fmt.Errorf("procs-dump to %s: %v", s.name, err)
		}
		peak = max(peak, r.maxrss)
		time.Sleep(20 * time.Millisecond)
		maxGap(sub.v.out)
	}
	os.Remove(filepath.Join(dir, "floor"))
	return stopped, peak, nil
}

// stoppedRows prints how long the victim was stopped by a dump to each
// sink.
func (sub *subject) stoppedRows(tw io.Writer, dir string, stopped map[string]time.Duration) {
	for _, s := range sinks(dir) {
		d := dur(stopped[s.name])
		if stopped[s.name] == 0 {
			d = "<5ms" // memhog reports gaps of more than 5 ms
		}
		line(tw, sub.label, "stopped, dump to "+s.name, d)
	}
}

// loadRows prints the rows of procs-load -d of img, until the restored
// victim runs (each of its processes) and until procs-load is done,
// against the restore floor, and returns procs-load's peak RSS (in a
// run of its own). Each timed run's restored victim is given to
// restored, if not nil, before it is killed.
func (sub *subject) loadRows(tw io.Writer, img string, rec record, restored func(pids []int)) (peak int64, err error) {
	var running, done time.Duration = 1 << 62, 1 << 62
	fl := newFloors()
	for i := range sub.n + 1 {
		watch := i == sub.n // the last run, untimed, for peak RSS
		look := restored
		if watch {
			look = nil
		}
		rn, dn, rss, err := timeLoad(img, watch, sub.v.kids, look)
		if err != nil {
			return 0, fmt.Errorf("procs-load: %v", err)
		}
		if watch {
			peak = rss
			continue
		}
		running, done = min(running, rn), min(done, dn)
		var proc time.Duration
		if sub.asProcess {
			if proc, err = timeFloorLoadProcess(img, sub.size); err != nil {
				return 0, fmt.Errorf("restore floor process: %v", err)
			}
		}
		in, err := timeFloorLoad(img, sub.size)
		if err != nil {
			return 0, fmt.Errorf("restore floor: %v", err)
		}
		fl.keep(proc, in)
	}
	row(tw, sub.label, "restore until running", running, fl.main(), fl.ref(), sub.size)
	row(tw, sub.label, "restore until done", done, fl.main(), fl.ref(), sub.size)
	rec(sub.label+" restore until running", running, fl.main())
	rec(sub.label+" restore until done", done, fl.main())
	return peak, nil
}

// row prints a figure d against its floor, and if ref (a floor for
// reference) is not 0, against that too.
func row(tw io.Writer, label, what string, d, floor, ref time.Duration, size int64) {
	if ref > 0 {
		line(tw, label, what, dur(d), gb(size, d), dur(floor), gb(size, floor), ratio(d, floor), dur(ref), ratio(d, ref))
		return
	}
	line(tw, label, what, dur(d), gb(size, d), dur(floor), gb(size, floor), ratio(d, floor))
}

func gb(size int64, d time.Duration) string { return fmt.Sprintf("%.2f", gbps(size, d)) }

func ratio(d, floor time.Duration) string { return fmt.Sprintf("%.2fx", float64(d)/float64(floor)) }

// timeDump runs procs-dump -K PID into s, following its peak RSS if
// watch.
func timeDump(pid int, s sink, watch bool) (result, error) {
	return timeInto(exec.Command(filepath.Join(*binDir, "procs-dump"), "-K", strconv.Itoa(pid)), s, "image", watch)
}

// timeInto runs cmd with its stdout to s (a file named name), from
// before it starts until s has all of its output, following its peak
// RSS if watch.
func timeInto(cmd *exec.Cmd, s sink, name string, watch bool) (result, error) {
	w, done, err := s.open(name)
	if err != nil {
		return result{}, err
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	t0 := time.Now()
	var hwm *hwmWatch
	if err = cmd.Start(); err == nil {
		if watch {
			hwm = watchHWM(cmd.Process.Pid)
		}
		err = cmd.Wait()
	}
	w.Close()
	if derr := done(); err == nil {
		err = derr
	}
	d := time.Since(t0)
	if err != nil {
		return result{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return result{d: d, maxrss: hwm.stop()}, nil
}

// hwmWatch follows a running command's peak RSS (VmHWM) until it ends.
// (wait4's ru_maxrss cannot tell: a child made with vfork, as Go makes
// them, is charged its parent's peak when it execs.)
type hwmWatch struct {
	done chan struct{}
	peak chan int64
}

func watchHWM(pid int) *hwmWatch {
	w := &hwmWatch{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		var peak int64
		for {
			peak = max(peak, statusKiB(pid, "VmHWM:")<<10)
			select {
			case <-w.done:
				w.peak <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return w
}

func (w *hwmWatch) stop() int64 {
	if w == nil {
		return 0
	}
	close(w.done)
	return <-w.peak
}

func statusKiB(pid int, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// timeFloorDumpProcess runs bench-floor dump, which copies the memory
// of ranges into s as procs-dump would at best (see floor.Dump), as a
// process of its own.
func timeFloorDumpProcess(ranges []floor.Range, s sink) (time.Duration, error) {
	args := []string{"dump", strconv.Itoa(chunkFor(rangesSize(ranges)))}
	for _, r := range ranges {
		a := fmt.Sprintf("%d:%x:%d", r.PID, r.Addr, r.Len)
		if r.Shared {
			a += ":shared"
		}
		args = append(args, a)
	}
	r, err := timeInto(exec.Command(floorBin, args...), s, "floor", false)
	return r.d, err
}

// timeFloorDump copies the memory of ranges into s as procs-dump would
// at best (see floor.Dump), within this process.
func timeFloorDump(ranges []floor.Range, s sink) (time.Duration, error) {
	w, done, err := s.open("floor")
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = floor.Dump(ranges, chunkFor(rangesSize(ranges)), w)
	w.Close()
	if derr := done(); err == nil {
		err = derr
	}
	return time.Since(t0), err
}

func rangesSize(ranges []floor.Range) int64 {
	var n int64
	for _, r := range ranges {
		n += int64(r.Len)
	}
	return n
}

// timeLoad runs procs-load -d IMAGE and returns the time until the
// restored victim runs again (the ticker of each of its processes
// reports the gap), the time until procs-load returned, and if watch
// procs-load's peak RSS. kids are the PIDs of a tree's children, which
// the restored tree has too. Once it runs and procs-load is done, the
// victim's PIDs go to restored, if not nil; then it is killed.
func timeLoad(img string, watch bool, kids []int, restored func(pids []int)) (running, done time.Duration, rss int64, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, 0, err
	}
	out := make(chan said, 1024)
	// The restored process inherits procs-load's stderr: a file, so
	// that nothing waits for it to close.
	errf, err := os.CreateTemp(filepath.Dir(img), "stderr")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	cmd := exec.Command(filepath.Join(*binDir, "procs-load"), "-d", img)
	cmd.Stdout, cmd.Stderr = w, errf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		return 0, 0, 0, err
	}
	w.Close()
	var hwm *hwmWatch
	if watch {
		hwm = watchHWM(cmd.Process.Pid)
	}
	go readLines(r, out)
	werr := cmd.Wait()
	peak := hwm.stop()
	done = time.Since(t0)
	pid, at, _ := awaitRestored(out, 1+len(kids), time.Minute)
	if !at.IsZero() {
		running = at.Sub(t0)
	}
	b, _ := os.ReadFile(errf.Name())
	stderr := strings.TrimSpace(string(b))
	if pid == 0 {
		fmt.Sscanf(stderr, "%d", &pid)
	}
	if pid > 0 {
		pids := append([]int{pid}, kids...)
		if restored != nil && werr == nil && running > 0 {
			restored(pids)
		}
		killTree(pids)
	}
	if werr != nil {
		return 0, 0, 0, fmt.Errorf("%v: %s", werr, stderr)
	}
	if running == 0 {
		return 0, 0, 0, errors.New("the restored victim did not report")
	}
	return running, done, peak, nil
}

// killTree kills pids, a victim the bench started or restored, by PID:
// its root, a child of the bench (a restored one once procs-load -d
// ended, as the bench is a subreaper), and the root's children, which
// are the bench's once the root is gone. It reaps each and returns once
// all are gone. A PID whose parent is neither the bench nor one of pids
// is not the bench's: it is left alone.
func killTree(pids []int) {
	in := map[int]bool{}
	for _, pid := range pids {
		in[pid] = true
	}
	me := os.Getpid()
	for _, pid := range pids {
		if _, ppid := procState(pid); ppid == me || in[ppid] {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for left := pids; len(left) > 0 && time.Now().Before(deadline); {
		var next []int
		for _, pid := range left {
			state, ppid := procState(pid)
			switch {
			case state == "": // gone
			case ppid == me:
				var ws unix.WaitStatus
				if got, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got != pid {
					next = append(next, pid)
				}
			case in[ppid]: // comes to the bench when its parent is gone
				next = append(next, pid)
			}
		}
		if left = next; len(left) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// procState is pid's state letter (R, S, Z...) and its parent's PID, or
// "" and 0 if pid is gone.
func procState(pid int) (state string, ppid int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// stopping is set once a signal stops the bench: what fails then is
// its doing.
var stopping atomic.Bool

// cleanUpOnSignal makes SIGINT and SIGTERM kill the bench's children by
// PID, then remove dir and exit. Its children are the victims and
// commands it started, and the restored processes, which become its
// children when their procs-load ends (it is a subreaper); the other
// processes of a tree become its children once their parent is killed,
// and are killed in the next round.
func cleanUpOnSignal(dir string) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	go func() {
		sig := <-sigs
		stopping.Store(true)
		for range 100 { // until none is left: a killed procs-load's child comes to us
			kids := children()
			if len(kids) == 0 {
				break
			}
			for _, pid := range kids {
				unix.Kill(pid, unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
			var ws unix.WaitStatus
			for {
				if pid, _ := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 {
					break
				}
			}
		}
		os.RemoveAll(dir)
		if h := moving.Load(); h != nil {
			h.Remove()
		}
		fmt.Fprintf(os.Stderr, "bench: %v: stopped\n", sig)
		os.Exit(128 + int(sig.(unix.Signal)))
	}()
}

// children lists this process's living children.
func children() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid := procState(pid); ppid == os.Getpid() && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// timeFloorLoadProcess runs bench-floor load, which reads the image into
// fresh anonymous memory of size bytes as procs-load would at best (see
// floor.Load), as a process of its own.
func timeFloorLoadProcess(img string, size int64) (time.Duration, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(floorBin, "load", img, strconv.FormatInt(size, 10), strconv.Itoa(chunkFor(size)))
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return time.Since(t0), nil
}

// timeFloorLoad reads the image into fresh anonymous memory of size
// bytes as procs-load would at best (see floor.Load), within this
// process.
func timeFloorLoad(img string, size int64) (time.Duration, error) {
	t0 := time.Now()
	err := floor.Load(img, size, chunkFor(size))
	return time.Since(t0), err
}

// cpuTimes are the machine's CPU time counters of /proc/stat's cpu line.
type cpuTimes struct{ steal, total uint64 }

func readSteal() cpuTimes {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var c cpuTimes
	for i, v := range f[min(1, len(f)):] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is in user
			c.total += n
		}
		if i == 7 {
			c.steal = n
		}
	}
	return c
}

// stealRow prints the share of the CPUs' time the hypervisor gave to
// others since since: on a shared VM, the noise in the figures above.
func stealRow(tw io.Writer, label string, since cpuTimes) {
	now := readSteal()
	if now.total <= since.total {
		return
	}
	pct := 100 * float64(now.steal-since.steal) / float64(now.total-since.total)
	line(tw, label, "CPU time stolen by the host", fmt.Sprintf("%.1f%%", pct))
}

func meminfo(key string) int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func memAvailable() int64 { return meminfo("MemAvailable") }

func memTotal() string { return human(meminfo("MemTotal")) + " RAM" }

func vmRSS(pid int) int64 { return statusKiB(pid, "VmRSS:") << 10 }

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func dur(d time.Duration) string {
	if d >= 1<<62 || d <= 0 {
		return "-"
	}
	return d.Round(100 * time.Microsecond).String()
}

func gbps(size int64, d time.Duration) float64 {
	if d <= 0 || d >= 1<<62 {
		return 0
	}
	return float64(size) / d.Seconds() / 1e9
}

// awaitRestored reads a restored memhog's output until each of its
// members processes printed a "gap US [I]" line, which each prints once
// it runs again: it returns the PID printed by -d (0 if none came
// first), when the last of those lines was read (zero if not all came
// within timeout) and the longest gap.
func awaitRestored(out <-chan said, members int, timeout time.Duration) (pid int, at time.Time, gap time.Duration) {
	deadline := time.After(timeout)
	seen := map[int]bool{}
	for {
		select {
		case l, ok := <-out:
			if !ok {
				return pid, time.Time{}, gap
			}
			if n, err := strconv.Atoi(strings.TrimSpace(l.text)); err == nil && pid == 0 {
				pid = n
			}
			if g, m, ok := gapOf(l.text); ok && !seen[m] {
				seen[m] = true
				gap = max(gap, g)
				if len(seen) == members {
					return pid, l.at, gap
				}
			}
		case <-deadline:
			return pid, time.Time{}, gap
		}
	}
}
