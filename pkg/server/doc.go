// Package server keeps procs images under random ids in a state directory
// and serves them over HTTP/1.1: the library behind procs-serve.
//
// Every image is verified while it streams in (through an injected
// Verifier) and written atomically: temporary file, fsync, rename, fsync of
// the directory. Only then is the upload acknowledged with 201 Created. An
// interrupted, corrupted or oversized upload leaves nothing behind and is
// never listed. Memory use does not depend on image size.
//
// The HTTP interface is documented in man/procs-serve.8; what the server
// shares with its clients (ids, paths, headers, the entry) is package
// api.
package server
