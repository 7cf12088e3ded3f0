package tests

// System V IPC: a parent and child sharing a shared memory segment (and
// a second one marked for removal), a semaphore set and a message queue
// (victims/sysv.c), copied beside the running original (-K: a new IPC
// namespace), moved (kill, -d: the same ids and keys here), each time
// checked from the program's own output and from the kernel's listing
// of the objects; and what is refused, by id.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// by kind ("shm", "sem", "msg"), read from a thread that enters it.
func ipcOf(t *testing.T, pid int) map[string][]procfs.IPCObject {
	t.Helper()
	type result struct {
		objs map[string][]procfs.IPCObject
		err  error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/ipc", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWIPC)
			unix.Close(fd)
		}
		objs := map[string][]procfs.IPCObject{}
		for _, k := range []string{"shm", "sem", "msg"} {
			if err == nil {
				objs[k], err = procfs.SysvIPC(k)
			}
		}
		done <- result{objs, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("System V IPC of process %d: %v", pid, r.err)
	}
	return r.objs
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
		{"shm", "shmid", key, []string{"perms", "size", "nattch", "uid", "gid", "cuid", "cgid"}},
		{"sem", "semid", key + 1, []string{"perms", "nsems", "uid", "gid", "cuid", "cgid"}},
		{"msg", "msqid", key + 2, []string{"perms", "cbytes", "qnum", "uid", "gid", "cuid", "cgid"}},
	} {
		o := byKey(ipc[w.kind], w.key)
		if o == nil {
			t.Fatalf("process %d: no %s of key %#x in its IPC namespace: %v", pid, w.kind, w.key, ipc[w.kind])
		}
		fmt.Fprintf(&b, "%s %s=%d key=%#x", w.kind, w.id, o[w.id], w.key)
		for _, c := range w.cols {
			fmt.Fprintf(&b, " %s=%o", c, o[c])
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
	argv := victimArgv(t, "sysv")
	key := sysvKey()
	removeSysV(key)
	t.Cleanup(func() { removeSysV(key) })
	dir := t.TempDir()
	orig := start(t, append(argv, strconv.Itoa(int(key))), dir)
	t.Cleanup(func() { killTree(t, orig.pid()) })
	lastReport(t, orig.out, "tick", 3, lineWait, orig.stderrText)
	want := sysvObjects(t, orig.pid(), key)
	if !strings.Contains(want, "removed segment") || !strings.Contains(want, "nattch=3") {
		t.Fatalf("the original's objects:\n%s", want)
	}
	shmid := byKey(ipcOf(t, orig.pid())["shm"], key)["shmid"]

	// A copy beside the original, which holds the ids and keys.
	img := dump(t, orig.pid(), true)
	atDump := lastReport(t, orig.out, "tick", 0, lineWait, orig.stderrText)
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
	// The messages, in order, with their types.
	if err := os.WriteFile(filepath.Join(dir, "drain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	all, ok := ld.out.wait(lineWait, func(all []string, _ bool) bool { return len(all) > 0 && all[len(all)-1] == "drained" || contains(all, "drained") })
	var msgs []string
	for _, l := range all {
		if strings.HasPrefix(l, "msg ") {
			msgs = append(msgs, l)
		}
	}
	if !ok || strings.Join(msgs, "|") != "msg 1 one|msg 2 two|msg 3 three|msg 1 four" {
		t.Errorf("messages received after the move: %q; want one, two, three, four of types 1, 2, 3, 1", msgs)
	}

	// Moved again, with -d.
	want = sysvObjects(t, orig.pid(), key) // the messages read
	atDump = lastReport(t, ld.out, "tick", 0, lineWait, ld.stderrText)
	img = dump(t, orig.pid(), false)
	waitImageGone(t, img)
	ld.restored = 0
	ldd := startLoad(t, img, "-d")
	if !ldd.exited(10 * time.Second) {
		t.Fatalf("procs-load -d still runs: %s", ldd.stderrText())
	}
	sysvGoesOn(t, ldd.out, atDump, ldd.stderrText)
	if got := sysvObjects(t, orig.pid(), key); got != want {
		t.Errorf("the objects after -d:\n%s\nwant:\n%s", got, want)
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
