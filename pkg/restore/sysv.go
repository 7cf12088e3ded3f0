// System V IPC: the tree's shared memory segments, semaphore sets and
// message queues, made again before any process exists, with their ids,
// keys, owners, creators, modes and contents; segments are then
// attached (shmat) by the processes at their addresses (mm.go). A
// segment that was marked for removal is marked again as soon as it is
// made: procs-load keeps it attached until the processes have.
//
// Where (--ipc=auto): in procs-load's IPC namespace when the image's ids
// (their slots: an id is a slot and a sequence number) and keys are all
// free there; else, and for a tree that had an IPC namespace of its
// own, in a new one, which the root joins (setns) as soon as it exists
// and its children are born in. --ipc=host refuses rather than make a
// namespace, naming the objects in the way; --ipc=new always makes one.
// Either way takes root: an id is chosen by writing
// kernel.{shm,sem,msg}_next_id, a sysctl of root's.
//
// Whom as: each object is made by a thread of procs-load with the
// object's creator's effective ids (setresuid, setresgid, per thread),
// which then gives it its owner and mode (IPC_SET, a creator's right):
// the image's ids are checked to be among its processes' (validate),
// so root restoring a user's tree makes objects of that user's only,
// and a user restoring its own tree makes only its own (it cannot
// choose ids anyway). Segments are filled by procs-load; sets get their
// values and queues their messages from the root, with procs-load's
// rights, so that the kernel names a process of the tree as the last to
// use them (fillIPC).

package restore

import (
	"encoding/binary"
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
	"procs/pkg/ptrace"
)

// Caps of an image's System V objects, beyond the kernel's own.
const (
	maxIPCObjects = 32000   // of each kind (IPCMNI is 32768)
	maxQBytes     = 1 << 30 // msg_qbytes of a queue
)

// ipcObjects is what the tree has of System V IPC.
type ipcObjects struct {
	shm []int // file ids of the segments
	sem []format.SemSet
	msg []format.MsgQueue
	own bool // it had an IPC namespace of its own
}

// ipcObjects lists the image's System V objects.
func (t *tree) ipcObjects() ipcObjects {
	var o ipcObjects
	for i := range t.files {
		if t.files[i].Kind == format.FileSysvShm {
			o.shm = append(o.shm, i)
		}
	}
	if t.ipc != nil {
		o.sem, o.msg, o.own = t.ipc.Sem, t.ipc.Msg, t.ipc.OwnNS
	}
	return o
}

func (o ipcObjects) empty() bool { return len(o.shm)+len(o.sem)+len(o.msg) == 0 && !o.own }

// validateIPC checks, once validate has, the attachments of segments
// (whole: their sizes are checked), the sets and queues of an image (its
// segments are files: pkg/files checks them), and that no two objects of
// a kind share an id, or a key other than IPC_PRIVATE.
func validateIPC(fs []format.File, ipc *format.IPC, procs []format.Process) error {
	for k := range procs {
		if _, bad := files.Attachments(procs[k].Maps, fs); bad != nil {
			return fmt.Errorf("process %d: image mapping %x-%x is a part of an attachment of a System V segment that is not whole", procs[k].PID, bad.Start, bad.End)
		}
	}
	shm := []format.IPCPerm{}
	for _, f := range fs {
		if f.Shm != nil {
			shm = append(shm, f.Shm.IPCPerm)
		}
	}
	if ipc == nil {
		return uniqueIPC("shared memory segment", shm)
	}
	if len(ipc.Sem) > maxIPCObjects || len(ipc.Msg) > maxIPCObjects || len(shm) > maxIPCObjects {
		return fmt.Errorf("image holds %d shared memory segments, %d semaphore sets and %d message queues (at most %d of each)", len(shm), len(ipc.Sem), len(ipc.Msg), maxIPCObjects)
	}
	var sem, msg []format.IPCPerm
	for _, s := range ipc.Sem {
		what := fmt.Sprintf("image semaphore set %d", s.ID)
		if err := files.ValidateIPCPerm(what, s.IPCPerm, procs); err != nil {
			return err
		}
		if len(s.Values) == 0 || len(s.Values) > linux.SEMMSL || slices.ContainsFunc(s.Values, func(v uint16) bool { return v > linux.SEMVMX }) {
			return fmt.Errorf("%s has %d semaphores (1 to %d) or a value above %d", what, len(s.Values), linux.SEMMSL, linux.SEMVMX)
		}
		sem = append(sem, s.IPCPerm)
	}
	for _, q := range ipc.Msg {
		what := fmt.Sprintf("image message queue %d", q.ID)
		if err := files.ValidateIPCPerm(what, q.IPCPerm, procs); err != nil {
			return err
		}
		if q.QBytes > maxQBytes {
			return fmt.Errorf("%s holds up to %d bytes (at most %d)", what, q.QBytes, maxQBytes)
		}
		var bytes uint64
		for k, m := range q.Messages {
			if m.Type <= 0 || len(m.Text) > linux.MSGMAX {
				return fmt.Errorf("%s: message %d has type %d (above 0) or %d bytes (at most %d)", what, k, m.Type, len(m.Text), linux.MSGMAX)
			}
			bytes += uint64(len(m.Text))
		}
		if bytes > q.QBytes {
			return fmt.Errorf("%s holds %d bytes of messages, more than its %d", what, bytes, q.QBytes)
		}
		msg = append(msg, q.IPCPerm)
	}
	for _, k := range []struct {
		what  string
		perms []format.IPCPerm
	}{{"shared memory segment", shm}, {"semaphore set", sem}, {"message queue", msg}} {
		if err := uniqueIPC(k.what, k.perms); err != nil {
			return err
		}
	}
	return nil
}

// uniqueIPC refuses two objects of a kind with one id or key.
func uniqueIPC(what string, ps []format.IPCPerm) error {
	ids, keys := map[int]bool{}, map[int32]bool{}
	for _, p := range ps {
		if ids[p.ID] || p.Key != 0 && keys[p.Key] {
			return fmt.Errorf("image holds two of %s %d or of key %#x", what, p.ID, uint32(p.Key))
		}
		ids[p.ID], keys[p.Key] = true, true
	}
	return nil
}

// ipcKinds are the three kinds of objects: their names in
// /proc/sysvipc and the sysctls, their id columns, and what a message
// calls them.
var ipcKinds = []struct{ name, id, what string }{
	{"shm", "shmid", "shared memory segment"},
	{"sem", "semid", "semaphore set"},
	{"msg", "msqid", "message queue"},
}

// idSlots is the number of slots ids are made of (IPCMNI): id is slot +
// sequence * idSlots, and a new object takes the free slot next_id names.
const idSlots = 32768

// takenIPC names the image's objects whose slot or key an object of
// procs-load's IPC namespace has, "" when none.
func takenIPC(perms [3][]format.IPCPerm) (string, error) {
	var taken []string
	for k, kind := range ipcKinds {
		objs, err := procfs.SysvIPC(kind.name)
		if err != nil {
			return "", err
		}
		slots, keys := map[int64]int64{}, map[int64]int64{}
		for _, o := range objs {
			slots[o[kind.id]%idSlots], keys[o["key"]] = o[kind.id], o[kind.id]
		}
		for _, p := range perms[k] {
			if id, ok := slots[int64(p.ID%idSlots)]; ok && id == int64(p.ID) {
				taken = append(taken, fmt.Sprintf("%s %d", kind.what, p.ID))
			} else if ok {
				taken = append(taken, fmt.Sprintf("%s %d (%d has its slot)", kind.what, p.ID, id))
			} else if id, ok := keys[int64(p.Key)]; ok && p.Key != 0 {
				taken = append(taken, fmt.Sprintf("%s %d (%d has its key %#x)", kind.what, p.ID, id, uint32(p.Key)))
			}
		}
	}
	if len(taken) == 0 {
		return "", nil
	}
	if len(taken) > 4 {
		taken = append(taken[:4], fmt.Sprintf("%d more", len(taken)-4))
	}
	return strings.Join(taken, ", "), nil
}

// perms lists the perms of o's objects by kind, in ipcKinds' order.
func (t *tree) perms(o ipcObjects) [3][]format.IPCPerm {
	var ps [3][]format.IPCPerm
	for _, i := range o.shm {
		ps[0] = append(ps[0], t.files[i].Shm.IPCPerm)
	}
	for _, s := range o.sem {
		ps[1] = append(ps[1], s.IPCPerm)
	}
	for _, q := range o.msg {
		ps[2] = append(ps[2], q.IPCPerm)
	}
	return ps
}

// makeIPC makes the tree's objects (see the top of this file), in
// procs-load's IPC namespace or in a new one (t.ipcNS).
func (t *tree) makeIPC() error {
	o := t.ipcObjects()
	if o.empty() {
		return nil
	}
	if os.Geteuid() != 0 || !hasCap(unix.CAP_SYS_ADMIN) {
		return errors.New("the image holds System V IPC objects, and making them again with their ids takes root")
	}
	newNS := t.opts.IPC == IPCNew || o.own && t.opts.IPC == IPCAuto
	if !newNS {
		taken, err := takenIPC(t.perms(o))
		if err != nil {
			return err
		}
		switch {
		case taken != "" && t.opts.IPC == IPCHost:
			return fmt.Errorf("--ipc=host: System V IPC objects of the image are in use here: %s (--ipc=new makes them in an IPC namespace of the tree's own)", taken)
		case taken != "":
			t.logf("System V IPC objects of the image are in use here (%s): the tree gets an IPC namespace of its own", taken)
			newNS = true
		}
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: its ids and namespace die with it
		done <- t.makeIPCHere(o, newNS)
	}()
	return <-done
}

// makeIPCHere makes the objects o from this thread, locked to it: in a
// new IPC namespace first when newNS.
func (t *tree) makeIPCHere(o ipcObjects, newNS bool) error {
	if newNS {
		if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
			return fmt.Errorf("making an IPC namespace: %w", os.NewSyscallError("unshare", err))
		}
		ns, err := os.Open("/proc/thread-self/ns/ipc")
		if err != nil {
			return err
		}
		t.ipcNS = ns
		if err := raiseMsgLimits(o.msg); err != nil {
			return err
		}
	}
	if err := checkLimits(o.msg); err != nil {
		return err
	}
	shmmax, err := sysctl("shmmax")
	if err != nil {
		return err
	}
	for _, i := range o.shm {
		if f := &t.files[i]; uint64(f.Size) > shmmax {
			return fmt.Errorf("shared memory segment %d has %d bytes, more than kernel.shmmax (%d) here", f.Shm.ID, f.Size, shmmax)
		}
		if err := t.makeShm(i); err != nil {
			return err
		}
	}
	for _, s := range o.sem {
		if err := t.makeSem(s); err != nil {
			return err
		}
	}
	for _, q := range o.msg {
		if err := t.makeMsg(q); err != nil {
			return err
		}
	}
	return nil
}

// raiseMsgLimits raises, in a new IPC namespace, kernel.msgmax and
// msgmnb to what the queues need (msg_qbytes above msgmnb takes
// CAP_SYS_RESOURCE otherwise).
func raiseMsgLimits(qs []format.MsgQueue) error {
	var most, bytes uint64
	for _, q := range qs {
		bytes = max(bytes, q.QBytes)
		for _, m := range q.Messages {
			most = max(most, uint64(len(m.Text)))
		}
	}
	for _, l := range []struct {
		name string
		want uint64
	}{{"msgmax", most}, {"msgmnb", bytes}} {
		cur, err := sysctl(l.name)
		if err != nil {
			return err
		}
		if cur < l.want {
			if err := os.WriteFile("/proc/sys/kernel/"+l.name, []byte(strconv.FormatUint(l.want, 10)), 0); err != nil {
				return fmt.Errorf("System V IPC: %w", err)
			}
		}
	}
	return nil
}

// checkLimits refuses, by id, a queue that holds more than
// kernel.msgmnb bytes or a message longer than kernel.msgmax of this
// thread's IPC namespace (only CAP_SYS_RESOURCE passes the first; the
// second is a limit for every process of the system).
func checkLimits(qs []format.MsgQueue) error {
	mnb, err := sysctl("msgmnb")
	if err != nil {
		return err
	}
	most, err := sysctl("msgmax")
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.QBytes > mnb {
			return fmt.Errorf("message queue %d holds up to %d bytes, more than kernel.msgmnb (%d) here (--ipc=new raises it in a namespace of the tree's own)", q.ID, q.QBytes, mnb)
		}
		for k, m := range q.Messages {
			if uint64(len(m.Text)) > most {
				return fmt.Errorf("message queue %d: message %d has %d bytes, more than kernel.msgmax (%d) here (--ipc=new raises it in a namespace of the tree's own)", q.ID, k, len(m.Text), most)
			}
		}
	}
	return nil
}

// sysctl reads kernel.name, a number, of this thread's IPC namespace.
func sysctl(name string) (uint64, error) {
	b, err := os.ReadFile("/proc/sys/kernel/" + name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("kernel.%s: %w", name, err)
	}
	return v, nil
}

// asCreator makes an object with get, as its creator p.CUID:p.CGID
// (effective ids of this thread only), at id p.ID (next_id), gives it
// its owner and mode with set, and checks it got its id; the object is
// in t.ipcMade from then on, to be removed if the restore fails.
func (t *tree) asCreator(kind int, p format.IPCPerm, get func() (int, error), set func(id int) error) error {
	k := ipcKinds[kind]
	fail := func(err error) error {
		return fmt.Errorf("making %s %d (key %#x) again: %w", k.what, p.ID, uint32(p.Key), err)
	}
	if err := os.WriteFile("/proc/sys/kernel/"+k.name+"_next_id", []byte(strconv.Itoa(p.ID)), 0); err != nil {
		return fail(err)
	}
	if err := setEffective(p.CUID, p.CGID); err != nil {
		return fail(err)
	}
	id, err := get()
	if err == nil {
		t.ipcMade = append(t.ipcMade, ipcMade{kind, id})
		err = set(id)
	}
	if rerr := setEffective(0, 0); rerr != nil {
		// This thread cannot go on: it ends with its goroutine.
		return fail(rerr)
	}
	switch {
	case err != nil:
		return fail(err)
	case id != p.ID:
		return fail(fmt.Errorf("it got id %d: another process took the id meanwhile", id))
	}
	return nil
}

// setEffective sets this thread's effective user and group ids (the
// raw calls change the calling thread's only). Back to 0, the thread
// has its capabilities again (its saved ids stayed 0).
func setEffective(uid, gid int) error {
	if uid == 0 {
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
			return os.NewSyscallError("setresuid", e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
		return os.NewSyscallError("setresgid", e)
	}
	if uid != 0 {
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			return os.NewSyscallError("setresuid", e)
		}
	}
	return nil
}

// ipcMade is an object makeIPC made: its kind (index of ipcKinds) and id.
type ipcMade struct{ kind, id int }

// makeShm makes segment i (a file of the image) and opens it for
// FILEDATA to fill (t.fill), through an attachment of procs-load's own
// that it leaves at once.
func (t *tree) makeShm(i int) error {
	f := &t.files[i]
	s := f.Shm
	err := t.asCreator(0, s.IPCPerm, func() (int, error) {
		return unix.SysvShmGet(int(s.Key), int(f.Size), unix.IPC_CREAT|unix.IPC_EXCL|int(s.Mode))
	}, func(id int) error {
		var d unix.SysvShmDesc
		d.Perm.Uid, d.Perm.Gid, d.Perm.Mode = uint32(s.UID), uint32(s.GID), s.Mode
		_, err := unix.SysvShmCtl(id, unix.IPC_SET, &d)
		return err
	})
	if err != nil {
		return err
	}
	b, err := unix.SysvShmAttach(s.ID, 0, 0)
	if err != nil {
		return fmt.Errorf("filling shared memory segment %d: %w", s.ID, err)
	}
	if s.Removed {
		// Marked at once: it lasts while procs-load's attachment does,
		// then while the processes' do (they attach it by id, as Linux
		// allows), and goes with procs-load if it dies meanwhile.
		if _, err := unix.SysvShmCtl(s.ID, unix.IPC_RMID, nil); err != nil {
			unix.SysvShmDetach(b)
			return fmt.Errorf("shared memory segment %d: %w", s.ID, err)
		}
		t.shmKept = append(t.shmKept, b)
	} else {
		defer unix.SysvShmDetach(b)
	}
	start := addrOf(b)
	fill, err := os.OpenFile(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+(uint64(f.Size)+format.PageSize-1)&^(format.PageSize-1)), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("filling shared memory segment %d: %w", s.ID, err)
	}
	t.fill[i] = fill
	t.kept = append(t.kept, fill)
	return nil
}

// makeSem makes semaphore set s; the root gives it its values (fillIPC).
func (t *tree) makeSem(s format.SemSet) error {
	err := t.asCreator(1, s.IPCPerm, func() (int, error) {
		return linux.Semget(s.Key, len(s.Values), unix.IPC_CREAT|unix.IPC_EXCL|int(s.Mode))
	}, func(id int) error {
		ds := linux.SemidDS{Perm: linux.IPC64Perm{UID: uint32(s.UID), GID: uint32(s.GID), Mode: s.Mode}}
		_, err := linux.Semctl(id, 0, unix.IPC_SET, ds.Encode())
		return err
	})
	return err
}

// makeMsg makes message queue q; the root sends its messages (fillIPC).
func (t *tree) makeMsg(q format.MsgQueue) error {
	err := t.asCreator(2, q.IPCPerm, func() (int, error) {
		return linux.Msgget(q.Key, unix.IPC_CREAT|unix.IPC_EXCL|int(q.Mode))
	}, func(id int) error {
		ds := linux.MsqidDS{Perm: linux.IPC64Perm{UID: uint32(q.UID), GID: uint32(q.GID), Mode: q.Mode}, Qbytes: q.QBytes}
		_, err := linux.Msgctl(id, unix.IPC_SET, ds.Encode())
		return err
	})
	return err
}

// removeIPC removes the objects makeIPC made in procs-load's IPC
// namespace, when the restore fails (those of a namespace of the
// tree's go with it).
func (t *tree) removeIPC() {
	t.detachShm()
	if t.ipcNS != nil {
		t.ipcMade = nil
		return
	}
	for _, m := range t.ipcMade {
		switch m.kind {
		case 0:
			unix.SysvShmCtl(m.id, unix.IPC_RMID, nil)
		case 1:
			linux.Semctl(m.id, 0, unix.IPC_RMID, nil)
		case 2:
			linux.Msgctl(m.id, unix.IPC_RMID, nil)
		}
	}
	t.ipcMade = nil
}

// joinIPC has the root, just made, join the tree's IPC namespace, when
// it has one of its own (its children are born in it), and fill the
// sets and queues (fillIPC).
func (t *tree) joinIPC(root *builder) error {
	if t.ipcNS != nil {
		fd, err := root.takeFD(t.ipcNS)
		if err != nil {
			return err
		}
		_, err = root.main.Syscall("setns(CLONE_NEWIPC)", unix.SYS_SETNS, fd, unix.CLONE_NEWIPC)
		root.main.Syscall("close", unix.SYS_CLOSE, fd)
		if err != nil {
			return err
		}
	}
	return t.fillIPC(root)
}

// fillIPC has the root, still with procs-load's rights, give the sets
// their values (SETALL) and send the queues their messages, in order:
// the kernel then names a process of the tree as the one that used them
// last (sempid, lspid), and a later dump finds them the tree's again. It
// works in memory of its own, which laying it out throws away.
func (t *tree) fillIPC(root *builder) error {
	if t.ipc == nil || len(t.ipc.Sem)+len(t.ipc.Msg) == 0 {
		return nil
	}
	size := uint64(format.PageSize)
	for _, s := range t.ipc.Sem {
		size = max(size, uint64(2*len(s.Values)))
	}
	for _, q := range t.ipc.Msg {
		for _, m := range q.Messages {
			size = max(size, uint64(8+len(m.Text)))
		}
	}
	r := root.main
	buf, err := r.Syscall("mmap", unix.SYS_MMAP, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return err
	}
	defer r.Syscall("munmap", unix.SYS_MUNMAP, buf, size)
	for _, s := range t.ipc.Sem {
		vals := make([]byte, 0, 2*len(s.Values))
		for _, v := range s.Values {
			vals = binary.LittleEndian.AppendUint16(vals, v)
		}
		if err := ptrace.WriteMem(root.pid, buf, vals); err != nil {
			return err
		}
		if _, err := r.Syscall("semctl(SETALL)", unix.SYS_SEMCTL, uint64(s.ID), 0, linux.SETALL, buf); err != nil {
			return fmt.Errorf("semaphore set %d: %w", s.ID, err)
		}
	}
	for _, q := range t.ipc.Msg {
		for k, m := range q.Messages {
			msg := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(m.Text)), uint64(m.Type))
			if err := ptrace.WriteMem(root.pid, buf, append(msg, m.Text...)); err != nil {
				return err
			}
			if _, err := r.Syscall("msgsnd", unix.SYS_MSGSND, uint64(q.ID), buf, uint64(len(m.Text)), unix.IPC_NOWAIT); err != nil {
				return fmt.Errorf("message queue %d, message %d: %w", q.ID, k, err)
			}
		}
	}
	return nil
}

// attachShm attaches, for mapping m of an attachment of a segment, the
// whole segment at the attachment's first mapping (whose offset is 0),
// as SHM_RDONLY when it was; each mapping then gets its protection.
func (b *builder) attachShm(m format.Mapping) error {
	s := b.files[m.File].Shm
	prot := uint64(unix.PROT_READ | unix.PROT_WRITE)
	flags := uint64(0)
	if m.Access == format.AccessRead {
		prot, flags = unix.PROT_READ, unix.SHM_RDONLY
	}
	if m.Offset == 0 {
		at, err := b.main.Syscall(fmt.Sprintf("shmat %d at %x", s.ID, m.Start), unix.SYS_SHMAT, uint64(s.ID), m.Start, flags)
		if err != nil {
			return err
		}
		if at != m.Start {
			return fmt.Errorf("shared memory segment %d attached at %#x, not %#x", s.ID, at, m.Start)
		}
	}
	if uint64(m.Prot) != prot {
		_, err := b.main.Syscall("mprotect", unix.SYS_MPROTECT, m.Start, m.End-m.Start, uint64(m.Prot))
		return err
	}
	return nil
}

// detachShm leaves the segments procs-load keeps attached (those marked
// for removal), once the processes have them or the restore failed.
func (t *tree) detachShm() {
	for _, b := range t.shmKept {
		unix.SysvShmDetach(b)
	}
	t.shmKept = nil
}
