// Package inject runs system calls inside a stopped thread of another
// process, as CRIU's compel does: a Remote points the thread at a syscall
// instruction and single-steps over it; Remote.Batch runs many read-only
// calls in one trip; a Trampoline, written into the padding of the
// target's vDSO, leaves the thread a signal frame to return through, so
// that a tracer that dies at any moment leaves it exactly where it was.
//
// It is built on package ptrace, the thin wrapper around the ptrace
// requests (seize, wait, registers, memory, options). As there, every
// function that takes a tid must run on the goroutine locked to that
// thread's tracer (see ptrace.Run).
package inject
