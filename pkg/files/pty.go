package files

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// ptyMaster and ptySlave are the two ends of a pseudo-terminal whose
// master a process of the tree holds (a terminal emulator and its shell,
// tmux and its panes, script(1), expect, python's pty.fork), or a queue
// of the tree holds in flight (SCM_RIGHTS): the master,
// an fd on /dev/ptmx, and the slave, /dev/pts/N. They travel as one
// pair (format.PTY): its number N, the slave's termios and window size,
// the master's packet mode and lock, the slave's exclusive mode, the
// bytes queued both ways (typed on the master and not yet read on the
// slave side, written on the slave side and not yet read from the
// master), and the session whose controlling terminal the slave is, with
// its foreground process group.
//
// A slave whose master is not in the tree (held by a process outside
// it: a master no process holds is taken to be in flight, PairedSlaves)
// is the process's own terminal
// when it is its controlling terminal or on fds 0-2 (tty.go: the
// restorer's terminal); any other is refused, naming who holds the
// master, as is a master whose slave a process outside the tree holds.
//
// Unread bytes: a terminal's queues cannot be read without taking the
// bytes (there is no peek), so the dump takes them, while the tree is
// frozen, and puts them back at once, before it goes on, as they were:
// through TIOCSTI into the very queue they came from, with the slave's
// echo and signal characters off meanwhile (root), else written again
// through the other end; a helper process does it (ptyqueues.go), which
// finishes even if procs-dump is killed. The restore makes the pair with
// the same number: when that number is taken here, the tree gets a
// devpts instance of its own (restore engine, Pseudoterminal).
type (
	ptyMaster struct{}
	ptySlave  struct{}
)

// Pseudoterminal is a kind that is one end of a pseudo-terminal of the
// tree, which the restore engine places (its number, in a devpts
// instance) and makes the controlling terminal of a session.
type Pseudoterminal interface {
	// PTYIndex is N of /dev/pts/N when file f is a master, else -1.
	PTYIndex(f *format.File) int
	// Controls says, of file f, which session (its leader's PID) the
	// pseudo-terminal is the controlling terminal of, and which process
	// group is that terminal's foreground; 0 for none.
	Controls(f *format.File) (session, foreground int)
}

// ptmx is the device of /dev/ptmx (and of each devpts instance's ptmx).
var ptmx = unix.Mkdev(5, 2)

// maxPTY bounds a pty's number (NR_UNIX98_PTY_MAX), ptyQueue the bytes
// of one of its queues in an image: the line discipline's 4096 and what
// waits behind it in the terminal's buffers (64 KiB).
const (
	maxPTY   = 1 << 20
	ptyQueue = 68 << 10
	nttyBuf  = 4095 // what a line discipline holds (N_TTY_BUF_SIZE - 1)
)

// isSlave says whether rdev is a pseudo-terminal slave (/dev/pts/N).
func isSlave(rdev uint64) bool {
	m := unix.Major(rdev)
	return m >= 136 && m <= 143
}

// slaveIndex is N of the slave /dev/pts/N of device rdev.
func slaveIndex(rdev uint64) int {
	return int(unix.Major(rdev)-136)<<8 | int(unix.Minor(rdev))
}

// slaveDev is the device of /dev/pts/N.
func slaveDev(n int) uint64 { return unix.Mkdev(uint32(136+n>>8), uint32(n&0xff)) }

func (ptyMaster) Name() string { return format.FilePTYMaster }
func (ptySlave) Name() string  { return format.FilePTYSlave }

func (ptyMaster) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Kind == procfs.FileChar && fd.Rdev == ptmx
}

func (ptySlave) Match(fd *procfs.FD, ts Terminals) bool {
	return fd.Kind == procfs.FileChar && isSlave(fd.Rdev) && !ts[fd.Rdev]
}

// A master has one open file description (opening /dev/ptmx again makes
// another pair), which travels in flight too; a slave is one file,
// opened as often as it was.
func (ptyMaster) Traits() Traits { return Traits{OneOpen: true, Sent: true} }
func (ptySlave) Traits() Traits  { return Traits{Shared: true} }

func (ptyMaster) PTYIndex(f *format.File) int { return f.PTY.Index }
func (ptySlave) PTYIndex(*format.File) int    { return -1 }

func (ptyMaster) Controls(f *format.File) (int, int) { return f.PTY.Session, f.PTY.Foreground }
func (ptySlave) Controls(*format.File) (int, int)    { return 0, 0 }

// PairedSlaves are the devices of the slaves whose master one of the
// processes pids holds: they are no process's own terminal, whatever
// their controlling terminal, but a pair of the tree. So are, when the
// processes hold a unix socket, the slaves they hold whose master no
// process holds on an fd: it is in flight in a socket's queue
// (SCM_RIGHTS), where CheckTree finds it, or refuses the slave.
func PairedSlaves(pids []int) map[uint64]bool {
	out := map[uint64]bool{}
	slaves := map[uint64]bool{}
	sockets := false
	for _, pid := range pids {
		fds, err := procfs.FDs(pid)
		if err != nil {
			continue // a zombie
		}
		for _, fd := range fds {
			switch {
			case fd.Unix != nil:
				sockets = true
			case fd.Kind == procfs.FileChar && isSlave(fd.Rdev):
				slaves[fd.Rdev] = true
			case fd.Kind == procfs.FileChar && fd.Rdev == ptmx:
				if n, err := strconv.Atoi(strings.TrimSpace(fd.Info["tty-index"])); err == nil {
					out[slaveDev(n)] = true
				}
			}
		}
	}
	for dev := range slaves {
		if sockets && !out[dev] && !masterHeld(slaveIndex(dev)) {
			out[dev] = true
		}
	}
	return out
}

// masterHeld says whether a process of this host holds the master of
// pseudo-terminal n on an fd (of any devpts instance: the number alone
// is asked, as refuseUnpaired does), or may: when procs-dump cannot see
// every process's fds (from a PID namespace other than the host's, or
// without the right to read another user's), a master it does not find
// may be held where it cannot look, and the slave stays the process's
// own terminal, as it was.
func masterHeld(n int) bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(status), "\nNSpid:\t"+strconv.Itoa(os.Getpid())+"\n") {
		return true // not the host's PID namespace
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	want := fmt.Sprintf("tty-index:\t%d\n", n)
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + d.Name() + "/fd")
		if errors.Is(err, os.ErrNotExist) {
			continue // gone, or a zombie's
		}
		if err != nil {
			return true
		}
		for _, e := range fds {
			t, err := os.Readlink("/proc/" + d.Name() + "/fd/" + e.Name())
			if err != nil || !strings.HasSuffix(t, "/ptmx") {
				continue
			}
			info, err := os.ReadFile("/proc/" + d.Name() + "/fdinfo/" + e.Name())
			if err == nil && strings.Contains(string(info), want) {
				return true
			}
		}
	}
	return false
}

// Dump records the pair's state from the master, through a copy of its
// fd: the slave's termios, window size and session as the master sees
// them, packet mode, lock and hang-up. Its queues are read once the
// whole tree is (CheckTree).
func (ptyMaster) Dump(src Source, fd *procfs.FD, idx int) error {
	m, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(m)
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("fd %d: its pseudo-terminal's number: %w", fd.Num, err)
	}
	st := &format.PTY{Index: n, Master: -1}
	tio, err := unix.IoctlGetTermios(m, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("fd %d: termios of /dev/pts/%d: %w", fd.Num, n, err)
	}
	st.Iflag, st.Oflag, st.Cflag, st.Lflag, st.Line, st.Cc = tio.Iflag, tio.Oflag, tio.Cflag, tio.Lflag, tio.Line, tio.Cc[:]
	if ws, err := unix.IoctlGetWinsize(m, unix.TIOCGWINSZ); err == nil {
		st.Rows, st.Cols, st.XPixel, st.YPixel = ws.Row, ws.Col, ws.Xpixel, ws.Ypixel
	}
	pkt, err1 := unix.IoctlGetInt(m, unix.TIOCGPKT)
	lck, err2 := unix.IoctlGetInt(m, unix.TIOCGPTLCK)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("fd %d: modes of /dev/pts/%d: %w", fd.Num, n, err)
	}
	st.Packet, st.Locked = pkt != 0, lck != 0
	// Through the master, the slave's session and foreground whoever
	// asks (ENOTTY: none).
	st.Session, _ = unix.IoctlGetInt(m, unix.TIOCGSID)
	if st.Session != 0 {
		st.Foreground, _ = unix.IoctlGetInt(m, unix.TIOCGPGRP)
	}
	pfd := []unix.PollFd{{Fd: int32(m), Events: unix.POLLIN}}
	if _, err := unix.Poll(pfd, 0); err == nil && pfd[0].Revents&unix.POLLHUP != 0 {
		st.Hangup = true
	}
	// The slave's device, by which CheckTree pairs it (a number is one
	// devpts instance's); O_PATH opens nothing.
	if p, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_PATH|unix.O_CLOEXEC); e == 0 {
		var s unix.Stat_t
		if unix.Fstat(int(p), &s) == nil {
			st.SlaveDev = s.Dev
		}
		unix.Close(int(p))
	}
	src.File(idx).PTY = st
	return nil
}

// Dump records the slave's number and exclusive mode; CheckTree finds
// its master.
func (ptySlave) Dump(src Source, fd *procfs.FD, idx int) error {
	s, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	excl, err := unix.IoctlGetInt(s, unix.TIOCGEXCL)
	if err != nil {
		return fmt.Errorf("fd %d: mode of %s: %w", fd.Num, fd.Target, err)
	}
	src.File(idx).PTY = &format.PTY{Index: slaveIndex(fd.Rdev), Master: -1, Exclusive: excl != 0}
	return nil
}

// CheckTree pairs each slave with its master, refuses an end whose other
// end is outside the tree and a controlling terminal whose session or
// foreground group the tree cannot make again, then reads the queues of
// each pair.
func (ptyMaster) CheckTree(fs []format.File, procs []format.Process, out *Outside) error {
	masters := map[int]int{} // number -> file
	for i := range fs {
		if fs[i].Kind == format.FilePTYMaster && fs[i].PTY != nil {
			masters[fs[i].PTY.Index] = i
		}
	}
	var unpaired []int
	for i := range fs {
		st := fs[i].PTY
		if fs[i].Kind != format.FilePTYSlave || st == nil {
			continue
		}
		if j, ok := masters[st.Index]; ok && (fs[j].PTY.SlaveDev == 0 || fs[j].PTY.SlaveDev == fs[i].Dev) {
			st.Master = j
		} else {
			unpaired = append(unpaired, i)
		}
	}
	if len(unpaired) > 0 {
		return refuseUnpaired(fs, procs, unpaired[0], out)
	}
	if len(masters) == 0 {
		return nil
	}
	if err := refuseOutsideSlaves(fs, procs, masters, out); err != nil {
		return err
	}
	for _, i := range masters {
		if err := checkSession(fs, procs, i); err != nil {
			return err
		}
	}
	for _, i := range masters {
		if err := readQueues(fs, procs, i, out); err != nil {
			return err
		}
	}
	return nil
}

// refuseUnpaired refuses slave i, whose master is not in the tree,
// naming the process that holds the master when one does.
func refuseUnpaired(fs []format.File, procs []format.Process, i int, out *Outside) error {
	n := fs[i].PTY.Index
	what := fmt.Sprintf("%s is the pseudo-terminal /dev/pts/%d, which is not its own terminal (its controlling terminal, or one on fds 0-2)", holderOf(procs, i), n)
	err := out.Each(func(pid int, num, target string) error {
		if !strings.HasSuffix(target, "/ptmx") {
			return nil
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, num))
		if err == nil && strings.Contains(string(info), fmt.Sprintf("tty-index:\t%d\n", n)) {
			return refusef("%s and whose master process %d, outside the tree, holds as fd %s: only a pseudo-terminal whose both ends are in the tree travels", what, pid, num)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return refusef("%s and whose master is not in the tree: only a pseudo-terminal whose both ends are in the tree travels", what)
}

// refuseOutsideSlaves refuses a master of the tree whose slave a process
// outside it holds: it would lose its terminal.
func refuseOutsideSlaves(fs []format.File, procs []format.Process, masters map[int]int, out *Outside) error {
	return out.Each(func(pid int, num, target string) error {
		rest, ok := strings.CutPrefix(target, "/dev/pts/")
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil
		}
		i, ok := masters[n]
		if !ok {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, num), &st) != nil || st.Rdev != slaveDev(n) ||
			fs[i].PTY.SlaveDev != 0 && st.Dev != fs[i].PTY.SlaveDev {
			return nil
		}
		return refusef("%s is the master of the pseudo-terminal /dev/pts/%d, which process %d, outside the tree, holds as fd %s", holderOf(procs, i), n, pid, num)
	})
}

// checkSession refuses a pty that is the controlling terminal of a
// session the restore cannot give it again: one whose leader is not a
// member (or is the root, which stays in the restorer's session), or
// whose foreground group no member is in.
func checkSession(fs []format.File, procs []format.Process, i int) error {
	st := fs[i].PTY
	if st.Session == 0 {
		return nil
	}
	leader := -1
	for k := range procs {
		if procs[k].PID == st.Session && procs[k].Sid == st.Session && procs[k].Zombie == nil {
			leader = k
		}
	}
	switch {
	case leader < 0:
		return refusef("/dev/pts/%d, whose master %s holds, is the controlling terminal of session %d, whose leader is not in the tree", st.Index, holderOf(procs, i), st.Session)
	case leader == 0:
		return refusef("/dev/pts/%d, whose master %s holds, is the controlling terminal of the session the root of the tree leads: the root comes back in the restorer's session (dump the process that holds the master and the session together)", st.Index, holderOf(procs, i))
	}
	if st.Foreground == 0 {
		return nil
	}
	for _, p := range procs {
		if p.Pgid == st.Foreground && p.Sid == st.Session {
			return nil
		}
	}
	return refusef("the foreground process group %d of /dev/pts/%d is not in the tree", st.Foreground, st.Index)
}

// readQueues reads the bytes queued both ways in pair i, through copies
// of the fds of the tree that hold its master (or of procs-dump's, of a
// master in flight: out.Carried) and a slave, and puts them back at
// once as they were (a helper process does: see ptyqueues.go). Without
// a slave in the tree, the queues stay where they are and do not travel.
func readQueues(fs []format.File, procs []format.Process, i int, out *Outside) error {
	var sp *format.Process
	var sfd *format.FD
	for j := range fs {
		if fs[j].Kind == format.FilePTYSlave && fs[j].PTY != nil && fs[j].PTY.Master == i {
			sp, sfd = Holder(procs, j)
		}
	}
	if sp == nil {
		return nil
	}
	m, err := masterOf(fs, procs, i, out)
	if err != nil || m < 0 {
		return err
	}
	mf := os.NewFile(uintptr(m), "master")
	defer mf.Close()
	s, err := takeFD(sp.PID, sfd.Num)
	if err != nil {
		return err
	}
	sf := os.NewFile(uintptr(s), "slave")
	defer sf.Close()
	st := fs[i].PTY
	in, outq, err := takeQueuesApart(mf, sf, st.Packet)
	if err != nil {
		return fmt.Errorf("the queues of /dev/pts/%d: %w", st.Index, err)
	}
	st.Input, st.Output = in, outq
	return nil
}

// masterOf is a copy of master i: of the fd of the process of the tree
// that holds it, or of procs-dump's own of one in flight; -1 if none.
func masterOf(fs []format.File, procs []format.Process, i int, out *Outside) (int, error) {
	if p, fd := Holder(procs, i); p != nil {
		return takeFD(p.PID, fd.Num)
	}
	for _, fd := range InFlightFDs(fs) {
		if num, ok := out.Carried[fd.Open]; ok && fd.File == i {
			m, err := unix.FcntlInt(uintptr(num), unix.F_DUPFD_CLOEXEC, 0)
			return m, os.NewSyscallError("fcntl", err)
		}
	}
	return -1, nil
}

// takeQueues takes the bytes queued in the pty whose master is m and
// whose slave is s (open file descriptions of the tree's, frozen) and
// puts them back: the slave's input with the slave raw meanwhile (the
// line it holds whole, canonical or not), the master's as it comes
// (packet mode's header bytes off). Both descriptions get their flags
// and the slave its modes back.
func takeQueues(m, s int, packet bool) ([]byte, []byte, error) {
	tio, err := unix.IoctlGetTermios(s, unix.TCGETS)
	if err != nil {
		return nil, nil, err
	}
	for _, fd := range []int{m, s} {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return nil, nil, err
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK); err != nil {
			return nil, nil, err
		}
		defer unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
	}
	defer unix.IoctlSetTermios(s, unix.TCSETS, tio)
	raw := *tio
	raw.Iflag, raw.Lflag = 0, 0
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 0, 0
	if err := unix.IoctlSetTermios(s, unix.TCSETS, &raw); err != nil {
		return nil, nil, err
	}
	// What was read goes back even when a read failed halfway.
	in, errIn := drainTTY(s, false)
	out, errOut := drainTTY(m, packet)
	return in, out, errors.Join(errIn, errOut, putBack(m, s, tio, in, out))
}

// drainTTY reads fd, non-blocking, until it has nothing more; in packet
// mode each read starts with a header byte, which it drops (a packet of
// the header alone tells of a flush or a flow change: dropped too). On
// an error it returns what it read before it.
func drainTTY(fd int, packet bool) ([]byte, error) {
	var data []byte
	buf := make([]byte, 8192)
	for len(data) < ptyQueue {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EIO || n == 0 && err == nil {
			return data, nil // empty; EIO: the other end is closed
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return data, err
		}
		if packet {
			n--
			copy(buf, buf[1:n+1])
		}
		data = append(data, buf[:n]...)
	}
	return data, nil
}

// putBack puts in into the slave's queue and out into the master's, as
// they were, and gives the slave modes tio. Each byte goes straight into
// the queue it belongs to (TIOCSTI, which needs CAP_SYS_ADMIN), with the
// slave's echo, signals and input mapping off meanwhile (they happened
// when the byte came first), its canonical mode on as it was (lines are
// lines again); what does not fit in a line discipline, and every byte
// without CAP_SYS_ADMIN, is written through the other end and waited for.
func putBack(m, s int, tio *unix.Termios, in, out []byte) error {
	quiet := *tio
	quiet.Iflag = 0
	quiet.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ECHOCTL | unix.ECHOPRT | unix.ECHOKE |
		unix.ISIG | unix.IEXTEN
	quiet.Oflag &^= unix.OPOST
	if err := unix.IoctlSetTermios(s, unix.TCSETS, &quiet); err != nil {
		return err
	}
	canon := tio.Lflag&unix.ICANON != 0
	for _, q := range []struct {
		into, through int
		data          []byte
		canon         bool
	}{{s, m, in, canon}, {m, s, out, false}} {
		if err := insert(q.into, q.through, q.data, q.canon); err != nil {
			return err
		}
	}
	return unix.IoctlSetTermios(s, unix.TCSETS, tio)
}

// insert puts data into the input queue of the terminal end into: the
// first bytes directly (TIOCSTI), the rest written through the other
// end, through, and waited for until the line discipline has taken them
// (its count of readable bytes, which counts only whole lines in
// canonical mode, reaches theirs).
func insert(into, through int, data []byte, canon bool) error {
	direct := 0
	for direct < len(data) && direct < nttyBuf {
		if err := unix.IoctlSetPointerInt(into, unix.TIOCSTI, int(data[direct])); err != nil {
			if direct == 0 && (err == unix.EPERM || err == unix.EIO) {
				break // not ours to do: written through
			}
			return os.NewSyscallError("ioctl(TIOCSTI)", err)
		}
		direct++
	}
	rest := data[direct:]
	for len(rest) > 0 {
		n, err := unix.Write(through, rest)
		if err == unix.EAGAIN {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	if direct == len(data) {
		return nil
	}
	want := len(data)
	if canon {
		want = strings.LastIndexByte(string(data), '\n') + 1
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n, err := unix.IoctlGetInt(into, unix.TIOCINQ); err != nil || n >= min(want, nttyBuf) {
			break
		}
	}
	if want < len(data) {
		time.Sleep(20 * time.Millisecond) // a line not ended: no count tells it is in
	}
	return nil
}

// Prepare makes the pair, once for its master and slave.
func (ptyMaster) Prepare(l Loader, i int, f *format.File, what string) error {
	if l.Local(i) != nil {
		return nil
	}
	return makePair(l, i, what)
}

func (ptySlave) Prepare(l Loader, i int, f *format.File, what string) error {
	if l.Local(i) != nil {
		return nil // made with its master
	}
	return makePair(l, f.PTY.Master, what)
}

// makePair makes the pseudo-terminal of master file mi again in the
// loader, as the process (the slave is its owner's), with its number:
// its modes, its queues, then its lock. The loader owns the master and
// the slave's file, from which the processes' fds are opened.
func makePair(l Loader, mi int, what string) error {
	st := l.File(mi).PTY
	mf, err := openNumber(l, st.Index)
	if err != nil {
		return err
	}
	m := int(mf.Fd())
	fail := func(err error) error {
		mf.Close()
		return fmt.Errorf("%s: /dev/pts/%d: %w", what, st.Index, err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	slave := -1
	for j, f := range l.Files() {
		if f.Kind == format.FilePTYSlave && f.PTY != nil && f.PTY.Master == mi {
			slave = j
		}
	}
	var sf *os.File
	if slave >= 0 || st.Hangup || len(st.Input) > 0 {
		p, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC)
		if e != 0 {
			return fail(fmt.Errorf("opening its slave: %w", e))
		}
		sf = os.NewFile(p, fmt.Sprintf("/dev/pts/%d", st.Index))
	}
	tio := &unix.Termios{Iflag: st.Iflag, Oflag: st.Oflag, Cflag: st.Cflag, Lflag: st.Lflag, Line: st.Line}
	copy(tio.Cc[:], st.Cc)
	if sf != nil {
		err = putBack(m, int(sf.Fd()), tio, st.Input, st.Output)
	} else {
		err = errors.Join(unix.IoctlSetTermios(m, unix.TCSETS, tio), insert(m, -1, st.Output, false))
	}
	if err == nil {
		err = unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: st.Rows, Col: st.Cols, Xpixel: st.XPixel, Ypixel: st.YPixel})
	}
	if err == nil && st.Packet {
		err = unix.IoctlSetPointerInt(m, unix.TIOCPKT, 1)
	}
	if err == nil && st.Locked {
		err = unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 1)
	}
	if err != nil {
		if sf != nil {
			sf.Close()
		}
		return fail(err)
	}
	l.Own(mi, mf)
	if slave < 0 {
		if sf != nil {
			sf.Close() // hung up: every slave was closed
		}
		return nil
	}
	sl := l.File(slave)
	unix.Fchmod(int(sf.Fd()), sl.Mode&0o777)
	if sl.PTY.Exclusive {
		// Exclusive before the processes' descriptions are opened from
		// it: root may still open them (CAP_SYS_ADMIN), no one else.
		if err := unix.IoctlSetInt(int(sf.Fd()), unix.TIOCEXCL, 0); err != nil {
			l.Warn("/dev/pts/%d comes back without its exclusive mode: %v", st.Index, err)
		}
	}
	l.Own(slave, sf)
	return nil
}

// openNumber opens a master of number n: devpts gives the lowest free
// one, so the masters of the lower free numbers are held until it comes.
// A number above n means n is in use.
func openNumber(l Loader, n int) (*os.File, error) {
	var below []*os.File
	defer func() {
		for _, f := range below {
			f.Close()
		}
	}()
	for len(below) <= n {
		f, err := l.OpenPTMX()
		if err != nil {
			return nil, fmt.Errorf("a pseudo-terminal for /dev/pts/%d: %w", n, err)
		}
		got, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPTN)
		switch {
		case err != nil:
			f.Close()
			return nil, fmt.Errorf("a pseudo-terminal's number: %w", err)
		case got == n:
			return f, nil
		case got > n:
			f.Close()
			return nil, fmt.Errorf("pseudo-terminal /dev/pts/%d is in use here", n)
		}
		below = append(below, f)
	}
	return nil, fmt.Errorf("pseudo-terminal /dev/pts/%d is in use here", n)
}

// Validate checks a master's state (its number, modes, queues and
// session) and that its one open file description is shared by all its
// fds; a slave's number and master.
func (ptyMaster) Validate(fs []format.File, i int, procs []format.Process) error {
	st := fs[i].PTY
	switch {
	case st == nil:
		return fmt.Errorf("image file %d, a pseudo-terminal's master, has no pseudo-terminal state", i)
	case st.Index < 0 || st.Index >= maxPTY || st.Master != -1:
		return fmt.Errorf("image pseudo-terminal %d: number %d, master %d: out of range", i, st.Index, st.Master)
	case len(st.Cc) != 19 || len(st.Input) > ptyQueue || len(st.Output) > ptyQueue:
		return fmt.Errorf("image pseudo-terminal %d: %d control characters, %d and %d bytes queued: out of range", i, len(st.Cc), len(st.Input), len(st.Output))
	case st.Exclusive:
		return fmt.Errorf("image pseudo-terminal %d: a master in exclusive mode (a slave's)", i)
	}
	for j := range fs {
		o := fs[j].PTY
		if j == i || fs[j].Kind != format.FilePTYMaster || o == nil {
			continue
		}
		if o.Index == st.Index {
			return fmt.Errorf("image pseudo-terminals %d and %d have the same number %d", j, i, st.Index)
		}
		if st.Session != 0 && o.Session == st.Session {
			return fmt.Errorf("image pseudo-terminals %d and %d both control session %d", j, i, st.Session)
		}
	}
	open := 0
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.File != i {
				continue
			}
			if fd.Flags&unix.O_PATH != 0 || open != 0 && fd.Open != open {
				return fmt.Errorf("image process %d fd %d: a pseudo-terminal's master has one open file description, not O_PATH", p.PID, fd.Num)
			}
			open = fd.Open
		}
	}
	return validSession(st, i, procs)
}

// validSession checks that the session a master's slave controls is led
// by a live process of the image other than the root, and its
// foreground group one of that session's.
func validSession(st *format.PTY, i int, procs []format.Process) error {
	if st.Session == 0 {
		if st.Foreground != 0 {
			return fmt.Errorf("image pseudo-terminal %d has a foreground group and no session", i)
		}
		return nil
	}
	ok := false
	for k, p := range procs {
		ok = ok || k > 0 && p.PID == st.Session && p.Sid == p.PID && p.Zombie == nil
	}
	if !ok {
		return fmt.Errorf("image pseudo-terminal %d controls session %d, which no live process of the image but the root leads", i, st.Session)
	}
	if st.Foreground == 0 {
		return nil
	}
	for _, p := range procs {
		if p.Pgid == st.Foreground && p.Sid == st.Session {
			return nil
		}
	}
	return fmt.Errorf("image pseudo-terminal %d has foreground group %d, not a group of session %d", i, st.Foreground, st.Session)
}

func (ptySlave) Validate(fs []format.File, i int, procs []format.Process) error {
	st := fs[i].PTY
	if st == nil {
		return fmt.Errorf("image file %d, a pseudo-terminal's slave, has no pseudo-terminal state", i)
	}
	m := st.Master
	if m < 0 || m >= len(fs) || fs[m].Kind != format.FilePTYMaster || fs[m].PTY == nil || fs[m].PTY.Index != st.Index {
		return fmt.Errorf("image pseudo-terminal %d: master %d is not its master", i, m)
	}
	// Nothing of a master's: what a slave has is its number, master and
	// exclusive mode.
	rest := *st
	rest.Index, rest.Master, rest.Exclusive = 0, 0, false
	empty := len(st.Cc)+len(st.Input)+len(st.Output) == 0
	rest.Cc, rest.Input, rest.Output = nil, nil, nil
	if !empty || !reflect.DeepEqual(rest, format.PTY{}) {
		return fmt.Errorf("image pseudo-terminal %d: a slave with the state of a master", i)
	}
	for j := range fs {
		if j != i && fs[j].Kind == format.FilePTYSlave && fs[j].PTY != nil && fs[j].PTY.Master == m {
			return fmt.Errorf("image pseudo-terminals %d and %d are both the slave of %d", j, i, m)
		}
	}
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.File == i && fd.Flags&unix.O_PATH != 0 {
				return fmt.Errorf("image process %d fd %d: an O_PATH fd of a pseudo-terminal", p.PID, fd.Num)
			}
		}
	}
	return nil
}
