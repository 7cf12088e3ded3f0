package tests

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"procs/format"
)

// tempFile matches the temp names procs-dump -o may use.
var tempFile = regexp.MustCompile(`^\..*\.procs-tmp-[0-9]+-[0-9]+-[0-9a-f]+$`)

// noPID is a PID no process can have (above the kernel's PID_MAX_LIMIT).
const noPID = "4194305"

// TestDumpOutputKilledLeavesNothing kills procs-dump -K -o FILE at random
// moments while it dumps a 48 MiB victim (0-50 ms in, or up to a bit more
// than a whole dump takes here; every other round 0-15 ms in). Each time, FILE is absent or a whole
// image (a kill after the image got its name) or, when it was there
// before, the old file; nothing else is in the folder. The one moment that
// may leave a temp name, between link and rename when FILE is replaced, is
// cleaned by the next procs-dump's start. Every other round the next
// procs-dump starts at once, while a thread may still be on its way back
// from the dead one's injected calls. The victim goes on unharmed and its
// memory checks out.
func TestDumpOutputKilledLeavesNothing(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	rounds := 30
	if testing.Short() {
		rounds = 6
	}
	v := start(t, append(victimArgv(t, "memhog"), "48"), t.TempDir())
	expect(t, v.out, "ready ", 0)
	pid := v.pid()
	base := fingerprint(pid)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	dumpCmd := func(pid string) *exec.Cmd {
		return exec.Command(filepath.Join(binDir, "procs-dump"), "-K", "-o", img, pid)
	}
	old := []byte("old contents\n")
	t0 := time.Now()
	if out, err := dumpCmd(strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("procs-dump -K -o %s %d: %v\n%s", img, pid, err, out)
	}
	span := max(50*time.Millisecond, time.Since(t0)*6/5)
	var nothing, whole, kept, cleaned int
	for i := range rounds {
		replace := i%2 == 1
		os.Remove(img)
		if replace {
			if err := os.WriteFile(img, old, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		delay := time.Duration(rng.Int64N(int64(span) + 1))
		if i%2 == 0 {
			// Mostly while it borrows the victim's threads, and the
			// next round comes at once.
			delay = time.Duration(rng.Int64N(int64(15*time.Millisecond) + 1))
		}
		var stderr bytes.Buffer
		cmd := dumpCmd(strconv.Itoa(pid))
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()

		var temps []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			switch {
			case e.Name() == "img":
			case replace && tempFile.MatchString(e.Name()):
				temps = append(temps, e.Name())
			default:
				t.Errorf("round %d (killed after %v): %s left in the folder", i, delay, e.Name())
			}
		}
		if len(temps) > 0 {
			// The next procs-dump removes them as it starts (here it
			// then finds no such process).
			c := dumpCmd(noPID)
			if err := c.Run(); err == nil {
				t.Fatalf("procs-dump -o %s %s succeeded", img, noPID)
			}
			for _, n := range temps {
				if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
					t.Errorf("round %d: temp file %s left by a killed procs-dump outlives the next one", i, n)
				}
			}
			cleaned++
		}

		b, err := os.ReadFile(img)
		switch {
		case err != nil && !replace:
			nothing++
		case err != nil:
			t.Errorf("round %d (killed after %v): the old %s is gone: %v", i, delay, img, err)
		case replace && bytes.Equal(b, old):
			kept++
		default:
			if _, _, err := format.Verify(bytes.NewReader(b)); err != nil {
				t.Errorf("round %d (killed after %v): %s holds %d bytes, not a whole image: %v", i, delay, img, len(b), err)
			}
			whole++
		}

		if err := waitHealthy(pid); err != nil {
			t.Fatalf("round %d (procs-dump killed after %v): victim harmed: %v", i, delay, err)
		}
		if i%2 == 0 && i != rounds-1 {
			continue
		}
		if d := waitSame(pid, base); d != "" {
			t.Fatalf("round %d (procs-dump killed after %v): victim changed:\n%s", i, delay, d)
		}
	}
	t.Logf("%d rounds, killed 0-%v in: %d left nothing, %d the old file, %d a whole image; %d left a temp name the next run removed",
		rounds, span.Round(time.Millisecond), nothing, kept, whole, cleaned)
	skip := len(mustLines(v.out))
	if err := v.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	expect(t, v.out, "verify ok", skip)
}
