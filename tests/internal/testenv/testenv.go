// Package testenv holds what every end-to-end test binary does first.
package testenv

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseStrayFDs marks every fd above 2 that this test binary inherited
// close-on-exec, so that victims start with 0, 1 and 2 only (an inherited
// pipe would make procs-dump refuse them).
func CloseStrayFDs() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}
