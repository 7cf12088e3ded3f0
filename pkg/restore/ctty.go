// Pseudo-terminals of the tree (pkg/files/pty.go): where they are made
// (their numbers, in a devpts instance), and the sessions they are the
// controlling terminals of, with their foreground groups.

package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/inject"
)

// ptyNumbers are the numbers (N of /dev/pts/N) of the image's
// pseudo-terminals.
func ptyNumbers(fs []format.File) []int {
	var ns []int
	for i := range fs {
		if k, ok := files.Lookup(fs[i].Kind).(files.Pseudoterminal); ok {
			if n := k.PTYIndex(&fs[i]); n >= 0 {
				ns = append(ns, n)
			}
		}
	}
	slices.Sort(ns)
	return ns
}

// placePTYs decides where the tree's pseudo-terminals are made: in the
// caller's devpts (/dev/ptmx), with their numbers, when those are free
// here; else, as root, in a devpts instance of the tree's own, mounted
// on /dev/pts of the mount namespace it runs in (with a PID namespace:
// see pidns.go), where they are. The numbers are checked again as the
// pairs are made (a number taken meanwhile is refused there).
func (t *tree) placePTYs() error {
	var taken []string
	for _, n := range ptyNumbers(t.files) {
		if _, err := os.Lstat("/dev/pts/" + strconv.Itoa(n)); err == nil {
			taken = append(taken, "/dev/pts/"+strconv.Itoa(n))
		}
	}
	if len(taken) == 0 {
		return nil
	}
	what := "pseudo-terminal " + taken[0] + " is"
	if len(taken) > 1 {
		what = "pseudo-terminals " + strings.Join(taken, ", ") + " are"
	}
	switch {
	case t.opts.PID == PIDKeep || t.opts.PID == PIDNew:
		return fmt.Errorf("--pid=%s: %s in use here (--pid=auto gives the tree a devpts instance of its own)", map[PIDMode]string{PIDKeep: "keep", PIDNew: "new"}[t.opts.PID], what)
	case !hasCap(unix.CAP_SYS_ADMIN):
		return fmt.Errorf("%s in use here, and only root can give the tree a devpts instance of its own", what)
	case t.ns == nil:
		if err := t.useNamespace(); err != nil {
			return err
		}
	}
	t.logf("%s in use here: the tree gets a devpts instance of its own", what)
	t.newPts = true
	return nil
}

// newDevpts makes a devpts instance, mounted nowhere yet, with the
// options of the caller's /dev/pts (the group and mode of new slaves),
// and a ptmx anyone may open, as /dev/ptmx is.
func newDevpts() (*os.File, error) {
	fsfd, err := unix.Fsopen("devpts", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("a devpts instance for the tree's pseudo-terminals: %w", err)
	}
	defer unix.Close(fsfd)
	opts := append(devptsOptions(), [2]string{"ptmxmode", "0666"})
	for _, o := range opts {
		if err := unix.FsconfigSetString(fsfd, o[0], o[1]); err != nil {
			return nil, fmt.Errorf("a devpts instance, option %s=%s: %w", o[0], o[1], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("a devpts instance: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("a devpts instance: %w", err)
	}
	return os.NewFile(uintptr(mfd), "devpts"), nil
}

// devptsOptions are the gid and mode options of the caller's /dev/pts.
func devptsOptions() [][2]string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != "/dev/pts" || f[len(f)-3] != "devpts" {
			continue
		}
		out = out[:0]
		for _, o := range strings.Split(f[len(f)-1], ",") {
			if k, v, ok := strings.Cut(o, "="); ok && (k == "gid" || k == "mode") {
				out = append(out, [2]string{k, v})
			}
		}
	}
	return out
}

// OpenPTMX opens a new master in the tree's devpts instance, as the
// process: its slave is the process's user's.
func (l loader) OpenPTMX() (*os.File, error) {
	t := l.b.tree
	if t.newPts && t.pts == nil {
		var err error
		if t.pts, err = newDevpts(); err != nil {
			return nil, err
		}
	}
	const flags = unix.O_RDWR | unix.O_NOCTTY | unix.O_NONBLOCK | unix.O_CLOEXEC
	var fd int
	err := l.b.op.do(func() error {
		var err error
		if t.pts != nil {
			fd, err = unix.Openat(int(t.pts.Fd()), "ptmx", flags, 0)
		} else {
			fd, err = unix.Open("/dev/ptmx", flags, 0)
		}
		return err
	})
	if err != nil {
		return nil, os.NewSyscallError("open(/dev/ptmx)", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// mountPts mounts the tree's devpts instance on /dev/pts of the mount
// namespace of the PID namespace's first process (r, pid): /dev/pts/N
// are the tree's slaves there, and /dev/ptmx makes new ones in it.
// Precondition: tracer thread.
func (t *tree) mountPts(r *inject.Remote, pid int) error {
	if t.pts == nil {
		return nil
	}
	fd, err := t.giveFD(r, pid, stubSocket, t.pts)
	if err != nil {
		return err
	}
	str, err := t.strings(pid, "", "/dev/pts")
	if err != nil {
		return err
	}
	if _, err := r.Syscall("move_mount(/dev/pts)", unix.SYS_MOVE_MOUNT, fd, str[0], atFDCWD, str[1], unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting the tree's devpts instance on /dev/pts: %w", err)
	}
	_, err = r.Syscall("close", unix.SYS_CLOSE, fd)
	return err
}

// controlled is the image's pseudo-terminal whose slave is the
// controlling terminal of session sid, and its foreground group.
func (t *tree) controlled(sid int) (file, fg int, ok bool) {
	for i := range t.files {
		if k, isPTY := files.Lookup(t.files[i].Kind).(files.Pseudoterminal); isPTY {
			if s, g := k.Controls(&t.files[i]); s == sid {
				return i, g, true
			}
		}
	}
	return 0, 0, false
}

// ptyFD gives the process an fd of the loader's open file description of
// pseudo-terminal i (its master's, through which ioctls reach the
// slave; of one in flight, which no process holds, the loader's too),
// and returns its number there.
func (b *builder) ptyFD(i int) (uint64, error) {
	for _, p := range b.imgs {
		for _, fd := range p.FDs {
			if fd.File == i && b.descs[fd.Open] != nil {
				return b.takeFD(b.descs[fd.Open])
			}
		}
	}
	for _, fd := range files.InFlightFDs(b.files) {
		if fd.File == i && b.descs[fd.Open] != nil {
			return b.takeFD(b.descs[fd.Open])
		}
	}
	return 0, fmt.Errorf("no open file for pseudo-terminal /dev/pts/%d", b.files[i].PTY.Index)
}

// controlTerminal gives the process, once it leads its session again
// (setsid), the controlling terminal that session had, when it is a
// pseudo-terminal of the tree (TIOCSCTTY): its children, made after it,
// inherit it.
func (b *builder) controlTerminal() error {
	i, _, ok := b.controlled(b.img.PID)
	if !ok {
		return nil
	}
	fd, err := b.ptyFD(i)
	if err != nil {
		return err
	}
	if _, err := b.main.Syscall("ioctl(TIOCSCTTY)", unix.SYS_IOCTL, fd, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("making /dev/pts/%d its controlling terminal: %w", b.files[i].PTY.Index, err)
	}
	_, err = b.main.Syscall("close", unix.SYS_CLOSE, fd)
	return err
}

// foregrounds gives each pseudo-terminal of the tree that controls a
// session its foreground process group, once every group exists: from
// its session's leader (TIOCSPGRP).
func (t *tree) foregrounds() error {
	for _, b := range t.procs {
		i, fg, ok := t.controlled(b.img.PID)
		if !ok || fg == 0 || b.img.Sid != b.img.PID {
			continue
		}
		fd, err := b.ptyFD(i)
		if err != nil {
			return b.wrap(err)
		}
		if err := b.write(offBig, binary.LittleEndian.AppendUint32(nil, uint32(fg))); err != nil {
			return b.wrap(err)
		}
		if _, err := b.main.Syscall("ioctl(TIOCSPGRP)", unix.SYS_IOCTL, fd, unix.TIOCSPGRP, b.scratch+offBig); err != nil {
			return b.wrap(fmt.Errorf("giving /dev/pts/%d its foreground group %d: %w", b.files[i].PTY.Index, fg, err))
		}
		if _, err := b.main.Syscall("close", unix.SYS_CLOSE, fd); err != nil {
			return b.wrap(err)
		}
	}
	return nil
}
