package restore

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/safetext"
)

// opener opens files as the restored process will be: with its file
// system ids and supplementary groups, and no capability. Every path of
// the image is opened by it, so that root restoring another user's
// process gives it nothing that user could not open (an fd on
// /etc/shadow, a mapping of a file in a folder closed to it, a file
// created in /etc...).
//
// How: one goroutine locked to its own OS thread, never unlocked, so the
// thread dies with it and no other goroutine ever runs with its
// credentials; its credentials are set with per-thread system calls
// (setgroups, setfsgid, setfsuid, capset: Linux keeps credentials per
// thread, and these raw calls, unlike glibc's or the syscall package's
// setuid family, change only the calling one). Moving the fs uid away
// from 0 drops CAP_DAC_OVERRIDE and the other file capabilities; capset
// then drops the rest (CAP_SYS_PTRACE would still open /proc/1/mem).
// Go's runtime never clones a new thread from a locked one.
//
// When the process runs as root (effective uid 0), or as the caller
// (whose own credentials are then the same), the thread keeps the
// caller's credentials.
type opener struct {
	uid    int // the restored process's fs uid
	asUser bool
	reqs   chan func()
	closed bool // its thread has ended
}

// newOpener starts the opener for a process with credentials c.
func newOpener(c format.Creds) (*opener, error) {
	o := &opener{uid: c.UID[1], asUser: os.Geteuid() == 0 && c.UID[1] != 0, reqs: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if o.asUser {
			if err := becomeUser(c); err != nil {
				ready <- err
				return
			}
		}
		ready <- nil
		for f := range o.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return o, nil
}

// becomeUser gives the calling thread the file system credentials the
// restored process will have (setresuid and setresgid make its fs ids
// its effective ones) and no capability.
// Precondition: the OS thread is locked and is never unlocked.
func becomeUser(c format.Creds) error {
	if err := unix.Setgroups(c.Groups); err != nil { // per thread: a raw setgroups(2)
		return os.NewSyscallError("setgroups", err)
	}
	unix.Setfsgid(c.GID[1])
	unix.Setfsuid(c.UID[1])
	// setfsuid and setfsgid say nothing on failure; -1 asks without
	// changing.
	if u, _ := unix.SetfsuidRetUid(-1); u != c.UID[1] {
		return fmt.Errorf("cannot take fs uid %d (have %d)", c.UID[1], u)
	}
	if g, _ := unix.SetfsgidRetGid(-1); g != c.GID[1] {
		return fmt.Errorf("cannot take fs gid %d (have %d)", c.GID[1], g)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// do runs f on the opener's thread and returns its error.
func (o *opener) do(f func() error) error {
	done := make(chan error, 1)
	o.reqs <- func() { done <- f() }
	return <-done
}

// close ends the opener's goroutine, and its thread with it.
func (o *opener) close() {
	if o != nil {
		close(o.reqs)
		o.closed = true
	}
}

// fail names what could not be opened, the path, and the user
// who could not: "fd 5: "/etc/shadow": permission denied for uid 1001".
func (o *opener) fail(what, path string, err error) error {
	if o.asUser && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		return fmt.Errorf("%s: %s: permission denied for uid %d", what, safetext.Quote(path), o.uid)
	}
	return fmt.Errorf("%s: %s: %w", what, safetext.Quote(path), err)
}
