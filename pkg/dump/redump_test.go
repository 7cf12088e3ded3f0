package dump

import (
	"bytes"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
)

// TestDumpAfterTracerDeath dumps a victim right after a procs-dump died
// with the main thread in the sleep of a batch of injected calls: that
// thread is on its way back through the dead dump's trampoline, whose
// code and frame are still in the vDSO's padding. The dump waits for the
// thread to be back, saves it where it really is, saves the vDSO as the
// kernel's (not with the dead dump's bytes), and wipes those bytes from
// the victim, which goes on.
func TestDumpAfterTracerDeath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd, sc := startVictim(t)
	pid := cmd.Process.Pid
	var vdsoStart uint64
	var vdsoLen int
	err := ptrace.Run(func() error {
		b, err := borrowMain(pid)
		if err != nil {
			return err
		}
		vdsoStart, vdsoLen = b.c.vdsoStart, len(b.c.vdso)
		f, r, scratch := b.f, b.r, b.scratch
		if err := r.StartBatch(scratch+tableOff, []inject.Call{{Nr: unix.SYS_GETPID}}); err != nil {
			return err
		}
		if err := ptrace.Cont(f.tids[0], 0); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond) // done with the table, asleep
		if err := ptrace.Interrupt(f.tids[0]); err != nil {
			return err
		}
		if _, err := ptrace.Wait(f.tids[0]); err != nil {
			return err
		}
		tracerDies(f)
		return nil
	})
	if err == errNoBatchCode {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}

	var img bytes.Buffer
	t0 := time.Now()
	if _, err := Dump(Options{PID: pid}, &img); err != nil {
		t.Fatalf("Dump right after a tracer died: %v", err)
	}
	t.Logf("dumped in %v", time.Since(t0).Round(time.Millisecond))
	rd, err := format.NewReader(&img)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // FILES, then the PROCESS record
		if _, err := rd.Next(); err != nil {
			t.Fatal(err)
		}
	}
	var p format.Process
	if err := rd.DecodeJSON(&p); err != nil {
		t.Fatal(err)
	}
	own, err := ownVdso()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Vdso, own) {
		t.Errorf("image's vDSO differs from the kernel's (%d and %d bytes)", len(p.Vdso), len(own))
	}
	for _, th := range p.Threads {
		if rip := th.Regs[linux.RIP]; rip >= vdsoStart && rip < vdsoStart+uint64(vdsoLen) {
			t.Errorf("thread %d saved at %#x, in the vDSO [%#x, %#x)", th.TID, rip, vdsoStart, vdsoStart+uint64(vdsoLen))
		}
	}
	now := make([]byte, vdsoLen)
	if err := ptrace.ReadMem(pid, vdsoStart, now); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, own) {
		t.Errorf("the victim's vDSO still holds what the dead dump wrote")
	}
	goesOn(t, cmd, sc)
}
