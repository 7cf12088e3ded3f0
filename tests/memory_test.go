package tests

// Feature tests: shared, private file-backed and large memory, mappings kept.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
		// Once it runs: a signal sent while it is being built waits,
		// and then may be taken by the ticker thread rather than by the
		// main one in pause(). To the main thread itself, for the same
		// reason.
		if err := waitHealthy(pid); err != nil {
			t.Fatalf("restored memhog: %v", err)
		}
		skip := len(mustLines(ld.out))
		unix.Tgkill(pid, pid, unix.SIGUSR1)
		if got := expect(t, ld.out, "verify ", skip); got != "verify ok" {
			t.Errorf("restored process checked its memory: %q; want \"verify ok\"", got)
		}
		ld.kill(t)
	}
}
