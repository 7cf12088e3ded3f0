// Package ptrace holds thin wrappers around the ptrace requests procs needs,
// and reading and writing a tracee's memory. System calls injected into a
// stopped thread are package inject's, built on these.
//
// Every ptrace request for a tracee must come from the OS thread that
// attached it. Precondition for every function in this package that takes a
// tid: the calling goroutine is locked to the tracer's OS thread (see Run).
package ptrace

import (
	"runtime"
)

// Run runs f on a fresh goroutine locked to its own OS thread and returns
// f's error. The thread is never unlocked, so it dies with the goroutine and
// no other goroutine ever runs on a thread that is a tracer.
func Run(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- f()
	}()
	return <-done
}
