// Package format reads and writes procs images: the single streamable file
// that holds a checkpointed tree of processes (one process, or a process
// and descendants of it). SPEC.md in this folder specifies the format,
// version 2.0; this package is its reference codec.
//
// A Writer writes the file header and the INFO record, then the FILES
// record (every file of the image, FileTable), one PROCESS record per
// process (the root first, each parent before its children), FILEDATA
// records, and PAGES records: each names its process by the number of
// its PROCESS record (from 0), a process's in increasing address order,
// processes in record order. Close writes END. A Reader checks everything
// it reads (checksums, lengths, caps, order, the END totals) and never
// reads a byte past the END record from an uncompressed stream, so the
// rest of a stream stays for its next user. It refuses images of format
// 1.x, saying so.
//
// The engine's own record types (0x0010-0x001f) are listed with the
// others in types.go, so that the Reader knows them (and does not reject
// them as unknown critical types); their payloads are defined in meta.go:
// TypeProcess and TypeFiles so far.
package format
