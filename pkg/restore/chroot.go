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
	return nil
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
