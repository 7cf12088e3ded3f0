package files

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
	"procs/pkg/safetext"
)

// inotify is an inotify instance: every watch comes back on its file,
// found again at its path, with its mask and its watch descriptor, so
// that the program's map of watch descriptors to files stays right.
// Events not yet read are dropped (inotify(7) lets a queue overflow).
//
// Dump: fdinfo lists each watch (wd, inode, device, mask and a file
// handle); the file is opened by its handle (open_by_handle_at, which
// needs CAP_DAC_READ_SEARCH) and its path read from the fd, both in the
// mount namespace of the process (Source.Keeper: of one in flight, the
// process whose queue holds it). A watch is
// removed by the kernel when its file loses its last name, so every
// watch has a path.
//
// Restore: the loader makes the instance and adds the watches as the
// process (Loader.AsProcess: inotify_add_watch needs read access to the
// file). The kernel gives a new watch the first free descriptor from
// the one after the last it gave, so each watch, in the order of their
// descriptors, is added and removed until it comes back under its own.
// A watched file gone from its path fails the restore, naming it.
type inotify struct{}

func (inotify) Name() string { return format.FileInotify }

func (inotify) Match(fd *procfs.FD, _ Terminals) bool {
	return fd.Target == "anon_inode:inotify"
}

// Traits: one open file description, the loader's, for every fd and a
// queue that holds it in flight.
func (inotify) Traits() Traits { return Traits{OneOpen: true, Sent: true} }

// Limits of the reference restorer on an image's inotify watches (each
// watch descriptor costs as many adds and removes as its number).
const (
	// MaxInotifyWD is the highest watch descriptor procs makes again.
	MaxInotifyWD = 1 << 20
	// MaxInotifyWatches is the most watches of an image.
	MaxInotifyWatches = 1 << 16
)

// inotifyMasks are the bits of a watch's mask: events, and the options
// fdinfo shows (IN_EXCL_UNLINK, IN_ONESHOT) or inotify_add_watch takes.
const inotifyMasks = unix.IN_ALL_EVENTS | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK | unix.IN_ONESHOT

// Dump reads every watch from fdinfo lines "inotify wd:%x ino:%lx
// sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x
// f_handle:%s".
func (inotify) Dump(src Source, fd *procfs.FD, idx int) error {
	in := &format.Inotify{Watches: []format.InotifyWatch{}}
	var mounts []procfs.Mount
	for _, line := range fd.Extra {
		rest, ok := strings.CutPrefix(line, "inotify ")
		if !ok {
			continue
		}
		w, err := parseWatch(rest)
		if err != nil {
			return fmt.Errorf("fd %d: cannot parse inotify watch %q: %v", fd.Num, line, err)
		}
		if w.wd > MaxInotifyWD {
			return refusef("fd %d is an inotify instance with watch descriptor %d: procs makes them again up to %d", fd.Num, w.wd, MaxInotifyWD)
		}
		if mounts == nil {
			if mounts, err = procfs.Mounts(src.Keeper()); err != nil {
				return err
			}
		}
		path, err := w.path(src.Keeper(), mounts)
		if err != nil {
			return refusef("fd %d is an inotify instance watching a file procs cannot find (inode %d): %v", fd.Num, w.ino, err)
		}
		in.Watches = append(in.Watches, format.InotifyWatch{WD: w.wd, Path: path, Mask: w.mask})
	}
	if len(in.Watches) > MaxInotifyWatches {
		return refusef("fd %d is an inotify instance with %d watches: procs carries at most %d", fd.Num, len(in.Watches), MaxInotifyWatches)
	}
	src.File(idx).Inotify = in
	return nil
}

// watch is a watch as fdinfo shows it.
type watch struct {
	wd         int
	ino        uint64
	sdev       uint64 // the kernel's dev_t: major << 20 | minor
	mask       uint32
	handleType int32
	handle     []byte
}

// parseWatch parses the fields of an inotify line of fdinfo.
func parseWatch(s string) (watch, error) {
	var w watch
	var sdev, n uint64
	var hexHandle string
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, ":")
		var err error
		switch k {
		case "wd":
			n, err = strconv.ParseUint(v, 16, 31)
			w.wd = int(n)
		case "ino":
			w.ino, err = strconv.ParseUint(v, 16, 64)
		case "sdev":
			sdev, err = strconv.ParseUint(v, 16, 32)
		case "mask":
			n, err = strconv.ParseUint(v, 16, 32)
			w.mask = uint32(n)
		case "fhandle-type":
			n, err = strconv.ParseUint(v, 16, 31)
			w.handleType = int32(n)
		case "f_handle":
			hexHandle = v
		}
		if err != nil {
			return w, err
		}
	}
	w.sdev = uint64(unix.Mkdev(uint32(sdev>>20), uint32(sdev&0xfffff)))
	for i := 0; i+2 <= len(hexHandle); i += 2 {
		b, err := strconv.ParseUint(hexHandle[i:i+2], 16, 8)
		if err != nil {
			return w, err
		}
		w.handle = append(w.handle, byte(b))
	}
	if w.wd < 1 || len(w.handle) == 0 {
		return w, errors.New("no watch descriptor or file handle")
	}
	return w, nil
}

// path finds the watched file by its handle, through a mount of its file
// system in process pid's mount namespace (one of its whole file system
// first, for the fullest path), and returns its path.
func (w watch) path(pid int, mounts []procfs.Mount) (string, error) {
	var at []string
	for _, m := range mounts {
		if m.Dev != w.sdev {
			continue
		}
		p := fmt.Sprintf("/proc/%d/root%s", pid, m.Point)
		if m.Root == "/" {
			at = slices.Insert(at, 0, p)
		} else {
			at = append(at, p)
		}
	}
	err := errors.New("no mount of its file system")
	for _, p := range at {
		var mfd, fd int
		// A folder (open_by_handle_at takes no O_PATH fd): no device
		// or pipe mounted on a file is opened.
		mfd, err = unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		fd, err = unix.OpenByHandleAt(mfd, unix.NewFileHandle(w.handleType, w.handle), unix.O_PATH|unix.O_CLOEXEC)
		unix.Close(mfd)
		if errors.Is(err, unix.EPERM) {
			return "", errors.New("only root (CAP_DAC_READ_SEARCH) finds a watched file")
		}
		if err != nil {
			continue
		}
		path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		unix.Close(fd)
		switch {
		case err != nil:
			return "", err
		case !strings.HasPrefix(path, "/") || strings.HasSuffix(path, " (deleted)"):
			return "", fmt.Errorf("it is %s", safetext.Quote(path))
		case !utf8.ValidString(path):
			return "", fmt.Errorf("its name is not UTF-8 (%s)", safetext.Quote(path))
		}
		return path, nil
	}
	return "", err
}

// Prepare makes the instance as the process, with its watches under
// their descriptors.
func (inotify) Prepare(l Loader, i int, f *format.File, what string) error {
	var lf *os.File
	err := l.AsProcess(func() error {
		var err error
		lf, err = makeInotify(f.Inotify, what)
		return err
	})
	if err != nil {
		return err
	}
	l.Own(i, lf)
	return nil
}

// drainEvery is how many watches removed between two reads of the
// IN_IGNORED events their removal queues (the queue holds 16384).
const drainEvery = 4096

// makeInotify makes an inotify instance with in's watches.
func makeInotify(in *format.Inotify, what string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("%s: inotify_init1: %w", what, err)
	}
	lf := os.NewFile(uintptr(fd), "inotify")
	// hold keeps a watch on a file while fd's is added and removed
	// again and again: the kernel then keeps the file's list of watches,
	// and each round is 20 times faster.
	hold := -1
	defer func() {
		if hold >= 0 {
			unix.Close(hold)
		}
	}()
	ws := slices.Clone(in.Watches)
	slices.SortFunc(ws, func(a, b format.InotifyWatch) int { return a.WD - b.WD })
	removed := 0
	for _, w := range ws {
		fail := func(err error) (*os.File, error) {
			lf.Close()
			return nil, fmt.Errorf("%s: inotify watch %d on %s: %w", what, w.WD, safetext.Quote(w.Path), err)
		}
		held := false
		for {
			// The path is the watched file's own: never followed.
			got, err := unix.InotifyAddWatch(fd, w.Path, w.Mask|unix.IN_DONT_FOLLOW|unix.IN_MASK_CREATE)
			switch {
			case errors.Is(err, unix.EEXIST):
				return fail(errors.New("an earlier watch has that file now"))
			case err != nil:
				return fail(err)
			case got == w.WD:
			case got > w.WD:
				return fail(fmt.Errorf("it came back as watch %d", got))
			default:
				if hold < 0 {
					if hold, err = unix.InotifyInit1(unix.IN_CLOEXEC); err != nil {
						return fail(err)
					}
				}
				if !held {
					unix.InotifyAddWatch(hold, w.Path, unix.IN_ATTRIB|unix.IN_DONT_FOLLOW)
					held = true
				}
				if _, err := unix.InotifyRmWatch(fd, uint32(got)); err != nil {
					return fail(err)
				}
				if removed++; removed%drainEvery == 0 {
					drain(fd)
				}
				continue
			}
			break
		}
	}
	drain(fd)
	return lf, nil
}

// drain reads every event queued on inotify fd, non-blocking.
func drain(fd int) {
	buf := make([]byte, 64<<10)
	for {
		if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
			return
		}
	}
}

// Validate checks every watch: a descriptor in range, once; a path; a
// mask of events.
func (inotify) Validate(fs []format.File, i int, _ []format.Process) error {
	in := fs[i].Inotify
	if in == nil {
		return fmt.Errorf("image file %d, an inotify, has no inotify state", i)
	}
	if len(in.Watches) > MaxInotifyWatches {
		return fmt.Errorf("image file %d: an inotify with %d watches (at most %d)", i, len(in.Watches), MaxInotifyWatches)
	}
	seen := make(map[int]bool, len(in.Watches))
	for _, w := range in.Watches {
		switch {
		case w.WD < 1 || w.WD > MaxInotifyWD || seen[w.WD]:
			return fmt.Errorf("image file %d: inotify watch descriptor %d is out of range (1 to %d) or twice", i, w.WD, MaxInotifyWD)
		case !validPath(w.Path):
			return fmt.Errorf("image file %d: inotify watch %d has path %s", i, w.WD, safetext.Quote(w.Path))
		case w.Mask&^inotifyMasks != 0 || w.Mask&unix.IN_ALL_EVENTS == 0:
			return fmt.Errorf("image file %d: inotify watch %d has mask %#x", i, w.WD, w.Mask)
		}
		seen[w.WD] = true
	}
	return nil
}

// ValidateImage bounds the work of the watches of all the image's
// inotify instances: as many adds as their highest descriptors, at most
// MaxInotifyWD and MaxInotifyWatches in all.
func (inotify) ValidateImage(fs []format.File) error {
	adds, watches := 0, 0
	for i := range fs {
		if fs[i].Kind != format.FileInotify {
			continue
		}
		top := 0
		for _, w := range fs[i].Inotify.Watches {
			top = max(top, w.WD)
		}
		adds += top
		watches += len(fs[i].Inotify.Watches)
		if adds > MaxInotifyWD || watches > MaxInotifyWatches {
			return fmt.Errorf("image inotify instances have %d watches up to descriptor %d in all: procs makes at most %d watches, up to descriptor %d in all", watches, adds, MaxInotifyWatches, MaxInotifyWD)
		}
	}
	return nil
}

// validPath says whether p is a path as an image holds them: absolute,
// at most 4095 bytes, no NUL.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && len(p) <= 4095 && !strings.ContainsRune(p, 0)
}
