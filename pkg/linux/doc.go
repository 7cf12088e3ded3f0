// Package linux holds the kernel ABI structs and constants that
// golang.org/x/sys/unix lacks, with their encoders and decoders, used by
// dump and restore alike (modelled on gVisor's pkg/abi/linux).
//
// Each struct mirrors the kernel's layout on x86-64 field by field, its
// padding spelled as blank fields, so that encoding/binary gives exactly
// the kernel's bytes: Encode returns them, Decode reads them back from a
// slice at least as long as the struct's Sizeof constant (it panics on a
// shorter one, as indexing would). Where x/sys has a name (syscall
// numbers, prctl, seccomp and mmap constants, struct sock_filter), the
// callers use x/sys and nothing is repeated here. No syscall numbers or
// byte offsets are written anywhere else.
package linux
