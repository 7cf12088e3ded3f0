package tests

// Feature tests: terminal modes, the process's own terminal, job control.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTerminalModes: a process that set its terminal to raw mode gets
// the same modes on the terminal procs-load runs in (typed keys reach it
// one by one, unechoed), and a SIGWINCH to redraw; once it is gone,
// procs-load's terminal has its own modes back. The terminal it had open
// again as fd 3 is procs-load's terminal too; procs-load without a
// terminal refuses such a process.
func TestTerminalModes(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	img := ttyImage(t)

	refused(t, exec.Command(filepath.Join(binDir, "procs-load"), img), "features", "no terminal to give it")

	mb, sb := openPty(t)
	cooked, err := unix.IoctlGetTermios(int(sb.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if cooked.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
		t.Fatalf("new terminal's lflag %#o; want ICANON and ECHO", cooked.Lflag)
	}
	_, done := onTerminal(t, sb, nil, filepath.Join(binDir, "procs-load"), img)
	outB := readLines(mb)
	expect(t, outB, "tty ", 0, "icanon=0", "echo=0", "winch=1", "sameok=1")
	skip := len(mustLines(outB))
	if _, err := mb.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	expect(t, outB, "tty ", skip, "keys=2")
	if all := strings.Join(mustLines(outB)[skip:], "\n"); strings.Contains(all, "ab") {
		t.Errorf("typed keys were echoed: %q", all)
	}

	restored := liveFeatures(t)
	killChecked(t, restored, startTime(restored))
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+9 {
			t.Errorf("procs-load = %v; want exit 137", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("procs-load did not end")
	}
	after, err := unix.IoctlGetTermios(int(sb.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != cooked.Lflag || after.Cc != cooked.Cc {
		t.Errorf("terminal after the process: lflag %#o cc %v; want its own back: lflag %#o cc %v",
			after.Lflag, after.Cc, cooked.Lflag, cooked.Cc)
	}
}

// TestOtherTerminalRefused: a terminal that is not the process's own (not
// its controlling terminal, not on its standard streams), here a
// pseudo-terminal whose master is outside the tree, is refused at the
// dump, by fd and path, naming who holds the master.
func TestOtherTerminalRefused(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	_, other := openPty(t)
	p := exec.Command("sleep", "1000")
	p.ExtraFiles = []*os.File{other} // fd 3
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	st := startTime(p.Process.Pid)
	defer func() {
		killChecked(t, p.Process.Pid, st)
		p.Wait()
	}()
	var stderr bytes.Buffer
	d := exec.Command(filepath.Join(binDir, "procs-dump"), "-K", "-o", os.DevNull, strconv.Itoa(p.Process.Pid))
	d.Stderr = &stderr
	err := d.Run()
	want := fmt.Sprintf("fd 3 of process %d is the pseudo-terminal %s, which is not its own terminal (its controlling terminal, or one on fds 0-2) and whose master process %d, outside the tree, holds", p.Process.Pid, other.Name(), os.Getpid())
	if err == nil || d.ProcessState.ExitCode() != 3 || !strings.Contains(stderr.String(), want) {
		t.Errorf("procs-dump = %v, %q; want exit 3 saying %q", err, stderr.String(), want)
	}
}

// TestInteractiveShell: an interactive bash, dumped at its prompt, goes
// on in procs-load's terminal with its variables and its job control: it
// runs a command in a process group of its own and gets the terminal
// back after, twice, then exits. The same in a PID namespace.
func TestInteractiveShell(t *testing.T) {
	for _, mode := range []string{"auto", "ns"} {
		t.Run(mode, func(t *testing.T) { interactiveShell(t, "--pid="+mode) })
	}
}

func interactiveShell(t *testing.T, pidMode string) {
	needTools(t)
	noLeftovers(t)
	bash, env := interactiveBash(t)
	ma, sa := openPty(t)
	orig, origDone := onTerminal(t, sa, env, bash...)
	sa.Close()
	outA := readLines(ma)
	ma.Write([]byte("X=5; echo set-$X\n"))
	expect(t, outA, "set-5", 0)
	time.Sleep(100 * time.Millisecond) // back at its prompt, reading
	img := dump(t, orig.Process.Pid, false)
	<-origDone

	mb, sb := openPty(t)
	_, done := onTerminal(t, sb, env, filepath.Join(binDir, "procs-load"), pidMode, img)
	outB := readLines(mb)
	for _, word := range []string{"ext", "again"} {
		mb.Write([]byte("/bin/echo " + word + "-$X\n"))
		expect(t, outB, word+"-5", 0)
	}
	mb.Write([]byte("exit 7\n"))
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Errorf("procs-load = %v; want the shell's exit 7", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the restored shell did not exit; its terminal showed:\n%s", tail(mustLines(outB), 10))
	}
}

// liveFeatures is the PID of the features victim among our descendants
// (the restored one: the original is gone).
func liveFeatures(t *testing.T) int {
	t.Helper()
	for _, p := range descendants() {
		if p.comm == "features" && p.state != 'Z' {
			return p.pid
		}
	}
	t.Fatal("restored process not found")
	return 0
}

// TestJobControl: restored from an interactive shell's command line, in a
// pipeline, the process stops with one Ctrl-Z as a job does (procs-load,
// the process and the pipeline's cat), and after fg it has the terminal
// again: a line typed then reaches it, not the shell. The same in a PID
// namespace, whose init tells procs-load that the process stopped.
func TestJobControl(t *testing.T) {
	for _, mode := range []string{"auto", "ns"} {
		t.Run(mode, func(t *testing.T) { jobControl(t, "--pid="+mode) })
	}
}

func jobControl(t *testing.T, pidMode string) {
	needTools(t)
	noLeftovers(t)
	bash, env := interactiveBash(t)
	img := ttyImage(t)
	mb, sb := openPty(t)
	sh, shDone := onTerminal(t, sb, env, bash...)
	out := readLines(mb)
	mb.Write([]byte(filepath.Join(binDir, "procs-load") + " " + pidMode + " " + img + " | cat\n"))
	expect(t, out, "tty ", 0, "winch=1")
	restored := liveFeatures(t)
	defer killChecked(t, restored, startTime(restored))
	for round := range 3 {
		skip := len(mustLines(out))
		mb.Write([]byte{0x1a}) // Ctrl-Z
		expect(t, out, "[1]+", skip, "Stopped")
		if info, _ := procInfo(restored); info.state != 'T' {
			t.Fatalf("round %d: restored process in state %c after Ctrl-Z; want T", round, info.state)
		}
		keys, _ := strconv.Atoi(lastRec(t, mustLines(out), "tty").kv["keys"])
		skip = len(mustLines(out))
		mb.Write([]byte("fg\n"))
		expect(t, out, "", skip, "| cat") // the shell names the job it continues
		// The shell, back at its prompt, put its own (cooked) modes on
		// the terminal, as it does when a job stops; this victim does
		// not set raw mode again on SIGCONT (vim does). A line typed now
		// is its, not the shell's.
		skip = len(mustLines(out))
		mb.Write([]byte("xy\n"))
		expect(t, out, "tty ", skip, fmt.Sprintf("keys=%d", keys+3))
	}
	killChecked(t, restored, startTime(restored))
	mb.Write([]byte("exit\n"))
	select {
	case <-shDone:
	case <-time.After(10 * time.Second):
		t.Errorf("the shell (pid %d) did not exit; its terminal showed:\n%s", sh.Process.Pid, tail(mustLines(out), 10))
	}
}

// openPty opens a new pseudo-terminal pair, closed when t ends.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// onTerminal starts argv as a terminal emulator starts a shell: leading a
// session whose controlling terminal is tty, its standard streams (env
// nil: ours). It returns the command and the result of its Wait; the
// process is killed, by PID, when t ends.
func onTerminal(t *testing.T, tty *os.File, env []string, argv ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = tty, tty, tty, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st := startTime(cmd.Process.Pid)
	t.Cleanup(func() { killChecked(t, cmd.Process.Pid, st) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// ttyImage is the image of the tty victim, dumped from a terminal of its
// own once it has set it raw.
func ttyImage(t *testing.T) string {
	t.Helper()
	ma, sa := openPty(t)
	orig, origDone := onTerminal(t, sa, nil, featuresBin(t), "tty")
	sa.Close()
	expect(t, readLines(ma), "tty ", 0, "icanon=0", "echo=0")
	img := dump(t, orig.Process.Pid, false)
	<-origDone
	return img
}

// interactiveBash is the command line of an interactive bash without
// startup files, and an environment for it with a plain prompt ("$ ");
// it skips t without bash.
func interactiveBash(t *testing.T) (argv, env []string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	return []string{bash, "--norc", "--noprofile", "-i"},
		[]string{"TERM=dumb", "PATH=/usr/bin:/bin", "PS1=$ ", "HOME=" + t.TempDir()}
}
