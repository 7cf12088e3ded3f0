package dump

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/pkg/inject"
	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// The test binary, run with PROCS_DUMP_VICTIM=1, is a victim: it prints
// "tick N" every 5 ms and "usr1" on SIGUSR1.
func init() {
	if os.Getenv("PROCS_DUMP_VICTIM") != "1" {
		return
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	t := time.NewTicker(5 * time.Millisecond)
	for n := 0; ; n++ {
		select {
		case <-t.C:
			fmt.Printf("tick %d\n", n)
		case <-usr1:
			fmt.Println("usr1")
		}
	}
}

func startVictim(t *testing.T) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	// The victim gets fds 0-2 only, whatever this binary inherited
	// (a dump refuses a pipe).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCS_DUMP_VICTIM=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	expect(t, sc, "tick 3")
	return cmd, sc
}

func expect(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), want) {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("victim ended before printing %q", want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("victim did not print %q within 5s", want)
	}
}

// tracerDies lets every thread of f go where it is, as the kernel does
// when the tracer dies.
func tracerDies(f *frozen) {
	for _, tid := range f.tids {
		ptrace.Detach(tid, 0)
	}
}

// goesOn checks that the victim ticks again and handles a signal.
func goesOn(t *testing.T, cmd *exec.Cmd, sc *bufio.Scanner) {
	t.Helper()
	expect(t, sc, "tick")
	cmd.Process.Signal(syscall.SIGUSR1)
	expect(t, sc, "usr1")
}

// TestTracerDeathMidInjection lets every thread of a frozen victim go
// while each is parked on the trampoline in the middle of injected calls,
// as the kernel does when the tracer dies, and checks that the victim
// goes on: every thread returns through the trampoline's frame.
func TestTracerDeathMidInjection(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for round := 0; round < 5; round++ {
		cmd, sc := startVictim(t)
		pid := cmd.Process.Pid
		err := ptrace.Run(func() error {
			f, err := freeze(pid)
			if err != nil {
				return err
			}
			maps, err := procfs.Maps(pid)
			if err != nil {
				return err
			}
			var vdso []byte
			var start uint64
			for _, m := range maps {
				if m.Path == "[vdso]" {
					vdso = make([]byte, m.End-m.Start)
					start = m.Start
					if err := ptrace.ReadMem(pid, m.Start, vdso); err != nil {
						return err
					}
				}
			}
			tr, err := inject.InstallTrampoline(pid, start, vdso)
			if err != nil {
				return err
			}
			// Borrow threads one after another, and let the tracer
			// "die" with thread number round parked.
			for i, tid := range f.tids {
				r, err := inject.NewSafeRemote(tid, tr)
				if err != nil {
					return err
				}
				if _, err := r.Syscall("getpid", unix.SYS_GETPID); err != nil {
					return err
				}
				if i == round%len(f.tids) {
					break
				}
				if err := r.Restore(); err != nil {
					return err
				}
			}
			tracerDies(f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		goesOn(t, cmd, sc)
		cmd.Process.Kill()
		cmd.Wait()
	}
}

var errNoBatchCode = errors.New("no room for the batch code in this kernel's vDSO")

// borrowed is a frozen victim whose main thread is parked on a trampoline
// with batch code.
type borrowed struct {
	f       *frozen
	c       *collector // maps and threads collected
	tr      *inject.Trampoline
	r       *inject.Remote
	scratch uint64 // the result area
}

// borrowMain freezes pid and parks its main thread on a trampoline, as a
// dump does before it runs calls there. Precondition: the OS thread is the
// tracer's (inside ptrace.Run).
func borrowMain(pid int) (*borrowed, error) {
	f, err := freeze(pid)
	if err != nil {
		return nil, err
	}
	b := &borrowed{f: f, c: &collector{pid: pid, root: true, f: f, t: newFileTable()}}
	if b.c.maps, err = procfs.Maps(pid); err != nil {
		return nil, err
	}
	if err := b.c.collectMaps(); err != nil {
		return nil, err
	}
	if err := b.c.collectThreads(); err != nil {
		return nil, err
	}
	if b.scratch, err = b.c.resultArea(); err != nil {
		return nil, err
	}
	if b.tr, err = inject.InstallTrampoline(pid, b.c.vdsoStart, b.c.vdso); err != nil {
		return nil, err
	}
	if b.tr.Batch == 0 {
		tracerDies(f)
		return nil, errNoBatchCode
	}
	if b.r, err = inject.NewSafeRemote(f.tids[0], b.tr); err != nil {
		return nil, err
	}
	return b, nil
}

// TestTracerDeathMidBatch lets a thread go as a dying tracer would, in
// the middle of a batch of injected calls: before it ran the table, and
// while it sleeps after it. The thread must come back on its own through
// the trampoline's frame within the batch's timeout, and the victim go on
// (ticks, and a signal handled). Then a batch run to its end gives the
// calls' results.
func TestTracerDeathMidBatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, where := range []string{"before the table", "in the sleep", "finished", "one by one"} {
		t.Run(where, func(t *testing.T) {
			cmd, sc := startVictim(t)
			pid := cmd.Process.Pid
			var got []uint64
			err := ptrace.Run(func() error {
				b, err := borrowMain(pid)
				if err != nil {
					return err
				}
				f, tr, r, scratch := b.f, b.tr, b.r, b.scratch
				calls := []inject.Call{{Nr: unix.SYS_GETPID}, {Nr: unix.SYS_GETPPID}}
				table := scratch + tableOff
				if where == "one by one" {
					tr.Batch = 0 // as when the vDSO has no room for it
				}
				if where == "finished" || where == "one by one" {
					got, err = r.Batch(table, calls)
					if rerr := r.Restore(); err == nil {
						err = rerr
					}
					tr.Uninstall()
					f.release()
					return err
				}
				if err := r.StartBatch(table, calls); err != nil {
					return err
				}
				if where == "in the sleep" {
					if err := ptrace.Cont(f.tids[0], 0); err != nil {
						return err
					}
					time.Sleep(50 * time.Millisecond) // long done with the table
					if err := ptrace.Interrupt(f.tids[0]); err != nil {
						return err
					}
					if _, err := ptrace.Wait(f.tids[0]); err != nil {
						return err
					}
				}
				tracerDies(f)
				return nil
			})
			if errors.Is(err, errNoBatchCode) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if (where == "finished" || where == "one by one") && (len(got) != 2 || got[0] != uint64(pid) || got[1] != uint64(os.Getpid())) {
				t.Errorf("Batch(getpid, getppid) = %v; want [%d %d]", got, pid, os.Getpid())
			}
			goesOn(t, cmd, sc)
		})
	}
}
