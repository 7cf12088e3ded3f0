package dump

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// TestTracerDeathKeepsMask lets a thread that blocks a signal go while it
// is parked on the trampoline, as the kernel does when the tracer dies,
// and checks that it comes back through the frame with its own signal
// mask (injection runs with every signal blocked).
func TestTracerDeathKeepsMask(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(py, "-c", `import signal, time
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
print("ready", flush=True)
while True: time.sleep(0.005)`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	expect(t, bufio.NewScanner(out), "ready")
	pid := cmd.Process.Pid
	const want = uint64(1) << (unix.SIGUSR2 - 1)
	blocked := func() uint64 {
		st, err := procfs.ReadStatus(pid)
		if err != nil {
			t.Fatal(err)
		}
		return st.SigBlk
	}
	if got := blocked(); got != want {
		t.Fatalf("victim blocks %#x before; want %#x", got, want)
	}
	err = ptrace.Run(func() error {
		b, err := borrowMain(pid)
		if err != nil {
			return err
		}
		if _, err := b.r.Syscall("getpid", unix.SYS_GETPID); err != nil {
			return err
		}
		tracerDies(b.f)
		return nil
	})
	if errors.Is(err, errNoBatchCode) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // back through rt_sigreturn
	if got := blocked(); got != want {
		t.Errorf("victim blocks %#x after the tracer died; want %#x", got, want)
	}
}
