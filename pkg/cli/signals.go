package cli

import (
	"os/signal"
	"syscall"
)

// IgnoreSIGPIPE makes a write to a closed pipe or socket on stdout fail
// with EPIPE instead of killing the program, so that a reader going away
// is reported and handled like any other write error (procs-dump must
// then let the process go unharmed).
//
// The SIG_IGN disposition is inherited by programs this one executes;
// procs-load, which starts the restored process, does not call it.
func IgnoreSIGPIPE() {
	signal.Ignore(syscall.SIGPIPE)
}
