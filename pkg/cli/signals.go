package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// IgnoreSIGPIPE makes a write to a closed pipe or socket on stdout fail
// with EPIPE instead of killing the program, so that a reader going away
// is reported and handled like any other write error (procs-dump must
// then let the process go unharmed). It sets SIG_IGN, which programs
// started by exec inherit: commands that start processes use
// CatchSIGPIPE instead.
func IgnoreSIGPIPE() {
	signal.Ignore(syscall.SIGPIPE)
}

// CatchSIGPIPE does what IgnoreSIGPIPE does for a command that starts
// processes (procs-load's restore execs a stub that becomes the restored
// process, which must not inherit an ignored SIGPIPE): it catches
// SIGPIPE into a channel nobody reads, and a caught signal goes back to
// its default action across exec. It costs ~0.15 ms more at start: the
// runtime starts a thread to watch signals and waits for it.
func CatchSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
