package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"

	"procs/pkg/procfs"
)

// An image file is written where it is to appear, in a file that has no
// name until the image is complete (O_TMPFILE): if the writer dies, even
// by SIGKILL, the kernel frees it and nothing is left. Commit gives it its
// name with linkat through /proc/self/fd (AT_SYMLINK_FOLLOW, which takes
// no capability); as linkat cannot replace a file, an existing one is
// replaced by linking to a temp name and renaming that over it.
//
// Where the file system has no O_TMPFILE, the image is written to a named
// temp file in the same directory. Temp names carry the writer's PID and
// start time, ".NAME.procs-tmp-PID-START-RAND", and the writer holds an
// flock on the file while it lives: each OpenOutput removes the temp files
// in its directory whose writer is gone (see removeStale).

// tempName matches a temp file's name; group 1 is the writer's PID and
// group 2 its start time.
var tempName = regexp.MustCompile(`^\..*\.procs-tmp-([0-9]+)-([0-9]+)-[0-9a-f]{12}$`)

// noTmpfile makes createTemp act as on a file system without O_TMPFILE
// (for tests).
var noTmpfile = false

// newTempName returns a fresh temp name for base.
func newTempName(base string) string {
	const keep = 200 // room for the suffix within NAME_MAX
	if len(base) > keep {
		base = base[:keep]
	}
	var start uint64
	if st, err := procfs.ReadStat(os.Getpid()); err == nil {
		start = st.StartTime
	}
	r := make([]byte, 6)
	rand.Read(r)
	return fmt.Sprintf(".%s.procs-tmp-%d-%d-%s", base, os.Getpid(), start, hex.EncodeToString(r))
}

// createTemp opens a file for an image of the given mode in dir: an
// unnamed one when the file system allows it (tmp is then ""), else one
// named tmp (to be named base later). The file is locked (flock) as long
// as it is open.
func createTemp(dir, base string, mode fs.FileMode) (f *os.File, tmp string, err error) {
	if !noTmpfile {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(mode))
		switch {
		case err == nil:
			f = os.NewFile(uintptr(fd), filepath.Join(dir, base))
			// For the moment it has a temp name (see linkTemp).
			unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			return f, "", nil
		case !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR):
			// EISDIR: a kernel without O_TMPFILE.
			return nil, "", os.NewSyscallError("open", err)
		}
	}
	for range 10 {
		tmp = filepath.Join(dir, newTempName(base))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, mode)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, "", err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, "", os.NewSyscallError("flock", err)
	}
	return f, tmp, nil
}

// linkTemp gives the unnamed file f the name path: directly when no file
// is there, else through a temp name renamed over it.
func linkTemp(f *os.File, path string) error {
	from := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	err := unix.Linkat(unix.AT_FDCWD, from, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return os.NewSyscallError("linkat", err)
	}
	dir, base := filepath.Split(path)
	for range 10 {
		tmp := filepath.Join(dir, newTempName(base))
		err = unix.Linkat(unix.AT_FDCWD, from, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return os.NewSyscallError("linkat", err)
		}
		// Killed here, tmp stays (locked by f until then): the next
		// OpenOutput in dir removes it.
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return unwrapPath(err)
		}
		return nil
	}
	return os.NewSyscallError("linkat", err)
}

// removeStale removes the temp files in dir left by writers that are
// gone: the process named in the file's name no longer runs (or is
// another one, with another start time), and nobody holds the file's
// lock (the lock also guards a live writer in another PID namespace).
// Errors are ignored: what cannot be removed stays.
func removeStale(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		m := tempName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, err1 := strconv.Atoi(m[1])
		start, err2 := strconv.ParseUint(m[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil && st.StartTime == start {
			continue // its writer lives
		}
		path := filepath.Join(dir, n)
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() &&
			unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(path)
		}
		f.Close()
	}
}
