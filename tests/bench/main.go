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
//	go run ./tests/bench [-bin bin] [-sizes 4,64,1024,4096] [-runs 3] [-migrate 1024] [-dir /var/tmp]
//
// It builds the victim and bench-floor in a folder of its own, which it
// removes, and starts and kills only its own processes, by PID (also
// when stopped by SIGINT or SIGTERM).
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
	sizes   = flag.String("sizes", "4,64,1024,4096", "victim sizes in MiB, comma-separated")
	dir     = flag.String("dir", os.TempDir(), "folder for image files")
	src     = flag.String("src", "tests/victims/memhog.c", "source of the victim")
	bufSize = flag.Int("buf", 0, "chunk size of the floors in bytes (0: procs-dump's, 64 KiB to 1 MiB by size)")
	runs    = flag.Int("runs", 3, "runs of each measure; the best is kept")
	migrate = flag.Int("migrate", 1024, "size in MiB of the victim moved through procs-serve (0: none)")
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
	var tg targets
	for _, s := range strings.Split(*sizes, ",") {
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

// victim is a running memhog.
type victim struct {
	cmd  *exec.Cmd
	out  chan string
	addr uintptr
	len  int
}

func startVictim(hog string, mib int) (*victim, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	v := &victim{cmd: exec.Command(hog, strconv.Itoa(mib)), out: make(chan string, 1024)}
	v.cmd.Stdout, v.cmd.Stderr = w, os.Stderr
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = v.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go readLines(r, v.out)
	select {
	case l, ok := <-v.out:
		var a uint64
		if ok {
			_, err = fmt.Sscanf(l, "ready %x %d", &a, &v.len)
		}
		if !ok || err != nil {
			v.stop()
			return nil, fmt.Errorf("memhog said %q", l)
		}
		v.addr = uintptr(a)
	case <-time.After(5 * time.Minute):
		v.stop()
		return nil, errors.New("memhog did not get ready")
	}
	return v, nil
}

func (v *victim) stop() {
	v.cmd.Process.Kill()
	v.cmd.Wait()
}

func readLines(r io.ReadCloser, out chan<- string) {
	defer r.Close()
	defer close(out)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case out <- sc.Text():
		default: // nobody listens: drop
		}
	}
}

// maxGap drains the "gap US" lines and returns the longest.
func maxGap(out <-chan string) time.Duration {
	var g time.Duration
	for {
		select {
		case l, ok := <-out:
			if !ok {
				return g
			}
			var us int64
			if _, err := fmt.Sscanf(l, "gap %d", &us); err == nil {
				g = max(g, time.Duration(us)*time.Microsecond)
			}
		default:
			return g
		}
	}
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
	v, err := startVictim(hog, mib)
	if err != nil {
		return err
	}
	defer v.stop()
	size := int64(v.len)
	label := human(size)
	pid := v.cmd.Process.Pid
	asProcess := size < processFloorBelow
	var peakDump int64
	// Small sizes take a few milliseconds, where this VM's noise is
	// largest: they get more runs.
	n := *runs
	if size <= 256<<20 {
		n = 3 * *runs
	}
	stopped := map[string]time.Duration{}
	for _, s := range sinks(dir) {
		best, fl := time.Duration(1<<62), newFloors()
		stopped[s.name] = 1 << 62
		for range n {
			maxGap(v.out)
			r, err := timeDump(pid, s, false)
			if err != nil {
				return fmt.Errorf("procs-dump to %s: %v", s.name, err)
			}
			best = min(best, r.d)
			time.Sleep(20 * time.Millisecond)
			stopped[s.name] = min(stopped[s.name], maxGap(v.out)) // of the best run, as the rest
			var proc time.Duration
			if asProcess {
				if proc, err = timeFloorDumpProcess(v, s); err != nil {
					return fmt.Errorf("floor process to %s: %v", s.name, err)
				}
			}
			in, err := timeFloorDump(v, s)
			if err != nil {
				return fmt.Errorf("floor to %s: %v", s.name, err)
			}
			fl.keep(proc, in)
		}
		what := "dump to " + s.name
		row(tw, label, what, best, fl.main(), fl.ref(), size)
		tg.dump(mib, label+" "+what, best, fl.main())
		// Peak RSS in a run of its own: following it polls
		// /proc/PID/status every millisecond, which the timed runs
		// should not pay for.
		r, err := timeDump(pid, s, true)
		if err != nil {
			return fmt.Errorf("procs-dump to %s: %v", s.name, err)
		}
		peakDump = max(peakDump, r.maxrss)
		time.Sleep(20 * time.Millisecond)
		maxGap(v.out)
	}
	os.Remove(filepath.Join(dir, "floor"))
	img := filepath.Join(dir, "image")
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	rss := vmRSS(pid)
	line(tw, label, "image / RSS", human(st.Size()), "", human(rss), "", fmt.Sprintf("%.3f", float64(st.Size())/float64(rss)))
	for _, s := range sinks(dir) {
		d := dur(stopped[s.name])
		if stopped[s.name] == 0 {
			d = "<5ms" // memhog reports gaps of more than 5 ms
		}
		line(tw, label, "stopped, dump to "+s.name, d)
	}

	var running, done time.Duration = 1 << 62, 1 << 62
	var peakLoad int64
	fl := newFloors()
	for i := range n + 1 {
		watch := i == n // the last run, untimed, for peak RSS
		rn, dn, rss, err := timeLoad(img, watch)
		if err != nil {
			return fmt.Errorf("procs-load: %v", err)
		}
		if watch {
			peakLoad = rss
			continue
		}
		running, done = min(running, rn), min(done, dn)
		var proc time.Duration
		if asProcess {
			if proc, err = timeFloorLoadProcess(img, size); err != nil {
				return fmt.Errorf("restore floor process: %v", err)
			}
		}
		in, err := timeFloorLoad(img, size)
		if err != nil {
			return fmt.Errorf("restore floor: %v", err)
		}
		fl.keep(proc, in)
	}
	row(tw, label, "restore until running", running, fl.main(), fl.ref(), size)
	row(tw, label, "restore until done", done, fl.main(), fl.ref(), size)
	tg.restore(mib, label+" restore until running", running, fl.main())
	tg.restore(mib, label+" restore until done", done, fl.main())
	line(tw, label, "peak RSS procs-dump", human(peakDump))
	line(tw, label, "peak RSS procs-load", human(peakLoad))
	os.Remove(img)
	return nil
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

// timeFloorDumpProcess runs bench-floor dump, which copies the victim's
// memory into s as procs-dump would at best (see floor.Dump), as a
// process of its own.
func timeFloorDumpProcess(v *victim, s sink) (time.Duration, error) {
	cmd := exec.Command(floorBin, "dump", strconv.Itoa(v.cmd.Process.Pid), strconv.FormatUint(uint64(v.addr), 16),
		strconv.Itoa(v.len), strconv.Itoa(chunkFor(int64(v.len))))
	r, err := timeInto(cmd, s, "floor", false)
	return r.d, err
}

// timeFloorDump copies the victim's memory into s as procs-dump would
// at best (see floor.Dump), within this process.
func timeFloorDump(v *victim, s sink) (time.Duration, error) {
	w, done, err := s.open("floor")
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = floor.Dump(v.cmd.Process.Pid, v.addr, v.len, chunkFor(int64(v.len)), w)
	w.Close()
	if derr := done(); err == nil {
		err = derr
	}
	return time.Since(t0), err
}

// timeLoad runs procs-load -d IMAGE and returns the time until the
// restored process runs again (its ticker reports the gap), the time
// until procs-load returned, and if watch procs-load's peak RSS. It
// kills the restored process.
func timeLoad(img string, watch bool) (running, done time.Duration, rss int64, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, 0, err
	}
	out := make(chan string, 1024)
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
	pid, at, _ := awaitRestored(out, time.Minute)
	if !at.IsZero() {
		running = at.Sub(t0)
	}
	b, _ := os.ReadFile(errf.Name())
	stderr := strings.TrimSpace(string(b))
	if pid == 0 {
		fmt.Sscanf(stderr, "%d", &pid)
	}
	if pid > 0 {
		killOrphan(pid)
	}
	if werr != nil {
		return 0, 0, 0, fmt.Errorf("%v: %s", werr, stderr)
	}
	if running == 0 {
		return 0, 0, 0, errors.New("the restored process did not report")
	}
	return running, done, peak, nil
}

// killOrphan kills pid, a restored process that, procs-load -d having
// ended, is our child as we are a subreaper, and reaps it.
func killOrphan(pid int) {
	if _, ppid := procState(pid); ppid != os.Getpid() {
		return // not ours: leave it alone
	}
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
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
// children when their procs-load ends (it is a subreaper).
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

// awaitRestored reads a restored memhog's output until its first "gap US"
// line, which it prints once it runs again: it returns the PID printed
// by -d (0 if none came first), when the gap line came (zero if none
// within timeout) and the gap.
func awaitRestored(out <-chan string, timeout time.Duration) (pid int, at time.Time, gap time.Duration) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-out:
			if !ok {
				return pid, at, gap
			}
			if n, err := strconv.Atoi(strings.TrimSpace(l)); err == nil && pid == 0 {
				pid = n
			}
			var us int64
			if _, err := fmt.Sscanf(l, "gap %d", &us); err == nil {
				return pid, time.Now(), time.Duration(us) * time.Microsecond
			}
		case <-deadline:
			return pid, at, gap
		}
	}
}
