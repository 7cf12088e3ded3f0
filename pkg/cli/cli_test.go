package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pborman/getopt/v2"
	"golang.org/x/sys/unix"
)

func TestMsg(t *testing.T) {
	var b bytes.Buffer
	m := NewMsg("procs-dump", &b)
	m.Errorf("cannot %s", "go")
	m.Error(WithHint(errors.New("two\nlines"), "do this"))
	m.Logf("hidden")
	m.SetVerbose(true)
	m.Logf("shown %d", 1)
	m.Hintf("last\n")
	want := "procs-dump: cannot go\n" +
		"procs-dump: two\nprocs-dump: lines\nprocs-dump: hint: do this\n" +
		"procs-dump: shown 1\nprocs-dump: hint: last\n"
	if got := b.String(); got != want {
		t.Errorf("Msg output = %q; want %q", got, want)
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	m := NewMsg("p", &b)
	if m.ProgressFunc() != nil {
		t.Fatalf("ProgressFunc() on a buffer = non-nil; want nil")
	}
	m.Progress(1, 2) // not a terminal: nothing
	if b.Len() != 0 {
		t.Fatalf("Progress on a non-terminal wrote %q", b.String())
	}
	now := time.Unix(1000, 0)
	m.progress = &progressLine{now: func() time.Time { return now }}
	m.Progress(0, 100<<20) // too soon to show
	now = now.Add(600 * time.Millisecond)
	m.Progress(30<<20, 100<<20)
	now = now.Add(10 * time.Millisecond)
	m.Progress(31<<20, 100<<20) // throttled
	now = now.Add(400 * time.Millisecond)
	m.Progress(50<<20, 100<<20)
	m.Errorf("oops") // clears the line first
	m.EndProgress()  // nothing shown: nothing to clear
	want := "\rp: 30% 30 MiB of 100 MiB, 50 MiB/s\x1b[K" +
		"\rp: 50% 50 MiB of 100 MiB, 50 MiB/s\x1b[K" +
		"\r\x1b[Kp: oops\n"
	if got := b.String(); got != want {
		t.Errorf("progress output = %q; want %q", got, want)
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {120 << 20, "120 MiB"}, {4 << 30, "4.0 GiB"}, {5 << 40, "5.0 TiB"},
	} {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q; want %q", tt.n, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		operands []string
		k        bool
		o        string
		err      string
	}{
		{"empty", []string{"p"}, nil, false, "", ""},
		{"interleaved", []string{"p", "12", "-K", "-o", "f", "x"}, []string{"12", "x"}, true, "f", ""},
		{"long", []string{"p", "--output=f", "--nokill", "12"}, []string{"12"}, true, "f", ""},
		{"dashdash", []string{"p", "-K", "--", "-o", "f"}, []string{"-o", "f"}, true, "", ""},
		{"dash", []string{"p", "-", "-K"}, []string{"-"}, true, "", ""},
		{"glued", []string{"p", "-Kofile"}, nil, true, "file", ""},
		{"unknown", []string{"p", "-x"}, nil, false, "", "unknown option -x"},
		{"unknown long", []string{"p", "1", "--bogus"}, nil, false, "", "unknown option --bogus"},
		{"missing", []string{"p", "-o"}, nil, false, "", "option -o needs a value"},
		{"extra", []string{"p", "--nokill=3"}, nil, false, "", `invalid value "3" for --nokill`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var k bool
			var o string
			set := getopt.New()
			set.FlagLong(&k, "nokill", 'K')
			set.FlagLong(&o, "output", 'o')
			ops, err := Parse(set, tt.args)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !IsUsage(err) {
					t.Fatalf("Parse(%q) error = %v; want usage error %q", tt.args, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.args, err)
			}
			if !slices.Equal(ops, tt.operands) || k != tt.k || o != tt.o {
				t.Errorf("Parse(%q) = %q, K=%v, o=%q; want %q, K=%v, o=%q", tt.args, ops, k, o, tt.operands, tt.k, tt.o)
			}
		})
	}
}

func TestLongOptions(t *testing.T) {
	got := LongOptions("  -o, --output=FILE  x\n  --version, --pid=auto|keep --output")
	want := []string{"--output", "--pid", "--version"}
	if !slices.Equal(got, want) {
		t.Errorf("LongOptions = %q; want %q", got, want)
	}
}

func TestOutputCommit(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "img")
	o, err := OpenOutput(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Write([]byte("image")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat(%s) before Commit = %v; want not exist", name, err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	o.Close() // no-op after Commit
	b, err := os.ReadFile(name)
	if err != nil || string(b) != "image" {
		t.Fatalf("ReadFile(%s) = %q, %v; want \"image\"", name, b, err)
	}
	st, _ := os.Stat(name)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode of new image = %v; want 0600", st.Mode().Perm())
	}
	assertOnly(t, dir, "img")
}

func TestOutputAbort(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "img")
	os.WriteFile(name, []byte("old"), 0o644)
	o, err := OpenOutput(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Write(bytes.Repeat([]byte("x"), 3<<20))
	o.Abort()
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("after Abort, %s = %.10q; want \"old\"", name, b)
	}
	assertOnly(t, dir, "img")
	if _, err := o.Write([]byte("y")); err == nil {
		t.Errorf("Write after Abort = nil; want an error")
	}
}

func TestOutputErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenOutput(filepath.Join(dir, "no", "img"), nil); err == nil {
		t.Errorf("OpenOutput in a missing directory = nil error")
	} else if !strings.Contains(err.Error(), filepath.Join(dir, "no", "img")) {
		t.Errorf("OpenOutput error = %q; want it to name the file", err)
	}
	if _, err := OpenOutput(dir, nil); err == nil {
		t.Errorf("OpenOutput(directory) = nil error")
	}
	// A device is written in place, never replaced.
	o, err := OpenOutput("/dev/null", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Write([]byte("x"))
	if err := o.Commit(); err != nil {
		t.Fatalf("Commit to /dev/null = %v", err)
	}
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", st, err)
	}
}

func TestOutputStdoutFileTruncatedOnAbort(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("head")
	o, err := OpenOutput("-", f)
	if err != nil {
		t.Fatal(err)
	}
	o.Write(bytes.Repeat([]byte("x"), 2<<20))
	o.Abort()
	if b, _ := os.ReadFile(name); string(b) != "head" {
		t.Errorf("stdout file after Abort = %.10q (%d bytes); want \"head\"", b, len(b))
	}
}

func TestTerminal(t *testing.T) {
	master, slave, err := OpenPTY()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	if !IsTerminal(slave) {
		t.Errorf("IsTerminal(pty slave) = false")
	}
	if _, err := OpenOutput("-", slave); !errors.Is(err, ErrTerminal) || Hint(err) != "use -o FILE or redirect stdout" {
		t.Errorf("OpenOutput(-, pty) = %v (hint %q); want ErrTerminal with hint", err, Hint(err))
	}
	if _, err := OpenInput("-", slave); !errors.Is(err, ErrTerminalIn) {
		t.Errorf("OpenInput(-, pty) = %v; want ErrTerminalIn", err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Errorf("IsTerminal(pipe) = true")
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("files in %s = %q; want %q", dir, got, names)
	}
}

func TestReadProc(t *testing.T) {
	p, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() || p.Exe == "" || !p.Matches(filepath.Base(os.Args[0])) {
		t.Errorf("ReadProc(self) = %+v", p)
	}
	if _, err := ReadProc(1 << 30); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadProc(1<<30) = %v; want ErrNoProcess", err)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if tid != os.Getpid() {
			if _, err := ReadProc(tid); !errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), "thread") {
				t.Errorf("ReadProc(thread %d) = %v; want a thread refusal", tid, err)
			}
			break
		}
	}
}

func TestFindProcs(t *testing.T) {
	name := fmt.Sprintf("procs-victim-%d", os.Getpid())
	if _, err := FindOne(name); !errors.Is(err, ErrNoProcess) {
		t.Errorf("FindOne(%s) with none = %v; want ErrNoProcess", name, err)
	}
	var pids []int
	for i := 0; i < 2; i++ {
		cmd := exec.Command("sleep", "100")
		cmd.Args[0] = "/nowhere/" + name
		if err := cmd.Start(); err != nil {
			t.Skipf("sleep: %v", err)
		}
		pids = append(pids, cmd.Process.Pid)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	p, err := FindOne(name, pids[1])
	if err != nil || p.PID != pids[0] {
		t.Errorf("FindOne(%s, exclude %d) = %v, %v; want pid %d", name, pids[1], p, err, pids[0])
	}
	_, err = FindOne(name)
	var amb *AmbiguousError
	if !errors.As(err, &amb) || len(amb.Procs) != 2 || !strings.Contains(err.Error(), strconv.Itoa(pids[1])) {
		t.Errorf("FindOne(%s) with two = %v; want an AmbiguousError listing both", name, err)
	}
}

// TestSIGPIPE checks that after IgnoreSIGPIPE, and after CatchSIGPIPE, a
// write to a closed pipe on stdout is an EPIPE error, not a death by
// signal; and that a program started by exec after CatchSIGPIPE has the
// default SIGPIPE, not an ignored one.
func TestSIGPIPE(t *testing.T) {
	if h := os.Getenv("PROCS_CLI_HELPER"); h == "ignore" || h == "catch" {
		if h == "ignore" {
			IgnoreSIGPIPE()
		} else {
			CatchSIGPIPE()
		}
		out, err := exec.Command("/bin/sh", "-c", "grep SigIgn /proc/self/status").Output()
		if err != nil {
			os.Exit(9)
		}
		ign, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:")), 16, 64)
		if inherited := ign&(1<<(syscall.SIGPIPE-1)) != 0; inherited != (h == "ignore") {
			os.Exit(10)
		}
		_, err = os.Stdout.Write([]byte("x"))
		if errors.Is(err, syscall.EPIPE) {
			os.Exit(7)
		}
		os.Exit(8)
	}
	for _, h := range []string{"ignore", "catch"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGPIPE$")
		cmd.Env = append(os.Environ(), "PROCS_CLI_HELPER="+h)
		cmd.Stdout = w
		err = cmd.Run()
		w.Close()
		if cmd.ProcessState == nil {
			t.Fatal(err)
		}
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() || ws.ExitStatus() != 7 {
			t.Errorf("%s: helper writing to a closed pipe: %v; want exit status 7 (EPIPE; 10: SIGPIPE ignored in an exec'd program, or not)", h, cmd.ProcessState)
		}
	}
}

// TestOutputStdoutFileDirect: stdout redirected to a regular file is
// written straight to the disk from where it stood, through a file
// description of our own: the shell's keeps its flags, and ends up right
// after the image, as if the image had been written through it.
func TestOutputStdoutFileDirect(t *testing.T) {
	img := make([]byte, 5<<20+1234)
	for i := range img {
		img[i] = byte(i*13 + i>>10)
	}
	for _, head := range []int{0, 4096, 100} { // 100: not a block boundary
		t.Run(strconv.Itoa(head), func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Write(bytes.Repeat([]byte("h"), head))
			flags := func() int {
				fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
				if err != nil {
					t.Fatal(err)
				}
				return fl
			}
			before := flags()
			o, err := OpenOutput("-", f)
			if err != nil {
				t.Fatal(err)
			}
			_, direct := o.out.(*directSink)
			if direct && head%4096 != 0 {
				t.Errorf("writing directly from offset %d, not a block boundary", head)
			}
			t.Logf("direct: %v", direct)
			for p := img; len(p) > 0; {
				n := min(len(p), 300001)
				if _, err := o.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if flags() != before {
				t.Errorf("stdout's flags changed while writing: %#x, were %#x", flags(), before)
			}
			if err := o.Commit(); err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("after"))
			got, _ := os.ReadFile(name)
			want := append(append(bytes.Repeat([]byte("h"), head), img...), "after"...)
			if !bytes.Equal(got, want) {
				t.Errorf("file of %d bytes; want %d: the head, the image, then what came after", len(got), len(want))
			}
		})
	}
}

// TestOutputStdoutReadOnly: a stdout open only for reading is not made
// writable by opening its file again: the write fails.
func TestOutputStdoutReadOnly(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := OpenOutput("-", f)
	if err != nil {
		t.Fatal(err)
	}
	o.Write(make([]byte, 1<<20))
	if err := o.Commit(); err == nil {
		t.Fatal("writing an image to a read-only stdout succeeded")
	}
	o.Close()
	if st, _ := os.Stat(name); st.Size() != 0 {
		t.Errorf("read-only stdout's file grew to %d bytes", st.Size())
	}
}

func TestClosedAtStart(t *testing.T) {
	for _, tc := range []struct {
		path string
		flag int
		want bool
	}{
		{os.DevNull, os.O_RDWR, true}, // what the Go runtime opens for a closed fd
		{os.DevNull, os.O_WRONLY, false},
		{filepath.Join(t.TempDir(), "f"), os.O_RDWR | os.O_CREATE, false},
	} {
		f, err := os.OpenFile(tc.path, tc.flag, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if got := closedAtStart(f); got != tc.want {
			t.Errorf("closedAtStart(%s opened %#o) = %v; want %v", tc.path, tc.flag, got, tc.want)
		}
		f.Close()
	}
}

func TestWarnf(t *testing.T) {
	var b bytes.Buffer
	NewMsg("procs", &b).Warnf("file %s changed", "/x")
	if got, want := b.String(), "procs: warning: file /x changed\n"; got != want {
		t.Errorf("Warnf wrote %q; want %q", got, want)
	}
}
