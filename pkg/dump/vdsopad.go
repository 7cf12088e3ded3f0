package dump

import (
	"bytes"
	"errors"
	"os"
	"sync"

	"procs/pkg/procfs"
	"procs/pkg/ptrace"
)

// The zero padding at the end of a process's [vdso] is where procs-dump
// puts its trampoline (inject.Trampoline). A procs-dump killed while it
// borrowed a thread leaves its code and frame there, and the thread on its
// way back through them (in a batch's sleep for up to a second). The next
// dump must neither take that for the vDSO's content nor save the thread
// there: it finds the padding from its own, untouched, vDSO (the same
// kernel's), lets such a thread come back first (leaveVdso), and wipes
// what was left.

// ownVdso returns this process's [vdso].
var ownVdso = sync.OnceValues(func() ([]byte, error) {
	maps, err := procfs.Maps(os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		if m.Path == "[vdso]" {
			b := make([]byte, m.End-m.Start)
			if err := ptrace.ReadMem(os.Getpid(), m.Start, b); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	return nil, errors.New("no [vdso]")
})

// vdsoContentEnd returns where the content of vdso, a process's [vdso],
// ends and its zero padding starts: where this process's own vDSO's does
// when vdso is the same one (whatever a killed procs-dump left in the
// padding), else after its last byte that is not zero.
func vdsoContentEnd(vdso []byte) int {
	end := len(bytes.TrimRight(vdso, "\x00"))
	own, err := ownVdso()
	if err != nil || len(own) != len(vdso) {
		return end
	}
	oe := len(bytes.TrimRight(own, "\x00"))
	if bytes.Equal(own[:oe], vdso[:oe]) {
		return oe
	}
	return end
}
