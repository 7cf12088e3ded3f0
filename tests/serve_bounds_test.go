package tests

// procs-serve under abuse: decompression bombs and stalled uploads with
// its memory measured, two servers on one state directory, two receivers
// of one image, and names full of terminal escapes.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"procs/format"
	"procs/pkg/safetext"
	"procs/pkg/server"
	"procs/pkg/server/servertest"
)

// rawImage assembles an image record by record, checksums included, as
// an attacker would: nothing in it need make sense to a restorer.
type rawImage struct {
	b                            []byte
	records, pageBytes, rawBytes uint64
	chain                        uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newRawImage(comm string) *rawImage {
	h := []byte(format.Magic)
	h = binary.LittleEndian.AppendUint16(h, format.MajorVersion)
	h = binary.LittleEndian.AppendUint16(h, format.MinorVersion)
	h = binary.LittleEndian.AppendUint16(h, format.MachineX8664)
	h = binary.LittleEndian.AppendUint16(h, 12)
	h = binary.LittleEndian.AppendUint32(h, 0)
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	r := &rawImage{b: h}
	return r.rec(format.TypeInfo, format.None, []byte(fmt.Sprintf(`{"comm":%q,"pid":1,"host":"x"}`, comm)), 0)
}

// rec appends a record of type t whose stored payload is p, raw bytes
// long once decompressed (0: len(p)).
func (r *rawImage) rec(t format.RecordType, c format.Compression, p []byte, raw int) *rawImage {
	if raw == 0 {
		raw = len(p)
	}
	h := binary.LittleEndian.AppendUint16(nil, uint16(t))
	h = binary.LittleEndian.AppendUint16(h, uint16(c))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(p)))
	h = binary.LittleEndian.AppendUint32(h, uint32(raw))
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(p, castagnoli))
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	if t != format.TypeEnd {
		r.records++
		r.rawBytes += uint64(raw)
		r.chain = crc32.Update(r.chain, castagnoli, h[16:20])
	}
	r.b = append(append(r.b, h...), p...)
	return r
}

func (r *rawImage) end() []byte {
	p := binary.LittleEndian.AppendUint64(nil, r.records)
	p = binary.LittleEndian.AppendUint64(p, r.pageBytes)
	p = binary.LittleEndian.AppendUint64(p, r.rawBytes)
	p = binary.LittleEndian.AppendUint32(p, r.chain)
	return r.rec(format.TypeEnd, format.None, p, 0).b
}

// xzZeros is n zero bytes compressed with xz and an LZMA2 dictionary of
// dict bytes.
func xzZeros(t *testing.T, n, dict int) []byte {
	var buf bytes.Buffer
	w, err := xz.WriterConfig{DictCap: dict}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for ; n > 0; n -= len(zero) {
		w.Write(zero[:min(n, len(zero))])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memKiB returns VmRSS and VmHWM of process pid, in KiB.
func memKiB(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	st := procStatus(pid)
	field := func(k string) int {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(st[k]), " kB"))
		if err != nil {
			t.Fatalf("/proc/%d/status %s = %q", pid, k, st[k])
		}
		return n
	}
	return field("VmRSS"), field("VmHWM")
}

// boundsServer starts procs-serve on a fresh loopback port and state
// directory.
func boundsServer(t *testing.T, extra ...string) (addr, dir string, s *serverProc, h host) {
	h = host{bin: serveBins(t)}
	addr = freePort(t)
	dir = t.TempDir()
	s = startServer(t, h, h, addr, dir, extra...)
	return addr, dir, s, h
}

// post uploads body and returns the status.
func post(url string, body []byte) (int, string, error) {
	resp, err := http.Post(url+"/v1/images", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), nil
}

// Memory bounds of procs-serve with its default --max-uploads (8),
// stated: its peak (VmHWM) under 16 bombs at once, or 200 stalled
// uploads, and its resident memory once they are over. Before the
// bounds the bombs took it to gigabytes.
const (
	bombPeakMiB  = 176
	stallPeakMiB = 96
	afterMiB     = 48
)

// TestServeBombs uploads, 16 at once, images of 20
// xz-compressed 64 MiB records in a few hundred KB each: records with the
// 8 MiB dictionary a writer may use (a second PROCESS record is then
// refused), and records asking for a 64 MiB one (refused at the block
// header). The server's peak memory stays under bombPeakMiB, it goes back
// under afterMiB, and it answers normally afterwards.
func TestServeBombs(t *testing.T) {
	addr, _, s, h := boundsServer(t)
	url := "http://" + addr
	pid := s.cmd.Process.Pid
	rss0, _ := memKiB(t, pid)
	t0 := time.Now()
	var bombs [][]byte
	for _, z := range [][]byte{
		xzZeros(t, 64<<20, 8<<20),
		xzZeros(t, 1<<20, 64<<20), // refused before it is decompressed
	} {
		img := newRawImage("bomb")
		for range 20 {
			img.rec(format.TypeProcess, format.XZ, z, 64<<20)
		}
		bombs = append(bombs, img.end())
	}
	t.Logf("bombs of %d and %d bytes; server at %d KiB", len(bombs[0]), len(bombs[1]), rss0)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := post(url, bombs[i%2])
			if err != nil || code != http.StatusBadRequest && code != http.StatusServiceUnavailable {
				t.Errorf("bomb %d = %d %s, %v; want 400 or 503", i, code, safetext.Clean(body, 200), err)
			}
		}()
	}
	wg.Wait()
	t.Logf("bombs answered after %v", time.Since(t0).Round(time.Millisecond))
	_, hwm := memKiB(t, pid)
	time.Sleep(2 * time.Second) // the server gives memory back a second after a burst
	rss, _ := memKiB(t, pid)
	t.Logf("procs-serve: VmHWM %d KiB, VmRSS %d KiB after", hwm, rss)
	if hwm > bombPeakMiB<<10 {
		t.Errorf("procs-serve peaked at %d MiB under the bombs; want at most %d MiB", hwm>>10, bombPeakMiB)
	}
	if rss > afterMiB<<10 {
		t.Errorf("procs-serve holds %d MiB after the bombs; want at most %d MiB", rss>>10, afterMiB)
	}
	healthyServer(t, h, addr)
}

// healthyServer checks that the server takes, lists and gives back an
// image.
func healthyServer(t *testing.T, h host, addr string) {
	t.Helper()
	img := servertest.Image(server.Meta{Comm: "after", PID: 7}, 64<<10, 9)
	code, body, err := post("http://"+addr, img)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("upload after the abuse = %d %s, %v; want 201", code, body, err)
	}
	out := h.must(t, "procs", "list", "-s", addr)
	if !strings.Contains(out, "after") {
		t.Errorf("procs list after the abuse:\n%s\nwant the image", out)
	}
}

// TestServeStalledUploads opens 200 uploads that send half their body
// and stop. 8 (--max-uploads) run and are cut after --read-timeout, 8
// wait for their places and are cut in turn, the rest are answered 503
// at once; nothing is left in the state directory, and the server's
// memory stays under stallPeakMiB meanwhile.
func TestServeStalledUploads(t *testing.T) {
	addr, dir, s, h := boundsServer(t, "--read-timeout=2", "--max-uploads=8")
	pid := s.cmd.Process.Pid
	img := servertest.Image(server.Meta{Comm: "stall"}, 4<<20, 3)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(img))
		c.Write(img[:len(img)/2])
	}
	start := time.Now()
	answers := map[string]int{}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [64]byte
		n, _ := c.Read(b[:])
		line, _, _ := strings.Cut(string(b[:n]), "\r\n")
		answers[line]++
	}
	t.Logf("answers after %v: %v", time.Since(start).Round(time.Millisecond), answers)
	// 8 run and 8 wait for a place; the rest are turned away at once.
	// On a loaded machine a running one may be cut while later ones are
	// still arriving, and give its place to one more.
	if n400, n503 := answers["HTTP/1.1 400 Bad Request"], answers["HTTP/1.1 503 Service Unavailable"]; n400+n503 != 200 || n400 < 16 || n400 > 40 {
		t.Errorf("answers to 200 stalled uploads = %v; want 16 (a few more on a loaded machine) times 400, the rest 503", answers)
	}
	// That every one was answered, none left to the 10 s deadline of
	// the reads, says the stalled ones were cut; how soon (about twice
	// --read-timeout) is a timing, which a loaded machine stretches.
	_, hwm := memKiB(t, pid)
	t.Logf("procs-serve: VmHWM %d KiB", hwm)
	if hwm > stallPeakMiB<<10 {
		t.Errorf("procs-serve peaked at %d MiB under stalled uploads; want at most %d MiB", hwm>>10, stallPeakMiB)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(stateFiles(t, dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if f := stateFiles(t, dir); len(f) > 0 {
		t.Errorf("state directory after the stalled uploads: %v; want empty", f)
	}
	healthyServer(t, h, addr)
}

// TestServeLockedDir: a second procs-serve on a state directory in use
// refuses to start, exits 1 and names the first's PID.
func TestServeLockedDir(t *testing.T) {
	_, dir, s, h := boundsServer(t)
	addr2 := freePort(t)
	_, errs, code := h.run(t, nil, "procs-serve", "-l", addr2, "-d", dir)
	want := fmt.Sprintf("state directory %s is in use by another procs-serve (pid %d)", dir, s.cmd.Process.Pid)
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("second procs-serve on %s: exit %d, %q; want 1 and %q", dir, code, errs, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, server.LockName)); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(s.cmd.Process.Pid) {
		t.Errorf("lock file holds %q, %v; want the first server's pid", b, err)
	}
}

// TestServeTwoReceivers: two procs-fetch --delete of one image at once:
// one writes it, the other fails with "already taken"; the image is then
// gone. Two waiting for "next" share two images, one each.
func TestServeTwoReceivers(t *testing.T) {
	addr, _, _, h := boundsServer(t)
	img := writeImage(t, t.TempDir(), "img", server.Meta{Comm: "one"}, 1<<20, 4)
	id := strings.TrimSpace(h.must(t, "procs", "send", img, "-s", addr))
	out := t.TempDir()
	type result struct {
		stderr string
		code   int
	}
	res := make([]result, 2)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, res[i].stderr, res[i].code = h.run(t, nil, "procs-fetch", "-s", addr, "--delete", "-o", filepath.Join(out, strconv.Itoa(i)), id)
		}()
	}
	wg.Wait()
	if (res[0].code == 0) == (res[1].code == 0) {
		t.Fatalf("two receivers of %s: exit %d (%s) and %d (%s); want one success", id, res[0].code, res[0].stderr, res[1].code, res[1].stderr)
	}
	loser := res[0]
	if loser.code == 0 {
		loser = res[1]
	}
	// Already taken, or gone when the winner had committed its claim
	// before the loser asked.
	if loser.code != 1 || !strings.Contains(loser.stderr, "image "+id+" already taken by another receiver") && !strings.Contains(loser.stderr, "no image") {
		t.Errorf("losing receiver: exit %d, %q; want 1, already taken (or no image)", loser.code, loser.stderr)
	}
	files, _ := os.ReadDir(out)
	if len(files) != 1 {
		t.Errorf("receivers wrote %d files; want 1", len(files))
	}
	if got := h.must(t, "procs", "list", "-s", addr); strings.Contains(got, id) {
		t.Errorf("procs list after the receivers:\n%s\nwant %s gone", got, id)
	}

	// Two receivers of next, two images: one each.
	var outs [2]string
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], res[i].stderr, res[i].code = h.run(t, nil, "procs-fetch", "-s", addr, "--delete", "-o", filepath.Join(out, "next"+strconv.Itoa(i)), "next")
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for i := range 2 {
		p := writeImage(t, t.TempDir(), "img", server.Meta{Comm: "n" + strconv.Itoa(i)}, 64<<10, byte(i))
		h.must(t, "procs", "send", p, "-s", addr)
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 {
			t.Errorf("receiver %d of next: exit %d, %s", i, r.code, r.stderr)
		}
	}
	if got := h.must(t, "procs", "list", "-s", addr); strings.Count(got, "\n") != 1 {
		t.Errorf("procs list after two receivers of next:\n%s\nwant no image", got)
	}
}

// TestServeListEscapes: an image whose name and host are terminal
// escapes is listed with them escaped: nothing reaches the terminal that
// could clear it, retitle it or forge a row.
func TestServeListEscapes(t *testing.T) {
	addr, _, _, h := boundsServer(t)
	evil := "x\x1b[2J\x1b]0;owned\x07\r\nforged\tline\u202e"
	img := servertest.Image(server.Meta{Comm: evil, Host: evil, PID: 3}, 4096, 1)
	code, body, err := post("http://"+addr, img)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("upload = %d %s, %v", code, body, err)
	}
	out := h.must(t, "procs", "list", "-s", addr)
	for _, c := range out {
		if c < ' ' && c != '\n' || c == 0x7f || c == '\u202e' {
			t.Fatalf("procs list printed control character %q:\n%q", c, out)
		}
	}
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, `x\x1b[2J\x1b]0;owned\a\r\nforged\tline\u202e`) {
		t.Errorf("procs list =\n%q\nwant two lines, the name escaped", out)
	}
}

// TestServeTwoReceiversRestore: two "procs receive ID -d" of the image
// of a real process at once: one restores it, the other exits 125 with
// "already taken", and the image leaves the server once the process
// runs.
func TestServeTwoReceiversRestore(t *testing.T) {
	setup(t)
	addr, _, _, h := boundsServer(t)
	h.env = []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}
	dir := t.TempDir()
	v := startCounter(t, h, dir, "twice")
	id := sendWatched(t, h, v, addr, "")
	rs := []*receiver{receive(t, h, dir, id, "-s", addr, "-d"), receive(t, h, dir, id, "-s", addr, "-d")}
	var won []int
	for i, r := range rs {
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			t.Fatalf("procs receive %d still runs after 20 s", i)
		}
		out, _ := os.ReadFile(r.out)
		errs, _ := os.ReadFile(r.out + ".err")
		code := r.cmd.ProcessState.ExitCode()
		switch {
		case code == 0:
			// The PID, then what the restored counter prints there.
			first, _, _ := strings.Cut(string(out), "\n")
			pid, err := strconv.Atoi(first)
			if err != nil {
				t.Fatalf("procs receive -d printed %q; want a PID", out)
			}
			t.Cleanup(func() { reap(pid) })
			won = append(won, pid)
		case code != 125 || !strings.Contains(string(errs), "image "+id+" already taken by another receiver"):
			t.Errorf("losing procs receive: exit %d, %q; want 125, already taken", code, errs)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d receivers restored %s; want 1", len(won), id)
	}
	waitFor(t, 10*time.Second, func() bool { return !listsPID(h, addr, "", v.pid) }, "%s to leave the server once the process runs", id)
}
