// Package clitest checks the command-line contract of procs-dump and
// procs-load: usage, exit codes, messages, refusals. It builds the
// binaries once. Tests that need a working engine skip themselves while
// dump.Dump reports "not implemented".
package clitest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"procs/tests/internal/testenv"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"procs/pkg/cli"
	"procs/pkg/cli/dumpcmd"
	"procs/pkg/cli/loadcmd"
)

const testVersion = "v0.0.0-clitest"

var binDir string

func TestMain(m *testing.M) {
	testenv.CloseStrayFDs()
	dir, err := os.MkdirTemp("", "procs-clitest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-X procs/pkg/cli.Version="+testVersion,
		"-o", dir+"/", "procs/cmd/procs-dump", "procs/cmd/procs-load")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a command did.
type result struct {
	code           int
	signaled       bool
	stdout, stderr string
}

// run runs bin with args; stdin and stdout may be nil (/dev/null and a
// buffer).
func run(t *testing.T, stdin, stdout *os.File, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	var out, errb bytes.Buffer
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not end within 60s", bin, args)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return result{code: ws.ExitStatus(), signaled: ws.Signaled(), stdout: out.String(), stderr: errb.String()}
}

// checkMessage checks stderr of a failed command: one line with the
// program prefix, maybe a hint line, and no Go stack trace.
func checkMessage(t *testing.T, bin string, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.stderr == "" || !strings.HasSuffix(r.stderr, "\n") || len(lines) > 2 {
		t.Errorf("stderr = %q; want one line and maybe a hint", r.stderr)
		return
	}
	if !strings.HasPrefix(lines[0], bin+": ") || strings.HasSuffix(lines[0], ".") {
		t.Errorf("stderr line %q; want %q prefix and no trailing period", lines[0], bin+": ")
	}
	if len(lines) == 2 && !strings.HasPrefix(lines[1], bin+": hint: ") {
		t.Errorf("second stderr line %q; want a %q line", lines[1], bin+": hint: ")
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stderr has a stack trace: %q", r.stderr)
	}
	if want != "" && !strings.Contains(lines[0], want) {
		t.Errorf("stderr = %q; want it to say %q", lines[0], want)
	}
}

func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		bin, usage string
	}{{"procs-dump", dumpcmd.Usage}, {"procs-load", loadcmd.Usage}} {
		for _, arg := range []string{"-h", "--help"} {
			r := run(t, nil, nil, tt.bin, arg)
			if r.code != 0 || r.stdout != tt.usage || r.stderr != "" {
				t.Errorf("%s %s = %d, stdout %q, stderr %q; want 0 and the usage on stdout", tt.bin, arg, r.code, r.stdout, r.stderr)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, bin := range []string{"procs-dump", "procs-load"} {
		r := run(t, nil, nil, bin, "--version")
		if want := bin + " " + testVersion + "\n"; r.code != 0 || r.stdout != want {
			t.Errorf("%s --version = %d, %q; want 0, %q", bin, r.code, r.stdout, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		bin  string
		args []string
		code int
		want string
	}{
		{"dump no args", "procs-dump", nil, 2, "missing PID"},
		{"dump unknown short", "procs-dump", []string{"-x", "1"}, 2, "unknown option -x"},
		{"dump unknown long", "procs-dump", []string{"--bogus", "1"}, 2, "unknown option --bogus"},
		{"dump bad pid", "procs-dump", []string{"12ab"}, 2, `invalid PID "12ab"`},
		{"dump zero pid", "procs-dump", []string{"0"}, 2, "invalid PID"},
		{"dump two pids", "procs-dump", []string{"1", "2"}, 2, "too many arguments"},
		{"dump pid and name", "procs-dump", []string{"-n", "x", "1"}, 2, "not both"},
		{"dump empty name", "procs-dump", []string{"-n", ""}, 2, "empty process name"},
		{"dump empty output", "procs-dump", []string{"-o", "", "1"}, 2, "empty file name for --output"},
		{"dump bad compress", "procs-dump", []string{"-z", "gzip", "1"}, 2, `invalid value "gzip" for --compress`},
		{"dump missing value", "procs-dump", []string{"1", "-o"}, 2, "option -o needs a value"},
		{"dump value to flag", "procs-dump", []string{"--nokill=yes", "1"}, 2, "--nokill"},
		{"load unknown", "procs-load", []string{"-x"}, 125, "unknown option -x"},
		{"load bad pid mode", "procs-load", []string{"--pid=old", "img"}, 125, `invalid value "old" for --pid`},
		{"load two files", "procs-load", []string{"a", "b"}, 125, "too many arguments"},
		{"load missing value", "procs-load", []string{"--pid"}, 125, "option --pid needs a value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, nil, nil, tt.bin, tt.args...)
			if r.code != tt.code || r.signaled {
				t.Errorf("%s %q = exit %d (signaled %v); want %d", tt.bin, tt.args, r.code, r.signaled, tt.code)
			}
			if r.stdout != "" {
				t.Errorf("%s %q wrote %q on stdout; want nothing", tt.bin, tt.args, r.stdout)
			}
			checkMessage(t, tt.bin, r, tt.want)
		})
	}
}

// startVictim starts a sleep that the test owns and kills at the end.
func startVictim(t *testing.T, argv0 string) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if argv0 != "" {
		cmd.Args[0] = argv0
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return pid
}

// alive reports whether pid (a child of the test) still runs and is not a
// zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestRefuseTerminal(t *testing.T) {
	master, slave, err := cli.OpenPTY()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	pid := startVictim(t, "")
	for _, args := range [][]string{{"-K", strconv.Itoa(pid)}, {"-K", "-o", "-", strconv.Itoa(pid)}} {
		r := run(t, nil, slave, "procs-dump", args...)
		if r.code != 2 {
			t.Errorf("procs-dump %q > tty = exit %d; want 2", args, r.code)
		}
		want := "procs-dump: refusing to write an image to a terminal\nprocs-dump: hint: use -o FILE or redirect stdout\n"
		if r.stderr != want {
			t.Errorf("procs-dump %q > tty: stderr %q; want %q", args, r.stderr, want)
		}
	}
	if !alive(pid) {
		t.Errorf("victim %d died after a refused dump", pid)
	}
	r := run(t, slave, nil, "procs-load")
	if r.code != 125 {
		t.Errorf("procs-load < tty = exit %d; want 125", r.code)
	}
	checkMessage(t, "procs-load", r, "refusing to read an image from a terminal")
}

// gonePID returns a PID that no process has: that of a child that
// was started and reaped.
func gonePID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestNoSuchProcess(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	// A thread of this test process is not a process.
	tid := 0
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, e := range tasks {
		if n, _ := strconv.Atoi(e.Name()); n != os.Getpid() {
			tid = n
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"gone pid", []string{"-K", "-o", img, strconv.Itoa(gonePID(t))}, "no such process"},
		{"huge pid", []string{"-K", "-o", img, "99999999"}, "no such process"},
		{"thread", []string{"-K", "-o", img, strconv.Itoa(tid)}, "is a thread of process"},
		{"no name", []string{"-K", "-o", img, "-n", fmt.Sprintf("procs-nothing-%d", os.Getpid())}, "no process named"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "thread" && tid == 0 {
				t.Skip("test process has a single thread")
			}
			r := run(t, nil, nil, "procs-dump", tt.args...)
			if r.code != 3 {
				t.Errorf("procs-dump %q = exit %d; want 3", tt.args, r.code)
			}
			checkMessage(t, "procs-dump", r, tt.want)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("procs-dump %q left %d files in the output directory", tt.args, len(ents))
			}
		})
	}
}

// TestZombieAndKernelThread: a zombie and a kernel thread are each
// refused in one plain sentence.
func TestZombieAndKernelThread(t *testing.T) {
	z := exec.Command("true")
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	defer z.Wait()
	for i := 0; i < 500 && !strings.Contains(procState(z.Process.Pid), "Z"); i++ {
		time.Sleep(2 * time.Millisecond)
	}
	kthread := 0
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err == nil && len(b) == 0 && !strings.Contains(procState(pid), "Z") {
			kthread = pid
			break
		}
	}
	for _, tc := range []struct {
		pid  int
		want string
	}{
		{z.Process.Pid, "is a zombie"},
		{kthread, "is a kernel thread"},
	} {
		if tc.pid == 0 {
			t.Logf("no kernel thread in sight: skipped")
			continue
		}
		r := run(t, nil, nil, "procs-dump", "-K", strconv.Itoa(tc.pid))
		if r.code != 3 {
			t.Errorf("procs-dump %d = exit %d; want 3", tc.pid, r.code)
		}
		checkMessage(t, "procs-dump", r, fmt.Sprintf("process %d %s", tc.pid, tc.want))
	}
}

// procState is the state field of /proc/PID/stat.
func procState(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+3 <= len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

func TestNameSeveral(t *testing.T) {
	name := fmt.Sprintf("procs-victim-%d", os.Getpid())
	a := startVictim(t, name)
	b := startVictim(t, "/no/where/"+name)
	dir := t.TempDir()
	r := run(t, nil, nil, "procs-dump", "-K", "-o", filepath.Join(dir, "img"), "-n", name)
	if r.code != 3 {
		t.Errorf("procs-dump -n %s with two matches = exit %d; want 3", name, r.code)
	}
	for _, pid := range []int{a, b} {
		if !strings.Contains(r.stderr, fmt.Sprintf("procs-dump:   %d ", pid)) {
			t.Errorf("stderr %q does not list process %d", r.stderr, pid)
		}
		if !alive(pid) {
			t.Errorf("victim %d died", pid)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("procs-dump -n left %d files in the output directory", len(ents))
	}
}

func TestOutputErrors(t *testing.T) {
	pid := startVictim(t, "")
	dir := t.TempDir()
	r := run(t, nil, nil, "procs-dump", "-K", "-o", filepath.Join(dir, "no", "img"), strconv.Itoa(pid))
	if r.code != 1 {
		t.Errorf("procs-dump -o missing-dir/img = exit %d; want 1", r.code)
	}
	checkMessage(t, "procs-dump", r, "no such file or directory")
	if !alive(pid) {
		t.Errorf("victim %d died", pid)
	}
}

func TestClosedStdout(t *testing.T) {
	for _, bin := range []string{"procs-dump", "procs-load"} {
		rd, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		rd.Close()
		r := run(t, nil, w, bin, "--help")
		w.Close()
		if r.signaled {
			t.Errorf("%s --help > closed pipe died by a signal; want an error", bin)
		}
		want := map[string]int{"procs-dump": 1, "procs-load": 125}[bin]
		if r.code != want {
			t.Errorf("%s --help > closed pipe = exit %d; want %d", bin, r.code, want)
		}
		checkMessage(t, bin, r, "broken pipe")
	}
}

// TestStdoutClosedAtStart runs procs-dump with its standard output
// closed (the Go runtime puts /dev/null there): it must fail and leave
// the process alone, not write the image nowhere and kill it.
func TestStdoutClosedAtStart(t *testing.T) {
	pid := startVictim(t, "")
	cmd := exec.Command("sh", "-c", `exec "$0" "$1" >&-`, filepath.Join(binDir, "procs-dump"), strconv.Itoa(pid))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("procs-dump PID >&- = %v; want exit 1", err)
	}
	if want := "procs-dump: standard output is closed\n"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr = %q; want it to start with %q", stderr.String(), want)
	}
	if !alive(pid) {
		t.Errorf("victim %d died", pid)
	}
}

func TestLoadBadImages(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, bytes.Repeat([]byte("not an image\n"), 100), 0o644)
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"empty file", []string{empty}, "", ""},
		{"garbage file", []string{garbage}, "", ""},
		{"nonexistent file", []string{filepath.Join(dir, "none")}, "", "no such file or directory"},
		{"directory", []string{dir}, "", "is a directory"},
		{"empty stdin", nil, empty, ""},
		{"garbage stdin", []string{"-"}, garbage, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var in *os.File
			if tt.stdin != "" {
				f, err := os.Open(tt.stdin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				in = f
			}
			r := run(t, in, nil, "procs-load", tt.args...)
			if r.code != 125 || r.signaled {
				t.Errorf("procs-load %q = exit %d; want 125", tt.args, r.code)
			}
			checkMessage(t, "procs-load", r, tt.want)
		})
	}
}

func TestManPagesDocumentOptions(t *testing.T) {
	for _, tt := range []struct {
		usage, page string
	}{{dumpcmd.Usage, "../../man/procs-dump.1"}, {loadcmd.Usage, "../../man/procs-load.1"}} {
		b, err := os.ReadFile(tt.page)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), `\-`, "-")
		opts := cli.LongOptions(tt.usage)
		if len(opts) < 4 {
			t.Fatalf("LongOptions(usage of %s) = %q; want the options", tt.page, opts)
		}
		for _, o := range opts {
			if !strings.Contains(text, o) {
				t.Errorf("%s does not document %s", tt.page, o)
			}
		}
	}
}

func TestManLint(t *testing.T) {
	mandoc, err := exec.LookPath("mandoc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mandoc is not installed")
		}
		t.Skip("mandoc is not installed")
	}
	pages, _ := filepath.Glob("../../man/*.[158]")
	out, err := exec.Command(mandoc, append([]string{"-T", "lint", "-W", "warning"}, pages...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("mandoc -T lint -W warning: %v\n%s", err, out)
	}
}

// The tests below need a working engine.

var engine struct {
	once  sync.Once
	ready bool
	why   string
}

// needEngine skips the test while dump.Dump is a stub.
func needEngine(t *testing.T) {
	t.Helper()
	engine.once.Do(func() {
		pid := startVictim(t, "")
		r := run(t, nil, nil, "procs-dump", "-K", "-o", filepath.Join(t.TempDir(), "img"), strconv.Itoa(pid))
		engine.ready = !strings.Contains(r.stderr, "not implemented")
		engine.why = strings.TrimSpace(r.stderr)
	})
	if !engine.ready {
		t.Skipf("engine not ready: %s", engine.why)
	}
}

func TestDumpKeep(t *testing.T) {
	needEngine(t)
	pid := startVictim(t, "")
	img := filepath.Join(t.TempDir(), "img")
	r := run(t, nil, nil, "procs-dump", "-K", "-o", img, strconv.Itoa(pid))
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("procs-dump -K = exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	if st, err := os.Stat(img); err != nil || st.Size() == 0 {
		t.Errorf("image %s: %v, %v; want a non-empty file", img, st, err)
	}
	if !alive(pid) {
		t.Errorf("victim %d died after procs-dump -K", pid)
	}
}

func TestDumpKills(t *testing.T) {
	needEngine(t)
	pid := startVictim(t, "")
	img := filepath.Join(t.TempDir(), "img")
	out, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := run(t, nil, out, "procs-dump", strconv.Itoa(pid))
	if r.code != 0 {
		t.Fatalf("procs-dump = exit %d, stderr %q; want 0", r.code, r.stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("victim %d still runs after procs-dump without -K", pid)
	}
}

func TestDumpClosedPipe(t *testing.T) {
	needEngine(t)
	pid := startVictim(t, "")
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rd.Close()
	r := run(t, nil, w, "procs-dump", strconv.Itoa(pid))
	w.Close()
	if r.code != 1 || r.signaled {
		t.Errorf("procs-dump > closed pipe = exit %d (signaled %v); want 1", r.code, r.signaled)
	}
	checkMessage(t, "procs-dump", r, "")
	if !alive(pid) {
		t.Errorf("victim %d died after a failed dump", pid)
	}
}

func TestDumpRefusesPipe(t *testing.T) {
	needEngine(t)
	// A sleep with a pipe to this test as fd 3: procs cannot carry it
	// (on fds 0, 1 and 2 it could: they become procs-load's own).
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command("sleep", "1000")
	cmd.ExtraFiles = []*os.File{rd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	pid := cmd.Process.Pid
	defer func() { syscall.Kill(pid, syscall.SIGKILL); cmd.Wait() }()
	dir := t.TempDir()
	r := run(t, nil, nil, "procs-dump", "-o", filepath.Join(dir, "img"), strconv.Itoa(pid))
	if r.code != 3 {
		t.Errorf("procs-dump of a process with a pipe = exit %d, stderr %q; want 3", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused dump left %d files", len(ents))
	}
	if !alive(pid) {
		t.Errorf("victim %d died after a refused dump", pid)
	}
}

func TestLoadDetach(t *testing.T) {
	needEngine(t)
	pid := startVictim(t, "")
	img := filepath.Join(t.TempDir(), "img")
	if r := run(t, nil, nil, "procs-dump", "-K", "-o", img, strconv.Itoa(pid)); r.code != 0 {
		t.Fatalf("procs-dump = exit %d, %q", r.code, r.stderr)
	}
	// The restored process keeps procs-load's stdout and stderr: files,
	// not pipes this test would wait on forever.
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--pid=new", img)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		printed, _ := os.ReadFile(out.Name())
		t.Fatalf("procs-load -d: %v; output %q", err, printed)
	}
	printed, _ := os.ReadFile(out.Name())
	clone, err := strconv.Atoi(strings.TrimSpace(string(printed)))
	if err != nil || clone <= 0 {
		t.Fatalf("procs-load -d printed %q; want a PID", printed)
	}
	defer syscall.Kill(clone, syscall.SIGKILL)
	if clone == pid {
		t.Errorf("procs-load --pid=new gave the original PID %d", pid)
	}
	if err := syscall.Kill(clone, 0); err != nil {
		t.Errorf("restored process %d: %v", clone, err)
	}
}

func TestLoadExitStatus(t *testing.T) {
	needEngine(t)
	for _, tt := range []struct {
		name string
		want int
	}{
		{"exit code", 7},
		{"signal", 128 + 15},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A python3 victim: a single process with no children.
			py := realPython(t)
			code := "import time,os,signal,sys\nprint('ready', flush=True)\ntime.sleep(0.5)\n"
			if tt.want > 128 {
				code += "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)\n"
			} else {
				code += fmt.Sprintf("sys.exit(%d)\n", tt.want)
			}
			cmd := exec.Command(py, "-c", code)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			defer func() { syscall.Kill(pid, syscall.SIGKILL); cmd.Wait() }()
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("python3 victim said %q, %v; want ready", line, err)
			}
			img := filepath.Join(t.TempDir(), "img")
			if r := run(t, nil, nil, "procs-dump", "-o", img, strconv.Itoa(pid)); r.code != 0 {
				t.Fatalf("procs-dump = exit %d, %q", r.code, r.stderr)
			}
			r := run(t, nil, nil, "procs-load", img)
			if r.code != tt.want {
				t.Errorf("procs-load of a process that ends with %d = exit %d, stderr %q", tt.want, r.code, r.stderr)
			}
		})
	}
}

// realPython is the python3 interpreter itself, not a wrapper script (a
// pyenv shim runs children of its own, which procs-dump refuses).
func realPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skip("python3 not installed")
	}
	return strings.TrimSpace(string(out))
}

// TestNotAllowed: procs-dump run by a user who may not read the process
// is refused in one sentence that says so, and leaves it alone.
func TestNotAllowed(t *testing.T) {
	dir, err := os.MkdirTemp("", "procs-notallowed-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "procs-dump")
	b, err := os.ReadFile(filepath.Join(binDir, "procs-dump"))
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	pid := startVictim(t, "")
	cmd := exec.Command(bin, "-K", strconv.Itoa(pid))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stderr: errb.String()}
	if r.code != 3 {
		t.Errorf("procs-dump as uid 65534 = exit %d; want 3", r.code)
	}
	checkMessage(t, "procs-dump", r, fmt.Sprintf("not allowed to read process %d", pid))
	// Running or sleeping, never stopped or traced (on a loaded machine
	// the victim may be caught on a CPU).
	if st := procState(pid); !alive(pid) || st != "S" && st != "R" {
		t.Errorf("victim's state after the refusal = %q; want it running on", st)
	}
}
