package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"procs/pkg/procfs"
)

// writeImage writes n bytes of an image to o and checks what dir holds
// meanwhile: wantTemp temp files and whatever was there before (old).
func writeImage(t *testing.T, o *Output, n int, dir string, wantTemp int, old ...string) {
	t.Helper()
	if _, err := o.Write(bytes.Repeat([]byte("i"), n)); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	temps := 0
	for _, e := range ents {
		switch {
		case tempName.MatchString(e.Name()):
			temps++
		case !strings.Contains(strings.Join(old, "/"), e.Name()):
			t.Errorf("while writing, %s holds %s", dir, e.Name())
		}
	}
	if temps != wantTemp {
		t.Errorf("while writing, %s holds %d temp files; want %d", dir, temps, wantTemp)
	}
}

// TestOutputUnnamed: an image being written has no name in its directory
// (O_TMPFILE), is written with O_DIRECT, and gets its name at Commit, also
// over an existing file, whose mode it keeps.
func TestOutputUnnamed(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "img")
	for _, existing := range []bool{false, true} {
		if existing {
			os.WriteFile(name, []byte("old"), 0o600)
			os.Chmod(name, 0o640)
		}
		o, err := OpenOutput(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.tmp != "" {
			t.Skipf("no O_TMPFILE in %s: wrote %s", dir, o.tmp)
		}
		writeImage(t, o, 5<<20+3, dir, 0, "img")
		if fl, err := unix.FcntlInt(o.f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_DIRECT == 0 {
			t.Errorf("image file flags = %#o, %v; want O_DIRECT", fl, err)
		}
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(name)
		if err != nil || st.Size() != 5<<20+3 {
			t.Fatalf("after Commit, Stat(%s) = %v, %v; want %d bytes", name, st, err, 5<<20+3)
		}
		want := os.FileMode(0o600)
		if existing {
			want = 0o640
		}
		if st.Mode().Perm() != want {
			t.Errorf("existing=%v: mode = %v; want %v", existing, st.Mode().Perm(), want)
		}
		assertOnly(t, dir, "img")
	}
}

// TestOutputNamedTemp: without O_TMPFILE the image is written to a temp
// file named after this process, which Abort removes and Commit renames.
func TestOutputNamedTemp(t *testing.T) {
	noTmpfile = true
	defer func() { noTmpfile = false }()
	dir := t.TempDir()
	name := filepath.Join(dir, "img")
	o, err := OpenOutput(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, o, 1<<20, dir, 1)
	if m := tempName.FindStringSubmatch(filepath.Base(o.tmp)); m == nil || m[1] != fmt.Sprint(os.Getpid()) {
		t.Errorf("temp file %s; want one named after pid %d", o.tmp, os.Getpid())
	}
	o.Abort()
	assertOnly(t, dir)

	o, err = OpenOutput(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, o, 1<<20, dir, 1)
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "img")
}

// TestRemoveStale: OpenOutput removes the temp files of writers that are
// gone, and only those.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	st, err := procfs.ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	me := fmt.Sprintf("%d-%d", os.Getpid(), st.StartTime)
	gone := fmt.Sprintf("%d-%d", os.Getpid(), st.StartTime+1) // this PID, another process
	files := map[string]bool{                                 // name: whether it must stay
		".img.procs-tmp-" + me + "-0123456789ab":      true,  // a live writer
		".img.procs-tmp-" + gone + "-0123456789ab":    false, // a dead one
		".other.procs-tmp-" + gone + "-0123456789ab":  false, // of another image
		".locked.procs-tmp-" + gone + "-0123456789ab": true,  // locked: a writer in another PID namespace
		".img.tmp-123456":                         true, // not ours
		"img.procs-tmp-" + gone + "-0123456789ab": true, // not a temp name
	}
	for n := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lf, err := os.Open(filepath.Join(dir, ".locked.procs-tmp-"+gone+"-0123456789ab"))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOutput(filepath.Join(dir, "img"), nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Abort()
	for n, stay := range files {
		_, err := os.Stat(filepath.Join(dir, n))
		if got := err == nil; got != stay {
			t.Errorf("after OpenOutput, %s exists = %v; want %v", n, got, stay)
		}
	}
}
