// System V IPC: the shared memory segments the tree attaches, and the
// segments, semaphore sets and message queues that belong to it.
//
// Which objects belong to the tree: when it runs in an IPC namespace of
// its own (not procs-dump's), every object of that namespace; else, in
// the namespace it shares with the rest of the system, the segments a
// member attaches or created (cpid), the semaphore sets a member
// changed last (sempid of one of its semaphores) and the queues a
// member sent to or received from last (lspid, lrpid), each at a time
// the member already ran (a PID there may be of a process that ended
// long ago, whose PID a member has now: its objects are not the
// tree's, and procs-dump must not remove them). A segment that
// a process outside the tree attaches too is refused, as a pipe with an
// outside end is: two copies of it would no longer be one.

package dump

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/files"
	"procs/pkg/linux"
	"procs/pkg/procfs"
)

// shmFile returns the id of the image's file for segment id, adding it
// (its state is filled in by collectIPC).
func (t *fileTable) shmFile(id int) int {
	if i, ok := t.byShm[id]; ok {
		return i
	}
	t.files = append(t.files, format.File{Kind: format.FileSysvShm, Ino: uint64(id), Shm: &format.Shm{IPCPerm: format.IPCPerm{ID: id}}})
	t.byShm[id] = len(t.files) - 1
	return len(t.files) - 1
}

// sysvMapping fills in fm, a mapping of an attached segment (maps shows
// its id as the inode): the segment's file, and "r" for an attachment
// made SHM_RDONLY, which may never be written (no VM_MAYWRITE).
func (c *collector) sysvMapping(fm *format.Mapping, m *procfs.Mapping) {
	fm.File = c.t.shmFile(int(m.Inode))
	fm.Access = format.AccessReadWrite
	if !m.Flags["mw"] {
		fm.Access = format.AccessRead
	}
}

// ipcNamespace is the IPC namespace of the tree's live members: "" when
// it is procs-dump's, else its /proc path (of the first member). Members
// in different ones are refused.
func ipcNamespace(cs []*collector) (string, error) {
	self, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		return "", err
	}
	var ns, path string
	for _, c := range cs {
		if c.f.zombie {
			continue
		}
		p := fmt.Sprintf("/proc/%d/ns/ipc", c.pid)
		l, err := os.Readlink(p)
		if err != nil {
			return "", notFound(c.pid, err)
		}
		if ns == "" {
			ns, path = l, p
		} else if l != ns {
			return "", &refusal{fmt.Sprintf("process %d is in IPC namespace %s, and process %d in %s: a tree is restored in one", cs[0].pid, ns, c.pid, l)}
		}
	}
	if ns == self || ns == "" {
		return "", nil
	}
	return path, nil
}

// inIPCNamespace runs f on a thread of its own in the IPC namespace at
// path (procs-dump's own when path is ""), which /proc/sysvipc shows and
// the IPC calls of f act in. The thread is never used again: it ends
// with its goroutine.
func inIPCNamespace(path string, f func() error) error {
	if path == "" {
		return f()
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWIPC)
		unix.Close(fd)
		if err != nil {
			done <- &refusal{fmt.Sprintf("the tree runs in an IPC namespace of its own, which procs-dump could not enter (%v): dumping it takes root", err)}
			return
		}
		done <- f()
	}()
	return <-done
}

// collectIPC adds to the image the System V objects of the tree (see
// the top of this file). It runs once every process is read, the tree
// frozen.
func (s *snapshot) collectIPC() error {
	nsPath, err := ipcNamespace(s.cs)
	if err != nil {
		return err
	}
	own := nsPath != ""
	s.hostIPC = !own
	started, err := startedAt(s.cs)
	if err != nil {
		return err
	}
	// member says whether pid, at time when (seconds since the epoch),
	// was a member: one that had started by then.
	member := func(pid, when int64) bool {
		at, ok := started[int(pid)]
		return ok && when >= at
	}
	// Each VMA of a segment counts one in its nattch.
	attached := map[int]int{}
	where := map[int]string{} // a map_files link of one of its VMAs
	for _, c := range s.cs {
		for _, m := range c.maps {
			if kind, _ := mapKind(&m); kind == format.MapSysV {
				attached[int(m.Inode)]++
				where[int(m.Inode)] = fmt.Sprintf("/proc/%d/map_files/%x-%x", c.pid, m.Start, m.End)
			}
		}
	}
	ipc := &format.IPC{OwnNS: own}
	err = inIPCNamespace(nsPath, func() error {
		if err := s.collectShm(own, attached, where, member); err != nil {
			return err
		}
		var err error
		if ipc.Sem, err = collectSem(own, member); err != nil {
			return err
		}
		ipc.Msg, err = collectMsg(own, member)
		return err
	})
	if err != nil {
		return err
	}
	if own || len(ipc.Sem) > 0 || len(ipc.Msg) > 0 {
		s.ipc = ipc
	}
	return nil
}

// startedAt is when each process of the tree started, in seconds since
// the epoch, as /proc/sysvipc gives times (a little earlier: the boot
// time /proc/stat tells moves with the clock).
func startedAt(cs []*collector) (map[int]int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	_, rest, _ := strings.Cut(string(b), "\nbtime ")
	line, _, _ := strings.Cut(rest, "\n")
	boot, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("/proc/stat: btime %q", line)
	}
	const userHZ = 100 // clock ticks of /proc/PID/stat, on x86-64
	at := map[int]int64{}
	for _, c := range cs {
		st, err := procfs.ReadStat(c.pid)
		if err != nil {
			return nil, notFound(c.pid, err)
		}
		at[c.pid] = boot + int64(st.StartTime/userHZ) - 2
	}
	return at, nil
}

// perm is the perm of an object as /proc/sysvipc shows it, id the
// column of its id.
func perm(o procfs.IPCObject, id string) format.IPCPerm {
	return format.IPCPerm{ID: int(o[id]), Key: int32(o["key"]), UID: int(o["uid"]), GID: int(o["gid"]),
		CUID: int(o["cuid"]), CGID: int(o["cgid"]), Mode: uint32(o["perms"]) & 0o777}
}

// collectShm describes every segment of the tree, and has its contents
// travel: read through a member's mapping of it, or, for one no member
// attaches, through an attachment of procs-dump's own (read-only,
// until the dump ends).
func (s *snapshot) collectShm(own bool, attached map[int]int, where map[int]string, member func(pid, when int64) bool) error {
	objs, err := procfs.SysvIPC("shm")
	if err != nil {
		return err
	}
	seen := 0
	for _, o := range objs {
		id := int(o["shmid"])
		// ctime is at or after its creation.
		if !own && attached[id] == 0 && !member(o["cpid"], o["ctime"]) {
			continue
		}
		p := perm(o, "shmid")
		if n := int(o["nattch"]); !own && n > attached[id] {
			return &refusal{fmt.Sprintf("System V shared memory segment %d (key %#x) is attached %d times by processes outside the tree (%d by its members)", id, uint32(p.Key), n-attached[id], attached[id])}
		}
		if attached[id] > 0 {
			seen++
		}
		i := s.table.shmFile(id)
		f := &s.table.files[i]
		size := o["size"]
		f.Path, f.Size, f.Mode, f.Carried = fmt.Sprintf("/SYSV%08x", uint32(p.Key)), size, unix.S_IFREG|p.Mode, true
		f.UID, f.GID = p.UID, p.GID
		f.Shm = &format.Shm{IPCPerm: p, Removed: o["perms"]&linux.SHM_DEST != 0}
		path := where[id]
		if path == "" {
			b, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY)
			if err != nil {
				return fmt.Errorf("reading System V shared memory segment %d: %w", id, err)
			}
			s.shmat = append(s.shmat, b)
			start := addrOf(b)
			path = fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+uint64(len(b)+format.PageSize-1)&^(format.PageSize-1))
		}
		if fd, err := openNoAtime(path); err != nil {
			return &refusal{fmt.Sprintf("System V shared memory segment %d: reading it takes CAP_CHECKPOINT_RESTORE (or root) (%v)", id, err)}
		} else {
			unix.Close(fd)
		}
		s.table.carry = append(s.table.carry, carried{index: i, path: path, size: size, extents: [][2]int64{{0, size}}})
	}
	if seen != len(attached) {
		return fmt.Errorf("System V shared memory: the tree attaches %d segments, and its IPC namespace lists %d of them", len(attached), seen)
	}
	for _, c := range s.cs {
		if err := c.wholeAttachments(); err != nil {
			return err
		}
	}
	return nil
}

// wholeAttachments refuses an attachment of a segment that the process
// unmapped a part of: a restore attaches whole segments (shmat), and
// then protects each part as the image says.
func (c *collector) wholeAttachments() error {
	if _, bad := files.Attachments(c.p.Maps, c.t.files); bad != nil {
		return &refusal{fmt.Sprintf("process %d holds what procs cannot carry: %x-%x, a part of an attachment of System V shared memory segment %d whose rest it unmapped",
			c.pid, bad.Start, bad.End, c.t.files[bad.File].Shm.ID)}
	}
	return nil
}

// collectSem reads the tree's semaphore sets: their values (GETALL).
func collectSem(own bool, member func(pid, when int64) bool) ([]format.SemSet, error) {
	objs, err := procfs.SysvIPC("sem")
	if err != nil {
		return nil, err
	}
	var sets []format.SemSet
	for _, o := range objs {
		id, n := int(o["semid"]), int(o["nsems"])
		ours := own
		for k := 0; k < n && !ours; k++ {
			pid, err := linux.Semctl(id, k, linux.GETPID, nil)
			if errors.Is(err, unix.EACCES) {
				// Another user's set, which procs-dump without root may
				// not read: not the tree's, whose members (the user's)
				// could read it (a program that only alters a set it
				// may not read is unheard of).
				break
			}
			if err != nil {
				return nil, fmt.Errorf("semaphore set %d: %w", id, err)
			}
			// A semaphore changes at otime (semop) or ctime (SETVAL...).
			ours = member(int64(pid), max(o["otime"], o["ctime"]))
		}
		if !ours {
			continue
		}
		buf := make([]byte, 2*n)
		if _, err := linux.Semctl(id, 0, linux.GETALL, buf); err != nil {
			return nil, fmt.Errorf("semaphore set %d: %w", id, err)
		}
		set := format.SemSet{IPCPerm: perm(o, "semid"), Values: make([]uint16, n)}
		for k := range set.Values {
			set.Values[k] = uint16(buf[2*k]) | uint16(buf[2*k+1])<<8
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// collectMsg reads the tree's message queues, every message in order,
// without taking any (MSG_COPY).
func collectMsg(own bool, member func(pid, when int64) bool) ([]format.MsgQueue, error) {
	objs, err := procfs.SysvIPC("msg")
	if err != nil {
		return nil, err
	}
	var qs []format.MsgQueue
	for _, o := range objs {
		id := int(o["msqid"])
		if !own && !member(o["lspid"], o["stime"]) && !member(o["lrpid"], o["rtime"]) {
			continue
		}
		ds := make([]byte, linux.SizeofMsqidDS)
		if _, err := linux.Msgctl(id, unix.IPC_STAT, ds); err != nil {
			return nil, fmt.Errorf("message queue %d: %w", id, err)
		}
		var st linux.MsqidDS
		st.Decode(ds)
		q := format.MsgQueue{IPCPerm: perm(o, "msqid"), QBytes: st.Qbytes}
		buf := make([]byte, 8+max(st.Cbytes, 1))
		for n := range int(st.Qnum) {
			typ, text, err := linux.MsgCopy(id, n, buf)
			if err != nil {
				return nil, fmt.Errorf("message queue %d, message %d: %w (reading messages takes a kernel with CONFIG_CHECKPOINT_RESTORE)", id, n, err)
			}
			q.Messages = append(q.Messages, format.Msg{Type: typ, Text: slices.Clone(text)})
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// removeIPC removes, once the tree is killed, its objects of procs-dump's
// IPC namespace, which would outlive it there: the tree moves into the
// image with them, and a restore here makes them again with their ids
// and keys (those of a namespace of the tree's own go with it).
func (s *snapshot) removeIPC() error {
	if !s.hostIPC {
		return nil
	}
	var errs []error
	for _, f := range s.table.files {
		if f.Shm != nil {
			if _, err := unix.SysvShmCtl(f.Shm.ID, unix.IPC_RMID, nil); err != nil && err != unix.EINVAL {
				errs = append(errs, fmt.Errorf("shared memory segment %d: %w", f.Shm.ID, err))
			}
		}
	}
	if s.ipc != nil {
		for _, set := range s.ipc.Sem {
			if _, err := linux.Semctl(set.ID, 0, unix.IPC_RMID, nil); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("semaphore set %d: %w", set.ID, err))
			}
		}
		for _, q := range s.ipc.Msg {
			if _, err := linux.Msgctl(q.ID, unix.IPC_RMID, nil); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("message queue %d: %w", q.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}
