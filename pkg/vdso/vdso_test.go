package vdso

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"procs/pkg/procfs"
)

// ownVdso returns this process's vDSO and where it is mapped.
func ownVdso(t *testing.T) ([]byte, uint64) {
	t.Helper()
	maps, err := procfs.Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Path == "[vdso]" {
			f, err := os.Open("/proc/self/mem")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, m.End-m.Start)
			if _, err := f.ReadAt(b, int64(m.Start)); err != nil {
				t.Fatal(err)
			}
			return b, m.Start
		}
	}
	t.Fatal("no [vdso]")
	return nil, 0
}

func TestFuncs(t *testing.T) {
	v, _ := ownVdso(t)
	funcs, err := Funcs(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu", "clock_gettime"} {
		if _, ok := funcs[name]; !ok {
			t.Errorf("no %s among %v", name, funcs)
		}
	}
	if funcs["clock_gettime"] != funcs["__vdso_clock_gettime"] {
		t.Errorf("clock_gettime at %#x, __vdso_clock_gettime at %#x", funcs["clock_gettime"], funcs["__vdso_clock_gettime"])
	}
}

func TestProxyJumps(t *testing.T) {
	v, base := ownVdso(t)
	funcs, _ := Funcs(v)
	for _, cur := range []uint64{base + 0x12345000, base - 0x40000000} {
		p, err := Proxy(v, v, base, cur)
		if err != nil {
			t.Fatal(err)
		}
		patched := map[uint64]bool{}
		for name, off := range funcs {
			if p[off] != 0xe9 {
				t.Fatalf("%s: no jump at %#x", name, off)
			}
			rel := int32(binary.LittleEndian.Uint32(p[off+1:]))
			if to := base + off + jumpSize + uint64(int64(rel)); to != cur+off {
				t.Errorf("%s jumps to %#x, want %#x", name, to, cur+off)
			}
			patched[off] = true
		}
		for i := range p {
			inJump := false
			for off := range patched {
				if uint64(i) >= off && uint64(i) < off+jumpSize {
					inJump = true
				}
			}
			if !inJump && p[i] != v[i] {
				t.Fatalf("byte %#x changed outside the jumps", i)
			}
		}
	}
}

func TestProxyRefuses(t *testing.T) {
	v, base := ownVdso(t)
	if _, err := Proxy(v, v, base, base+0x90000000); err == nil || !strings.Contains(err.Error(), "too far") {
		t.Errorf("far vDSO: %v", err)
	}
	if _, err := Proxy(v, make([]byte, len(v)), base, base+0x100000); err == nil || !strings.Contains(err.Error(), "this kernel's vDSO") {
		t.Errorf("no ELF: %v", err)
	}
	// A kernel whose vDSO lacks __vdso_getcpu (its name spelled otherwise).
	lacking := bytes.Clone(v)
	i := bytes.Index(lacking, []byte("__vdso_getcpu\x00"))
	if i < 0 {
		t.Fatal("no __vdso_getcpu in the vDSO's strings")
	}
	lacking[i+len("__vdso_getcp")] = 'X'
	_, err := Proxy(v, lacking, base, base+0x100000)
	if err == nil || !strings.Contains(err.Error(), `lacks "__vdso_getcpu"`) {
		t.Errorf("lacking __vdso_getcpu: %v", err)
	}
}
