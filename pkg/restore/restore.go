// Package restore builds a process from an image in the procs image format
// and lets it run. Nothing runs before the whole image has been read and
// verified and every piece of state is in place.
package restore

import (
	"errors"
	"io"
	"os"
)

// PIDMode says which PID the restored process gets.
type PIDMode int

const (
	PIDAuto PIDMode = iota // the original PID when it is free, else a new one
	PIDKeep                // the original PID or fail
	PIDNew                 // always a new PID
)

// Options control one restore.
type Options struct {
	PID PIDMode
	// Stdin, Stdout, Stderr become the restored process's fds 0, 1 and 2.
	Stdin, Stdout, Stderr *os.File
	Log                   func(format string, args ...any)
	Progress              func(done, total int64)
}

// Process is a restored, running process, a child of the caller.
type Process struct {
	Pid int
}

// Restore reads an image from in, builds the process and starts it.
// When in is Stdin, Restore reads nothing past the end of the image.
func Restore(opts Options, in io.Reader) (*Process, error) {
	return nil, errors.New("not implemented")
}

// Wait waits for the process to end and returns its exit status as a shell
// reports it: the exit code, or 128+N after death by signal N.
func (p *Process) Wait() (int, error) {
	return 0, errors.New("not implemented")
}
