// Package procfs reads what a checkpointer needs to know about a process
// from /proc: its mappings, stat and status of every thread, auxiliary
// vector, open files with their fdinfo, limits and children, and which of
// its pages hold data (the PAGEMAP_SCAN ioctl, with a fallback that reads
// /proc/PID/pagemap).
//
// The parsers are meant to run while the target is frozen: they read each
// file with one buffer taken from a pool and parse bytes in place, so
// that apart from the results they allocate little.
//
// Errors are *os.PathError or *os.SyscallError values; a vanished process
// gives an error that matches os.ErrNotExist (or unix.ESRCH).
package procfs
