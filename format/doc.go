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
// The engine's own record types (0x0010-0x001f) and their payloads are
// defined in meta.go, which makes each type known to the Reader (so that
// it is not rejected as an unknown critical type) with defineType from an
// init function. TypeProcess is known already.
package format
