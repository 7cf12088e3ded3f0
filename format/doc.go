// Package format reads and writes procs images: the single streamable file
// that holds one checkpointed process. SPEC.md in this folder specifies
// the format; this package is its reference codec.
//
// A Writer writes the file header and the INFO record, then metadata
// records, then PAGES records in increasing address order, then END on
// Close. A Reader checks everything it reads (checksums, lengths, order,
// the END totals) and never reads a byte past the END record from an
// uncompressed stream, so the rest of a stream stays for its next user.
//
// The engine's own record types (0x0010-0x001f) are listed with the
// others in types.go, so that the Reader knows them (and does not reject
// them as unknown critical types); their payloads are defined in meta.go.
// TypeProcess is the only one so far.
package format
