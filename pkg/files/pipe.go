package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// pipe is an anonymous pipe (pipe(2)): one File per pipe, whose fds (in
// one process, or in several of the tree) are its read and write ends.
// Its state (File.Pipe) is the buffer's size and the bytes in it that no
// one had read yet. The loader makes the pipe again (pipe2), gives it its
// size and its bytes, and opens one description per open file of the
// image from it (the generic reopen of /proc/self/fd/N, which for a pipe
// opens another end of the same pipe); the processes take them like any
// other file's.
//
// Packet mode (O_DIRECT) is a flag of an end, and travels with it; the
// boundaries of packets still unread do not, so a packet-mode pipe with
// unread bytes is refused. A pipe one of whose ends a process outside
// the tree holds is refused by name (CheckTree): its bytes would be read
// twice, or its reader would never see the end.
type pipe struct{}

func (pipe) Name() string { return format.FilePipe }

func (pipe) Match(fd *procfs.FD, _ Terminals) bool {
	return strings.HasPrefix(fd.Target, "pipe:[")
}

func (pipe) Traits() Traits { return Traits{Shared: true} }

// MaxPipe bounds a pipe's size in an image (F_SETPIPE_SZ; Linux's own
// limit for root is 2^31).
const MaxPipe = 1 << 28

// Dump reads, once per pipe, the bytes in its buffer without taking them,
// and, for each end, whether the other end is open anywhere.
func (pipe) Dump(src Source, fd *procfs.FD, idx int) error {
	if err := dumpUnread(src, fd, idx); err != nil {
		return err
	}
	return otherEnd(src.PID(), fd, src.File(idx).Pipe)
}

// otherEnd records in st whether the end fd's other end is open anywhere:
// poll(2) on the end itself (taken with pidfd_getfd, which opens nothing)
// says POLLHUP on a read end when no write end is left, POLLERR on a write
// end when no read end is. procs-dump without root cannot see every
// process's fds, but this it sees (CheckTree).
func otherEnd(pid int, fd *procfs.FD, st *format.Pipe) error {
	end, err := takeFD(pid, fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(end)
	p := []unix.PollFd{{Fd: int32(end)}}
	if _, err := unix.Poll(p, 0); err != nil {
		return fmt.Errorf("fd %d: poll: %w", fd.Num, err)
	}
	switch fd.Flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		st.Readers, st.Writers = true, st.Writers || p[0].Revents&unix.POLLHUP == 0
	case unix.O_WRONLY:
		st.Writers, st.Readers = true, st.Readers || p[0].Revents&unix.POLLERR == 0
	}
	return nil
}

// dumpUnread records, once per pipe or named pipe, its size and the bytes
// in it (File.Pipe), without taking them: tee(2) copies them from a read
// end, opened afresh through /proc whichever end fd is, into a pipe of
// procs-dump's. A pipe in packet mode (O_DIRECT) with bytes unread is
// refused: the packets' boundaries would not travel.
func dumpUnread(src Source, fd *procfs.FD, idx int) error {
	f := src.File(idx)
	if fd.Flags&unix.O_DIRECT != 0 && f.Pipe != nil && len(f.Pipe.Data) > 0 {
		return refusef("fd %d is the end of a pipe in packet mode (O_DIRECT) with bytes unread, whose packets procs cannot carry", fd.Num)
	}
	if f.Pipe != nil {
		return nil // an earlier end
	}
	path := fmt.Sprintf("/proc/%d/fd/%d", src.PID(), fd.Num)
	r, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fd %d: opening its pipe: %w", fd.Num, err)
	}
	defer unix.Close(r)
	size, err := unix.FcntlInt(uintptr(r), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return fmt.Errorf("fd %d: pipe size: %w", fd.Num, err)
	}
	data, err := peekPipe(r, size)
	if err != nil {
		return fmt.Errorf("fd %d: reading its pipe: %w", fd.Num, err)
	}
	if fd.Flags&unix.O_DIRECT != 0 && len(data) > 0 {
		return refusef("fd %d is the end of a pipe in packet mode (O_DIRECT) with bytes unread, whose packets procs cannot carry", fd.Num)
	}
	f.Pipe = &format.Pipe{Size: size, Data: data}
	return nil
}

// peekPipe returns the bytes in the pipe whose read end is r, which holds
// at most size, leaving them there.
func peekPipe(r, size int) ([]byte, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, fmt.Errorf("a pipe of %d bytes: %w", size, err)
	}
	n, err := unix.Tee(r, p[1], size, unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		return []byte{}, nil // empty
	}
	if err != nil {
		return nil, err
	}
	data := make([]byte, n)
	for got := 0; got < int(n); {
		k, err := unix.Read(p[0], data[got:])
		if err != nil {
			return nil, err
		}
		got += k
	}
	return data, nil
}

// Prepare makes the pipe in the loader, with its size and its bytes. The
// loader holds both ends until the processes have theirs.
func (pipe) Prepare(l Loader, i int, f *format.File, _ string) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	name := "pipe:[" + strconv.Itoa(i) + "]"
	r, w := os.NewFile(uintptr(p[0]), name), os.NewFile(uintptr(p[1]), name)
	l.Own(i, r)
	l.Keep(w)
	return fillPipe(l, w, f.Pipe, "a pipe")
}

// fillPipe gives the pipe whose write end (or read-write end) is w the
// size and the bytes st says.
func fillPipe(l Loader, w *os.File, st *format.Pipe, what string) error {
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, st.Size); err != nil {
		cur, _ := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
		if cur < len(st.Data) {
			return fmt.Errorf("%s of %d bytes with %d unread: this machine gives procs-load no pipe that large (F_SETPIPE_SZ: %v; see /proc/sys/fs/pipe-max-size)", what, st.Size, len(st.Data), err)
		}
		l.Warn("%s of %d bytes comes back with %d (F_SETPIPE_SZ: %v)", what, st.Size, cur, err)
	}
	if err := writeAll(w, st.Data); err != nil {
		return fmt.Errorf("filling %s with its %d unread bytes: %w", what, len(st.Data), err)
	}
	return nil
}

// writeAll writes data to f, a non-blocking pipe or socket of the loader's
// with room for it: a write that would wait is an error.
func writeAll(f *os.File, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(int(f.Fd()), data)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// Validate checks a pipe's size and bytes, and its ends' access modes.
func (pipe) Validate(fs []format.File, i int, procs []format.Process) error {
	st := fs[i].Pipe
	if st == nil {
		return fmt.Errorf("image file %d, a pipe, has no pipe state", i)
	}
	if err := validPipe(st, i); err != nil {
		return err
	}
	for _, p := range procs {
		for _, fd := range p.FDs {
			if fd.File == i && fd.Flags&unix.O_PATH != 0 {
				return fmt.Errorf("image process %d fd %d: an O_PATH end of a pipe", p.PID, fd.Num)
			}
		}
	}
	return nil
}

// validPipe checks the state of pipe or named pipe i.
func validPipe(st *format.Pipe, i int) error {
	if st.Size < format.PageSize || st.Size > MaxPipe || len(st.Data) > st.Size {
		return fmt.Errorf("image pipe %d: size %d with %d bytes unread: out of range", i, st.Size, len(st.Data))
	}
	return nil
}

// CheckTree refuses a pipe or named pipe of the tree that a process
// outside it holds an end of, naming both. in says whether a PID is the
// tree's. It looks through every process's fds (/proc/PID/fd): a pipe
// by the inode in its link, a named pipe by its path, then its device
// and inode.
func (pipe) CheckTree(fs []format.File, procs []format.Process, out *Outside) error {
	inos := map[uint64]int{}
	paths := map[string]int{}
	for i, f := range fs {
		switch {
		case f.Kind == format.FilePipe:
			inos[f.Ino] = i
		case f.Kind == format.FileFIFO && f.Pipe != nil:
			paths[f.Path] = i
		}
	}
	if len(inos) == 0 && len(paths) == 0 {
		return nil
	}
	err := out.Each(func(pid int, num, t string) error {
		if i, ok := paths[t]; ok {
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, num), &st) == nil && st.Dev == fs[i].Dev && st.Ino == fs[i].Ino {
				return refusef("%s is the named pipe %s, which process %d, outside the tree, also holds open as fd %s", holderOf(procs, i), t, pid, num)
			}
		}
		n, ok := strings.CutPrefix(t, "pipe:[")
		if !ok {
			return nil
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 64)
		if err != nil {
			return nil
		}
		if i, ok := inos[ino]; ok {
			return refusef("%s is a pipe (inode %d) whose other end process %d, outside the tree, holds as fd %s", holderOf(procs, i), ino, pid, num)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return unseenEnds(fs, procs)
}

// unseenEnds refuses a pipe whose other end is open but not in the tree,
// held by a process whose fds procs-dump could not list (it runs without
// root). The root's standard streams (and the fds that share them) are
// not the tree's files: they become the restorer's.
func unseenEnds(fs []format.File, procs []format.Process) error {
	const reads, writes = 1, 2
	held := map[int]int{} // file -> what the tree's ends of it do
	hold := func(fd format.FD) {
		if fd.File < 0 || fs[fd.File].Kind != format.FilePipe {
			return
		}
		switch fd.Flags & unix.O_ACCMODE {
		case unix.O_RDONLY:
			held[fd.File] |= reads
		case unix.O_WRONLY:
			held[fd.File] |= writes
		default: // O_RDWR, through /proc
			held[fd.File] |= reads | writes
		}
	}
	for _, p := range procs {
		for _, fd := range p.FDs {
			hold(fd)
		}
	}
	// An end in flight in a unix socket's queue is the tree's too.
	for _, f := range fs {
		if f.Unix != nil {
			for _, r := range f.Unix.Rights {
				for _, fd := range r.FDs {
					hold(fd)
				}
			}
		}
	}
	for i, ends := range held {
		st := fs[i].Pipe
		if st == nil {
			continue
		}
		if ends&writes == 0 && st.Writers || ends&reads == 0 && st.Readers {
			return refusef("%s is a pipe (inode %d) whose other end a process outside the tree holds, which procs-dump cannot see (run it as root to learn which)", holderOf(procs, i), fs[i].Ino)
		}
	}
	return nil
}

// holderOf names the first fd of the tree on file i, for messages.
func holderOf(procs []format.Process, i int) string {
	if p, fd := Holder(procs, i); p != nil {
		return fmt.Sprintf("fd %d of process %d", fd.Num, p.PID)
	}
	return fmt.Sprintf("file %d", i)
}
