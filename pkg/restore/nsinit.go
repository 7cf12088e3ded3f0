package restore

// The init of a PID namespace a tree runs in (see pidns.go): procs-load
// itself, exec'd by the namespace's first process with argv[0] initName
// and the root's PID there. Its fd 0 is a pipe from procs-load, its fd
// 1 a pipe to it.
//
// It tells procs-load that it runs (initReady), then waits for a byte
// 'g' on fd 0: procs-load sends it once every process is let go, and
// an end of file without it (procs-load failed or died before) ends the
// init, and with it every process of the namespace. Then it reaps its
// children, the root and the orphans of the namespace, and tells
// procs-load each time the root stops (initStopped) and when it ends
// (initEnded, or initLast when nothing else is left): a record of
// initRecord bytes, the kind and the wait status, each a little-endian
// uint32. Once it has no child left, the namespace holds nothing but
// itself: it exits, and the namespace is gone.
//
// It catches every signal and does nothing with it: as PID 1, only a
// SIGKILL from outside the namespace ends it before its time (which
// ends the whole namespace). procs-load passes signals on to the root
// itself.

import (
	"encoding/binary"
	"os"
	"os/signal"
	"strconv"

	"golang.org/x/sys/unix"
)

// initName is argv[0] of the init, and its name (comm).
const initName = "procs-load-init"

// Kinds of the init's records.
const (
	initReady   = 1 // it runs and waits for the byte 'g'
	initStopped = 2 // the root stopped
	initEnded   = 3 // the root ended; processes of the namespace go on
	initLast    = 4 // the root ended, and was the last: the init exits
)

// initRecord is the size of a record of the init's.
const initRecord = 8

func init() {
	if len(os.Args) == 2 && os.Args[0] == initName {
		os.Exit(runInit(os.Args[1]))
	}
}

// runInit is the init's life; root is the root's PID in the namespace.
func runInit(root string) int {
	rootPID, err := strconv.Atoi(root)
	if err != nil {
		return 125
	}
	// Its name, not the "exe" of /proc/self/exe.
	os.WriteFile("/proc/self/comm", []byte(initName), 0)
	signal.Notify(make(chan os.Signal, 1))
	out := os.NewFile(1, "procs-load")
	tell(out, initReady, 0)
	var word [1]byte
	if n, _ := os.Stdin.Read(word[:]); n != 1 || word[0] != 'g' {
		return 125
	}
	os.Stdin.Close()
	flags := unix.WALL | unix.WUNTRACED
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, flags, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0 // no child left
		case pid != rootPID:
		case ws.Stopped():
			tell(out, initStopped, ws)
		case ws.Exited() || ws.Signaled():
			flags = unix.WALL
			if alone() {
				tell(out, initLast, ws)
				return 0
			}
			tell(out, initEnded, ws)
		}
	}
}

// alone reaps the children that ended and tells whether none is left.
func alone() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.ECHILD:
			return true
		case err == unix.EINTR:
		case err != nil || pid == 0:
			return false
		}
	}
}

// tell writes a record to procs-load; nobody may read it any more (with
// procs-load -d), which is no matter.
func tell(out *os.File, kind int, ws unix.WaitStatus) {
	var rec [initRecord]byte
	binary.LittleEndian.PutUint32(rec[:], uint32(kind))
	binary.LittleEndian.PutUint32(rec[4:], uint32(ws))
	out.Write(rec[:])
}
