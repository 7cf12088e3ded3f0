package tests

// Open files that must come back exactly: each mode of
// tests/victims/openfiles.c prints its own view of its files, which a round
// trip (killed, -K, or restored with -d) must leave as it was.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tripHows are the round trips every exact mode makes: dumped and
// killed, dumped with -K (the original runs on beside the copy), and
// restored with -d (procs-load leaves at once).
var tripHows = []string{"kill", "keep", "detach"}

// filesTrip starts openfiles MODE DIR in a fresh folder and asks it for its
// view, dumps it as how says, calls between (if not nil) with the folder,
// restores it and asks the restored process for its view. It returns
// both views, the restored PID and the folder.
func filesTrip(t *testing.T, mode, how string, between func(dir string)) (before, after string, pid int, dir string) {
	before, after, pid, dir, _ = filesTripImage(t, mode, how, between)
	return before, after, pid, dir
}

// filesTripImage is filesTrip, and returns the image too.
func filesTripImage(t *testing.T, mode, how string, between func(dir string)) (before, after string, pid int, dir, img string) {
	t.Helper()
	needTools(t)
	argv := victimArgv(t, "openfiles")
	dir = t.TempDir()
	p := start(t, append(argv, mode, dir), dir)
	expect(t, p.out, "ready", 0)
	say(t, p.stdin, "view")
	before = expect(t, p.out, "view "+mode, 0)
	img = dumpAs(t, p, how)
	if between != nil {
		between(dir)
	}
	ld := startLoadAs(t, img, how)
	var not []int
	if how == "keep" {
		not = append(not, p.pid())
	}
	say(t, ld.stdin, "view")
	all, ok := ld.out.wait(lineWait, func(all []string, eof bool) bool {
		return eof || len(all) > 0 && strings.HasPrefix(all[len(all)-1], "view ")
	})
	if !ok || len(all) == 0 || !strings.HasPrefix(all[len(all)-1], "view ") {
		t.Fatalf("restored %s: no view; got:\n%s\nprocs-load stderr: %s", mode, tail(all, 10), ld.stderrText())
	}
	pid = ld.find(t, "openfiles", 5*time.Second, not...)
	if how == "keep" {
		// The original goes on as it was.
		say(t, p.stdin, "view")
		if got := expect(t, p.out, "view "+mode, 1); got != before {
			t.Errorf("original after -K:\n%s\nwant\n%s", got, before)
		}
	}
	return before, all[len(all)-1], pid, dir, img
}

// sameView fails t unless after is before, naming each field that
// differs.
func sameView(t *testing.T, before, after string) {
	t.Helper()
	if before == after {
		return
	}
	b, a := strings.Fields(before), strings.Fields(after)
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(b) {
			x = b[i]
		}
		if i < len(a) {
			y = a[i]
		}
		if x != y {
			t.Errorf("restored view has %q; was %q", y, x)
		}
	}
}

// has fails t unless view holds each of fields.
func has(t *testing.T, view string, fields ...string) {
	t.Helper()
	fs := strings.Fields(view)
	for _, f := range fields {
		found := false
		for _, g := range fs {
			found = found || g == f
		}
		if !found {
			t.Errorf("view %q lacks %s", view, f)
		}
	}
}

// procLink is the target of /proc/PID/fd/N.
func procLink(t *testing.T, pid int, name string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Errorf("readlink /proc/%d/%s: %v", pid, name, err)
	}
	return l
}

// TestExactOPath: O_PATH fds on a file, on a symbolic link itself
// (O_PATH|O_NOFOLLOW) and on a folder come back as O_PATH fds on the
// same files.
func TestExactOPath(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			before, after, pid, dir := filesTrip(t, "opath", how, nil)
			has(t, before, "fl3=10000000", "fl4=10400000", "fl5=10200000", "target=f", "read=hello", "readpath=9")
			sameView(t, before, after)
			for n, want := range map[string]string{"fd/3": filepath.Join(dir, "f"), "fd/4": filepath.Join(dir, "l"), "fd/5": dir} {
				if got := procLink(t, pid, n); got != want {
					t.Errorf("/proc/%d/%s -> %q; want %q", pid, n, got, want)
				}
			}
		})
	}
}

// TestExactMapAccess: a shared file mapping made PROT_READ comes back
// from a file opened as the original was: mprotect to writable works
// where the mapping's file was open read-write, and fails with EACCES
// where it was read-only, as before the dump.
func TestExactMapAccess(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			before, after, _, _ := filesTrip(t, "mapaccess", how, nil)
			has(t, before, "w1=0", "w2=13")
			sameView(t, before, after)
		})
	}
}

// TestExactMemfd: memfds keep their mode, name and seals; one that holds
// a program still runs with execveat; one mapped both shared and private
// keeps the private copy's own bytes and the shared mapping's link to
// the file.
func TestExactMemfd(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			before, after, pid, _ := filesTrip(t, "memfd", how, nil)
			has(t, before, "exec=42", "fdx=/memfd:exact-exec_(deleted)", "seals=7", "grow=1", "file=f", "priv=P", "sharedok=1")
			sameView(t, before, after)
			if got := procLink(t, pid, "fd/4"); got != "/memfd:exact-sealed (deleted)" {
				t.Errorf("restored fd 4 -> %q", got)
			}
		})
	}
}

// TestExactDeletedSparse: a deleted file keeps its mode, owner, times and
// holes (the 1 GiB hole is neither in the image nor written at restore);
// a deleted node of /dev/null is /dev/null again.
func TestExactDeletedSparse(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			t0 := time.Now()
			before, after, _, _, img := filesTripImage(t, "sparse", how, nil)
			if st, err := os.Stat(img); err != nil || st.Size() > 16<<20 {
				t.Errorf("image of a process with a 1 GiB sparse file: %v, %v; want under 16 MiB", st.Size(), err)
			}
			has(t, before, "mode=100640", "uid=1234", "gid=5678", "atime=1100000000.123456789",
				"mtime=1000000000.987654321", "extents=0-4096,65536-73728,1073807360-1073811456,", "far=d", "blocks=few", "nul=1:3:20600")
			sameView(t, before, after)
			if d := time.Since(t0); d > 20*time.Second {
				t.Errorf("round trip of a 1 GiB sparse file took %v", d)
			}
		})
	}
}

// TestExactDeletedDir: a process working in a folder that was removed,
// holding it and a deleted file in it open, finds itself there again:
// its working directory reads as the same path, "(deleted)", getcwd
// fails as it did, nothing can be created there, and the folder made for
// the restore is gone after it.
func TestExactDeletedDir(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			before, after, pid, dir := filesTrip(t, "deldir", how, nil)
			gone := filepath.Join(dir, "gone")
			has(t, before, "cwd="+gone+"_(deleted)", "getcwd=2", "dot=40750:0", "same=1",
				"fd3="+gone+"_(deleted)", "fd4="+gone+"/file_(deleted)", "data=in", "create=2")
			sameView(t, before, after)
			if got := procLink(t, pid, "cwd"); got != gone+" (deleted)" {
				t.Errorf("/proc/%d/cwd -> %q; want %q", pid, got, gone+" (deleted)")
			}
			if _, err := os.Lstat(gone); err == nil {
				t.Errorf("%s is there after the restore", gone)
			}
		})
	}
}

// TestExactProcSelf: the process's own /proc files (/proc/self/status,
// /proc/self/maps, /proc/PID/stat) are its own after the restore, not
// the original's (which with -K still runs): under its PID as it knows
// it (the original one, in a PID namespace of its own, beside the
// original).
func TestExactProcSelf(t *testing.T) {
	for _, how := range tripHows {
		t.Run(how, func(t *testing.T) {
			noLeftovers(t)
			before, after, pid, _ := filesTrip(t, "procself", how, nil)
			has(t, before, "statusok=1", "mapsok=1", "statok=1", "linkok=1")
			sameView(t, before, after)
			ids := strings.Fields(procStatus(pid)["NSpid"])
			if got, want := procLink(t, pid, "fd/5"), "/proc/"+ids[len(ids)-1]+"/stat"; len(ids) == 0 || got != want {
				t.Errorf("restored fd 5 -> %q; want %q", got, want)
			}
		})
	}
}
