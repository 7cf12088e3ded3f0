package tests

// System V IPC: a parent and child sharing a shared memory segment (and
// a second one marked for removal), a semaphore set and a message queue
// (victims/sysv.c), copied beside the running original (-K: a new IPC
// namespace), moved (kill, -d: the same ids and keys here), each time
// checked from the program's own output and from the kernel's listing
// of the objects; and what is refused, by id.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// sysvKey is this test run's key: sysv.c uses it and the next two.
func sysvKey() int32 { return 0x5e000000 | int32(os.Getpid()&0xffff)<<4 }

// removeSysV removes the objects at key, key+1 and key+2 from this IPC
// namespace, what a killed victim leaves.
func removeSysV(key int32) {
	if id, err := unix.SysvShmGet(int(key), 0, 0); err == nil {
		unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	if id, err := linux.Semget(key+1, 0, 0); err == nil {
		linux.Semctl(id, 0, unix.IPC_RMID, nil)
	}
	if id, err := linux.Msgget(key+2, 0); err == nil {
		linux.Msgctl(id, unix.IPC_RMID, nil)
	}
}

// ipcOf lists the System V objects of the IPC namespace of process pid,
// by kind ("shm", "sem", "msg"), as nsenter(1) shows them there (a thread
// of the test's own that entered it could not be given back, and a
// thread that ends kills the victims it started: Pdeathsig).
func ipcOf(t *testing.T, pid int) map[string][]procfs.IPCObject {
	t.Helper()
	objs := map[string][]procfs.IPCObject{}
	for _, k := range []string{"shm", "sem", "msg"} {
		out, err := exec.Command("nsenter", fmt.Sprintf("--ipc=/proc/%d/ns/ipc", pid), "cat", "/proc/sysvipc/"+k).Output()
		if err == nil {
			objs[k], err = procfs.ParseSysvIPC(k, out)
		}
		if err != nil {
			t.Fatalf("System V IPC of process %d: %v", pid, err)
		}
	}
	return objs
}

// byKey is the object of objs with key key, or nil.
func byKey(objs []procfs.IPCObject, key int32) procfs.IPCObject {
	for _, o := range objs {
		if int32(o["key"]) == key {
			return o
		}
	}
	return nil
}

// sysvObjects is what the tree of sysv.c KEY has in an IPC namespace:
// its keyed segment, semaphore set and queue, and the segment marked for
// removal (key 0, the only one of the namespace there when it is the
// tree's own or procs-dump moved it), with the columns that must come
// back as they were.
func sysvObjects(t *testing.T, pid int, key int32) string {
	t.Helper()
	ipc := ipcOf(t, pid)
	var b strings.Builder
	for _, w := range []struct {
		kind, id string
		key      int32
		cols     []string
	}{
		{"shm", "shmid", key, []string{"size", "nattch", "uid", "gid", "cuid", "cgid"}},
		{"sem", "semid", key + 1, []string{"nsems", "uid", "gid", "cuid", "cgid"}},
		{"msg", "msqid", key + 2, []string{"cbytes", "qnum", "uid", "gid", "cuid", "cgid"}},
	} {
		o := byKey(ipc[w.kind], w.key)
		if o == nil {
			t.Fatalf("process %d: no %s of key %#x in its IPC namespace: %v", pid, w.kind, w.key, ipc[w.kind])
		}
		fmt.Fprintf(&b, "%s %s=%d key=%#x perms=%o", w.kind, w.id, o[w.id], w.key, o["perms"])
		for _, c := range w.cols {
			fmt.Fprintf(&b, " %s=%d", c, o[c])
		}
		b.WriteString("\n")
	}
	for _, o := range ipc["shm"] {
		if o["key"] == 0 && o["cpid"] != 0 && o["perms"]&linux.SHM_DEST != 0 && o["nattch"] == 2 {
			fmt.Fprintf(&b, "removed segment: perms=%o size=%d nattch=2\n", o["perms"], o["size"])
		}
	}
	return b.String()
}

// sysvGoesOn checks, from the reports of sysv.c on l, that after report
// after the tree goes on sharing what it shared: the child's counter,
// which the parent reads in the segment, grows; so does the parent's
// as the child reads it through its read-only attachment; the text is
// still there and the semaphores go on from where they were.
func sysvGoesOn(t *testing.T, l *lines, after report, stderr func() string) report {
	t.Helper()
	num := func(r report, k string) int {
		n, err := strconv.Atoi(r.kv[k])
		if err != nil {
			t.Fatalf("report %v: %s=%q", r.kv, k, r.kv[k])
		}
		return n
	}
	first := lastReport(t, l, "tick", 0, lineWait, stderr)
	r := lastReport(t, l, "tick", first.n+4, lineWait, stderr)
	for _, k := range []string{"p", "c", "ro", "r"} {
		if num(r, k) <= num(after, k) || num(r, k) <= num(first, k) {
			t.Errorf("%s=%d at report %d, %d at report %d, %d at the dump (report %d): want it to go on growing", k, num(r, k), r.n, num(first, k), first.n, num(after, k), after.n)
		}
	}
	sem, was := strings.Split(r.kv["sem"], ","), strings.Split(after.kv["sem"], ",")
	if len(sem) != 3 || len(was) != 3 || sem[0] != "5" || sem[1] != "7" {
		t.Fatalf("semaphores %s, %s at the dump; want 5,7,N", r.kv["sem"], after.kv["sem"])
	}
	if s, w := num(report{kv: map[string]string{"s": sem[2]}}, "s"), num(report{kv: map[string]string{"s": was[2]}}, "s"); s <= w {
		t.Errorf("semaphore 2 is %s, %s at the dump: want it to go on from there", sem[2], was[2])
	}
	if r.kv["magic"] != "1" {
		t.Errorf("the segment's text is gone: %v", r.kv)
	}
	return r
}

func TestSysVIPC(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	key := sysvKey()
	dir := t.TempDir()
	orig := startSysV(t, key, dir, nil)
	want := sysvObjects(t, orig.pid(), key)
	if !strings.Contains(want, "removed segment") || !strings.Contains(want, "nattch=3") {
		t.Fatalf("the original's objects:\n%s", want)
	}
	shmid := byKey(ipcOf(t, orig.pid())["shm"], key)["shmid"]

	// A copy beside the original, which holds the ids and keys.
	img := dump(t, orig.pid(), true)
	atDump := lastReport(t, orig.out, "tick", 0, lineWait, orig.stderrText)
	if ipc := showImage(t, img).IPC; ipc == nil || len(ipc.Shm) != 2 || len(ipc.Sem) != 1 || len(ipc.Msg) != 1 ||
		ipc.Msg[0].Size != 4 || ipc.Sem[0].Size != 3 || ipc.OwnNS {
		t.Errorf("procs show: System V IPC %+v; want 2 segments, a set of 3 and a queue of 4 messages", ipc)
	}
	refused(t, loadCmd(img, "--ipc=host"), "sysv", "--ipc=host", fmt.Sprintf("shared memory segment %d", shmid), "in use here")
	ld := startLoad(t, img)
	init, root := nsTree(t, ld)
	ld.restored, ld.start = root.pid, root.start
	sysvGoesOn(t, ld.out, atDump, ld.stderrText)
	if got := sysvObjects(t, root.pid, key); got != want {
		t.Errorf("the copy's objects:\n%s\nwant the original's:\n%s", got, want)
	}
	mine, _ := os.Readlink("/proc/self/ns/ipc")
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", root.pid)); ns == mine {
		t.Errorf("the copy is in this IPC namespace, %s, where the original's objects are", ns)
	}
	// The original goes on, its objects its own.
	sysvGoesOn(t, orig.out, atDump, orig.stderrText)
	unix.Kill(init.pid, unix.SIGKILL) // and every process of its namespace
	if !ld.exited(10 * time.Second) {
		t.Fatal("procs-load of the copy still runs after its init was killed")
	}
	waitGone(t, []pinfo{init, root})

	// Moved: killed, its objects with it, and back here with their ids.
	img = dump(t, orig.pid(), false)
	waitImageGone(t, img)
	atDump = lastReport(t, orig.out, "tick", 0, lineWait, orig.stderrText)
	if _, err := unix.SysvShmGet(int(key), 0, 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("the segment of key %#x is still here after its tree was moved (%v)", key, err)
	}
	ld = startLoad(t, img)
	sysvGoesOn(t, ld.out, atDump, ld.stderrText)
	if p, ok := procInfo(orig.pid()); !ok || p.comm != "sysv" {
		t.Fatalf("the tree runs, and process %d is not its root (%v)", orig.pid(), p)
	}
	ld.restored, ld.start = orig.pid(), startTime(orig.pid())
	if got := sysvObjects(t, orig.pid(), key); got != want {
		t.Errorf("the moved objects:\n%s\nwant:\n%s", got, want)
	}
	if out, err := exec.Command("ipcs", "-m").Output(); err != nil || !strings.Contains(string(out), fmt.Sprintf("%#08x %-10d", key, shmid)) {
		t.Errorf("ipcs -m: %v; want key %#08x with id %d:\n%s", err, key, shmid, out)
	}
	// Moved again at once, with -d: the queue, which no process of the
	// tree has used since the restore, is still the tree's.
	atDump = lastReport(t, ld.out, "tick", 0, lineWait, ld.stderrText)
	img = dump(t, orig.pid(), false)
	waitImageGone(t, img)
	if _, err := linux.Msgget(key+2, 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("the queue of key %#x is still here after its tree was moved again (%v)", key+2, err)
	}
	ld.restored = 0
	ldd := startLoad(t, img, "-d")
	if !ldd.exited(10 * time.Second) {
		t.Fatalf("procs-load -d still runs: %s", ldd.stderrText())
	}
	sysvGoesOn(t, ldd.out, atDump, ldd.stderrText)
	if got := sysvObjects(t, orig.pid(), key); got != want {
		t.Errorf("the objects after -d:\n%s\nwant:\n%s", got, want)
	}

	// The messages, in order, with their types.
	if err := os.WriteFile(filepath.Join(dir, "drain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	all, ok := ldd.out.wait(lineWait, func(all []string, _ bool) bool { return contains(all, "drained") })
	var msgs []string
	for _, l := range all {
		if strings.HasPrefix(l, "msg ") {
			msgs = append(msgs, l)
		}
	}
	if !ok || strings.Join(msgs, "|") != "msg 1 one|msg 2 two|msg 3 three|msg 1 four" {
		t.Errorf("messages received after the moves: %q; want one, two, three, four of types 1, 2, 3, 1", msgs)
	}
}

func contains(all []string, s string) bool {
	for _, l := range all {
		if l == s {
			return true
		}
	}
	return false
}

// startSysV starts sysv.c with key in dir (as cred's user when cred is
// set), kills it when t ends and removes what it leaves, and returns it
// once it reports.
func startSysV(t *testing.T, key int32, dir string, cred *syscall.Credential) *proc {
	t.Helper()
	argv := victimArgv(t, "sysv")
	removeSysV(key)
	t.Cleanup(func() { removeSysV(key) })
	var p *proc
	if cred != nil {
		p = startAs(t, []string{publicCopy(t, argv[0]), strconv.Itoa(int(key))}, dir, &syscall.SysProcAttr{Credential: cred})
	} else {
		p = start(t, append(argv, strconv.Itoa(int(key))), dir)
	}
	t.Cleanup(func() { killTree(t, p.pid()) })
	lastReport(t, p.out, "tick", 2, lineWait, p.stderrText)
	return p
}

// ipcCount is how many System V objects this IPC namespace holds.
func ipcCount(t *testing.T) int {
	n := 0
	for _, objs := range ipcOf(t, os.Getpid()) {
		n += len(objs)
	}
	return n
}

// editIPC returns a copy of the image img whose FILES record edit
// changed (its System V segments among the files, its sets and queues).
func editIPC(t *testing.T, img string, edit func(ft *format.FileTable)) string {
	t.Helper()
	return craftImage(t, img, imageRewrite{edit: func(fb []byte, pbs [][]byte) ([]byte, [][]byte, error) {
		var ft format.FileTable
		if err := json.Unmarshal(fb, &ft); err != nil {
			return nil, nil, err
		}
		edit(&ft)
		fb, err := json.Marshal(&ft)
		return fb, pbs, err
	}})
}

// shmFiles are the System V segments of ft, by key.
func shmFiles(ft *format.FileTable) map[int32]*format.File {
	m := map[int32]*format.File{}
	for i := range ft.Files {
		if f := &ft.Files[i]; f.Shm != nil {
			m[f.Shm.Key] = f
		}
	}
	return m
}

// TestSysVIPCRefusals: what procs-dump refuses (a segment attached
// outside the tree) and, in crafted images whose checksums hold, what
// procs-load refuses by id before it makes any object or process (an
// object owned by an id none of the processes has, a segment bigger
// than any, too many bytes queued, semaphores out of range, an
// attachment that is not whole, two objects with one id).
func TestSysVIPCRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	key := sysvKey() | 8
	p := startSysV(t, key, t.TempDir(), nil)
	id, err := unix.SysvShmGet(int(key), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	refusedDump(t, p.pid(), fmt.Sprintf("segment %d (key %#x) is attached 1 times by processes outside the tree", id, key))
	unix.SysvShmDetach(b)

	img := dump(t, p.pid(), true)
	before := ipcCount(t)
	for _, c := range []struct {
		name string
		edit func(ft *format.FileTable)
		want []string
	}{
		{"owner", func(ft *format.FileTable) { shmFiles(ft)[key].Shm.UID = 4242 }, []string{fmt.Sprintf("segment %d is owned by 4242:0", id), "none of the image's processes has"}},
		{"creator", func(ft *format.FileTable) { ft.IPC.Msg[0].CGID = 4242 }, []string{"message queue", "made by 0:4242"}},
		{"huge", func(ft *format.FileTable) { shmFiles(ft)[key].Size = 1 << 40 }, []string{fmt.Sprintf("segment %d has size 1099511627776", id)}},
		{"removed-key", func(ft *format.FileTable) { shmFiles(ft)[key].Shm.Removed = true }, []string{"marked for removal, and has key"}},
		{"twice", func(ft *format.FileTable) { shmFiles(ft)[0].Shm.ID = id }, []string{fmt.Sprintf("two of shared memory segment %d", id)}},
		{"semaphore", func(ft *format.FileTable) { ft.IPC.Sem[0].Values[1] = 40000 }, []string{"semaphore set", "a value above 32767"}},
		{"semaphores", func(ft *format.FileTable) { ft.IPC.Sem[0].Values = nil }, []string{"has 0 semaphores"}},
		{"queued", func(ft *format.FileTable) { ft.IPC.Msg[0].QBytes = 4 }, []string{"more than its 4"}},
		{"qbytes", func(ft *format.FileTable) { ft.IPC.Msg[0].QBytes = 1 << 40 }, []string{"holds up to 1099511627776 bytes"}},
		{"mtype", func(ft *format.FileTable) { ft.IPC.Msg[0].Messages[2].Type = 0 }, []string{"message 2 has type 0"}},
		{"mode", func(ft *format.FileTable) { ft.IPC.Sem[0].Mode = 0o4777 }, []string{"mode 04777 out of range"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			refused(t, loadCmd(editIPC(t, img, c.edit)), "sysv", c.want...)
			if n := ipcCount(t); n != before {
				t.Errorf("%d System V objects here after a refused image; want %d as before", n, before)
			}
		})
	}
	t.Run("shmmax", func(t *testing.T) {
		// In an IPC namespace of the test's, whose shmmax is small.
		sh := `echo 8192 > /proc/sys/kernel/shmmax && exec "$0" "$1"`
		refused(t, exec.Command("unshare", "--ipc", "sh", "-c", sh, filepath.Join(binDir, "procs-load"), img), "sysv",
			fmt.Sprintf("segment %d has 12388 bytes, more than kernel.shmmax (8192) here", id))
	})
	t.Run("fd", func(t *testing.T) {
		bad := editTree(t, img, func(e *treeEdit) {
			open := 0
			for _, p := range e.Procs {
				for _, fd := range p.FDs {
					open = max(open, fd.Open)
				}
			}
			for i := range e.Files {
				if e.Files[i].Shm != nil {
					e.Procs[0].FDs = append(e.Procs[0].FDs, format.FD{Num: 100, File: i, Flags: unix.O_RDWR, Open: open + 1})
					return
				}
			}
		})
		refused(t, loadCmd(bad), "sysv", "no fd has a segment")
	})
	t.Run("msgmax", func(t *testing.T) {
		big := editIPC(t, img, func(ft *format.FileTable) {
			ft.IPC.Msg[0].Messages[1].Text = make([]byte, 9000)
			ft.IPC.Msg[0].QBytes = 16384
		})
		sh := `echo 8192 > /proc/sys/kernel/msgmax && exec "$0" "$1"`
		refused(t, exec.Command("unshare", "--ipc", "sh", "-c", sh, filepath.Join(binDir, "procs-load"), big), "sysv",
			"message 1 has 9000 bytes, more than kernel.msgmax (8192) here")
	})
	t.Run("partly-attached", func(t *testing.T) {
		bad := editTree(t, img, func(e *treeEdit) {
			for i := range e.Procs[0].Maps {
				if m := &e.Procs[0].Maps[i]; m.Kind == format.MapSysV && m.Offset == 0 {
					m.Offset = format.PageSize
					return
				}
			}
		})
		refused(t, loadCmd(bad), "sysv", "not whole")
	})
}

// TestSysVIPCUser: a user's tree with its System V objects, moved by
// root: the objects come back with that user as their owner and their
// creator. The user itself cannot restore them (choosing ids takes
// root), and is told so.
func TestSysVIPCUser(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	cred := testUser(t)
	key := sysvKey() | 4
	dir := userDir(t, cred)
	p := startSysV(t, key, dir, cred)
	want := sysvObjects(t, p.pid(), key)
	if !strings.Contains(want, fmt.Sprintf("uid=%d gid=%d cuid=%d cgid=%d", cred.Uid, cred.Gid, cred.Uid, cred.Gid)) {
		t.Fatalf("the user's objects:\n%s", want)
	}
	if ptraceLimited() == "" {
		// The user may trace its tree, not read its segments.
		var stderr strings.Builder
		d := exec.Command(publicCopy(t, filepath.Join(binDir, "procs-dump")), "-o", filepath.Join(dir, "img"), strconv.Itoa(p.pid()))
		d.Stderr, d.SysProcAttr = &stderr, &syscall.SysProcAttr{Credential: cred}
		if err := runTimeout(d, time.Minute); err == nil || !strings.Contains(stderr.String(), "reading it takes CAP_CHECKPOINT_RESTORE") {
			t.Errorf("procs-dump as uid %d: %v, %q; want a refusal saying reading the segment takes CAP_CHECKPOINT_RESTORE", cred.Uid, err, stderr.String())
		}
		lastReport(t, p.out, "tick", 0, lineWait, p.stderrText)
	}
	img := dump(t, p.pid(), false)
	waitImageGone(t, img)
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(img); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	loadBin := publicCopy(t, filepath.Join(binDir, "procs-load"))
	cmd := exec.Command(loadBin, "--stdio=inherit", img)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	refused(t, cmd, "sysv", "System V IPC objects", "takes root")
	if _, err := unix.SysvShmGet(int(key), 0, 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("segment of key %#x after a refused restore: %v", key, err)
	}

	ld := startLoad(t, img, "--stdio=inherit")
	lastReport(t, ld.out, "tick", 0, lineWait, ld.stderrText) // killTree(p.pid()) kills it
	if got := sysvObjects(t, p.pid(), key); got != want {
		t.Errorf("the objects restored by root:\n%s\nwant the user's:\n%s", got, want)
	}
}

// TestSysVIPCOwnNamespace: a tree that runs in an IPC namespace of its
// own (unshare -i) has every object of it carried, one that no member
// uses too (made by ipcmk); copied beside the original and moved, it
// gets a namespace of its own again, with all of them.
func TestSysVIPCOwnNamespace(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	argv := victimArgv(t, "sysv")
	key := sysvKey() | 12
	p := start(t, append([]string{"unshare", "--ipc", "--"}, append(argv, strconv.Itoa(int(key)))...), t.TempDir())
	t.Cleanup(func() { killTree(t, p.pid()) })
	lastReport(t, p.out, "tick", 2, lineWait, p.stderrText)
	if out, err := exec.Command("nsenter", fmt.Sprintf("--ipc=/proc/%d/ns/ipc", p.pid()), "ipcmk", "-M", "20000", "-p", "0604").CombinedOutput(); err != nil {
		t.Fatalf("ipcmk: %v: %s", err, out)
	}
	list := func(pid int) string {
		var b strings.Builder
		for _, o := range ipcOf(t, pid)["shm"] {
			fmt.Fprintf(&b, "shmid=%d key=%#x perms=%o size=%d nattch=%d\n", o["shmid"], uint32(o["key"]), o["perms"], o["size"], o["nattch"])
		}
		return b.String() + sysvObjects(t, pid, key)
	}
	want := list(p.pid())
	if !strings.Contains(want, "perms=604 size=20000 nattch=0") {
		t.Fatalf("the tree's namespace:\n%s", want)
	}
	img := dump(t, p.pid(), true)
	at := lastReport(t, p.out, "tick", 0, lineWait, p.stderrText)
	ld := startLoad(t, img)
	init, root := nsTree(t, ld)
	sysvGoesOn(t, ld.out, at, ld.stderrText)
	if got := list(root.pid); got != want {
		t.Errorf("the copy's namespace:\n%s\nwant the original's:\n%s", got, want)
	}
	unix.Kill(init.pid, unix.SIGKILL)
	if !ld.exited(10 * time.Second) {
		t.Fatal("procs-load of the copy still runs after its init was killed")
	}
	waitGone(t, []pinfo{init, root})

	img = dump(t, p.pid(), false)
	waitImageGone(t, img)
	at = lastReport(t, p.out, "tick", 0, lineWait, p.stderrText)
	ld = startLoad(t, img)
	sysvGoesOn(t, ld.out, at, ld.stderrText)
	mine, _ := os.Readlink("/proc/self/ns/ipc")
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", p.pid())); ns == mine {
		t.Errorf("the moved tree runs in this IPC namespace; want one of its own")
	}
	if got := list(p.pid()); got != want {
		t.Errorf("the moved tree's namespace:\n%s\nwant:\n%s", got, want)
	}
}
