package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is an *os.File open on a terminal.
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
