package tests

// Feature tests: compressed images, input that follows the image on stdin.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
