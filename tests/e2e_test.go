package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lineWait bounds every wait for a victim's lines.
const lineWait = 15 * time.Second

// spec describes a victim and how to check it from its own point of view.
type spec struct {
	name    string   // test name
	victim  string   // key in victims
	args    []string // arguments after the victim's argv prefix
	comm    string   // its name in /proc/PID/stat
	streams []string // report streams that must go on after a restore
	before  int      // lines per stream to see before the dump
	// files makes the files the victim needs in dir and returns extra
	// arguments.
	files func(t *testing.T, dir string) []string
	// pre runs on the original before the dump.
	pre func(t *testing.T, r *run)
	// post runs once the restored process reports again.
	post func(t *testing.T, r *run)
}

// run is one round trip in progress.
type run struct {
	dir      string
	orig     *proc
	ld       *load
	restored int
	keep     bool     // dumped with -K: the original still runs
	detach   bool     // restored with procs-load -d
	before   []string // the original's lines before the dump (all of them unless keep)
}

// mode is how a round trip is done.
type mode struct {
	name   string
	keep   bool // procs-dump -K, then restore a clone beside the original
	detach bool // procs-load -d
	// proxy restores with PROCS_VDSO_PROXY=1: the process calls this
	// kernel's vDSO, elsewhere, through jumps in a copy of its own, as
	// an image from another kernel build must.
	proxy bool
}

var modes = []mode{
	{name: "kill"},
	{name: "keep", keep: true},
	{name: "detach", detach: true},
	{name: "vdsoproxy", proxy: true},
}

func streamsT(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("t%d", i))
	}
	return s
}

var specs = []spec{
	counterSpec("counter"),
	counterSpec("counter-static"),
	counterSpec("counter-nopie"),
	{name: "threads", victim: "threads", comm: "threads", streams: streamsT(8), before: 2},
	{name: "threads-static", victim: "threads-static", comm: "threads-static", streams: streamsT(8), before: 2},
	{name: "sleep", victim: "blocked", args: []string{"sleep"}, comm: "blocked", streams: []string{"sleep"}, before: 1},
	{
		name: "read", victim: "blocked", args: []string{"read"}, comm: "blocked",
		pre: func(t *testing.T, r *run) {
			say(t, r.orig.stdin, "before")
			expect(t, r.orig.out, "read 1 got=before", 0)
		},
		post: func(t *testing.T, r *run) {
			time.Sleep(50 * time.Millisecond) // let it block in read again
			say(t, r.ld.stdin, "after")
			expect(t, r.ld.out, "read 2 got=after", 0)
			// End of input ends it with status 0, which procs-load
			// passes on in the foreground.
			r.ld.stdin.Close()
			expect(t, r.ld.out, "eof 3", 0)
			if !r.detach {
				if !r.ld.exited(10 * time.Second) {
					t.Fatal("procs-load did not end after its process did")
				}
				if got := r.ld.exitCode(); got != 0 {
					t.Errorf("procs-load exit = %d; want 0 (stderr: %s)", got, r.ld.stderrText())
				}
			}
		},
	},
	{
		name: "poll", victim: "blocked", args: []string{"poll"}, comm: "blocked", streams: []string{"poll"}, before: 2,
		post: func(t *testing.T, r *run) {
			say(t, r.ld.stdin, "after")
			expect(t, r.ld.out, "poll ", 0, "got=after")
		},
	},
	{name: "python", victim: "python", comm: "python3", streams: []string{"py0", "py1", "py2", "main"}, before: 2},
	{name: "go", victim: "gov", comm: "gov", streams: []string{"go"}, before: 3},
	{name: "bash", victim: "bash", comm: "bash", streams: []string{"bash"}, before: 2},
	// Two threads reading clocks in a loop, nearly always in the vDSO.
	{name: "clockloop", victim: "clockloop", comm: "clockloop", streams: []string{"c0", "c1"}, before: 1},
}

// specNamed returns the spec called name.
func specNamed(name string) spec {
	for _, s := range specs {
		if s.name == name {
			return s
		}
	}
	panic("no spec " + name)
}

// counterSpec is the single-threaded C victim built as name.
func counterSpec(name string) spec {
	return spec{
		name: name, victim: name, comm: name, streams: []string{"tick"}, before: 3,
		files: counterFiles,
		pre: func(t *testing.T, r *run) {
			unix.Kill(r.orig.pid(), unix.SIGUSR1)
			expect(t, r.orig.out, "usr1 1", 0)
		},
		post: func(t *testing.T, r *run) {
			// The handler survived, and its count went on.
			skip := len(mustLines(r.ld.out))
			unix.Kill(r.restored, unix.SIGUSR1)
			expect(t, r.ld.out, "usr1 2", skip)
			// Every line of the O_APPEND file is whole; without -K
			// they count up by one with no gap.
			b, err := os.ReadFile(filepath.Join(r.dir, "append"))
			if err != nil {
				t.Fatal(err)
			}
			prev := int64(0)
			for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				n, err := strconv.ParseInt(l, 10, 64)
				if err != nil {
					t.Fatalf("append file line %d = %q; want a number", i+1, l)
				}
				if !r.keep && n != prev+1 && n != prev {
					t.Fatalf("append file line %d = %d after %d; want %d", i+1, n, prev, prev+1)
				}
				prev = n
			}
		},
	}
}

// counterFiles makes the append and read files of the counter victim.
func counterFiles(t *testing.T, dir string) []string {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	rf := filepath.Join(dir, "read")
	if err := os.WriteFile(rf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{filepath.Join(dir, "append"), rf}
}

func mustLines(l *lines) []string {
	all, _ := l.snapshot()
	return all
}

// say writes line to w.
func say(t *testing.T, w *os.File, line string) {
	t.Helper()
	if _, err := w.WriteString(line + "\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
}

// expect waits for a line after the first skip that starts with prefix
// and contains each of has.
func expect(t *testing.T, l *lines, prefix string, skip int, has ...string) string {
	t.Helper()
	var got string
	all, ok := l.wait(lineWait, func(all []string, _ bool) bool {
		for _, s := range all[min(skip, len(all)):] {
			if !strings.HasPrefix(s, prefix) {
				continue
			}
			match := true
			for _, h := range has {
				match = match && strings.Contains(s, h)
			}
			if match {
				got = s
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no line %q %q; last lines:\n%s", prefix, has, tail(all, 10))
	}
	return got
}

// startVictim starts s's victim in a fresh folder and waits for its first
// reports.
func startVictim(t *testing.T, s spec) (*proc, string) {
	t.Helper()
	argv := victimArgv(t, s.victim)
	dir := t.TempDir()
	argv = append(argv, s.args...)
	if s.files != nil {
		argv = append(argv, s.files(t, dir)...)
	}
	p := start(t, argv, dir)
	all, ok := p.out.wait(lineWait, haveLines(s.streams, s.before, 0))
	if !ok {
		t.Fatalf("%s: want %d lines of %v; got:\n%s\nstderr: %s", s.name, s.before, s.streams, tail(all, 20), p.stderrText())
	}
	if bad := badFlags(parseAll(all)); len(bad) > 0 {
		t.Fatalf("%s reports a failed check before any dump:\n%s", s.name, strings.Join(bad, "\n"))
	}
	return p, dir
}

// TestVictims checks the victims and the harness without any dump: each
// starts, reports sane state, passes its own pre-dump step and is killed.
func TestVictims(t *testing.T) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			noLeftovers(t)
			p, dir := startVictim(t, s)
			r := &run{dir: dir, orig: p}
			if s.pre != nil {
				s.pre(t, r)
			}
			all, ok := p.out.wait(lineWait, haveLines(s.streams, s.before+2, 0))
			if !ok {
				t.Fatalf("%s stopped reporting:\n%s", s.name, tail(all, 20))
			}
			if bad := badFlags(parseAll(all)); len(bad) > 0 {
				t.Fatalf("%s reports a failed check:\n%s", s.name, strings.Join(bad, "\n"))
			}
			for st, rs := range perStream(parseAll(all)) {
				for i := 1; i < len(rs); i++ {
					if rs[i].n != rs[i-1].n+1 {
						t.Errorf("%s stream %s: line %q after %q; want consecutive numbers", s.name, st, rs[i].line, rs[i-1].line)
					}
				}
			}
			if got := procComm(p.pid()); got != s.comm {
				t.Errorf("comm of %s = %q; want %q", s.name, got, s.comm)
			}
		})
	}
}

func procComm(pid int) string {
	p, _ := procInfo(pid)
	return p.comm
}

// restoredReports waits until the process procs-load restores has
// printed 2 lines of each of s's streams, finds it (not one of not) in
// r.restored, and waits until procs-load is done building it: found while
// being built (a victim with no output of its own gets here at once), it
// is still traced. It returns procs-load's output.
func restoredReports(t *testing.T, r *run, s spec, not ...int) []string {
	t.Helper()
	after, ok := r.ld.out.wait(lineWait, haveLines(s.streams, 2, 0))
	if !ok {
		t.Fatalf("restored %s: want 2 lines of each of %v; got:\n%s\nprocs-load stderr: %s",
			s.name, s.streams, tail(after, 20), r.ld.stderrText())
	}
	r.restored = r.ld.find(t, s.comm, 5*time.Second, not...)
	waitFor(t, 10*time.Second, func() bool { return untraced(r.restored) }, "the restore of %s to end", s.name)
	return after
}

// TestRoundTrip dumps each victim and restores it, killing the original
// (kill, detach) or keeping it and restoring a clone beside it (keep), and
// checks that the restored program goes on from where it was.
func TestRoundTrip(t *testing.T) {
	for _, s := range specs {
		for _, m := range modes {
			t.Run(s.name+"/"+m.name, func(t *testing.T) {
				needTools(t)
				noLeftovers(t)
				roundTrip(t, s, m)
			})
		}
	}
}

func roundTrip(t *testing.T, s spec, m mode) {
	orig, dir := startVictim(t, s)
	r := &run{dir: dir, orig: orig, keep: m.keep, detach: m.detach}
	if s.pre != nil {
		s.pre(t, r)
	}
	r.before = mustLines(orig.out)
	origVdso := vdsoAt(t, orig.pid())
	img := dump(t, orig.pid(), m.keep)

	if !m.keep {
		if !orig.exited(10 * time.Second) {
			t.Fatalf("%s (pid %d) still runs after procs-dump without -K", s.name, orig.pid())
		}
		all, ok := orig.out.waitEOF(5 * time.Second)
		if !ok {
			t.Fatalf("stdout of the dumped %s is still open", s.name)
		}
		r.before = all
	} else if err := healthy(orig.pid()); err != nil {
		t.Fatalf("original after procs-dump -K: %v", err)
	}

	var args []string
	if m.detach {
		args = append(args, "-d")
	}
	if m.proxy {
		t.Setenv("PROCS_VDSO_PROXY", "1")
	}
	t0 := time.Now()
	r.ld = startLoad(t, img, args...)
	var not []int
	if m.keep {
		not = append(not, orig.pid())
	}
	if m.detach {
		if !r.ld.exited(30 * time.Second) {
			t.Fatalf("procs-load -d did not return")
		}
		if code := r.ld.exitCode(); code != 0 {
			t.Fatalf("procs-load -d exit = %d; want 0; stderr: %s", code, r.ld.stderrText())
		}
	}
	after := restoredReports(t, r, s, not...)
	t.Logf("restored %s reports after %v", s.name, time.Since(t0).Round(time.Millisecond))
	if m.detach {
		// procs-load has exited, but its line may not be read yet.
		all, _ := r.ld.out.wait(lineWait, func(all []string, _ bool) bool {
			return printedPID(all, "") != 0
		})
		if pid := printedPID(all, r.ld.stderrText()); pid != r.restored {
			t.Errorf("procs-load -d printed pid %d; want %d", pid, r.restored)
		}
	}
	if m.keep {
		if err := healthy(orig.pid()); err != nil {
			t.Errorf("original beside the clone: %v", err)
		}
	}
	if err := healthy(r.restored); err != nil {
		t.Fatalf("restored process: %v", err)
	}
	if now := vdsoAt(t, r.restored); m.proxy == (now == origVdso) {
		t.Errorf("restored process's [vdso] at %#x, the original's at %#x (proxy %v)", now, origVdso, m.proxy)
	}
	var origNow []string
	if m.keep {
		origNow = mustLines(orig.out)
	}
	continuity(t, s.streams, r.before, after, m.keep, origNow)
	if t.Failed() {
		t.FailNow()
	}

	if s.post != nil {
		s.post(t, r)
	}
	all := mustLines(r.ld.out)
	if bad := badFlags(parseAll(all)); len(bad) > 0 {
		t.Errorf("restored %s reports a failed check:\n%s", s.name, strings.Join(bad, "\n"))
	}
	if m.keep {
		// The original is unharmed and still goes on.
		n := len(mustLines(orig.out))
		if all, ok := orig.out.wait(lineWait, haveLines(s.streams, 1, n)); !ok && len(s.streams) > 0 {
			t.Errorf("original stopped reporting beside the clone:\n%s", tail(all, 10))
		}
	}

	// In the foreground procs-load ends with its process's status.
	if !m.detach {
		want := 128 + int(unix.SIGKILL)
		if r.ld.exited(0) {
			want = 0 // it ended by itself (read at end of input)
		} else {
			r.ld.kill(t)
		}
		if !r.ld.exited(10 * time.Second) {
			t.Fatalf("procs-load did not end after its process did")
		}
		if got := r.ld.exitCode(); got != want {
			t.Errorf("procs-load exit = %d; want %d (stderr: %s)", got, want, r.ld.stderrText())
		}
	}
}

// continuity checks that each stream goes on after the restore from where
// it was at the dump: no reset, no jump, consecutive lines, checks held.
func continuity(t *testing.T, streams []string, before, after []string, keep bool, origNow []string) {
	t.Helper()
	pre := perStream(parseAll(before))
	post := perStream(parseAll(after))
	now := perStream(parseAll(origNow))
	for _, st := range streams {
		if len(pre[st]) == 0 {
			t.Errorf("stream %s: no line before the dump", st)
			continue
		}
		// The image holds a state at or after the last line seen
		// before the dump (without -K: exactly the last line written),
		// so the restored process's next line is numbered one more.
		last := pre[st][len(pre[st])-1].n
		rs := post[st]
		first := rs[0].n
		hi := last + 1
		if keep && len(now[st]) > 0 {
			hi = max(hi, now[st][len(now[st])-1].n+1)
		}
		if first <= last || first > hi {
			t.Errorf("stream %s: first line after restore %q; last before dump %q; want number in [%d, %d]",
				st, rs[0].line, pre[st][len(pre[st])-1].line, last+1, hi)
		}
		for i := 1; i < len(rs); i++ {
			if rs[i].n != rs[i-1].n+1 {
				t.Errorf("stream %s: line %q after %q; want consecutive numbers", st, rs[i].line, rs[i-1].line)
			}
		}
	}
	if bad := badFlags(parseAll(after)); len(bad) > 0 {
		t.Errorf("restored process reports a failed check:\n%s", strings.Join(bad, "\n"))
	}
}

var pidLine = regexp.MustCompile(`^\s*(?:pid\s*[:=]?\s*)?(\d+)\s*$`)

// printedPID finds the PID procs-load -d printed, on stdout or stderr.
func printedPID(stdout []string, stderr string) int {
	for _, l := range append(slices.Clone(stdout), strings.Split(stderr, "\n")...) {
		if m := pidLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return 0
}

// loadFails runs procs-load on image (a file, or stdin when viaStdin)
// and checks it refuses with exit 125 and a one-line message, leaving no
// process behind.
func loadFails(t *testing.T, image []byte, viaStdin bool, comm string) {
	t.Helper()
	before := named(comm)
	f := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(f, image, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "procs-load"), f)
	if viaStdin {
		cmd = exec.Command(filepath.Join(binDir, "procs-load"))
		cmd.Stdin = bytes.NewReader(image)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runTimeout(cmd, 30*time.Second)
	msg := strings.TrimSpace(stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 125 {
		t.Errorf("procs-load exit = %d (%v); want 125; stderr: %s", code, err, msg)
	}
	ls := strings.Split(msg, "\n")
	if msg == "" || !strings.HasPrefix(ls[0], "procs-load: ") ||
		len(ls) > 2 || (len(ls) == 2 && !strings.HasPrefix(ls[1], "procs-load: hint: ")) {
		t.Errorf("procs-load stderr = %q; want one line \"procs-load: ...\" (and maybe a hint)", msg)
	}
	if stdout.Len() > 0 {
		t.Errorf("procs-load stdout = %q; want nothing", stdout.String())
	}
	if d := liveDescendants(time.Second); len(d) > 0 {
		t.Errorf("processes left after a refused load: %v", d)
	}
	for _, pid := range named(comm) {
		if !slices.Contains(before, pid) {
			t.Errorf("a process named %s (pid %d) appeared after a refused load", comm, pid)
		}
	}
}

// TestLoadRejectsForeign feeds procs-load things that are not images.
func TestLoadRejectsForeign(t *testing.T) {
	needTools(t)
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	elf, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		stdin bool
	}{
		{"empty", nil, false},
		{"empty-stdin", nil, true},
		{"garbage", garbage, false},
		{"garbage-stdin", garbage, true},
		{"text", []byte("hello, world\n"), false},
		{"elf", elf[:min(len(elf), 64<<10)], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeftovers(t)
			loadFails(t, tc.data, tc.stdin, "counter")
		})
	}
}

// TestLoadRejectsDamaged feeds procs-load a real image truncated at
// several offsets or with one byte flipped.
func TestLoadRejectsDamaged(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	s := counterSpec("counter")
	v, _ := startVictim(t, s)
	img := dump(t, v.pid(), true)
	v.cmd.Process.Kill()
	if !v.exited(10 * time.Second) {
		t.Fatal("victim did not die")
	}
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	n := len(good)
	if n < 64 {
		t.Fatalf("image is %d bytes; want more", n)
	}
	type tc struct {
		name string
		data []byte
	}
	var cases []tc
	for _, at := range []int{1, 4, 7, 8, 16, 100, n / 4, n / 2, 3 * n / 4, n - 16, n - 1} {
		cases = append(cases, tc{fmt.Sprintf("truncated-at-%d", at), good[:at]})
	}
	for _, at := range []int{0, 3, 5, 9, 20, 64, 200, n / 3, n / 2, 2 * n / 3, n - 8, n - 1} {
		b := slices.Clone(good)
		b[at] ^= 0x20
		cases = append(cases, tc{fmt.Sprintf("flipped-at-%d", at), b})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noLeftovers(t)
			loadFails(t, c.data, false, "counter")
		})
	}
	t.Run("truncated-stdin", func(t *testing.T) {
		noLeftovers(t)
		loadFails(t, good[:n/2], true, "counter")
	})
}

// TestDumpKilledNeverHarms kills procs-dump -K at random moments while it
// works on a victim, and checks each time that the victim goes on as
// before: not stopped, not traced, same signal state, fds and mappings
// (within two seconds: see inject.Batch), no signal lost, reports still
// right.
func TestDumpKilledNeverHarms(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for _, s := range []spec{counterSpec("counter"), specNamed("threads"), specNamed("clockloop")} {
		t.Run(s.name, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			v, _ := startVictim(t, s)
			pid := v.pid()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			base := fingerprint(pid)
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer devnull.Close()
			usr1 := 0
			for i := range rounds {
				delay := time.Duration(rng.IntN(50_001)) * time.Microsecond
				var stderr bytes.Buffer
				cmd := exec.Command(filepath.Join(binDir, "procs-dump"), "-K", strconv.Itoa(pid))
				cmd.Stdout, cmd.Stderr = devnull, &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(delay / 2)
				if s.comm == "counter" {
					// A signal sent while procs-dump works must not be lost.
					unix.Kill(pid, unix.SIGUSR1)
					usr1++
				}
				time.Sleep(delay / 2)
				cmd.Process.Kill()
				cmd.Wait()
				if err := waitHealthy(pid); err != nil {
					t.Fatalf("round %d (procs-dump killed after %v): victim harmed: %v", i, delay, err)
				}
				if s.comm == "counter" {
					expect(t, v.out, fmt.Sprintf("usr1 %d", usr1), 0)
				}
				skip := len(mustLines(v.out))
				if all, ok := v.out.wait(lineWait, haveLines(s.streams, 2, skip)); !ok {
					t.Fatalf("round %d (procs-dump killed after %v): victim stopped reporting:\n%s", i, delay, tail(all, 10))
				}
				if d := waitSame(pid, base); d != "" {
					t.Fatalf("round %d (procs-dump killed after %v): victim changed:\n%s", i, delay, d)
				}
			}
			reportsRight(t, mustLines(v.out))
		})
	}
}

// TestLoadKilledLeavesNothing kills procs-load at random moments of a
// restore (0-20 ms in, every other time 0-3 ms). What it had started dies with it; a process it had already let
// run may live on, and then it must be whole: it reports again, and every
// check it makes of itself passes. In a PID namespace (--pid=ns) too: its
// init, then, lives on with the process or not at all.
func TestLoadKilledLeavesNothing(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for _, c := range []struct {
		name string
		s    spec
		args []string
	}{{"counter", counterSpec("counter"), nil}, {"threads", specNamed("threads"), nil},
		{"threads-pidns", specNamed("threads"), []string{"--pid=ns"}}} {
		s := c.s
		t.Run(c.name, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			v, _ := startVictim(t, s)
			img := dump(t, v.pid(), true)
			v.cmd.Process.Kill()
			if !v.exited(10 * time.Second) {
				t.Fatal("victim did not die")
			}
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 11))
			survived := 0
			for i := range rounds {
				// Every other round in the first 3 ms, while procs-load
				// starts the stub it clones the process from.
				delay := time.Duration(rng.IntN([]int{20_001, 3_001}[i%2])) * time.Microsecond
				ld := startLoad(t, img, c.args...)
				time.Sleep(delay)
				ld.cmd.Process.Kill()
				<-ld.done
				left := liveDescendants(time.Second)
				if len(left) == 0 {
					continue
				}
				if proc := slices.DeleteFunc(slices.Clone(left), func(p pinfo) bool { return p.comm == "procs-load-init" }); len(proc) == 1 && len(left) == 2 {
					left = proc // and its namespace's init
				}
				if len(left) > 1 || left[0].comm != s.comm {
					t.Fatalf("round %d (procs-load killed after %v): left %v", i, delay, left)
				}
				ld.find(t, s.comm, time.Second)
				skip := len(mustLines(ld.out))
				all, ok := ld.out.wait(lineWait, haveLines(s.streams, 1, skip))
				if !ok {
					t.Fatalf("round %d (procs-load killed after %v): %v lives on but does not report:\n%s", i, delay, left[0], tail(all, 10))
				}
				if bad := badFlags(parseAll(all)); len(bad) > 0 {
					t.Fatalf("round %d (procs-load killed after %v): %v reports a failed check:\n%s", i, delay, left[0], strings.Join(bad, "\n"))
				}
				ld.kill(t)
				survived++
			}
			t.Logf("%d of %d restored processes outlived their procs-load", survived, rounds)
		})
	}
}

// TestStreamed pipes procs-dump straight into procs-load's standard input,
// as `(procs-dump PID; cat) | procs-load` does, and checks that the
// restored process goes on and reads what follows the image on that
// standard input.
func TestStreamed(t *testing.T) {
	for _, s := range []spec{counterSpec("counter"), specNamed("read")} {
		t.Run(s.name, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			orig, dir := startVictim(t, s)
			r := &run{dir: dir, orig: orig}
			if s.pre != nil {
				s.pre(t, r)
			}
			r.ld = startLoad(t, "")
			var stderr bytes.Buffer
			cmd := exec.Command(filepath.Join(binDir, "procs-dump"), strconv.Itoa(orig.pid()))
			cmd.Stdout, cmd.Stderr = r.ld.stdin, &stderr
			if err := runTimeout(cmd, time.Minute); err != nil {
				t.Fatalf("procs-dump %d | procs-load: %v\n%s", orig.pid(), err, stderr.String())
			}
			if !orig.exited(10 * time.Second) {
				t.Fatalf("%s still runs after procs-dump without -K", s.name)
			}
			before, ok := orig.out.waitEOF(5 * time.Second)
			if !ok {
				t.Fatalf("stdout of the dumped %s is still open", s.name)
			}
			r.before = before
			after := restoredReports(t, r, s)
			continuity(t, s.streams, r.before, after, false, nil)
			if t.Failed() {
				t.FailNow()
			}
			if s.post != nil {
				s.post(t, r)
			}
		})
	}
}

// TestPollRestartedTwice: a process blocked in poll with a timeout, which
// an earlier procs-dump -K froze, goes on in restart_syscall (the kernel
// keeps which call it was in the task); dumped then, it comes back in the
// same poll, not with an EINTR it never had: it reads what comes after.
func TestPollRestartedTwice(t *testing.T) {
	needTools(t)
	orig := start(t, append(victimArgv(t, "blocked"), "longpoll"), t.TempDir())
	expect(t, orig.out, "start 0", 0)
	inCall := func(nr string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", orig.pid()))
			return strings.HasPrefix(string(b), nr+" ")
		}
	}
	waitFor(t, lineWait, inCall("7"), "the victim to block in poll")
	dump(t, orig.pid(), true)
	waitFor(t, lineWait, inCall("219"), "the victim to go on in restart_syscall")
	img := dump(t, orig.pid(), false)
	ld := startLoad(t, img)
	ld.find(t, "blocked", lineWait)
	say(t, ld.stdin, "after")
	expect(t, ld.out, "poll 1 got=after", 0)
	for _, p := range []*proc{orig, ld.proc} {
		if all, _ := p.out.snapshot(); slices.ContainsFunc(all, func(l string) bool { return strings.HasPrefix(l, "eintr") }) {
			t.Errorf("poll failed with EINTR: %q", all)
		}
	}
}
