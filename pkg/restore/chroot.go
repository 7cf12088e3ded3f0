package restore

// chroot: a process that ran chrooted into a directory is chrooted into
// the same path again.
//
// Paths in an image are as the dumper saw them: /proc/PID/root, cwd, fd
// and map_files links show a path from the reader's root, not from the
// process's. A process chrooted into /srv/jail with its cwd at /sub
// has root "/srv/jail" and cwd "/srv/jail/sub" in the image, its open
// files and mappings full paths from procs-dump's root too. The restore
// opens every file and changes to the cwd by those paths, from
// procs-load's root, and only then has the process chroot into its root
// (which needs CAP_SYS_CHROOT: it is done before the process takes its
// credentials back): it finds itself where it was, its open files and
// its cwd the same, inside the root or not.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/safetext"
)

// validateRoot refuses a root that is not a clean absolute path, or
// that is not a directory here.
func validateRoot(img *format.Process) error {
	r := img.Root
	if r == "/" {
		return nil
	}
	if !filepath.IsAbs(r) || filepath.Clean(r) != r || strings.ContainsRune(r, 0) || len(r) >= offBig-offPath {
		return fmt.Errorf("image root directory %s is not a clean absolute path", safetext.Quote(r))
	}
	st, err := os.Stat(r)
	if err != nil {
		return fmt.Errorf("the process ran chrooted into %s, which is missing here: %v", safetext.Quote(r), errUnwrapPath(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("the process ran chrooted into %s, which is not a directory here", safetext.Quote(r))
	}
	if uid, ok := nonRoot(img); ok {
		if why := jailUnsafe(r); why != "" {
			return fmt.Errorf("the process (uid %d) ran chrooted into %s, and %s: a chroot is given back to a process without root only in a folder that, with every folder above it, root owns and only root may write (as sshd asks of a ChrootDirectory)", uid, safetext.Quote(r), why)
		}
	}
	return nil
}

// nonRoot returns a uid of the process's, or of one of its threads',
// that is not 0, if any.
func nonRoot(img *format.Process) (int, bool) {
	cs := []format.Creds{img.Creds}
	for _, t := range img.Threads {
		if t.Creds != nil {
			cs = append(cs, *t.Creds)
		}
	}
	for _, c := range cs {
		for _, u := range c.UID {
			if u != 0 {
				return u, true
			}
		}
	}
	return 0, false
}

// jailUnsafe says why dir is not a folder that only root can fill, or "".
// A chroot is a privilege (CAP_SYS_CHROOT): in a folder someone else may
// write, they could plant an /etc, a libc or a set-user-ID program's
// world for the process to trust. So an image's chroot is honoured for a
// process without root only where the restorer's root has decided what
// is inside.
func jailUnsafe(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			return fmt.Sprintf("%s cannot be checked (%v)", safetext.Quote(d), err)
		}
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Sprintf("%s is not a folder (a symbolic link?)", safetext.Quote(d))
		case st.Uid != 0:
			return fmt.Sprintf("%s is owned by uid %d", safetext.Quote(d), st.Uid)
		case st.Mode&0o022 != 0:
			return fmt.Sprintf("%s may be written by others (mode %o)", safetext.Quote(d), st.Mode&0o7777)
		}
		if d == "/" {
			return ""
		}
	}
}

// errUnwrapPath is the error of a *os.PathError without its path.
func errUnwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// chroot has the process chroot into its root, from its working
// directory already in place.
func (b *builder) chroot() error {
	root := b.img.Root
	if root == "/" {
		return nil
	}
	p, err := b.writePath(root)
	if err != nil {
		return err
	}
	if _, err := b.main.Syscall("chroot", unix.SYS_CHROOT, p); err != nil {
		return fmt.Errorf("root directory %s: %w", safetext.Quote(root), err)
	}
	return nil
}
