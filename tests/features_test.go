package tests

// End-to-end tests of single features a round trip must keep, each on
// tests/victims/features.c (or another victim) checking it from the
// program's own point of view and through /proc.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
	featuresOnce sync.Once
	featuresPath string
	featuresErr  error
)

// featuresBin returns the path of the features victim, built once beside
// the harness's C victims, skipping t when it cannot be built.
func featuresBin(t *testing.T) string {
	t.Helper()
	counter := victimArgv(t, "counter")
	featuresOnce.Do(func() {
		out := filepath.Join(filepath.Dir(counter[0]), "features")
		src := filepath.Join(repoRoot, "tests", "victims", "features.c")
		if b, err := exec.Command("gcc", "-O1", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
			featuresErr = fmt.Errorf("gcc %s: %v\n%s", src, err, b)
			return
		}
		featuresPath = out
	})
	if featuresErr != nil {
		t.Fatal(featuresErr)
	}
	return featuresPath
}

// startFeature starts the features victim in mode with args in a fresh
// folder and waits for its first line.
func startFeature(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	p := start(t, append([]string{featuresBin(t)}, args...), dir)
	expect(t, p.out, "start 0", 0)
	return p
}

// reports waits for n lines of stream after the first skip and returns
// them.
func reports(t *testing.T, l *lines, stream string, n, skip int) []rec {
	t.Helper()
	all, ok := l.wait(lineWait, haveLines([]string{stream}, n, skip))
	if !ok {
		t.Fatalf("want %d lines %q; got:\n%s", n, stream, tail(all, 10))
	}
	rs := perStream(parseAll(all[min(skip, len(all)):]))[stream]
	if bad := badFlags(rs); len(bad) > 0 {
		t.Fatalf("a failed check:\n%s", strings.Join(bad, "\n"))
	}
	return rs
}

// dumpKilled dumps p without -K and returns the image and every line p
// wrote before it died.
func dumpKilled(t *testing.T, p *proc, extra ...string) (string, []string) {
	t.Helper()
	img := dump(t, p.pid(), false, extra...)
	if !p.exited(10 * time.Second) {
		t.Fatalf("pid %d still runs after procs-dump without -K", p.pid())
	}
	all, ok := p.out.waitEOF(5 * time.Second)
	if !ok {
		t.Fatalf("stdout of the dumped pid %d is still open", p.pid())
	}
	return img, all
}

// restoreGoesOn restores img with procs-load [args...], waits for n lines
// of stream, checks they continue before's, finds the restored process
// (named comm) and returns the load, its PID and those lines.
func restoreGoesOn(t *testing.T, img, comm, stream string, n int, before []string, args ...string) (*load, int, []string) {
	t.Helper()
	ld := startLoad(t, img, args...)
	after, ok := ld.out.wait(lineWait, haveLines([]string{stream}, n, 0))
	if !ok {
		if ld.exited(0) {
			notImplemented(t, "procs-load", ld.stderrText())
		}
		t.Fatalf("restored: want %d lines %q; got:\n%s\nprocs-load stderr: %s", n, stream, tail(after, 10), ld.stderrText())
	}
	pid := ld.find(t, comm, 5*time.Second)
	continuity(t, []string{stream}, before, after, false, nil)
	if t.Failed() {
		t.FailNow()
	}
	return ld, pid, after
}

func lastRec(t *testing.T, all []string, stream string) rec {
	t.Helper()
	rs := perStream(parseAll(all))[stream]
	if len(rs) == 0 {
		t.Fatalf("no line %q in:\n%s", stream, tail(all, 10))
	}
	return rs[len(rs)-1]
}

// loadCmd is procs-load [args...] IMAGE.
func loadCmd(img string, args ...string) *exec.Cmd {
	argv := slices.Clone(args)
	if img != "" {
		argv = append(argv, img)
	}
	return exec.Command(filepath.Join(binDir, "procs-load"), argv...)
}

// refused runs cmd (a procs-load) and checks that it fails with exit 125
// and one line "procs-load: ..." (and maybe a hint) holding each of wants,
// and leaves no new process behind. It returns the message.
func refused(t *testing.T, cmd *exec.Cmd, comm string, wants ...string) string {
	t.Helper()
	before := named(comm)
	var live []int
	for _, p := range descendants() {
		live = append(live, p.pid)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runTimeout(cmd, 30*time.Second)
	msg := strings.TrimSpace(stderr.String())
	if cmd.ProcessState == nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 125 {
		t.Errorf("%s: exit = %d (%v); want 125; stderr: %s", strings.Join(cmd.Args, " "), code, err, msg)
	}
	ls := strings.Split(msg, "\n")
	if msg == "" || !strings.HasPrefix(ls[0], "procs-load: ") ||
		len(ls) > 2 || (len(ls) == 2 && !strings.HasPrefix(ls[1], "procs-load: hint: ")) {
		t.Errorf("procs-load stderr = %q; want one line \"procs-load: ...\" (and maybe a hint)", msg)
	}
	for _, w := range wants {
		if !strings.Contains(ls[0], w) {
			t.Errorf("procs-load message %q does not name %q", ls[0], w)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("procs-load stdout = %q; want nothing", stdout.String())
	}
	deadline := time.Now().Add(time.Second)
	for {
		var extra []pinfo
		for _, p := range descendants() {
			if p.state != 'Z' && !slices.Contains(live, p.pid) {
				extra = append(extra, p)
			}
		}
		if len(extra) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left after a refused load: %v", extra)
			break
		}
		liveDescendants(0) // reap
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range named(comm) {
		if !slices.Contains(before, pid) {
			t.Errorf("a process named %s (pid %d) appeared after a refused load", comm, pid)
		}
	}
	t.Logf("refused: %s", msg)
	return msg
}

// patternFile writes n bytes, byte k being k%251, to path.
func patternFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkLog checks that the log of the files mode holds "1\n".."N\n" with
// N at least min.
func checkLog(t *testing.T, path string, least int64) {
	t.Helper()
	b := readFile(t, path)
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range ls {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("%s line %d = %q; want %d", path, i+1, l, i+1)
		}
	}
	if int64(len(ls)) < least {
		t.Errorf("%s has %d lines; want at least %d", path, len(ls), least)
	}
}

// TestFileSave dumps with -f a process reading a file at an offset and
// appending to another, and restores it with the files deleted (they come
// back from the image at their paths) or left as they were.
func TestFileSave(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete bool
	}{
		{"deleted", true},
		{"present", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			dir := t.TempDir()
			data, log := filepath.Join(dir, "data"), filepath.Join(dir, "log")
			want := patternFile(t, data, 64<<10)
			p := startFeature(t, dir, "files", data, log)
			reports(t, p.out, "files", 3, 0)
			img, before := dumpKilled(t, p, "-f")
			last := lastRec(t, before, "files")
			logAtDump := readFile(t, log)
			if tc.delete {
				for _, f := range []string{data, log} {
					if err := os.Remove(f); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, pid, after := restoreGoesOn(t, img, "features", "files", 3, before)
			r := lastRec(t, after, "files")
			if got, want := r.kv["off"], strconv.FormatInt(1000+8*r.n, 10); got != want {
				t.Errorf("restored offset of %s = %s; want %s", data, got, want)
			}
			if got := readFile(t, data); !bytes.Equal(got, want) {
				t.Errorf("%s after the restore: %d bytes, not the %d it held", data, len(got), len(want))
			}
			for _, f := range []string{data, log} {
				if st, err := os.Stat(f); err != nil || st.Mode() != 0o644 {
					t.Errorf("os.Stat(%s) = %v, %v; want mode -rw-r--r--", f, st.Mode(), err)
				}
			}
			got := readFile(t, log)
			if !bytes.HasPrefix(got, logAtDump) {
				t.Errorf("%s after the restore = %q; want it to start with %q", log, got, logAtDump)
			}
			checkLog(t, log, last.n+1)
			for fd, path := range map[string]string{"3": data, "4": log} {
				if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd)); l != path {
					t.Errorf("restored fd %s -> %q; want %q", fd, l, path)
				}
			}
		})
	}
}

// TestDeletedOpenFile restores a process reading a file it unlinked: its
// contents travel in the image without -f and its path stays absent.
func TestDeletedOpenFile(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "gone")
	p := startFeature(t, dir, "deleted", path)
	reports(t, p.out, "deleted", 3, 0)
	img, before := dumpKilled(t, p)
	_, pid, after := restoreGoesOn(t, img, "features", "deleted", 3, before)
	for _, r := range perStream(parseAll(after))["deleted"] {
		if r.kv["nlink"] != "0" {
			t.Errorf("restored line %q; want nlink=0", r.line)
		}
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("os.Lstat(%s) = %v; want it absent", path, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("%s holds %s after the restore; want nothing", dir, e.Name())
	}
	// An unlinked file in the same file system.
	if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid)); !strings.HasPrefix(l, dir+"/") || !strings.HasSuffix(l, " (deleted)") {
		t.Errorf("restored fd 3 -> %q; want a deleted file in %s", l, dir)
	}
}

// TestFileChangedRefused changes or removes a file the process had open
// between dump (without -f) and restore: procs-load refuses by name.
func TestFileChangedRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		wants  []string
	}{
		{"grown", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"rewritten", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("XXXXXXXX"), 1000); err != nil {
				t.Fatal(err)
			}
			mt := st.ModTime().Add(3 * time.Second)
			if err := os.Chtimes(path, mt, mt); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"replaced", func(t *testing.T, path string) {
			// Same size and contents, another inode.
			b := readFile(t, path)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			dir := t.TempDir()
			data, log := filepath.Join(dir, "data"), filepath.Join(dir, "log")
			patternFile(t, data, 64<<10)
			p := startFeature(t, dir, "files", data, log)
			reports(t, p.out, "files", 2, 0)
			img, _ := dumpKilled(t, p)
			tc.change(t, data)
			msg := refused(t, loadCmd(img), "features", data)
			if !strings.Contains(msg, "hint: procs-dump -f") {
				t.Errorf("no hint to dump with -f")
			}
			if _, err := os.Stat(log); err != nil {
				t.Errorf("the log the process appended to: %v", err)
			}
		})
	}
}

// mapsLine returns the line of /proc/PID/maps that starts at addr.
func mapsLine(t *testing.T, pid int, addr string) []string {
	t.Helper()
	a, err := strconv.ParseUint(strings.TrimPrefix(addr, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("%x-", a)) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("no mapping at %s in /proc/%d/maps:\n%s", addr, pid, b)
	return nil
}

// TestSharedMemory restores shared anonymous memory and a memfd that is
// both mapped and open as fd 5: contents intact, and after the restore a
// store through the mapping is seen through the fd.
func TestSharedMemory(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p := startFeature(t, t.TempDir(), "shm")
	rs := reports(t, p.out, "shm", 3, 0)
	shmAddr, memfdAddr := rs[0].kv["shm"], rs[0].kv["memfd"]
	img, before := dumpKilled(t, p)
	_, pid, after := restoreGoesOn(t, img, "features", "shm", 3, before)
	for _, r := range perStream(parseAll(after))["shm"] {
		if r.kv["shm"] != shmAddr || r.kv["memfd"] != memfdAddr {
			t.Errorf("restored line %q; want shm=%s memfd=%s", r.line, shmAddr, memfdAddr)
		}
	}
	if m := mapsLine(t, pid, shmAddr); m[1] != "rw-s" {
		t.Errorf("restored shared anonymous mapping %q; want rw-s", strings.Join(m, " "))
	}
	m := mapsLine(t, pid, memfdAddr)
	if m[1] != "rw-s" || len(m) < 6 {
		t.Errorf("restored memfd mapping %q; want rw-s /memfd:feat", strings.Join(m, " "))
	}
	fd5 := fmt.Sprintf("/proc/%d/fd/5", pid)
	var st unix.Stat_t
	if err := unix.Stat(fd5, &st); err != nil {
		t.Fatal(err)
	}
	if len(m) >= 5 && m[4] != strconv.FormatUint(st.Ino, 10) {
		t.Errorf("restored memfd mapping has inode %s, fd 5 has %d; want one object", m[4], st.Ino)
	}
	// The memfd keeps its name (memfd_create("feat")).
	link, _ := os.Readlink(fd5)
	if link != "/memfd:feat (deleted)" {
		t.Errorf("restored fd 5 -> %q; want /memfd:feat (deleted)", link)
	}
	if len(m) >= 6 && m[5] != "/memfd:feat" {
		t.Errorf("restored memfd mapping %q; want it named /memfd:feat", strings.Join(m, " "))
	}
}

// TestPrivateFileMapping restores a MAP_PRIVATE file mapping the process
// wrote some pages of: its pages stay its own, the others still come from
// the file (a later write to the file shows in them).
func TestPrivateFileMapping(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "mapped")
	page := os.Getpagesize()
	b := make([]byte, 16*page)
	for pg := range 16 {
		for i := range page / 4 {
			binary.LittleEndian.PutUint32(b[pg*page+4*i:], uint32(pg*1000+i))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	poke := func(v uint32, pages ...int) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, pg := range pages {
			if _, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, v), int64(pg*page)); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := startFeature(t, dir, "privmap", path)
	reports(t, p.out, "privmap", 1, 0)
	// On the original first: a write to the file shows in page 3 only.
	poke(0x11111111, 3, 5)
	skip := len(mustLines(p.out))
	expect(t, p.out, "privmap ", skip, "p3=11111111 p5=dead0005 privok=1")
	img, before := dumpKilled(t, p)
	ld, _, _ := restoreGoesOn(t, img, "features", "privmap", 2, before)
	expect(t, ld.out, "privmap ", 0, "p3=11111111 p5=dead0005 privok=1")
	skip = len(mustLines(ld.out))
	poke(0x22222222, 3, 5)
	expect(t, ld.out, "privmap ", skip, "p5=dead0005 privok=1")
	line := expect(t, ld.out, "privmap ", len(mustLines(ld.out)))
	if !strings.Contains(line, "p3=22222222") {
		t.Errorf("restored process after a write to page 3 of %s: %q; want p3=22222222 (an unmodified page still mapped from the file)", path, line)
	}
}

// TestCompression restores images compressed by procs-dump -z and by xz
// and zstd outside procs, in a pipe and as files.
func TestCompression(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	orig := startFeature(t, dir, "timer")
	reports(t, orig.out, "timer", 2, 0)
	pd := filepath.Join(binDir, "procs-dump")
	pl := filepath.Join(binDir, "procs-load")
	pid := orig.pid()
	for _, tc := range []struct {
		name  string
		tools []string
		// either dump flags and a file filter, or a shell pipeline
		flags  []string
		filter string
		pipe   string
	}{
		{name: "z-zstd", flags: []string{"-z", "zstd"}},
		{name: "z-xz", flags: []string{"-z", "xz"}},
		{name: "pipe-xz", tools: []string{"xz"}, pipe: fmt.Sprintf("%s -K %d | xz -T0 | xz -d | %s", pd, pid, pl)},
		{name: "pipe-zstd", tools: []string{"zstd"}, pipe: fmt.Sprintf("%s -K %d | zstd -q | zstd -q -d | %s", pd, pid, pl)},
		{name: "stdin-xz", tools: []string{"xz"}, pipe: fmt.Sprintf("%s -K %d | xz -T0 | %s", pd, pid, pl)},
		{name: "stdin-zstd", tools: []string{"zstd"}, pipe: fmt.Sprintf("%s -K %d | zstd -q | %s", pd, pid, pl)},
		{name: "file-xz", tools: []string{"xz"}, filter: "xz -T0 -c"},
		{name: "file-zstd", tools: []string{"zstd"}, filter: "zstd -q -c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, tool := range tc.tools {
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("%s: %v", tool, err)
				}
			}
			var ld *load
			if tc.pipe != "" {
				ld = &load{}
				t.Cleanup(func() { ld.kill(t) })
				ld.proc = start(t, []string{"sh", "-c", tc.pipe}, t.TempDir())
			} else {
				img := dump(t, pid, true, tc.flags...)
				if tc.filter != "" {
					out := img + ".z"
					cmd := exec.Command("sh", "-c", fmt.Sprintf("%s %s > %s", tc.filter, img, out))
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("%s: %v\n%s", tc.filter, err, b)
					}
					img = out
				}
				ld = startLoad(t, img)
			}
			after, ok := ld.out.wait(lineWait, haveLines([]string{"timer"}, 2, 0))
			if !ok {
				t.Fatalf("restored: want 2 lines; got:\n%s\nstderr: %s", tail(after, 10), ld.stderrText())
			}
			if bad := badFlags(parseAll(after)); len(bad) > 0 {
				t.Errorf("restored process reports a failed check:\n%s", strings.Join(bad, "\n"))
			}
			ld.find(t, "features", 5*time.Second, pid)
			ld.kill(t)
			if !ld.exited(10 * time.Second) {
				t.Fatal("procs-load did not end after its process did")
			}
		})
	}
	if err := healthy(pid); err != nil {
		t.Errorf("original after the dumps: %v", err)
	}
}

// TestPidModes restores a -K image beside its running original with
// --pid=keep (refused by PID) and --pid=auto (a new PID), then, once the
// original is gone, with --pid=auto and --pid=keep (its own PID).
func TestPidModes(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	orig := startFeature(t, t.TempDir(), "timer")
	reports(t, orig.out, "timer", 2, 0)
	pid := orig.pid()
	img := dump(t, pid, true)

	t.Run("keep-taken", func(t *testing.T) {
		refused(t, loadCmd(img, "--pid=keep"), "features", strconv.Itoa(pid))
		if err := healthy(pid); err != nil {
			t.Errorf("original after a refused --pid=keep: %v", err)
		}
	})
	restoredAs := func(t *testing.T, mode string, want func(int) bool, what string) {
		t.Helper()
		var not []int
		if !orig.exited(0) {
			not = append(not, pid)
		}
		ld := startLoad(t, img, "--pid="+mode)
		if _, ok := ld.out.wait(lineWait, haveLines([]string{"timer"}, 2, 0)); !ok {
			t.Fatalf("procs-load --pid=%s: no lines; stderr: %s", mode, ld.stderrText())
		}
		got := ld.find(t, "features", 5*time.Second, not...)
		if !want(got) {
			t.Errorf("procs-load --pid=%s restored pid %d; want %s", mode, got, what)
		}
		ld.kill(t)
		if !ld.exited(10 * time.Second) {
			t.Fatal("procs-load did not end after its process did")
		}
	}
	t.Run("auto-taken", func(t *testing.T) {
		restoredAs(t, "auto", func(p int) bool { return p != pid }, fmt.Sprintf("not %d", pid))
	})
	t.Run("new", func(t *testing.T) {
		restoredAs(t, "new", func(p int) bool { return p != pid }, fmt.Sprintf("not %d", pid))
	})
	orig.cmd.Process.Kill()
	if !orig.exited(10 * time.Second) {
		t.Fatal("original did not die")
	}
	t.Run("auto-free", func(t *testing.T) {
		restoredAs(t, "auto", func(p int) bool { return p == pid }, strconv.Itoa(pid))
	})
	t.Run("keep-free", func(t *testing.T) {
		restoredAs(t, "keep", func(p int) bool { return p == pid }, strconv.Itoa(pid))
	})
}

// publicCopy copies the file at src into a folder every user can reach
// and returns the copy's path.
func publicCopy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, readFile(t, src), 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// nobody is the unprivileged user the credential tests run as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// TestCredentials restores, as root, a process that ran as uid 65534 (it
// gets its uid back), and refuses to restore a root process for uid 65534.
func TestCredentials(t *testing.T) {
	t.Run("unprivileged-by-root", func(t *testing.T) {
		needTools(t)
		noLeftovers(t)
		bin := publicCopy(t, featuresBin(t))
		p := startAs(t, []string{bin, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
		expect(t, p.out, "start 0", 0)
		reports(t, p.out, "timer", 2, 0)
		for _, k := range []string{"Uid", "Gid"} {
			if got := procStatus(p.pid())[k]; got != "65534\t65534\t65534\t65534" {
				t.Fatalf("victim's %s = %q; want 65534 four times", k, got)
			}
		}
		img, before := dumpKilled(t, p)
		_, pid, _ := restoreGoesOn(t, img, "features", "timer", 2, before)
		st := procStatus(pid)
		for _, k := range []string{"Uid", "Gid"} {
			if got := st[k]; got != "65534\t65534\t65534\t65534" {
				t.Errorf("restored process's %s = %q; want 65534 four times", k, got)
			}
		}
		if got := st["Groups"]; got != "" {
			t.Errorf("restored process's Groups = %q; want none", got)
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); l != "/tmp" {
			t.Errorf("restored cwd = %q; want /tmp", l)
		}
	})
	for _, mode := range []string{"new", "auto"} {
		t.Run("unprivileged-by-same-uid/pid-"+mode, func(t *testing.T) {
			sameUID(t, "--pid="+mode)
		})
	}
	t.Run("root-by-unprivileged", func(t *testing.T) {
		needTools(t)
		noLeftovers(t)
		p := startFeature(t, "/tmp", "timer")
		reports(t, p.out, "timer", 2, 0)
		img, _ := dumpKilled(t, p)
		pl := publicCopy(t, filepath.Join(binDir, "procs-load"))
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(pl)
		cmd.Stdin = f
		cmd.Dir = "/tmp"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		msg := refused(t, cmd, "features", "uid 0")
		if !strings.Contains(msg, "root") {
			t.Errorf("procs-load message %q; want it to say root is needed", msg)
		}
	})
}

// sameUID restores as uid 65534, with procs-load [args...], a process that
// ran as uid 65534.
func sameUID(t *testing.T, args ...string) {
	needTools(t)
	noLeftovers(t)
	bin := publicCopy(t, featuresBin(t))
	p := startAs(t, []string{bin, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: nobody})
	expect(t, p.out, "start 0", 0)
	reports(t, p.out, "timer", 2, 0)
	img, before := dumpKilled(t, p)
	pl := publicCopy(t, filepath.Join(binDir, "procs-load"))
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	ld.proc = startAs(t, append([]string{pl}, args...), "/tmp", &syscall.SysProcAttr{Credential: nobody})
	go func() {
		defer ld.stdin.Close()
		io.Copy(ld.stdin, f)
	}()
	after, ok := ld.out.wait(lineWait, haveLines([]string{"timer"}, 2, 0))
	if !ok {
		msg := ld.stderrText()
		t.Fatalf("restored by uid 65534: want 2 lines; got:\n%s\nprocs-load stderr: %s", tail(after, 10), msg)
	}
	pid := ld.find(t, "features", 5*time.Second)
	continuity(t, []string{"timer"}, before, after, false, nil)
	if got := procStatus(pid)["Uid"]; got != "65534\t65534\t65534\t65534" {
		t.Errorf("restored process's Uid = %q; want 65534 four times", got)
	}
}

// TestTimerAltstack restores a process whose SIGALRM handler, run on a
// sigaltstack, counts the ticks of an ITIMER_REAL: the timer keeps firing
// and the handler still runs on the altstack.
func TestTimerAltstack(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p := startFeature(t, t.TempDir(), "timer")
	reports(t, p.out, "timer", 3, 0)
	img, before := dumpKilled(t, p)
	ticks0, _ := strconv.Atoi(lastRec(t, before, "timer").kv["ticks"])
	_, pid, after := restoreGoesOn(t, img, "features", "timer", 8, before)
	rs := perStream(parseAll(after))["timer"]
	t1, _ := strconv.Atoi(rs[0].kv["ticks"])
	t2, _ := strconv.Atoi(rs[len(rs)-1].kv["ticks"])
	if t1 < ticks0 {
		t.Errorf("ticks after the restore = %d; before the dump %d; want no reset", t1, ticks0)
	}
	// 7 lines 100 ms apart: about 14 ticks of 50 ms.
	if t2-t1 < 7 {
		t.Errorf("ticks went from %d to %d over %d lines of 100 ms; want the 50 ms timer firing", t1, t2, len(rs)-1)
	}
	cgt, err := strconv.ParseUint(procStatus(pid)["SigCgt"], 16, 64)
	if err != nil || cgt&(1<<(unix.SIGALRM-1)) == 0 {
		t.Errorf("restored SigCgt = %q; want SIGALRM caught", procStatus(pid)["SigCgt"])
	}
}

// attrView is what /proc shows of the attributes the attrs mode sets.
func attrView(t *testing.T, pid int) map[string]string {
	t.Helper()
	v := map[string]string{}
	lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	v["limits"] = string(lim)
	v["umask"] = procStatus(pid)["Umask"]
	v["cwd"], _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	v["nice"] = f[16]
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, pid))
	v["comm"] = strings.TrimSpace(string(comm))
	return v
}

// TestProcessAttributes restores rlimits, umask, cwd, nice and the name
// the process gave itself.
func TestProcessAttributes(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startFeature(t, dir, "attrs", work, "featname")
	reports(t, p.out, "attrs", 2, 0)
	want := attrView(t, p.pid())
	for k, v := range map[string]string{"umask": "0027", "cwd": work, "nice": "5", "comm": "featname"} {
		if want[k] != v {
			t.Fatalf("victim's %s = %q; want %q", k, want[k], v)
		}
	}
	img, before := dumpKilled(t, p)
	_, pid, _ := restoreGoesOn(t, img, "featname", "attrs", 2, before)
	got := attrView(t, pid)
	for _, k := range []string{"limits", "umask", "cwd", "nice", "comm"} {
		if got[k] != want[k] {
			t.Errorf("restored %s = %q; want %q", k, got[k], want[k])
		}
	}
}

// TestInputAfterImage runs `(procs-dump PID; printf 'typed\n') |
// procs-load`: the restored process, blocked reading its stdin, reads what
// followed the image, then end of file.
func TestInputAfterImage(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	argv := victimArgv(t, "blocked")
	p := start(t, append(argv, "read"), t.TempDir())
	expect(t, p.out, "ready 0", 0)
	time.Sleep(50 * time.Millisecond) // let it block in read
	sh := fmt.Sprintf("(%s %d; printf 'typed\\n') | %s",
		filepath.Join(binDir, "procs-dump"), p.pid(), filepath.Join(binDir, "procs-load"))
	ld := &load{}
	t.Cleanup(func() { ld.kill(t) })
	ld.proc = start(t, []string{"sh", "-c", sh}, t.TempDir())
	expect(t, ld.out, "read 1 got=typed", 0)
	expect(t, ld.out, "eof 2", 0)
	if !ld.exited(10 * time.Second) {
		t.Fatalf("the pipeline did not end after its process did")
	}
	if got := ld.exitCode(); got != 0 {
		t.Errorf("(procs-dump; printf) | procs-load exit = %d; want 0; stderr: %s", got, ld.stderrText())
	}
	if !p.exited(5 * time.Second) {
		t.Errorf("the original still runs after procs-dump")
	}
}

// TestSameMappings checks that a restored process has the mappings the
// original had, one for one: addresses, protection, sharing and file, as
// /proc/PID/maps shows them (the kernel merges and splits mappings by
// their flags, so this also checks flags such as accounting).
func TestSameMappings(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	orig := startFeature(t, t.TempDir(), "timer")
	reports(t, orig.out, "timer", 2, 0)
	want := mapsOf(t, orig.pid())
	img, before := dumpKilled(t, orig)
	_, pid, _ := restoreGoesOn(t, img, "features", "timer", 2, before)
	if got := mapsOf(t, pid); !slices.Equal(got, want) {
		t.Errorf("restored mappings differ from the original's:\n%s", diffLines(strings.Join(want, "\n"), strings.Join(got, "\n")))
	}
}

// mapsOf is /proc/PID/maps without the device and inode columns.
func mapsOf(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 {
			out = append(out, strings.Join(append(f[:3:3], f[5:]...), " "))
		}
	}
	return out
}

// TestDupSharesOffset checks that two fds sharing one open file (after
// dup) still share it after a round trip: reads through either move the
// same offset.
func TestDupSharesOffset(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	patternFile(t, data, 64<<10)
	orig := startFeature(t, dir, "dup", data)
	reports(t, orig.out, "dup", 2, 0)
	img, before := dumpKilled(t, orig)
	_, pid, _ := restoreGoesOn(t, img, "features", "dup", 3, before)
	if a, b := fdLink(t, pid, 3), fdLink(t, pid, 7); a != data || b != data {
		t.Errorf("restored fds 3 and 7 -> %q, %q; want %s twice", a, b, data)
	}
}

func fdLink(t *testing.T, pid, fd int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMonotonicGoesOn checks that a restored process's CLOCK_MONOTONIC
// goes on from where it was at the dump (procs-load gives it a time
// namespace), so that absolute deadlines on it keep their meaning: the
// time the image waited between dump and restore does not show.
func TestMonotonicGoesOn(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	code := "import time\nn = 0\nwhile True:\n    n += 1\n    print('mono %d ms=%d' % (n, time.monotonic() * 1000), flush=True)\n    time.sleep(0.02)\n"
	orig := start(t, []string{py, "-c", code}, t.TempDir())
	reports(t, orig.out, "mono", 3, 0)
	img, before := dumpKilled(t, orig)
	last := lastRec(t, before, "mono")
	time.Sleep(1500 * time.Millisecond)
	_, _, after := restoreGoesOn(t, img, "python3", "mono", 2, before)
	first := perStream(parseAll(after))["mono"][0]
	was, _ := strconv.ParseInt(last.kv["ms"], 10, 64)
	now, _ := strconv.ParseInt(first.kv["ms"], 10, 64)
	if gap := now - was; gap < 0 || gap > 700 {
		t.Errorf("monotonic clock went from %d ms at the dump to %d ms after the restore (gap %d ms); want it to go on (gap < 700 ms, the image waited 1500 ms)", was, now, gap)
	}
}

// TestLargeMemory restores a process holding 40 MiB of incompressible
// memory, more than procs-load writes itself before its writers take over
// (restore's inlineBytes), from a plain and a zstd image, and has the
// process check every byte of it.
// The same image damaged or cut past that point is refused, with the
// writers busy, and leaves no process.
func TestLargeMemory(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	p := start(t, append(victimArgv(t, "memhog"), "40"), t.TempDir())
	expect(t, p.out, "ready ", 0)
	// Compressed records are decompressed into the writers' buffers.
	zimg := dump(t, p.pid(), true, "-z", "zstd")
	img, _ := dumpKilled(t, p)
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	n := len(good)
	if n < 40<<20 {
		t.Fatalf("image of 40 MiB of memory is %d bytes", n)
	}
	for _, at := range []int{n / 2, 3 * n / 4, n - 5000} {
		b := slices.Clone(good)
		b[at] ^= 0x01
		t.Run(fmt.Sprintf("flipped-at-%d", at), func(t *testing.T) {
			noLeftovers(t)
			loadFails(t, b, false, "memhog")
		})
		t.Run(fmt.Sprintf("truncated-at-%d", at), func(t *testing.T) {
			noLeftovers(t)
			loadFails(t, good[:at], false, "memhog")
		})
	}

	for _, im := range []string{img, zimg} {
		ld := startLoad(t, im)
		pid := ld.find(t, "memhog", 10*time.Second)
		skip := len(mustLines(ld.out))
		unix.Kill(pid, unix.SIGUSR1)
		if got := expect(t, ld.out, "verify ", skip); got != "verify ok" {
			t.Errorf("restored process checked its memory: %q; want \"verify ok\"", got)
		}
		ld.kill(t)
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
// its controlling terminal, not on its standard streams) is refused at
// the dump, by fd and path.
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
	want := "fd 3 is a terminal other than its own (" + other.Name() + ")"
	if err == nil || d.ProcessState.ExitCode() != 3 || !strings.Contains(stderr.String(), want) {
		t.Errorf("procs-dump = %v, %q; want exit 3 saying %q", err, stderr.String(), want)
	}
}

// timerIDs lists the ids of /proc/PID/timers.
func timerIDs(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/timers", pid))
	var ids []string
	for _, l := range strings.Split(string(b), "\n") {
		if id, ok := strings.CutPrefix(l, "ID: "); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestPosixTimers: POSIX timers come back under their ids and go on
// firing: one with a signal and a value, one due in an hour, one that
// signals a single thread (whose id changes with --pid=new), and glibc's
// SIGEV_THREAD, whose helper thread gets the signal.
func TestPosixTimers(t *testing.T) {
	for _, mode := range []string{"auto", "new"} {
		t.Run(mode, func(t *testing.T) {
			needTools(t)
			noLeftovers(t)
			p := startFeature(t, t.TempDir(), "ptimer")
			reports(t, p.out, "ptimer", 3, 0)
			ids := timerIDs(p.pid())
			if len(ids) != 4 {
				t.Fatalf("victim's timers %v; want 4", ids)
			}
			img, before := dumpKilled(t, p)
			last := lastRec(t, before, "ptimer")
			_, pid, after := restoreGoesOn(t, img, "features", "ptimer", 8, before, "--pid="+mode)
			if got := timerIDs(pid); !slices.Equal(got, ids) {
				t.Errorf("restored timers %v; want the ids %v", got, ids)
			}
			rs := perStream(parseAll(after))["ptimer"]
			first, end := rs[0], rs[len(rs)-1]
			for k, least := range map[string]int{"a": 20, "c": 12, "d": 8} {
				v0, _ := strconv.Atoi(last.kv[k])
				v1, _ := strconv.Atoi(first.kv[k])
				v2, _ := strconv.Atoi(end.kv[k])
				if v1 < v0 || v2-v1 < least {
					t.Errorf("timer %s fired %d times before the dump, %d then %d after (over %d lines of 100 ms); want it going on",
						k, v0, v1, v2, len(rs)-1)
				}
			}
			if bad := badFlags(rs); len(bad) > 0 {
				t.Errorf("failed checks after the restore:\n%s", strings.Join(bad, "\n"))
			}
		})
	}
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

// TestInteractiveShell: an interactive bash, dumped at its prompt, goes
// on in procs-load's terminal with its variables and its job control: it
// runs a command in a process group of its own and gets the terminal
// back after, twice, then exits.
func TestInteractiveShell(t *testing.T) {
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
	_, done := onTerminal(t, sb, env, filepath.Join(binDir, "procs-load"), img)
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
// again: a line typed then reaches it, not the shell.
func TestJobControl(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	bash, env := interactiveBash(t)
	img := ttyImage(t)
	mb, sb := openPty(t)
	sh, shDone := onTerminal(t, sb, env, bash...)
	out := readLines(mb)
	mb.Write([]byte(filepath.Join(binDir, "procs-load") + " " + img + " | cat\n"))
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
