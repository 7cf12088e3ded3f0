// Package dump freezes a running process, reads its state and writes it as
// one image in the procs image format (see format/SPEC.md).
//
// The target is never harmed: if anything fails, every thread is detached
// and every change made to it is undone before Dump returns.
package dump

import (
	"errors"
	"io"
	"time"

	"procs/format"
)

// Options control one dump.
type Options struct {
	PID         int                // process to dump
	Kill        bool               // kill the process once Commit succeeded
	FileSave    bool               // carry the contents of every open regular file
	Compression format.Compression // compression of page records
	// Commit is called once the whole image has been written to out, while
	// the process is still frozen. It must make the image durable (flush,
	// fsync, wait for a server's acknowledgement). If it fails, the process
	// is let go unharmed and Dump returns its error. Nil means no-op.
	Commit func() error
	// Log receives one line per phase with times and sizes (-v); nil
	// means quiet.
	Log func(format string, args ...any)
	// Progress, if set, is called now and then with bytes of memory done
	// and total (for a progress display on a terminal).
	Progress func(done, total int64)
}

// Stats describes a finished dump.
type Stats struct {
	Frozen     time.Duration // how long the process was stopped
	Total      time.Duration
	PageBytes  int64 // bytes of memory stored
	ImageBytes int64 // bytes written to out
	Threads    int
}

// ErrUnsupported wraps every refusal to dump a process because it holds
// something procs cannot carry (a socket, a pipe, a child...). Such a
// refusal happens before the process is touched.
var ErrUnsupported = errors.New("unsupported")

// Dump writes an image of process opts.PID to out.
func Dump(opts Options, out io.Writer) (Stats, error) {
	return Stats{}, errors.New("not implemented")
}
