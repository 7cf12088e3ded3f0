package tests

// Lazy restores (procs-load --lazy): the process runs before its
// private anonymous memory is all in; the victim (livemem) checks its
// own memory once it runs.

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"procs/format"
)

// feed writes image to ld's stdin, then closes it: all of it, or with
// hold >= 0 the first hold bytes, then, once the restored livemem runs,
// the bytes up to cut (to the end when cut is negative).
func feed(t *testing.T, ld *load, image string, hold, cut int64) {
	t.Helper()
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if cut < 0 {
		cut = int64(len(b))
	}
	go func() {
		defer ld.stdin.Close()
		if hold < 0 {
			ld.stdin.Write(b)
			return
		}
		ld.stdin.Write(b[:hold])
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if pids := named("livemem"); len(pids) == 1 && untraced(pids[0]) {
				break
			}
		}
		ld.stdin.Write(b[hold:cut])
	}()
}

// TestLazyPipe restores a plain image and a live one with --lazy from a
// pipe: the restored victim finds every page as it last wrote it.
func TestLazyPipe(t *testing.T) {
	needTools(t)
	for _, live := range []bool{false, true} {
		name := "plain"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) {
			noLeftovers(t)
			p := startLivemem(t, "48", "2", "0", "2")
			time.Sleep(300 * time.Millisecond)
			var img string
			if live {
				img, _ = liveDump(t, p.pid())
			} else {
				img = dump(t, p.pid(), false)
			}
			if !p.exited(10 * time.Second) {
				t.Fatal("the victim still runs after procs-dump")
			}
			ld := startLoad(t, "", "--lazy", "-v")
			feed(t, ld, img, -1, -1)
			pid := ld.find(t, "livemem", 20*time.Second)
			checkLines(t, pid, ld.out, 2, false)
			if !strings.Contains(ld.stderrText(), "the rest comes as the process runs") {
				t.Errorf("procs-load --lazy -v: %q; want the lazy start said", ld.stderrText())
			}
		})
	}
}

// lastPages is the offset of the payload of the image's last PAGES
// record, and its length.
func lastPages(t *testing.T, path string) (int64, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var at, n int64 = -1, 0
	for off := int64(24); off+20 <= int64(len(b)); {
		typ := format.RecordType(binary.LittleEndian.Uint16(b[off:]))
		stored := int64(binary.LittleEndian.Uint32(b[off+4:]))
		if typ == format.TypePages {
			at, n = off+20, stored
		}
		if typ == format.TypeEnd {
			break
		}
		off += 20 + stored
	}
	if at < 0 {
		t.Fatal("the image has no PAGES record")
	}
	return at, n
}

// lazyTail copies image with a PAGES record of zeros added at the
// lowest page of the stack: a record that the process runs at, before
// the stack's own record, which a test can then damage or cut (the
// pages of livemem's memory lie below its libraries, and come before
// it runs from a pipe).
func lazyTail(t *testing.T, image string) string {
	t.Helper()
	for _, m := range decodeTree(t, image).Procs[0].Maps {
		if m.Name == "[stack]" {
			return craftImage(t, image, imageRewrite{pages: []pageRun{{task: 0, addr: m.Start, data: make([]byte, format.PageSize)}}})
		}
	}
	t.Fatal("the image has no [stack]")
	return ""
}

// TestLazyFails restores with --lazy an image whose last page record is
// damaged, and one whose stream is cut in its last page record: the
// process, once it ran, is killed; procs-load says so in one line and
// exits 125, and nothing is left.
func TestLazyFails(t *testing.T) {
	needTools(t)
	p := startLivemem(t, "16", "1", "0", "2")
	time.Sleep(300 * time.Millisecond)
	img := lazyTail(t, dump(t, p.pid(), false))
	p.exited(10 * time.Second)
	at, n := lastPages(t, img)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[at+16+n/2] ^= 0xff // a byte of memory, its checksum not made right
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		image string
		cut   int64
	}{{"bad-page", bad, -1}, {"cut", img, at + n/2}} {
		// The process runs before the last record comes.
		t.Run(tc.name, func(t *testing.T) {
			noLeftovers(t)
			ld := startLoad(t, "", "--lazy")
			feed(t, ld, tc.image, at-20, tc.cut)
			if !ld.exited(30 * time.Second) {
				t.Fatal("procs-load --lazy still runs")
			}
			if code := ld.exitCode(); code != 125 {
				t.Errorf("procs-load --lazy exit %d; want 125", code)
			}
			msg := ld.stderrText()
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "procs-load: ") {
				t.Errorf("procs-load --lazy said %q; want one line", msg)
			}
			// The record is past the lazy start for this victim: the
			// process ran, and was killed.
			if !strings.Contains(msg, "was killed") {
				t.Errorf("procs-load --lazy said %q; want the process said killed", msg)
			}
			if pids := named("livemem"); len(pids) > 0 {
				t.Errorf("livemem %v still runs", pids)
			}
		})
	}
}
