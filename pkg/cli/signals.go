package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// IgnoreSIGPIPE makes a write to a closed pipe or socket on stdout fail
// with EPIPE instead of killing the program, so that a reader going away
// is reported and handled like any other write error (procs-dump must
// then let the process go unharmed).
//
// It catches SIGPIPE into a channel nobody reads rather than setting
// SIG_IGN: a caught signal goes back to its default action in programs
// started by exec, so processes started later (the restored process of
// procs-load) do not inherit an ignored SIGPIPE.
func IgnoreSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
