package tests

// The harness: building the tools and victims, starting processes with
// their output read line by line, running procs-dump and procs-load, and
// finding and killing everything a test started.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"procs/tests/internal/testenv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// binDir holds procs-dump and procs-load; binErr says why not.
	binDir string
	binErr error
	// victims maps a victim's name to the argv prefix that starts it;
	// victimErr says why a victim could not be built.
	victims   = map[string][]string{}
	victimErr = map[string]error{}
	// repoRoot is the module's root folder.
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Orphans of the processes we start (a process restored with
	// procs-load -d) become our children, so we can reap them and kill
	// them by PID without fear of PID reuse.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "tests: prctl(PR_SET_CHILD_SUBREAPER): %v\n", err)
		return 1
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v\n", err)
		return 1
	}
	repoRoot = root
	testenv.CloseStrayFDs()
	tmp, err := os.MkdirTemp("", "procs-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	buildTools(tmp)
	buildVictims(tmp)
	return m.Run()
}

// buildTools sets binDir: $PROCS_BIN, or procs-dump and procs-load built
// from ./cmd into dir.
func buildTools(dir string) {
	if d := os.Getenv("PROCS_BIN"); d != "" {
		binDir = d
		for _, b := range []string{"procs-dump", "procs-load"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				binErr = err
			}
		}
		return
	}
	for _, b := range []string{"procs-dump", "procs-load"} {
		if _, err := os.Stat(filepath.Join(repoRoot, "cmd", b)); err != nil {
			binErr = fmt.Errorf("no cmd/%s to build: %v", b, err)
			return
		}
	}
	binDir = filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-o", binDir+"/", "./cmd/procs-dump", "./cmd/procs-load", "./cmd/procs")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		binErr = fmt.Errorf("go build ./cmd/procs-dump ./cmd/procs-load ./cmd/procs: %v\n%s", err, out)
	}
}

// buildVictims compiles the C and Go victims into dir and finds
// interpreters for the others.
func buildVictims(dir string) {
	src := filepath.Join(repoRoot, "tests", "victims")
	cc := []struct {
		name, file string
		flags      []string
	}{
		{"counter", "counter.c", nil},
		{"counter-static", "counter.c", []string{"-static"}},
		{"counter-nopie", "counter.c", []string{"-no-pie"}},
		{"threads", "threads.c", []string{"-pthread"}},
		{"threads-static", "threads.c", []string{"-pthread", "-static"}},
		{"blocked", "blocked.c", nil},
		{"memhog", "memhog.c", []string{"-pthread"}},
		{"clockloop", "clockloop.c", []string{"-pthread"}},
		{"exact", "exact.c", []string{"-pthread"}},
		{"openfiles", "openfiles.c", nil},
		{"sysv", "sysv.c", nil},
		{"livemem", "livemem.c", []string{"-pthread"}},
		{"eventloop", "eventloop.c", nil},
	}
	gcc, gccErr := exec.LookPath("gcc")
	for _, c := range cc {
		if gccErr != nil {
			victimErr[c.name] = gccErr
			continue
		}
		out := filepath.Join(dir, c.name)
		args := append([]string{"-O1", "-Wall", "-o", out}, c.flags...)
		args = append(args, filepath.Join(src, c.file))
		if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			victimErr[c.name] = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
			continue
		}
		victims[c.name] = []string{out}
	}

	out := filepath.Join(dir, "gov")
	cmd := exec.Command("go", "build", "-o", out, "./tests/victims/gov")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		victimErr["gov"] = fmt.Errorf("go build ./tests/victims/gov: %v\n%s", err, b)
	} else {
		victims["gov"] = []string{out}
	}

	// The interpreter itself, not a wrapper (a pyenv shim has children).
	if py, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output(); err != nil {
		victimErr["python"] = err
	} else {
		victims["python"] = []string{strings.TrimSpace(string(py)), filepath.Join(src, "victim.py")}
	}
	if sh, err := exec.LookPath("bash"); err != nil {
		victimErr["bash"] = err
	} else {
		victims["bash"] = []string{sh, "--norc", "--noprofile", filepath.Join(src, "loop.bash")}
	}
}

// needTools skips t when procs-dump and procs-load are not available.
func needTools(t *testing.T) {
	t.Helper()
	if binErr != nil {
		t.Skipf("procs binaries not available: %v", binErr)
	}
}

// victimArgv returns the argv prefix of victim name, skipping t when it
// could not be built.
func victimArgv(t *testing.T, name string) []string {
	t.Helper()
	if argv, ok := victims[name]; ok {
		return slices.Clone(argv)
	}
	t.Skipf("victim %s not available: %v", name, victimErr[name])
	return nil
}

// lines collects the lines a process writes to a pipe.
type lines struct {
	mu      sync.Mutex
	all     []string
	eof     bool
	changed chan struct{} // closed (and replaced) on every change
}

func readLines(r io.ReadCloser) *lines {
	l := &lines{changed: make(chan struct{})}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}()
	return l
}

// snapshot returns the lines so far and whether the writer closed.
func (l *lines) snapshot() ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all), l.eof
}

// wait waits until done(lines, eof) holds or timeout passes, and returns
// the lines and whether done held.
func (l *lines) wait(timeout time.Duration, done func(all []string, eof bool) bool) ([]string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		all, eof, ch := slices.Clone(l.all), l.eof, l.changed
		l.mu.Unlock()
		if done(all, eof) {
			return all, true
		}
		if eof {
			return all, false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return all, done(all, eof)
		}
	}
}

// waitEOF waits until the writers close the pipe.
func (l *lines) waitEOF(timeout time.Duration) ([]string, bool) {
	return l.wait(timeout, func(_ []string, eof bool) bool { return eof })
}

// rec is one line of a victim's report: "STREAM N key=value...".
type rec struct {
	stream string
	n      int64
	kv     map[string]string
	line   string
}

func parse(line string) (rec, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return rec{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return rec{}, false
	}
	r := rec{stream: f[0], n: n, kv: map[string]string{}, line: line}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		r.kv[k] = v
	}
	return r, true
}

func parseAll(all []string) []rec {
	var rs []rec
	for _, l := range all {
		if r, ok := parse(l); ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// badFlags returns the lines whose "...ok" fields are not 1.
func badFlags(rs []rec) []string {
	var bad []string
	for _, r := range rs {
		for k, v := range r.kv {
			if strings.HasSuffix(k, "ok") && v != "1" {
				bad = append(bad, r.line)
				break
			}
		}
	}
	return bad
}

// perStream returns the records of each stream, in order.
func perStream(rs []rec) map[string][]rec {
	m := map[string][]rec{}
	for _, r := range rs {
		m[r.stream] = append(m[r.stream], r)
	}
	return m
}

// haveLines reports whether each stream has at least n records after the
// first skip lines.
func haveLines(streams []string, n, skip int) func([]string, bool) bool {
	return func(all []string, _ bool) bool {
		if len(all) < skip {
			return false
		}
		m := perStream(parseAll(all[skip:]))
		for _, s := range streams {
			if len(m[s]) < n {
				return false
			}
		}
		return true
	}
}

func tail(all []string, n int) string {
	return strings.Join(all[max(0, len(all)-n):], "\n")
}

// proc is a process a test started.
type proc struct {
	cmd    *exec.Cmd
	out    *lines   // its stdout
	stdin  *os.File // write end of its stdin pipe
	stderr string   // file holding its stderr
	done   chan struct{}
	status *os.ProcessState
	err    error
}

// start starts argv with stdin and stdout pipes and stderr to a file, and
// kills it (by PID) and waits for it when t ends.
func start(t *testing.T, argv []string, dir string) *proc {
	t.Helper()
	return startAs(t, argv, dir, &syscall.SysProcAttr{})
}

// startAs is start with the process's SysProcAttr set to attr (Pdeathsig
// added).
func startAs(t *testing.T, argv []string, dir string, attr *syscall.SysProcAttr) *proc {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.CreateTemp(t.TempDir(), filepath.Base(argv[0])+".stderr.")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{stdin: inW, stderr: errf.Name(), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, errf
	attr.Pdeathsig = syscall.SIGKILL
	p.cmd.SysProcAttr = attr
	err = p.cmd.Start()
	inR.Close()
	outW.Close()
	errf.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		t.Fatalf("start %v: %v", argv, err)
	}
	p.out = readLines(outR)
	go func() {
		p.err = p.cmd.Wait()
		p.status = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not die after SIGKILL", argv[0], p.cmd.Process.Pid)
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited waits up to timeout for the process to end.
func (p *proc) exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (p *proc) stderrText() string {
	b, _ := os.ReadFile(p.stderr)
	return strings.TrimSpace(string(b))
}

// exitCode is the process's exit status as a shell shows it.
func (p *proc) exitCode() int {
	if p.status == nil {
		return -1
	}
	if ws, ok := p.status.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return p.status.ExitCode()
}

// dump runs procs-dump [-K] [extra...] PID into a file and returns its
// path.
func dump(t *testing.T, pid int, keep bool, extra ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args := slices.Clone(extra)
	if keep {
		args = append(args, "-K")
	}
	args = append(args, strconv.Itoa(pid))
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "procs-dump"), args...)
	cmd.Stdout, cmd.Stderr = f, &stderr
	t0 := time.Now()
	if err := runTimeout(cmd, time.Minute); err != nil {
		t.Fatalf("procs-dump %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	st, _ := f.Stat()
	t.Logf("procs-dump %s: %d bytes in %v", strings.Join(args, " "), st.Size(), time.Since(t0).Round(time.Millisecond))
	return img
}

// runTimeout runs cmd and kills it (by PID) if it takes longer than d.
func runTimeout(cmd *exec.Cmd, d time.Duration) error {
	// Do not wait long for output pipes a stray process holds open.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	return cmd.Wait()
}

// load is a running procs-load and the process it restored.
type load struct {
	*proc
	restored int    // PID of the restored process, once found
	start    uint64 // its start time, to never kill a reused PID
}

// startLoad runs procs-load [args...] IMAGE with stdin, stdout pipes and
// stderr to a file; with image "" it reads the image from that stdin. When t ends it kills the restored process (if found)
// and procs-load.
func startLoad(t *testing.T, image string, args ...string) *load {
	t.Helper()
	argv := append([]string{filepath.Join(binDir, "procs-load")}, args...)
	if image != "" {
		argv = append(argv, image)
	}
	ld := &load{}
	// Registered before start's cleanup, so it runs after it: the
	// restored process dies first only if procs-load was killed first,
	// which is fine either way since we kill it by checked PID.
	t.Cleanup(func() { ld.kill(t) })
	ld.proc = start(t, argv, t.TempDir())
	return ld
}

// find finds the restored process: a descendant of this test process
// named comm, other than the PIDs in not. It fails t after timeout.
func (ld *load) find(t *testing.T, comm string, timeout time.Duration, not ...int) int {
	t.Helper()
	if ld.restored != 0 {
		return ld.restored
	}
	deadline := time.Now().Add(timeout)
	for {
		var found []int
		for _, p := range descendants() {
			if p.comm == comm && !slices.Contains(not, p.pid) && p.state != 'Z' {
				found = append(found, p.pid)
			}
		}
		if len(found) == 1 {
			ld.restored = found[0]
			ld.start = startTime(found[0])
			return found[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored process named %q: found %v among descendants %v", comm, found, descendants())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill kills the restored process if it still is the one found.
func (ld *load) kill(t *testing.T) {
	if ld.restored == 0 {
		return
	}
	killChecked(t, ld.restored, ld.start)
}

// killChecked sends SIGKILL to pid if it still has start time st, then
// waits for it to go, reaping it if it is our child.
func killChecked(t *testing.T, pid int, st uint64) {
	t.Helper()
	if st == 0 || startTime(pid) != st {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, ok := procInfo(pid)
		if !ok || startTime(pid) != st {
			return
		}
		if info.state == 'Z' && info.ppid == os.Getpid() {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("pid %d did not die after SIGKILL", pid)
}

// pinfo is what /proc/PID/stat says of a process.
type pinfo struct {
	pid, ppid int
	comm      string
	state     byte
	start     uint64
}

func (p pinfo) String() string { return fmt.Sprintf("%d(%s,%c)", p.pid, p.comm, p.state) }

func procInfo(pid int) (pinfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pinfo{}, false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return pinfo{}, false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 20 {
		return pinfo{}, false
	}
	p := pinfo{pid: pid, comm: s[i+1 : j], state: f[0][0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

func startTime(pid int) uint64 {
	p, _ := procInfo(pid)
	return p.start
}

// allProcs lists every process.
func allProcs() []pinfo {
	ents, _ := os.ReadDir("/proc")
	var ps []pinfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := procInfo(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// descendants lists the processes below this test process.
func descendants() []pinfo {
	ps := allProcs()
	parent := map[int]int{}
	for _, p := range ps {
		parent[p.pid] = p.ppid
	}
	self := os.Getpid()
	var out []pinfo
	for _, p := range ps {
		for q, n := parent[p.pid], 0; q > 1 && n < 64; q, n = parent[q], n+1 {
			if q == self {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// liveDescendants reaps the zombies among our children and returns the
// processes below us that are not zombies once they are all gone or
// timeout passes.
func liveDescendants(timeout time.Duration) []pinfo {
	deadline := time.Now().Add(timeout)
	for {
		var live []pinfo
		for _, p := range descendants() {
			if p.state == 'Z' {
				if p.ppid == os.Getpid() {
					var ws unix.WaitStatus
					unix.Wait4(p.pid, &ws, unix.WNOHANG, nil)
				}
				continue
			}
			live = append(live, p)
		}
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// named lists the PIDs of live processes named comm below this test
// process (a subreaper: what its children leave behind stays below it).
// Processes of other test binaries running beside it are not ours.
func named(comm string) []int {
	var pids []int
	for _, p := range descendants() {
		if p.comm == comm && p.state != 'Z' {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// noLeftovers fails t if a process below the test process is still there
// when t ends (after the other cleanups), and kills it.
func noLeftovers(t *testing.T) {
	t.Cleanup(func() {
		left := liveDescendants(time.Second)
		if len(left) == 0 {
			return
		}
		t.Errorf("processes left running: %v", left)
		for _, p := range left {
			killChecked(t, p.pid, p.start)
		}
	})
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// taskIDs returns the thread ids of pid, as /proc lists them now.
func taskIDs(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var tids []int
	for _, e := range ents {
		tids = append(tids, mustAtoi(e.Name()))
	}
	return tids
}

// threadStates returns "tid:state:tracer" for each thread of pid.
func threadStates(pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []string
	for _, e := range ents {
		st := procStatus(mustAtoi(e.Name()))
		if st == nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%s:%s", e.Name(), st["State"], st["TracerPid"]))
	}
	return out
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// healthy reports whether no thread of pid is stopped or traced.
// untraced reports whether no thread of pid has a tracer.
func untraced(pid int) bool {
	for _, th := range threadStates(pid) {
		if !strings.HasSuffix(th, ":0") {
			return false
		}
	}
	return true
}

func healthy(pid int) error {
	ths := threadStates(pid)
	if len(ths) == 0 {
		return errors.New("process gone")
	}
	for _, th := range ths {
		f := strings.Split(th, ":")
		state, tracer := f[1], f[2]
		if strings.HasPrefix(state, "t") || strings.HasPrefix(state, "T") || strings.HasPrefix(state, "Z") || tracer != "0" {
			return fmt.Errorf("thread %s", th)
		}
	}
	return nil
}

// waitHealthy waits up to a second for healthy(pid) to hold, and returns
// its last error.
func waitHealthy(pid int) error {
	var err error
	for range 100 {
		if err = healthy(pid); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// waitSame waits up to two seconds for pid's fingerprint to be base again
// (a thread caught in a batch of injected calls comes back after the
// batch's sleep, at most a second, signals blocked till then), and
// returns what still differs.
func waitSame(pid int, base string) string {
	var d string
	for range 200 {
		if d = diffLines(base, fingerprint(pid)); d == "" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// fingerprint is what of a process must be the same before and after a
// failed dump: signal state, fds and mappings.
func fingerprint(pid int) string {
	var b strings.Builder
	st := procStatus(pid)
	for _, k := range []string{"SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "Threads"} {
		fmt.Fprintf(&b, "%s=%s\n", k, st[k])
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		// pos moves as the process reads; flags and locks must not
		// change.
		var flags string
		var locks []string
		for _, fl := range strings.Split(string(info), "\n") {
			if strings.HasPrefix(fl, "flags:") {
				flags = strings.TrimSpace(strings.TrimPrefix(fl, "flags:"))
			}
			if strings.HasPrefix(fl, "lock:") {
				locks = append(locks, strings.Join(strings.Fields(fl)[1:], " "))
			}
		}
		fmt.Fprintf(&b, "fd %s %s flags=%s locks=%q\n", e.Name(), l, flags, locks)
	}
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	b.Write(maps)
	return b.String()
}

// diffLines returns the lines of a missing in b and of b missing in a.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// testUser creates an ordinary user with a name unique to this run,
// removed when t ends, and returns its credentials.
func testUser(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skipf("no useradd: %v", err)
	}
	name := fmt.Sprintf("procs%d%d", os.Getpid()%100000, time.Now().UnixNano()%100000)
	var out []byte
	var err error
	for range 20 { // another useradd may hold the lock on /etc/passwd
		if out, err = exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		for range 20 {
			if out, err := exec.Command("userdel", name).CombinedOutput(); err == nil {
				return
			} else if strings.Contains(string(out), "does not exist") {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("userdel %s failed", name)
	})
	id := func(flag string) uint32 {
		b, err := exec.Command("id", flag, name).Output()
		if err != nil {
			t.Fatalf("id %s %s: %v", flag, name, err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	return &syscall.Credential{Uid: id("-u"), Gid: id("-g")}
}

// move says how moveTree moves a tree.
type move struct {
	keep    bool             // dump with -K, then stop and kill the original (stopKill)
	live    bool             // dump with --live
	detach  bool             // restore with procs-load -d, which must print the root's PID and leave
	between func(img string) // runs once the original is gone, before the restore
}

// moveTree dumps the tree of pid as m says, waits until every process of
// the image is gone, runs m.between, and restores it. The tree is killed
// when t ends. It returns the image.
func moveTree(t *testing.T, pid int, m move) string {
	t.Helper()
	var extra []string
	if m.live {
		extra = []string{"--live"}
	}
	img := dump(t, pid, m.keep, extra...)
	if m.keep {
		stopKill(t, pid)
	}
	waitImageGone(t, img)
	if m.between != nil {
		m.between(img)
	}
	t.Cleanup(func() { killTree(t, pid) })
	if !m.detach {
		startLoad(t, img)
		return img
	}
	ld := startLoadAs(t, img, "detach")
	// Its output may be read a moment after it exits.
	out, _ := ld.out.wait(10*time.Second, func(all []string, eof bool) bool { return len(all) > 0 || eof })
	if got := strings.TrimSpace(strings.Join(out, "\n")); got != strconv.Itoa(pid) {
		t.Fatalf("procs-load -d printed %q; want the PID %d", got, pid)
	}
	return img
}
