// Package cli holds what the procs commands share about talking to people:
// messages on stderr, exit codes, the version, where an image goes, a
// progress line, signal handling and option parsing.
//
// Rules for everything written to stderr (all of it goes through a Msg):
//
//   - every line starts with the program name and a colon: "procs-dump: ";
//   - a message starts lowercase and has no trailing period;
//   - an error takes one line; an error whose text has several lines (a
//     list of fds, of processes) prints each of them with the prefix;
//   - an optional second line "procs-dump: hint: ..." says what to do;
//   - -v lines use the same prefix;
//   - the progress line is drawn only when stderr is a terminal, and is
//     cleared before any other line is written and at the end.
//
// Nothing else in procs writes to stderr.
package cli
