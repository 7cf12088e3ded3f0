// Package tests holds the end-to-end tests of procs: victim programs
// (victims/) are started, dumped with procs-dump and brought back with
// procs-load, and each restored program's own report of its state is
// checked. Run them as root with `go test ./tests/`.
//
// The tests build procs-dump and procs-load from ./cmd into a temporary
// folder, or use the ones in $PROCS_BIN when it is set. They kill only the
// processes they started, by PID, and leave none running.
package tests
