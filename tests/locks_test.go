package tests

// File locks held by the processes of a tree: flock, POSIX (fcntl) and
// OFD locks, on ranges, on a deleted file and a memfd, and sqlite's,
// taken again before the tree runs; a lock held outside at restore time
// refuses the restore, naming the file and the holder; crafted locks.

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// locksPy holds an flock on a, POSIX locks on b (write 5-14, read from 50
// to the end), an OFD write lock on c (3-6), a POSIX write lock on a
// deleted file (0-9) and an flock on a memfd; its child holds a POSIX
// read lock on b (20-21). Each checks the other's locks with F_GETLK
// every 50 ms and reports "parent N ok=1", "child N ok=1" in log.
const locksPy = `
import fcntl, os, struct, time
OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
def report(line):
    with open("log", "a") as f:
        f.write(line + "\n")
def getlk(f, start, n):
    r = fcntl.fcntl(f, fcntl.F_GETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, start, n, 0))
    typ, _, _, _, pid = struct.unpack("hhqqi4x", r)
    return typ, pid
a = open("a", "w+"); fcntl.flock(a, fcntl.LOCK_EX)
b = open("b", "w+"); b.write("x" * 100); b.flush()
fcntl.lockf(b, fcntl.LOCK_EX, 10, 5)
fcntl.lockf(b, fcntl.LOCK_SH, 0, 50)
c = open("c", "w+")
fcntl.fcntl(c, OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 3, 4, 0))
d = open("d", "w+"); fcntl.lockf(d, fcntl.LOCK_EX, 10, 0); os.unlink("d")
m = os.memfd_create("locked"); fcntl.flock(m, fcntl.LOCK_SH)
kid = os.fork()
if kid == 0:
    k = open("b", "r")
    fcntl.lockf(k, fcntl.LOCK_SH, 2, 20)
    n = 0
    while True:
        n += 1
        typ, pid = getlk(k, 5, 10)
        report("child %d ok=%d" % (n, int(typ == fcntl.F_WRLCK and pid == os.getppid())))
        time.sleep(0.05)
while getlk(b, 20, 2)[0] != fcntl.F_RDLCK:
    time.sleep(0.01)
n = 0
while True:
    n += 1
    typ, pid = getlk(b, 20, 2)
    report("parent %d ok=%d" % (n, int(typ == fcntl.F_RDLCK and pid == kid)))
    time.sleep(0.05)
`

// startLocks starts locksPy in a new folder and returns its PID and
// folder once both processes report.
func startLocks(t *testing.T) (int, string) { return startParentChild(t, locksPy) }

// startParentChild starts python program prog in a new folder and
// returns its PID and folder once its two processes report.
func startParentChild(t *testing.T, prog string) (int, string) {
	t.Helper()
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "err", py, "-c", prog)
	waitReports(t, dir, []string{"parent", "child"}, 3)
	return pid, dir
}

// waitReports waits until the log of dir has n more lines of each stream
// than it had, and checks every line of it.
func waitReports(t *testing.T, dir string, streams []string, n int) {
	t.Helper()
	log := filepath.Join(dir, "log")
	read := func() []string {
		b, _ := os.ReadFile(log)
		return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
	}
	skip := len(read())
	waitFor(t, 20*time.Second, func() bool { return haveLines(streams, n, skip)(read(), false) }, "%d more reports of %v in %s", n, streams, log)
	reportsRight(t, read())
	if b, _ := os.ReadFile(filepath.Join(dir, "err")); len(b) > 0 {
		t.Fatalf("the program complained: %s", b)
	}
}

// getlk asks, through a file of its own, who holds a lock on path that a
// write lock on [start, start+n) would conflict with (cmd: F_GETLK or
// F_OFD_GETLK), and says it as "TYPE PID START LEN" or "none".
func getlk(t *testing.T, path string, cmd int, start, n int64) string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: start, Len: n}
	if err := unix.FcntlFlock(f.Fd(), cmd, &lk); err != nil {
		t.Fatalf("fcntl(%s, %d): %v", path, cmd, err)
	}
	if lk.Type == unix.F_UNLCK {
		return "none"
	}
	typ := map[int16]string{unix.F_RDLCK: "read", unix.F_WRLCK: "write"}[lk.Type]
	return fmt.Sprintf("%s %d %d %d", typ, lk.Pid, lk.Start, lk.Len)
}

// flocked says whether path is flocked so that a shared flock cannot be
// had (write) or an exclusive one (read), or "none".
func flocked(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return "write"
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return "read"
	}
	return "none"
}

// flockHolder is what /proc/locks says of the flock on path: "WRITE
// PID" (the type, the process that took it), or "none".
func flockHolder(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	holder := "none"
	b, _ := os.ReadFile("/proc/locks")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[1] == "FLOCK" && strings.HasSuffix(f[5], fmt.Sprintf(":%d", st.Ino)) {
			holder = f[3] + " " + f[4]
		}
	}
	return holder
}

// procFD is the /proc/PID/fd/N link of pid's fd whose target has suffix.
func procFD(t *testing.T, pid int, suffix string) string {
	t.Helper()
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())
		if l, _ := os.Readlink(p); strings.HasSuffix(l, suffix) {
			return p
		}
	}
	t.Fatalf("process %d has no fd on *%s", pid, suffix)
	return ""
}

// locksView is what other processes see of locksPy's locks (pid the
// parent, kid the child): F_GETLK, F_OFD_GETLK, flock, and /proc/locks'
// holder of the flock.
func locksView(t *testing.T, dir string, pid, kid int) string {
	t.Helper()
	in := func(name string) string { return filepath.Join(dir, name) }
	return strings.Join([]string{
		"a flock: " + flocked(t, in("a")) + " held by " + flockHolder(t, in("a")),
		"b 5-14: " + getlk(t, in("b"), unix.F_GETLK, 5, 10),
		"b 50-: " + getlk(t, in("b"), unix.F_GETLK, 50, 0),
		"b 20-21: " + getlk(t, in("b"), unix.F_GETLK, 20, 2),
		"b 0-4: " + getlk(t, in("b"), unix.F_GETLK, 0, 5),
		"c 3-6 OFD: " + getlk(t, in("c"), unix.F_OFD_GETLK, 0, 10),
		"deleted d: " + getlk(t, procFD(t, pid, "/d (deleted)"), unix.F_GETLK, 0, 0),
		"memfd flock: " + flocked(t, procFD(t, pid, "memfd:locked (deleted)")),
		fmt.Sprintf("parent %d child %d", pid, kid),
	}, "\n")
}

// wantLocksView is locksView of locksPy's own locks.
func wantLocksView(pid, kid int) string {
	return strings.Join([]string{
		fmt.Sprintf("a flock: write held by WRITE %d", pid),
		fmt.Sprintf("b 5-14: write %d 5 10", pid),
		fmt.Sprintf("b 50-: read %d 50 0", pid),
		fmt.Sprintf("b 20-21: read %d 20 2", kid),
		"b 0-4: none",
		"c 3-6 OFD: write -1 3 4",
		fmt.Sprintf("deleted d: write %d 0 10", pid),
		"memfd flock: read",
		fmt.Sprintf("parent %d child %d", pid, kid),
	}, "\n")
}

// moveLocks moves the tree of pid as mode says: "kill" (dumped, killed,
// restored), "keep" (dumped with -K, then killed, then restored),
// "detach" (dumped, killed, restored with procs-load -d, which leaves at
// once), "live" (dumped with --live, killed, restored); it returns once
// every process of it is back and running. The tree works in dir, and
// reports in its file log: with -K, what the original reported after the
// dump goes to log.original.
func moveLocks(t *testing.T, pid int, dir, mode string) {
	t.Helper()
	m := move{keep: mode == "keep", live: mode == "live", detach: mode == "detach"}
	if m.keep {
		m.between = func(string) {
			// What the original wrote after the dump is not the copy's.
			os.Rename(filepath.Join(dir, "log"), filepath.Join(dir, "log.original"))
		}
	}
	img := moveTree(t, pid, m)
	n := len(showImage(t, img).Processes)
	deadline := time.Now().Add(20 * time.Second)
	for len(treeOf(pid)) != n || !untraced(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the tree of %d is not back: %v of %d processes", pid, treeOf(pid), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLocks: a parent and its child holding flock, POSIX and OFD locks
// on ranges, on a deleted file and on a memfd, moved (also live): other processes see
// the same locks held by the restored processes (F_GETLK, F_OFD_GETLK,
// flock, /proc/locks), and the two go on seeing each other's.
func TestLocks(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	for _, mode := range []string{"kill", "keep", "detach", "live"} {
		t.Run(mode, func(t *testing.T) {
			pid, dir := startLocks(t)
			kid := treeOf(pid)[1].pid
			want := wantLocksView(pid, kid)
			if got := locksView(t, dir, pid, kid); got != want {
				t.Fatalf("before the dump, other processes see:\n%s\nwant\n%s", got, want)
			}
			moveLocks(t, pid, dir, mode)
			if got := locksView(t, dir, pid, kid); got != want {
				t.Errorf("after the restore (%s), other processes see:\n%s\nwant, as before:\n%s", mode, got, want)
			}
			waitReports(t, dir, []string{"parent", "child"}, 5)
		})
	}
}

// holderPy takes a lock and says "held": argv[1] is the file, argv[2]
// the kind (posix, ofd, flock).
const holderPy = `
import fcntl, struct, sys, time
f = open(sys.argv[1], "r+")
if sys.argv[2] == "flock":
    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
else:
    cmd = fcntl.F_SETLK if sys.argv[2] == "posix" else getattr(fcntl, "F_OFD_SETLK", 37)
    fcntl.fcntl(f, cmd, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, 5, 1, 0))
print("held", flush=True)
time.sleep(600)
`

// TestLocksHeldOutside: while another process holds a lock that
// conflicts with one of the image's (a POSIX, an OFD, an flock), the
// restore is refused naming the file and the holder, and leaves nothing;
// once the holder is gone, it restores.
func TestLocksHeldOutside(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	pid, dir := startLocks(t)
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	for _, tc := range []struct{ file, kind string }{{"b", "posix"}, {"c", "ofd"}, {"a", "flock"}} {
		h := start(t, []string{py, "-c", holderPy, filepath.Join(dir, tc.file), tc.kind}, dir)
		expect(t, h.out, "held", 0)
		msg := refused(t, loadCmd(img), "python3", strconv.Quote(filepath.Join(dir, tc.file)), fmt.Sprintf("locked by process %d (", h.pid()), "outside the image")
		t.Logf("%s lock held outside: %s", tc.kind, msg)
		h.cmd.Process.Kill()
		if !h.exited(10 * time.Second) {
			t.Fatal("the holder did not die")
		}
	}
	startLoad(t, img)
	t.Cleanup(func() { killTree(t, pid) })
	waitFor(t, 20*time.Second, func() bool { return len(treeOf(pid)) == 2 && untraced(pid) }, "the tree to be restored once nobody holds its files")
	waitReports(t, dir, []string{"parent", "child"}, 3)
}

// TestLocksKeepClone: a copy restored beside its original, which still
// runs and holds its locks (procs-dump -K), would hold the same locks:
// the restore is refused, naming the original as the holder with a hint,
// and the original goes on with its locks.
func TestLocksKeepClone(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	pid, dir := startLocks(t)
	kid := treeOf(pid)[1].pid
	img := dump(t, pid, true)
	cmd := loadCmd(img)
	msg := refused(t, cmd, "python3", fmt.Sprintf("locked by process %d (", pid), "outside the image")
	if !strings.Contains(msg, "hint: process "+strconv.Itoa(pid)+" has the PID the image's process had") || !strings.Contains(msg, "procs-dump -K") {
		t.Errorf("refusal %q; want a hint that the original still runs", msg)
	}
	if got, want := locksView(t, dir, pid, kid), wantLocksView(pid, kid); got != want {
		t.Errorf("the original's locks after the refused copy:\n%s\nwant\n%s", got, want)
	}
	waitReports(t, dir, []string{"parent", "child"}, 3)
}

// sqlitePy inserts rows in an exclusive transaction, reports, waits for
// the file "go", commits and reports the rows it sees.
const sqlitePy = `
import os, sqlite3, time
def report(line):
    with open("log", "a") as f:
        f.write(line + "\n")
db = sqlite3.connect("db", isolation_level=None, timeout=0)
db.execute("begin exclusive")
for i in range(100):
    db.execute("insert into t values (?)", (i,))
n = 0
while not os.path.exists("go"):
    n += 1
    report("txn %d ok=1" % n)
    time.sleep(0.05)
db.execute("commit")
rows = db.execute("select count(*) from t").fetchone()[0]
report("txn %d committed rows=%d ok=%d" % (n + 1, rows, int(rows == 100)))
while True:
    time.sleep(1)
`

// sqlite runs the sqlite3 command-line program on the database of dir and
// returns its output, errors included.
func sqlite(t *testing.T, dir, sql string) string {
	t.Helper()
	out, _ := exec.Command("sqlite3", filepath.Join(dir, "db"), sql).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// TestLocksSqlite: python's sqlite3 in the middle of an exclusive
// transaction, moved: the sqlite3 program outside sees the database
// locked before the dump and after the restore, and the restored one
// commits.
func TestLocksSqlite(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("no sqlite3 here (tests/deps.sh installs it)")
	}
	py := victimArgv(t, "python")[0]
	for _, mode := range []string{"kill", "keep", "detach"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if out := sqlite(t, dir, "create table t (x integer)"); out != "" {
				t.Fatalf("sqlite3: %s", out)
			}
			pid := startTree(t, dir, "err", py, "-c", sqlitePy)
			waitReports(t, dir, []string{"txn"}, 3)
			if out := sqlite(t, dir, "select count(*) from t"); !strings.Contains(out, "database is locked") {
				t.Fatalf("sqlite3 outside, in the transaction: %q; want the database locked", out)
			}
			moveLocks(t, pid, dir, mode)
			waitReports(t, dir, []string{"txn"}, 3)
			if out := sqlite(t, dir, "select count(*) from t"); !strings.Contains(out, "database is locked") {
				t.Fatalf("sqlite3 outside, after the restore: %q; want the database locked", out)
			}
			os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
			waitFor(t, 20*time.Second, func() bool {
				b, _ := os.ReadFile(filepath.Join(dir, "log"))
				return strings.Contains(string(b), "committed")
			}, "the restored transaction to commit")
			waitReports(t, dir, []string{"txn"}, 0)
			if out := sqlite(t, dir, "select count(*) from t"); out != "100" {
				t.Errorf("sqlite3 outside, after the commit: %q; want 100 rows", out)
			}
		})
	}
}

// requires is INFO.requires of the image at path.
func requires(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := format.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r.Info().Requires
}

// TestLocksCraftedImages: locks an attacker writes in an image are
// refused before anything runs: on a file no fd of their description
// has (a file the process never opened), through an O_PATH fd, by a
// process that does not hold the description, of a type the access
// does not allow, out of range, of an unknown kind, too many.
func TestLocksCraftedImages(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	pid, _ := startLocks(t)
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	if req := requires(t, img); !slices.Contains(req, format.FeatureFileLocks) {
		t.Errorf("the image of locks requires %q; want %q, which a procs-load that ignores locks refuses", req, format.FeatureFileLocks)
	}
	for _, f := range showImage(t, img).Needs.Files {
		if want := slices.Contains([]string{"a", "b", "c"}, filepath.Base(f.Path)); f.Locked != want {
			t.Errorf("procs show: needed file %s locked %v; want %v", f.Path, f.Locked, want)
		}
	}
	// find is the image's file of base name name, and its first lock.
	find := func(fs []format.File, name string) (int, *format.Lock) {
		for i := range fs {
			if filepath.Base(fs[i].Path) == name && len(fs[i].Locks) > 0 {
				return i, &fs[i].Locks[0]
			}
		}
		t.Fatalf("no locked file %s in the image", name)
		return 0, nil
	}
	for _, tc := range []struct {
		name  string
		edit  func(ps []format.Process, fs *[]format.File)
		wants []string
	}{
		{"on a file it never opened", func(_ []format.Process, fs *[]format.File) {
			_, l := find(*fs, "b")
			*fs = append(*fs, format.File{Kind: "reg", Path: "/etc/shadow", Mode: 0o100640, Locks: []format.Lock{*l}})
		}, []string{"/etc/shadow", "which no fd has on that file"}},
		{"through an O_PATH fd", func(ps []format.Process, fs *[]format.File) {
			_, l := find(*fs, "a")
			for p := range ps {
				for k := range ps[p].FDs {
					if ps[p].FDs[k].Open == l.Open {
						ps[p].FDs[k].Flags = unix.O_PATH
					}
				}
			}
		}, []string{"O_PATH"}},
		{"by a process without it", func(ps []format.Process, fs *[]format.File) {
			i, _ := find(*fs, "b")
			for k, l := range (*fs)[i].Locks {
				if l.PID == ps[1].PID {
					(*fs)[i].Locks[k].PID = ps[0].PID // the child's own description
				}
			}
		}, []string{"which does not hold it"}},
		{"a write lock on a read-only file", func(ps []format.Process, fs *[]format.File) {
			i, _ := find(*fs, "b")
			for k, l := range (*fs)[i].Locks {
				if l.PID == ps[1].PID {
					(*fs)[i].Locks[k].Write = true
				}
			}
		}, []string{"a write lock, on a file open read-only"}},
		{"before the file", func(_ []format.Process, fs *[]format.File) { _, l := find(*fs, "b"); l.Start = -1 }, []string{"out of range"}},
		{"past the largest offset", func(_ []format.Process, fs *[]format.File) {
			_, l := find(*fs, "b")
			l.Start, l.Len = 10, math.MaxInt64
		}, []string{"out of range"}},
		{"an flock on a range", func(_ []format.Process, fs *[]format.File) { _, l := find(*fs, "a"); l.Len = 5 }, []string{"with a process or a range"}},
		{"of no known kind", func(_ []format.Process, fs *[]format.File) { _, l := find(*fs, "a"); l.Kind = "lease" }, []string{"no such kind of lock"}},
		{"too many", func(_ []format.Process, fs *[]format.File) {
			i, l := find(*fs, "c")
			for n := range 1 << 16 {
				m := *l
				m.Start = int64(n)
				(*fs)[i].Locks = append((*fs)[i].Locks, m)
			}
		}, []string{"more than 65536 file locks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editProcs(t, img, func(ps *[]format.Process, fs *[]format.File) { tc.edit(*ps, fs) })
			refused(t, loadCmd(bad), "python3", tc.wants...)
		})
	}
}

// TestLocksRefusals: what procs does not carry is refused by name at the
// dump, and the process goes on: a lease, a lock through a standard
// stream that procs-load replaces with its own (a pipe), an flock held
// only by an open file passed to a process outside the tree.
func TestLocksRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, tc := range []struct{ name, prog, want string }{
		{"lease", `
import fcntl, os, time
open("f", "w").close()
f = open("f")
fcntl.fcntl(f, fcntl.F_SETLEASE, fcntl.F_RDLCK)
print("ready", flush=True)
while True: time.sleep(0.05)
`, "a lease (F_SETLEASE) on"},
		{"stream", `
import fcntl, time
fcntl.flock(1, fcntl.LOCK_EX)
print("ready", flush=True)
while True: time.sleep(0.05)
`, "a lock through its fd 1 (pipe:["},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, []string{py, "-c", tc.prog}, t.TempDir())
			expect(t, p.out, "ready", 0)
			refusedDump(t, p.pid(), tc.want)
		})
	}
	t.Run("passed on", func(t *testing.T) {
		dir := t.TempDir()
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := start(t, []string{py, "-c", passOnPy}, dir)
		c, err := l.AcceptUnix()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 1), oob)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("no fd received: %v", err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("no fd received: %v", err)
		}
		defer unix.Close(fds[0])
		expect(t, p.out, "ready", 0)
		refusedDump(t, p.pid(), "a flock lock on inode", "that neither an fd nor a mapping of the tree holds")
	})
}

// passOnPy takes an flock on f and passes its open file to the test,
// which holds it: the lock is the process's (/proc/locks), but no fd
// and no mapping of its tree holds it.
const passOnPy = `
import fcntl, os, socket, time
f = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(f, fcntl.LOCK_EX)
s = socket.socket(socket.AF_UNIX)
s.connect("s")
socket.send_fds(s, [b"x"], [f])
s.close()
os.close(f)
print("ready", flush=True)
while True: time.sleep(0.05)
`

// mappedPy maps its file m shared (through ctypes: Python's mmap module
// keeps an fd of its own), flocks it and closes the fd: the open file
// behind the mapping holds the lock (a JVM's perf-data file is held so).
// Then it forks: the child shares the mapping, and the lock. Each checks
// every 50 ms that the file is flocked (another open file of it cannot
// have a shared flock) and reads its mapping, and reports "parent N
// ok=1", "child N ok=1" in log.
const mappedPy = `
import ctypes, fcntl, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
def report(line):
    with open("log", "a") as f:
        f.write(line + "\n")
def locked():
    g = os.open("m", os.O_RDONLY)
    try:
        fcntl.flock(g, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(g)
fd = os.open("m", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"x" * 4096)
fcntl.flock(fd, fcntl.LOCK_EX)
addr = libc.mmap(None, 4096, 3, 1, fd, 0)
assert addr not in (None, ctypes.c_void_p(-1).value)
os.close(fd)
who = "child" if os.fork() == 0 else "parent"
n = 0
while True:
    n += 1
    report("%s %d ok=%d" % (who, n, int(locked() and ctypes.string_at(addr, 4) == b"xxxx")))
    time.sleep(0.05)
`

// exclusiveFlock is what flock(LOCK_EX|LOCK_NB) on a new open file of
// path returns.
func exclusiveFlock(t *testing.T, path string) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// TestLocksMapped: an flock held only by the open file behind a shared
// mapping of its file (mmap, flock, close: a JVM's perf-data file), that a
// child shares since a fork, moved: the restored parent holds it again
// (/proc/locks), other processes cannot flock the file (EWOULDBLOCK), the
// two see it locked. One open file holds it for both, as before: once the
// parent is gone, the child's mapping still holds it; once both are, the
// file is free. With -K, a copy restored while the original runs is
// refused, naming it.
func TestLocksMapped(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	for _, mode := range []string{"kill", "keep", "detach"} {
		t.Run(mode, func(t *testing.T) {
			pid, dir := startParentChild(t, mappedPy)
			m := filepath.Join(dir, "m")
			want := fmt.Sprintf("WRITE %d", pid)
			if got := flockHolder(t, m); got != want {
				t.Fatalf("before the dump, /proc/locks says the flock on m is %q; want %q", got, want)
			}
			if mode == "keep" {
				img := dump(t, pid, true)
				msg := refused(t, loadCmd(img), "python3", strconv.Quote(m), fmt.Sprintf("locked by process %d (", pid), "an flock write lock")
				if !strings.Contains(msg, "hint: process "+strconv.Itoa(pid)+" has the PID the image's process had") {
					t.Errorf("refusal %q; want a hint that the original still runs", msg)
				}
				waitReports(t, dir, []string{"parent", "child"}, 3)
			}
			moveLocks(t, pid, dir, mode)
			if got := flockHolder(t, m); got != want {
				t.Errorf("after the restore (%s), /proc/locks says the flock on m is %q; want %q", mode, got, want)
			}
			if err := exclusiveFlock(t, m); err != unix.EWOULDBLOCK {
				t.Errorf("after the restore (%s), flock(LOCK_EX|LOCK_NB) on m from outside: %v; want EWOULDBLOCK", mode, err)
			}
			waitReports(t, dir, []string{"parent", "child"}, 5)
			tree := treeOf(pid)
			kid := tree[1]
			t.Cleanup(func() { killChecked(t, kid.pid, kid.start) })
			killChecked(t, pid, tree[0].start)
			waitReports(t, dir, []string{"child"}, 3)
			if err := exclusiveFlock(t, m); err != unix.EWOULDBLOCK {
				t.Errorf("with the restored parent gone, flock(LOCK_EX|LOCK_NB) on m: %v; want EWOULDBLOCK: the child's mapping shares the locked open file", err)
			}
			killChecked(t, kid.pid, kid.start)
			waitFor(t, 10*time.Second, func() bool { return exclusiveFlock(t, m) == nil }, "the flock on m to go with the last mapping")
		})
	}
}

// TestLocksMappedCrafted: an flock held through a mapping that an
// attacker writes in an image is refused before anything runs: through
// no mapping, a mapping of another file, a mapping of another process,
// of another kind than flock, with an open file description or a range
// too, twice.
func TestLocksMappedCrafted(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	pid, _ := startParentChild(t, mappedPy)
	tree := treeOf(pid)
	img := dump(t, pid, false)
	waitGone(t, tree)
	if req := requires(t, img); !slices.Contains(req, format.FeatureFileLocks) {
		t.Errorf("the image requires %q; want %q", req, format.FeatureFileLocks)
	}
	// find is the image's file m and its lock, held through the
	// mapping of the root.
	find := func(ps []format.Process, fs []format.File) (int, *format.Lock) {
		for i := range fs {
			if filepath.Base(fs[i].Path) == "m" && len(fs[i].Locks) == 1 {
				if l := &fs[i].Locks[0]; l.Map != 0 && l.PID == ps[0].PID && l.Open == 0 {
					return i, l
				}
			}
		}
		t.Fatalf("no flock through the mapping of m in the image: %+v", fs)
		return 0, nil
	}
	// otherMapping is the start of a mapping of the root of another file.
	otherMapping := func(ps []format.Process, file int) uint64 {
		for _, m := range ps[0].Maps {
			if m.File >= 0 && m.File != file {
				return m.Start
			}
		}
		t.Fatal("the root maps no other file")
		return 0
	}
	for _, tc := range []struct {
		name  string
		edit  func(ps []format.Process, fs []format.File)
		wants []string
	}{
		{"through no mapping", func(ps []format.Process, fs []format.File) { _, l := find(ps, fs); l.Map = 0x10000 }, []string{"no mapping of that file there"}},
		{"through a mapping of another file", func(ps []format.Process, fs []format.File) {
			i, l := find(ps, fs)
			l.Map = otherMapping(ps, i)
		}, []string{"no mapping of that file there"}},
		{"of a process that is not there", func(ps []format.Process, fs []format.File) { _, l := find(ps, fs); l.PID = 1 }, []string{"no mapping of that file there"}},
		{"a POSIX lock", func(ps []format.Process, fs []format.File) { _, l := find(ps, fs); l.Kind = format.LockPosix }, []string{"only an flock"}},
		{"with a description", func(ps []format.Process, fs []format.File) { _, l := find(ps, fs); l.Open = ps[0].FDs[0].Open }, []string{"only an flock"}},
		{"on a range", func(ps []format.Process, fs []format.File) { _, l := find(ps, fs); l.Len = 1 }, []string{"only an flock"}},
		{"twice", func(ps []format.Process, fs []format.File) {
			i, l := find(ps, fs)
			fs[i].Locks = append(fs[i].Locks, *l)
		}, []string{"twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editProcs(t, img, func(ps *[]format.Process, fs *[]format.File) { tc.edit(*ps, *fs) })
			refused(t, loadCmd(bad), "python3", tc.wants...)
		})
	}
}

// waiterPy: the parent holds a write lock; its child waits for it in
// F_SETLKW until the parent, seeing the file "go", lets it go.
const waiterPy = `
import fcntl, os, time
def report(line):
    with open("log", "a") as f:
        f.write(line + "\n")
f = open("w", "w+")
fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
if os.fork() == 0:
    g = open("w", "r+")
    report("child 1 waiting")
    fcntl.lockf(g, fcntl.LOCK_EX, 1, 5)
    report("child 2 got")
    while True: time.sleep(1)
n = 0
while not os.path.exists("go"):
    n += 1
    report("parent %d holds" % n)
    time.sleep(0.05)
fcntl.lockf(f, fcntl.LOCK_UN, 10, 0)
report("parent %d released" % (n + 1))
while True: time.sleep(1)
`

// TestLocksWaiter: a child blocked waiting for its parent's lock is
// moved: the wait is not carried, the child waits again, and gets the
// lock once its parent lets it go.
func TestLocksWaiter(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	dir := t.TempDir()
	pid := startTree(t, dir, "err", py, "-c", waiterPy)
	waitReports(t, dir, []string{"parent", "child"}, 1)
	waitFor(t, 10*time.Second, func() bool {
		tree := treeOf(pid)
		if len(tree) != 2 {
			return false
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", tree[1].pid))
		return strings.HasPrefix(string(b), fmt.Sprintf("%d ", unix.SYS_FCNTL))
	}, "the child to wait for the lock in fcntl")
	moveLocks(t, pid, dir, "kill")
	waitReports(t, dir, []string{"parent"}, 3)
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); strings.Contains(string(b), "got") {
		t.Fatalf("the child got the lock its parent holds:\n%s", b)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	waitFor(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return strings.Contains(string(b), "child 2 got")
	}, "the child to get the lock once its parent let it go")
	waitReports(t, dir, []string{"parent"}, 0)
}
