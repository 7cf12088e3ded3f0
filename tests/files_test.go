package tests

// Feature tests: open files, -f, deleted and changed files, shared offsets.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// TestAppendedLogGoesOn: a log the process only appends to (O_WRONLY |
// O_APPEND) that grew between dump and restore (another writer, or the
// original beside a -K copy) is no change that matters: the restore goes
// on, and the process appends after what was added.
func TestAppendedLogGoesOn(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	code := `import os, time
fd = os.open("log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
n = 0
while True:
    n += 1
    os.write(fd, b"%d\n" % n)
    print("tick %d" % n, flush=True)
    time.sleep(0.05)
`
	p := start(t, []string{"/usr/bin/python3", "-c", code}, dir)
	expect(t, p.out, "tick 3", 0)
	img := dump(t, p.pid(), false)
	if !p.exited(10 * time.Second) {
		t.Fatal("the dumped process still runs")
	}
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("added\n")
	f.Close()
	ld := startLoad(t, img)
	n := len(mustLines(p.out))
	expect(t, ld.out, fmt.Sprintf("tick %d", n+3), 0)
	ld.find(t, "python3", 5*time.Second)
	got := string(readFile(t, log))
	if !strings.Contains(got, fmt.Sprintf("\nadded\n%d\n", n+1)) {
		t.Errorf("%s after the restore = %q; want %d and on appended after the line added", log, got, n+1)
	}
}
