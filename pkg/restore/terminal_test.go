package restore

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"procs/format"
)

// TestModesTerminal: the image's terminal modes go only to the caller's
// stream of the same number; a process whose terminal was on fd 0 gets
// none when the caller's stdin is a pipe, even if its stdout is a
// terminal. The reopened terminal (o.terminal) may be any stream.
func TestModesTerminal(t *testing.T) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer m.Close()
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	o := &Options{Stdin: r, Stdout: tty, Stderr: w}
	for _, tc := range []struct {
		fd            int
		modes, reopen *os.File
	}{
		{0, nil, tty}, {1, tty, tty}, {2, nil, tty}, {3, tty, tty},
	} {
		img := &format.Process{Terminal: &format.Terminal{FD: tc.fd}}
		if got := o.modesTerminal(img); got != tc.modes {
			t.Errorf("terminal on fd %d: modesTerminal = %v; want %v", tc.fd, got, tc.modes)
		}
		if got := o.terminal(img); got != tc.reopen {
			t.Errorf("terminal on fd %d: terminal = %v; want %v", tc.fd, got, tc.reopen)
		}
	}
}
