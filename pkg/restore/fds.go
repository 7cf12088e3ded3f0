// File descriptors: the loader's open files handed to the process being
// built and placed at their numbers, and its /proc/self fds.

package restore

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/inject"
	"procs/pkg/linux"
	"procs/pkg/ptrace"
	"procs/pkg/safetext"
)

// offFD is where giveFD has its buffers in the scratch area.
const offFD = 0xf000

// takeFD gives the process being built a copy of lf, an open file of
// the loader's (the same open file description), and returns its number
// in the process; it is close-on-exec.
func (b *builder) takeFD(lf *os.File) (uint64, error) {
	if err := b.raiseSocket(); err != nil {
		return 0, err
	}
	return b.giveFD(b.main, b.pid, uint64(b.sock), lf)
}

// giveFD sends lf on the loader's socket and has r's thread, of process
// pid, receive it from the other end, its fd sock; it returns the fd's
// number there (close-on-exec).
func (t *tree) giveFD(r *inject.Remote, pid int, sock uint64, lf *os.File) (uint64, error) {
	fail := func(err error) (uint64, error) {
		return 0, fmt.Errorf("giving the process %s: %w", safetext.Quote(lf.Name()), err)
	}
	if err := unix.Sendmsg(int(t.loaderSock.Fd()), []byte{0}, unix.UnixRights(int(lf.Fd())), nil, 0); err != nil {
		return fail(os.NewSyscallError("sendmsg", err))
	}
	// struct msghdr, its one iovec, the byte, the control buffer.
	space := unix.CmsgSpace(4)
	msg := t.scratch + offFD
	iov := msg + linux.SizeofMsghdr
	data := iov + linux.SizeofIovec
	control := data + 8
	buf := linux.Msghdr{Iov: iov, Iovlen: 1, Control: control, Controllen: uint64(space)}.Encode()
	buf = append(buf, linux.Iovec{Base: data, Len: 1}.Encode()...)
	buf = append(buf, make([]byte, 8+space)...)
	if err := ptrace.WriteMem(pid, msg, buf); err != nil {
		return fail(err)
	}
	if _, err := r.Syscall("recvmsg", unix.SYS_RECVMSG, sock, msg, unix.MSG_CMSG_CLOEXEC); err != nil {
		return fail(err)
	}
	got := make([]byte, space)
	if err := ptrace.ReadMem(pid, control, got); err != nil {
		return fail(err)
	}
	var fds []int
	cms, err := unix.ParseSocketControlMessage(got)
	if err == nil && len(cms) == 1 {
		fds, err = unix.ParseUnixRights(&cms[0])
	}
	if err != nil || len(fds) != 1 {
		// The kernel drops an fd the process has no room for.
		return fail(errors.New("it received no fd (too many open files?)"))
	}
	return uint64(fds[0]), nil
}

// raiseSocket moves the process's end of the loader's socket above every
// fd of the image, out of the way of makeFDs, when it is not yet (a child
// forked from its parent has it where its parent had put it).
func (b *builder) raiseSocket() error {
	if b.sock < 0 {
		return errors.New("the process's end of the loader's socket is closed")
	}
	top := 2
	for _, f := range b.img.FDs {
		top = max(top, f.Num)
	}
	if b.sock > top {
		return nil
	}
	r := b.main
	high, err := r.Syscall("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, uint64(b.sock), unix.F_DUPFD_CLOEXEC, uint64(top+1))
	if err != nil {
		return err
	}
	old := b.sock
	b.sock = int(high)
	_, err = r.Syscall("close", unix.SYS_CLOSE, uint64(old))
	return err
}

// dropSocket closes the process's end of the loader's socket.
func (b *builder) dropSocket() error {
	if b.sock < 0 {
		return nil
	}
	fd := b.sock
	b.sock = -1
	_, err := b.main.Syscall("close", unix.SYS_CLOSE, uint64(fd))
	return err
}

// makeFDs opens every fd at its number with its flags and offset.
func (b *builder) makeFDs() error {
	r := b.main
	// Close what the stub inherited from the loader beyond 0, 1 and 2,
	// but the loader's socket.
	if err := b.raiseSocket(); err != nil {
		return err
	}
	for _, rg := range [][2]uint64{{3, uint64(b.sock - 1)}, {uint64(b.sock + 1), ^uint64(0) >> 33}} {
		if rg[0] > rg[1] {
			continue // the socket is fd 3
		}
		if _, err := r.Syscall("close_range", unix.SYS_CLOSE_RANGE, rg[0], rg[1], 0); err != nil {
			return err
		}
	}
	if b.task == 0 {
		b.logStreams()
	}
	top, has := 2, map[int]bool{}
	for _, fd := range b.img.FDs {
		top, has[fd.Num] = max(top, fd.Num), true
	}
	// The restorer's streams that fds of other numbers are, kept out of
	// the way while the fds are made (fd 1 may be a pipe, and fd 5 the
	// restorer's stdout).
	var moved [3]uint64
	for _, fd := range b.img.FDs {
		if s, ok := b.streamOf(fd); ok && s != fd.Num && moved[s] == 0 {
			hi, err := r.Syscall("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, uint64(s), unix.F_DUPFD_CLOEXEC, uint64(top+1+s))
			if err != nil {
				return fmt.Errorf("fd %d: procs-load's stream %d: %w", fd.Num, s, err)
			}
			moved[s] = hi
		}
	}
	first := map[int]int{} // open id -> the fd of this process that has it first
	var made []format.FD
	for k, fd := range b.img.FDs {
		cloexec := fdCloexec(fd)
		if s, ok := b.streamOf(fd); ok {
			if s != fd.Num {
				if _, err := r.Syscall("dup3", unix.SYS_DUP3, moved[s], uint64(fd.Num), uint64(cloexec)); err != nil {
					return fmt.Errorf("fd %d: %w", fd.Num, err)
				}
			}
			continue // the loader's own standard streams stand in
		}
		f := b.files[fd.File]
		if f.Self != "" {
			continue // opened later by the process itself: procSelfFDs
		}
		if prev, ok := first[fd.Open]; ok {
			// Shares an earlier fd's open file: offset and flags come
			// with it.
			if _, err := r.Syscall("dup3", unix.SYS_DUP3, uint64(prev), uint64(fd.Num), uint64(cloexec)); err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
			continue
		}
		first[fd.Open] = fd.Num
		var tmp uint64
		var err error
		taken := false
		m, isMaker := files.Lookup(f.Kind).(files.Maker)
		switch {
		case b.fdFiles[k] != nil:
			// Opened, and put at its offset, by prepareFiles; it comes
			// close-on-exec.
			tmp, err = b.takeFD(b.fdFiles[k])
			taken = true
		case isMaker && b.descs[fd.Open] != nil:
			// Made by an earlier process of the tree.
			tmp, err = b.takeFD(b.descs[fd.Open])
			taken = true
		case isMaker:
			tmp, err = m.Make(target{b}, fd, &f, cloexec)
			made = append(made, fd)
		default:
			err = fmt.Errorf("no open file for it")
		}
		if err == nil {
			err = b.placeFD(tmp, fd.Num, cloexec, taken)
		}
		if err != nil {
			return fmt.Errorf("fd %d: %w", fd.Num, err)
		}
	}
	for _, hi := range moved {
		if hi != 0 {
			r.Syscall("close", unix.SYS_CLOSE, hi)
		}
	}
	if b.task > 0 {
		// A member without fd 0, 1 or 2 had closed it: it does not get
		// the one the stub had (procs-load's).
		for n := range 3 {
			if !has[n] {
				if _, err := r.Syscall("close", unix.SYS_CLOSE, uint64(n)); err != nil && !errors.Is(err, unix.EBADF) {
					return err
				}
			}
		}
	}
	// The second pass: links between the objects just made.
	for _, fd := range made {
		f := &b.files[fd.File]
		if l, ok := files.Lookup(f.Kind).(files.Linker); ok {
			if err := l.Link(target{b}, fd, f); err != nil {
				return err
			}
		}
		if b.sharedLater(fd.Open) {
			if err := b.shareMade(fd.Open, fd.Num); err != nil {
				return err
			}
		}
	}
	return b.makeInFlight()
}

// makeInFlight makes in the process the files in flight in the queues it
// holds that no process holds and only a process can make
// (files.KeeperMaker), takes each for the loader to send, and closes it
// in the process.
func (b *builder) makeInFlight() error {
	held := map[int]bool{}
	for _, p := range b.imgs {
		for _, fd := range p.FDs {
			held[fd.Open] = true
		}
	}
	for _, fd := range b.inFlight() {
		f := &b.files[fd.File]
		k, ok := files.Lookup(f.Kind).(files.KeeperMaker)
		if !ok || !k.KeeperMakes(f) || held[fd.Open] || b.descs[fd.Open] != nil {
			continue
		}
		n, err := k.Make(target{b}, fd, f, unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("a file in flight: %w", err)
		}
		lf, err := b.fdOf(int(n))
		b.main.Syscall("close", unix.SYS_CLOSE, n)
		if err != nil {
			return err
		}
		b.descs[fd.Open] = lf
	}
	return nil
}

// procSelfFDs opens the fds of the /proc files of the tree's processes
// (its own, or another's: ProcPID) in the process itself, now that it
// has its credentials: /proc/PID/status of the new PID, not the
// original's (which may still run) nor procs-load's.
// The path stays within /proc/PID (validate) and crosses no magic link.
func (b *builder) procSelfFDs() error {
	r := b.main
	first := map[int]int{} // open id -> the fd that has it first
	for _, fd := range b.img.FDs {
		if fd.File < 0 || b.files[fd.File].Self == "" || b.ownStream(fd) {
			continue
		}
		var tmp uint64
		var err error
		if prev, ok := first[fd.Open]; ok {
			tmp, err = r.Syscall("dup", unix.SYS_FCNTL, uint64(prev), unix.F_DUPFD, 0)
		} else {
			first[fd.Open] = fd.Num
			self := b.files[fd.File].Self
			// The ids of the process whose folder it is, as the
			// process's /proc shows them.
			of := b
			if pp := b.files[fd.File].ProcPID; pp != 0 {
				if of = b.byPID(pp); of == nil {
					return fmt.Errorf("fd %d: a /proc file of process %d, which the image lacks", fd.Num, pp)
				}
			}
			if rest, ok := strings.CutPrefix(self, fmt.Sprintf("task/%d", of.img.PID)); ok {
				self = fmt.Sprintf("task/%d%s", of.innerTID(0), rest)
			}
			path := fmt.Sprintf("/proc/%d/%s", of.innerTID(0), self)
			how := unix.OpenHow{Flags: uint64(fd.Flags&openFlags | unix.O_CLOEXEC | unix.O_NOCTTY), Resolve: unix.RESOLVE_NO_MAGICLINKS}
			if err := b.write(offArgs, linux.EncodeOpenHow(how)); err != nil {
				return err
			}
			p, err := b.writePath(path)
			if err != nil {
				return err
			}
			tmp, err = r.Syscall("openat2", unix.SYS_OPENAT2, atFDCWD, p, b.scratch+offArgs, unix.SizeofOpenHow)
			if err == nil && fd.Pos != 0 {
				_, err = r.Syscall("lseek", unix.SYS_LSEEK, tmp, uint64(fd.Pos), 0)
			}
		}
		if err == nil {
			// F_DUPFD and openat2 (O_CLOEXEC) alike leave it
			// close-on-exec.
			err = b.placeFD(tmp, fd.Num, fdCloexec(fd), true)
		}
		if err != nil {
			return fmt.Errorf("fd %d: %s of the process's own /proc: %w", fd.Num, safetext.Quote(b.files[fd.File].Self), err)
		}
	}
	return nil
}

// fdOwners gives each open file description whose first fd in the image
// is the process's its owner and signal (F_SETOWN_EX, F_SETSIG), then
// O_ASYNC, in that order, as a program sets them: in the process, now
// that it has its credentials, which F_SETOWN_EX records and the kernel
// checks when it signals. The owner is the restored PID, as the process
// sees it. The restorer's own streams are left alone.
func (b *builder) fdOwners() error {
	r := b.main
	earlier := map[int]bool{} // open ids of processes made before
	for _, p := range b.imgs[:b.task] {
		for _, fd := range p.FDs {
			earlier[fd.Open] = true
		}
	}
	for _, fd := range b.img.FDs {
		async := fd.Flags&unix.O_ASYNC != 0
		if earlier[fd.Open] || fd.File < 0 || b.ownStream(fd) || fd.Owner == nil && fd.Sig == 0 && !async {
			continue
		}
		earlier[fd.Open] = true
		fail := func(err error) error { return fmt.Errorf("fd %d: %w", fd.Num, err) }
		if o := fd.Owner; o != nil {
			owner := b.byPID(o.PID)
			if owner == nil {
				return fail(fmt.Errorf("its owner %d is not in the image", o.PID))
			}
			if err := b.write(offArgs, linux.FOwnerEx{Type: int32(o.Type), PID: int32(owner.innerTID(0))}.Encode()); err != nil {
				return err
			}
			if _, err := r.Syscall("fcntl(F_SETOWN_EX)", unix.SYS_FCNTL, uint64(fd.Num), unix.F_SETOWN_EX, b.scratch+offArgs); err != nil {
				return fail(err)
			}
		}
		if fd.Sig != 0 {
			if _, err := r.Syscall("fcntl(F_SETSIG)", unix.SYS_FCNTL, uint64(fd.Num), unix.F_SETSIG, uint64(fd.Sig)); err != nil {
				return fail(err)
			}
		}
		if async {
			// The kernel registers the fd for signals only when the
			// flag changes: off first, in case the open set it.
			fl, err := r.Syscall("fcntl(F_GETFL)", unix.SYS_FCNTL, uint64(fd.Num), unix.F_GETFL)
			if err == nil {
				_, err = r.Syscall("fcntl(F_SETFL)", unix.SYS_FCNTL, uint64(fd.Num), unix.F_SETFL, fl&^unix.O_ASYNC)
			}
			if err == nil {
				_, err = r.Syscall("fcntl(F_SETFL, O_ASYNC)", unix.SYS_FCNTL, uint64(fd.Num), unix.F_SETFL, fl|unix.O_ASYNC)
			}
			if err != nil {
				return fail(err)
			}
		}
	}
	return nil
}

// fdCloexec is O_CLOEXEC when fd had it, else 0.
func fdCloexec(fd format.FD) int {
	if fd.Cloexec {
		return unix.O_CLOEXEC
	}
	return 0
}

// placeFD moves tmp, an fd the process holds, to num with the
// close-on-exec flag cloexec (O_CLOEXEC or 0); tmpCloexec says whether
// tmp has that flag set already.
func (b *builder) placeFD(tmp uint64, num, cloexec int, tmpCloexec bool) error {
	r := b.main
	if tmp != uint64(num) {
		_, err := r.Syscall("dup3", unix.SYS_DUP3, tmp, uint64(num), uint64(cloexec))
		r.Syscall("close", unix.SYS_CLOSE, tmp)
		return err
	}
	if tmpCloexec && cloexec == 0 {
		_, err := r.Syscall("fcntl(F_SETFD)", unix.SYS_FCNTL, tmp, unix.F_SETFD, 0)
		return err
	}
	return nil
}
