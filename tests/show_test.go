package tests

// End-to-end tests of procs show: on every test vector of format/testdata
// and on images of real processes (a C victim with threads and POSIX
// timers, python3, compressed ones, a cut one, one fetched from
// procs-serve), checking the JSON form against what the test knows of the
// process, and that the text form escapes what the image holds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"procs/format"
	"procs/pkg/show"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// showRun runs procs show with args, stdin from stdin (nil: none), and
// returns stdout, stderr, the exit status and the highest VmHWM seen
// while it ran, in KiB (the rusage of a child started with vfork counts
// its parent's memory).
func showRun(t *testing.T, bin string, stdin *os.File, args ...string) (string, string, int, int64) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "procs"), append([]string{"show"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hwm := make(chan int64)
	go func() {
		var peak int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			b, err := os.ReadFile(status)
			if err != nil {
				hwm <- peak
				return
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
					peak = max(peak, n)
				}
				if strings.HasPrefix(l, "State:") && strings.Contains(l, "zombie") {
					hwm <- peak
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	peak := <-hwm
	err := cmd.Wait()
	timer.Stop()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("procs show %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), peak
}

// showJSON runs procs show --json on an image that must be sound.
func showJSON(t *testing.T, bin, img string) show.Image {
	t.Helper()
	out, errs, code, _ := showRun(t, bin, nil, "--json", img)
	if code != 0 {
		t.Fatalf("procs show --json %s = exit %d, stderr %q; want 0", img, code, errs)
	}
	var got show.Image
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("procs show --json: %v\n%s", err, out)
	}
	if got.Schema != 1 || !got.Complete || len(got.Processes) != 1 {
		t.Fatalf("procs show --json: schema %d, complete %v, %d processes; want 1, true, 1", got.Schema, got.Complete, len(got.Processes))
	}
	return got
}

// TestShowVectors shows every test vector: a good one exits 0, a bad one
// exits 1 with one line on stderr, the error format.Verify gives, of the
// kind and at the offset its .txt says.
func TestShowVectors(t *testing.T) {
	bin := serveBins(t)
	imgs, _ := filepath.Glob(filepath.Join(repoRoot, "format", "testdata", "*.img"))
	if len(imgs) < 40 {
		t.Fatalf("found %d test vectors", len(imgs))
	}
	kinds := map[string]string{"corrupt": "corrupt image", "truncated": "truncated image",
		"unsupported": "unsupported image", "notimage": "not a procs image", "empty": "empty input"}
	for _, img := range imgs {
		name := strings.TrimSuffix(filepath.Base(img), ".img")
		txt, err := os.ReadFile(strings.TrimSuffix(img, ".img") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		out, errs, code, _ := showRun(t, bin, nil, img)
		jout, jerrs, jcode, _ := showRun(t, bin, nil, "--json", img)
		var j show.Image
		if err := json.Unmarshal([]byte(jout), &j); err != nil {
			t.Errorf("%s: procs show --json: %v\n%s", name, err, jout)
		}
		if f := strings.Fields(string(txt)); strings.HasPrefix(f[0], "accept") {
			if code != 0 || errs != "" || jcode != 0 || !j.Complete || !strings.Contains(out, "procs format 2.") {
				t.Errorf("%s: procs show = exit %d, stderr %q, json complete %v; want 0, nothing, true\n%s", name, code, errs, j.Complete, out)
			}
			continue
		} else {
			in, _ := os.Open(img)
			_, _, verr := format.Verify(in)
			in.Close()
			if verr == nil {
				t.Errorf("%s: format.Verify accepts it; %s says %s", name, filepath.Base(img), txt)
				continue
			}
			want := "procs: " + verr.Error() + "\n"
			if code != 1 || errs != want || jcode != 1 || jerrs != want {
				t.Errorf("%s: procs show = exit %d, stderr %q (--json: %d, %q); want 1, %q", name, code, errs, jcode, jerrs, want)
			}
			what := kinds[strings.TrimSuffix(f[1], ":")]
			if len(f) > 4 && f[2] == "at" && f[3] == "byte" && f[1] != "notimage" && f[1] != "empty" {
				what += " at byte " + strings.TrimSuffix(f[4], ":")
			}
			if !strings.Contains(errs, what) || j.Complete || j.Error == "" {
				t.Errorf("%s: stderr %q, json error %q; want %q as %s says", name, errs, j.Error, what, filepath.Base(img))
			}
		}
	}
}

// checkSizes checks that each mapping's sizes add up and that the
// memory records all fall in mappings.
func checkSizes(t *testing.T, img show.Image) {
	t.Helper()
	p := img.Processes[0]
	var stored int64
	for _, m := range p.Mappings {
		if m.Size != int64(m.End-m.Start) || m.Stored+m.FromFile+m.Zero+m.Kernel != m.Size {
			t.Errorf("mapping %x-%x %s: size %d = %d stored + %d file + %d zero + %d kernel?", m.Start, m.End, m.Name,
				m.Size, m.Stored, m.FromFile, m.Zero, m.Kernel)
		}
		stored += m.Stored
	}
	if stored != img.PageBytes || p.Memory.Stored != stored || p.Memory.Outside != 0 {
		t.Errorf("mappings hold %d stored bytes, memory says %d (%d outside); the image has %d", stored, p.Memory.Stored, p.Memory.Outside, img.PageBytes)
	}
}

// TestShowThreadsTimers shows a C victim with three threads and four
// POSIX timers, dumped plain, with -z zstd and -z xz, and compressed
// as a whole on stdin.
func TestShowThreadsTimers(t *testing.T) {
	needTools(t)
	bin := serveBins(t)
	dir := t.TempDir()
	p := startFeature(t, dir, "ptimer")
	var first show.Image
	for _, z := range []string{"none", "zstd", "xz"} {
		before := taskIDs(p.pid())
		img := dump(t, p.pid(), true, "-z", z)
		lasting := slices.DeleteFunc(before, func(tid int) bool { return !slices.Contains(taskIDs(p.pid()), tid) })
		got := showJSON(t, bin, img)
		pr := got.Processes[0]
		if pr.PID != p.pid() || got.Dump.PID != p.pid() || pr.Comm != "features" {
			t.Errorf("-z %s: pid %d (dump %d), comm %q; want %d, features", z, pr.PID, got.Dump.PID, pr.Comm, p.pid())
		}
		if want := []string{featuresBin(t), "ptimer"}; !slices.Equal(pr.Cmdline, want) || pr.Exe != featuresBin(t) || pr.Cwd != dir {
			t.Errorf("-z %s: cmdline %q exe %q cwd %q; want %q, %s, %s", z, pr.Cmdline, pr.Exe, pr.Cwd, want, want[0], dir)
		}
		// Three threads live all along (main, worker, glibc's SIGEV_THREAD
		// helper); glibc starts one more for each expiry of timer D, which
		// the freeze may catch.
		var imgTIDs []int
		for _, th := range pr.Threads {
			imgTIDs = append(imgTIDs, th.TID)
		}
		if len(lasting) < 3 || len(pr.Threads) < 3 || pr.Threads[0].TID != p.pid() ||
			slices.ContainsFunc(lasting, func(tid int) bool { return !slices.Contains(imgTIDs, tid) }) {
			t.Errorf("-z %s: threads %+v; want the main thread first and every thread /proc listed before and after the dump, %v (at least 3)", z, pr.Threads, lasting)
		}
		if len(pr.Timers) != 4 || !got.Needs.TimerIDs {
			t.Errorf("-z %s: timers %+v, needs timer ids %v; want 4 and true", z, pr.Timers, got.Needs.TimerIDs)
		}
		if pr.Creds.UID != [4]int{} || got.Needs.UID != 0 || len(got.Needs.CPU) == 0 || !slices.Contains(got.Needs.CPU, "SSE") {
			t.Errorf("-z %s: creds %+v, needs %+v", z, pr.Creds, got.Needs)
		}
		if !slices.ContainsFunc(got.Needs.Files, func(f show.NeededFile) bool { return f.Path == featuresBin(t) && f.Unchanged }) {
			t.Errorf("-z %s: needs files %+v; want the executable, unchanged", z, got.Needs.Files)
		}
		checkSizes(t, got)
		switch z {
		case "none":
			first = got
			if len(got.RecordCompression) != 0 || got.PageStored != got.PageBytes {
				t.Errorf("plain image: record compression %q, %d of %d page bytes stored", got.RecordCompression, got.PageStored, got.PageBytes)
			}
		default:
			if !slices.Equal(got.RecordCompression, []string{z}) || got.PageStored >= got.PageBytes {
				t.Errorf("-z %s: record compression %q, %d of %d page bytes stored", z, got.RecordCompression, got.PageStored, got.PageBytes)
			}
			if pr.PID != first.Processes[0].PID || pr.Exe != first.Processes[0].Exe {
				t.Errorf("-z %s: process %d %s; the plain image had %d %s", z, pr.PID, pr.Exe, first.Processes[0].PID, first.Processes[0].Exe)
			}
		}
		out, errs, code, _ := showRun(t, bin, nil, img)
		for _, want := range []string{fmt.Sprintf("process %d features", p.pid()), "ptimer", "timers (4)", fmt.Sprintf("threads (%d)", len(pr.Threads)), "restore needs"} {
			if code != 0 || errs != "" || !strings.Contains(out, want) {
				t.Errorf("-z %s: procs show = exit %d, stderr %q; want 0 and %q in\n%s", z, code, errs, want, out)
				break
			}
		}
	}
	// The whole image compressed with xz, on stdin.
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Logf("no xz: %v", err)
		return
	}
	img := dump(t, p.pid(), true)
	if b, err := exec.Command(xz, "-k", "-T1", img).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v: %s", err, b)
	}
	f, err := os.Open(img + ".xz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, errs, code, _ := showRun(t, bin, f, "--json", "-")
	var got show.Image
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Compression != "xz" || got.Processes[0].PID != p.pid() {
		t.Errorf("xz -c img | procs show --json - = exit %d (%s), %v, compression %q", code, errs, err, got.Compression)
	}
}

// TestShowPython shows python3 with its threads, and the same image cut
// in its memory records: what came before, then the reader's error.
func TestShowPython(t *testing.T) {
	needTools(t)
	bin := serveBins(t)
	argv := victimArgv(t, "python")
	p := start(t, argv, t.TempDir())
	expect(t, p.out, "main ", 0)
	img := dump(t, p.pid(), true)
	got := showJSON(t, bin, img)
	pr := got.Processes[0]
	if pr.PID != p.pid() || len(pr.Threads) != 4 || !slices.Equal(pr.Cmdline, argv) {
		t.Errorf("python: pid %d, %d threads, cmdline %q; want %d, 4, %q", pr.PID, len(pr.Threads), pr.Cmdline, p.pid(), argv)
	}
	checkSizes(t, got)

	// Cut in the middle of the memory records.
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut")
	if err := os.WriteFile(cut, data[:len(data)*3/4], 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code, _ := showRun(t, bin, nil, cut)
	if code != 1 || !strings.HasPrefix(errs, "procs: truncated image at byte ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("procs show of a cut image = exit %d, stderr %q; want 1 and one line: truncated image", code, errs)
	}
	if !strings.Contains(out, fmt.Sprintf("process %d python3", p.pid())) || !strings.Contains(out, "damaged after") {
		t.Errorf("procs show of a cut image does not show what came before:\n%s", out)
	}
	jout, _, jcode, _ := showRun(t, bin, nil, "--json", cut)
	var j show.Image
	if err := json.Unmarshal([]byte(jout), &j); err != nil || jcode != 1 || j.Complete || j.Error == "" ||
		len(j.Processes) != 1 || j.Processes[0].PID != p.pid() || j.PageBytes == 0 || j.PageBytes >= got.PageBytes {
		t.Errorf("procs show --json of a cut image = exit %d, %v, complete %v, error %q, page bytes %d of %d", jcode, err, j.Complete, j.Error, j.PageBytes, got.PageBytes)
	}
}

// TestShowMemoryBounded pipes a dump of 384 MiB of memory straight into
// procs show: its VmHWM stays far below the image's size (about 10 MiB
// here, the same for 16 MiB and 1 GiB: the Go runtime and one buffer of
// the largest memory record).
func TestShowMemoryBounded(t *testing.T) {
	needTools(t)
	bin := serveBins(t)
	const mib = 384
	p := start(t, append(victimArgv(t, "memhog"), strconv.Itoa(mib)), t.TempDir())
	expect(t, p.out, "ready ", 0)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command(filepath.Join(binDir, "procs-dump"), "-K", strconv.Itoa(p.pid()))
	var derr bytes.Buffer
	d.Stdout, d.Stderr = w, &derr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, errs, code, rss := showRun(t, bin, r, "--json", "-")
	r.Close()
	if err := d.Wait(); err != nil {
		t.Fatalf("procs-dump: %v: %s", err, derr.String())
	}
	var got show.Image
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("procs-dump | procs show --json - = exit %d, %v, stderr %q", code, err, errs)
	}
	if got.PageBytes < mib<<20 {
		t.Errorf("image holds %d bytes of memory; want at least %d MiB", got.PageBytes, mib)
	}
	t.Logf("procs show of %d MiB: VmHWM %d KiB", got.PageBytes>>20, rss)
	if rss == 0 || rss > 24<<10 {
		t.Errorf("procs show of %d MiB: VmHWM %d KiB; want under 24 MiB", got.PageBytes>>20, rss)
	}
}

// TestShowEscapes shows a sleep whose argv[0] holds terminal escapes: the text form shows them escaped, the JSON form as they were.
func TestShowEscapes(t *testing.T) {
	needTools(t)
	bin := serveBins(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	evil := "x\x1b]0;owned\x07\x1b[2Jy"
	cmd := exec.Command(sleep)
	cmd.Args = []string{evil, "1000"}
	q := startCmd(t, cmd)
	img := dump(t, q, true)
	out, errs, code, _ := showRun(t, bin, nil, img)
	if code != 0 || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `x\x1b]0;owned\a\x1b[2Jy`) {
		t.Errorf("procs show = exit %d (%s); want the escapes escaped:\n%s", code, errs, out)
	}
	got := showJSON(t, bin, img)
	if c := got.Processes[0].Cmdline; !slices.Equal(c, cmd.Args) {
		t.Errorf("JSON cmdline %q; want %q", c, cmd.Args)
	}
}

// startCmd starts cmd with only fds 0-2 (/dev/null) and kills it by PID
// when t ends.
func startCmd(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(100 * time.Millisecond)
	return cmd.Process.Pid
}

// TestShowServer shows an image by its PROCS_ID on procs-serve.
func TestShowServer(t *testing.T) {
	bin := serveBins(t)
	h := host{bin: bin}
	addr := freePort(t)
	startServer(t, h, h, addr, t.TempDir())
	img := filepath.Join(repoRoot, "format", "testdata", "good-full.img")
	id := strings.TrimSpace(h.must(t, "procs", "send", img, "-s", addr))
	out := h.must(t, "procs", "show", id, "-s", addr)
	local, _, _, _ := showRun(t, bin, nil, img)
	if out != local {
		t.Errorf("procs show %s:\n%s\nprocs show FILE:\n%s", id, out, local)
	}
	_, errs, code := h.run(t, nil, "procs", "show", "aaaaaaaaaaaaaaaa", "-s", addr)
	if code != 1 || strings.Count(errs, "\n") != 1 {
		t.Errorf("procs show of no such image = exit %d, stderr %q; want 1 and one line", code, errs)
	}
	if _, errs, code := h.run(t, nil, "procs", "show"); code != 2 || !strings.Contains(errs, "show: want one") {
		t.Errorf("procs show = exit %d, stderr %q; want a usage error", code, errs)
	}
}
