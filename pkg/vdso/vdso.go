// Package vdso lets a process made on one kernel build call the vDSO of
// another.
//
// A process keeps pointers into its vDSO, found once at startup (glibc
// and the Go runtime both look its functions up by name), and the vDSO's
// code differs from one kernel build to the next: a process restored
// with another kernel's vDSO at the old address would jump into the
// middle of other code. Proxy instead keeps the old vDSO's bytes at the
// old address and makes each function it exports start with a jump to
// the function of the same name in this kernel's vDSO, mapped elsewhere.
// Old code runs only if a thread was stopped inside it, which procs-dump
// avoids by letting such a thread step out first.
package vdso

import (
	"bytes"
	"debug/elf"
	"fmt"
	"math"
	"sort"

	"procs/pkg/safetext"
)

// jumpSize is the size of the jump Proxy writes: E9 and a 32-bit
// displacement.
const jumpSize = 5

// MaxDistance is how far apart the two vDSOs may be for Proxy's jumps.
const MaxDistance = math.MaxInt32 - 1<<20

// Funcs returns the functions a vDSO image exports, by name, as offsets
// into image.
func Funcs(image []byte) (map[string]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("vDSO: %w", err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("vDSO: %w", err)
	}
	out := map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || s.Name == "" {
			continue
		}
		off, ok := fileOffset(f, s.Value)
		if !ok || off+jumpSize > uint64(len(image)) {
			return nil, fmt.Errorf("vDSO: function %s at %#x lies outside the image", safetext.Quote(s.Name), s.Value)
		}
		out[s.Name] = off
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("vDSO: no functions")
	}
	return out, nil
}

// fileOffset turns a virtual address of f into an offset in its image.
func fileOffset(f *elf.File, addr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr-p.Vaddr < p.Filesz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// Proxy returns a copy of old, a process's vDSO, to be mapped at oldBase,
// in which every function old exports starts with a jump to the function
// of the same name in cur, this kernel's vDSO, mapped at curBase. It
// fails if cur lacks one of old's functions, if two of old's functions
// start too close together for a jump, or if the vDSOs lie more than
// MaxDistance apart.
func Proxy(old, cur []byte, oldBase, curBase uint64) ([]byte, error) {
	from, err := Funcs(old)
	if err != nil {
		return nil, fmt.Errorf("the image's %w", err)
	}
	to, err := Funcs(cur)
	if err != nil {
		return nil, fmt.Errorf("this kernel's %w", err)
	}
	if d := int64(curBase - oldBase); d > MaxDistance || d < -MaxDistance {
		return nil, fmt.Errorf("vDSO at %#x too far from the image's at %#x", curBase, oldBase)
	}
	names := make([]string, 0, len(from))
	for name := range from {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if from[names[i]] != from[names[j]] {
			return from[names[i]] < from[names[j]]
		}
		return names[i] < names[j]
	})
	out := bytes.Clone(old)
	var last uint64
	for i, name := range names {
		src := from[name]
		dst, ok := to[name]
		if !ok {
			return nil, fmt.Errorf("this kernel's vDSO lacks %s, which the process's kernel had", safetext.Quote(name))
		}
		if i > 0 && src == from[names[i-1]] { // an alias
			if to[names[i-1]] != dst {
				return nil, fmt.Errorf("vDSO: %s and %s are one function in the image, two in this kernel", safetext.Quote(names[i-1]), safetext.Quote(name))
			}
			continue
		}
		if i > 0 && src < last+jumpSize {
			return nil, fmt.Errorf("the image's vDSO functions %s and %s are too close for a jump", safetext.Quote(names[i-1]), safetext.Quote(name))
		}
		last = src
		rel := int64(curBase+dst) - int64(oldBase+src+jumpSize)
		out[src] = 0xe9
		for k := range 4 {
			out[src+1+uint64(k)] = byte(uint32(int32(rel)) >> (8 * k))
		}
	}
	return out, nil
}
