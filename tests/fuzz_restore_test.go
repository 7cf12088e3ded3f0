package tests

// A structure-aware fuzzer of procs-load, as an attacker would write one:
// it mutates the JSON of the FILES record and of any PROCESS record of
// real small images, a tree among them (numbers to edge values, strings
// long, empty or full of control bytes, arrays emptied or duplicated,
// indexes out of range, PIDs to those of other members, members
// removed), writes the image again with correct checksums, and restores
// it. Each restore must either fail with exit 125, one line on stderr and
// nothing left behind, or restore the processes (which are then killed by
// PID).
//
// TestFuzzRestore runs in make test for a bounded time; FuzzRestore is
// the longer target: go test -run '^$' -fuzz FuzzRestore -fuzztime 10m ./tests/

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

// fuzzBases are the images the fuzzer mutates: of the threads victim,
// of the features victim's timer mode, and of a tree (sh running a
// shell loop piped into cat: a pipe between two children), all run as
// nobody (every file a mutant names is opened as nobody).
var (
	fuzzOnce  sync.Once
	fuzzBases [][]byte // whole images
	fuzzNames = []string{"threads", "features", "tree"}
	fuzzErr   error
)

func fuzzImages(t *testing.T) [][]byte {
	t.Helper()
	needTools(t)
	fuzzOnce.Do(func() {
		threads := victimArgv(t, "threads")
		features := featuresBin(t)
		// The victims are built in the harness's folder: let nobody in.
		if err := os.Chmod(filepath.Dir(threads[0]), 0o755); err != nil {
			fuzzErr = err
			return
		}
		// A tree: a shell, the subshell of its loop (and its sleep),
		// and cat, a pipe between them.
		tree := []string{"/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | cat"}
		for _, argv := range [][]string{threads, {features, "timer"}, tree} {
			p := startAs(t, argv, "/tmp", &syscall.SysProcAttr{Credential: nobody})
			if _, ok := p.out.wait(lineWait, func(all []string, _ bool) bool { return len(all) >= 2 }); !ok {
				fuzzErr = fmt.Errorf("%s did not start: %s", argv[0], p.stderrText())
				return
			}
			members := treeOf(p.pid())
			img := dump(t, p.pid(), false)
			p.exited(10 * time.Second)
			waitGone(t, members) // their PIDs free for the mutants
			b, err := os.ReadFile(img)
			if err != nil {
				fuzzErr = err
				return
			}
			fuzzBases = append(fuzzBases, b)
		}
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzBases
}

// slot is a place in a JSON tree: its value, and how to change it.
type slot struct {
	key string // the member name it is under (array elements: the array's)
	get func() any
	set func(any)
	del func() // nil for array elements
}

// slots lists every place under v, itself at s.
func slots(s slot, out []slot) []slot {
	out = append(out, s)
	switch v := s.get().(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			out = slots(slot{key: k, get: func() any { return v[k] }, set: func(x any) { v[k] = x }, del: func() { delete(v, k) }}, out)
		}
	case []any:
		for i := range v {
			out = slots(slot{key: s.key, get: func() any { return v[i] }, set: func(x any) { v[i] = x }}, out)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var (
	edgeNumbers = []string{"0", "-1", "1", "2", "3", "4095", "4096", "65535", "65536", "2147483647", "-2147483648",
		"4294967295", "4294967296", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "140737488351232"}
	edgeStrings = []string{"", strings.Repeat("x", 5000), "\x1b[2J\x1b]0;title\x07\n\r\x00", "/etc/shadow", "/",
		"relative/path", "/proc/1/mem", "[vdso]", "reg", "tty", "\xff\xfe"}
	// indexKeys name numbers that index or name something else.
	indexKeys = []string{"file", "exe", "open", "num", "fd", "target", "tid", "pid", "id", "signo"}
	// pidKeys name the PID or TID of a member of the tree.
	pidKeys = []string{"pid", "ppid", "sid", "pgid", "tid", "target"}
)

// mutate changes one place of the tree at root, chosen by rng, and says
// what it did. pids are the PIDs and TIDs of the image.
func mutate(root *any, rng *rand.Rand, pids []int) string {
	all := slots(slot{key: "", get: func() any { return *root }, set: func(x any) { *root = x }}, nil)
	var s slot
	if top, ok := (*root).(map[string]any); ok && rng.IntN(2) == 0 {
		// Half the time a member of the record first, so that a few
		// huge arrays (registers, signal actions) do not take all.
		ks := sortedKeys(top)
		k := ks[rng.IntN(len(ks))]
		sub := slots(slot{key: k, get: func() any { return top[k] }, set: func(x any) { top[k] = x }, del: func() { delete(top, k) }}, nil)
		s = sub[rng.IntN(len(sub))]
	} else {
		s = all[rng.IntN(len(all))]
	}
	if s.del != nil && rng.IntN(10) == 0 {
		s.del()
		return fmt.Sprintf("removed %s", s.key)
	}
	switch v := s.get().(type) {
	case json.Number:
		var n string
		if slices.Contains(pidKeys, s.key) && len(pids) > 0 && rng.IntN(2) == 0 {
			n = strconv.Itoa(pids[rng.IntN(len(pids))] + rng.IntN(3) - 1)
		} else if slices.Contains(indexKeys, s.key) && rng.IntN(2) == 0 {
			n = strconv.Itoa(rng.IntN(40) - 3)
		} else if rng.IntN(4) == 0 {
			x, _ := v.Int64()
			n = strconv.FormatInt(x+int64(rng.IntN(3))-1, 10)
		} else {
			n = edgeNumbers[rng.IntN(len(edgeNumbers))]
		}
		s.set(json.Number(n))
		return fmt.Sprintf("%s %v -> %s", s.key, v, n)
	case string:
		x := edgeStrings[rng.IntN(len(edgeStrings))]
		s.set(x)
		return fmt.Sprintf("%s -> %.20q", s.key, x)
	case bool:
		s.set(!v)
		return fmt.Sprintf("%s -> %v", s.key, !v)
	case []any:
		switch {
		case len(v) == 0 || rng.IntN(4) == 0:
			s.set([]any{})
			return fmt.Sprintf("%s emptied", s.key)
		case rng.IntN(3) == 0:
			i := rng.IntN(len(v))
			s.set(slices.Delete(slices.Clone(v), i, i+1))
			return fmt.Sprintf("%s[%d] removed", s.key, i)
		default:
			i := rng.IntN(len(v))
			s.set(append(slices.Clone(v), deepCopy(v[i])))
			return fmt.Sprintf("%s[%d] duplicated", s.key, i)
		}
	case map[string]any:
		if rng.IntN(2) == 0 {
			s.set(nil)
			return fmt.Sprintf("%s -> null", s.key)
		}
		s.set("not an object")
		return fmt.Sprintf("%s -> a string", s.key)
	default:
		s.set(json.Number("0"))
		return fmt.Sprintf("%s -> 0", s.key)
	}
}

func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	var c any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.Decode(&c)
	return c
}

// mutant writes base with n mutations chosen by seed to a file in dir,
// and returns its path and what was changed. Each mutation changes the
// FILES record or one PROCESS record, each as likely.
func mutant(dir string, base []byte, seed uint64, n int) (string, []string, error) {
	rng := rand.New(rand.NewPCG(seed, 0x70726f6373))
	src := filepath.Join(dir, "base")
	if err := os.WriteFile(src, base, 0o600); err != nil {
		return "", nil, err
	}
	var did []string
	dst := filepath.Join(dir, "mutant")
	err := rewriteAll(src, dst, imageRewrite{edit: func(files []byte, procs [][]byte) ([]byte, [][]byte, error) {
		recs := append([][]byte{files}, procs...)
		docs := make([]any, len(recs))
		var pids []int
		for i, b := range recs {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if err := d.Decode(&docs[i]); err != nil {
				return nil, nil, err
			}
			if i > 0 {
				pids = append(pids, idsOf(docs[i])...)
			}
		}
		for range n {
			i := rng.IntN(len(docs))
			what := "FILES"
			if i > 0 {
				what = fmt.Sprintf("PROCESS %d", i-1)
			}
			did = append(did, what+": "+mutate(&docs[i], rng, pids))
		}
		for i := range docs {
			b, err := json.Marshal(docs[i])
			if err != nil {
				return nil, nil, err
			}
			recs[i] = b
		}
		return recs[0], recs[1:], nil
	}})
	return dst, did, err
}

// idsOf returns the pid and the tids of a decoded PROCESS record.
func idsOf(doc any) []int {
	var ids []int
	p, _ := doc.(map[string]any)
	add := func(v any) {
		if n, ok := v.(json.Number); ok {
			if x, err := n.Int64(); err == nil {
				ids = append(ids, int(x))
			}
		}
	}
	add(p["pid"])
	ths, _ := p["threads"].([]any)
	for _, th := range ths {
		if m, ok := th.(map[string]any); ok {
			add(m["tid"])
		}
	}
	return ids
}

// restoreMutant runs procs-load -d on the image at path and checks what
// a restore of any image must hold. It returns "refused" or "restored".
func restoreMutant(t *testing.T, path string, did []string) string {
	t.Helper()
	old := map[int]bool{}
	for _, p := range descendants() {
		old[p.pid] = true
	}
	dir := filepath.Dir(path)
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	// --stdio=inherit: the victims' stdout and stderr were files of the
	// test's, closed to nobody.
	cmd := exec.Command(filepath.Join(binDir, "procs-load"), "-d", "--stdio=inherit", path)
	cmd.Dir = "/tmp"
	cmd.Stdout, cmd.Stderr = stdout, stderr // files: Wait waits for no pipe a restored process holds
	t0 := time.Now()
	runErr := runTimeout(cmd, 10*time.Second)
	took := time.Since(t0)
	outB, _ := os.ReadFile(stdout.Name())
	errB, _ := os.ReadFile(stderr.Name())
	msg := strings.TrimSpace(string(errB))
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	fail := func(format string, args ...any) {
		t.Errorf("mutations %q: "+format, append([]any{did}, args...)...)
	}
	if took >= 10*time.Second {
		fail("procs-load hung (killed after %v); stderr: %s", took.Round(time.Millisecond), msg)
	}
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		fail("procs-load panicked: %s", msg)
	}
	for _, r := range msg {
		if r < 0x20 && r != '\n' || r == 0x7f {
			fail("stderr holds control character %#x: %q", r, msg)
			break
		}
	}
	outcome := "refused"
	switch code {
	case 125:
		// One error line (and maybe a hint), after warnings if the
		// restore went some way.
		var ls []string
		for _, l := range strings.Split(msg, "\n") {
			if !strings.HasPrefix(l, "procs-load: warning: ") {
				ls = append(ls, l)
			}
		}
		if len(ls) == 0 || !strings.HasPrefix(ls[0], "procs-load: ") || len(ls) > 2 ||
			(len(ls) == 2 && !strings.HasPrefix(ls[1], "procs-load: hint: ")) {
			fail("procs-load stderr = %q; want one error line", msg)
		}
		if len(outB) > 0 {
			fail("procs-load failed and printed %q", outB)
		}
	case 0:
		outcome = "restored"
		line, _, _ := strings.Cut(string(outB), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 0 {
			fail("procs-load -d exit 0 printed %q; want a PID", outB)
			break
		}
	default:
		fail("procs-load exit %d (%v); want 0 or 125; stderr: %s", code, runErr, msg)
	}
	// Nothing else left behind: no process, no zombie.
	var left []pinfo
	for _, p := range descendants() {
		if !old[p.pid] {
			left = append(left, p)
		}
	}
	if outcome == "restored" {
		// The restored processes, and what they started or left (a
		// member whose parent died came to us): killed, but for a
		// stub of procs-load's, which no restore leaves.
		for _, p := range left {
			if p.comm == "exe" || p.comm == "procs-load-stub" {
				fail("a restore left a stub of procs-load's: %v (stderr: %s)", p, msg)
			}
			if startTime(p.pid) == p.start {
				unix.Kill(p.pid, unix.SIGKILL)
			}
		}
		for _, p := range left {
			killChecked(t, p.pid, p.start)
		}
		left = nil
	}
	if len(left) > 0 {
		fail("left behind: %v (stderr: %s)", left, msg)
		for _, p := range left {
			killChecked(t, p.pid, p.start)
		}
	}
	return outcome
}

// TestFuzzRestore restores mutants of the base images for a bounded
// time (3 s with -short, else 20 s), the same ones every run.
func TestFuzzRestore(t *testing.T) {
	bases := fuzzImages(t)
	noLeftovers(t)
	budget := 20 * time.Second
	if testing.Short() {
		budget = 3 * time.Second
	}
	count := map[string]int{}
	deadline := time.Now().Add(budget)
	for seed := uint64(1); time.Now().Before(deadline) && !t.Failed(); seed++ {
		dir := t.TempDir()
		path, did, err := mutant(dir, bases[seed%uint64(len(bases))], seed, 1+int(seed%3))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		count[fuzzNames[seed%uint64(len(bases))]+" "+restoreMutant(t, path, did)]++
		os.RemoveAll(dir)
	}
	t.Logf("mutants: %v", count)
}

// FuzzRestore is TestFuzzRestore for as long as go test -fuzz runs.
func FuzzRestore(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, uint8(seed%4))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		bases := fuzzImages(t)
		path, did, err := mutant(t.TempDir(), bases[seed%uint64(len(bases))], seed, 1+int(n%6))
		if err != nil {
			t.Fatal(err)
		}
		restoreMutant(t, path, did)
	})
}
