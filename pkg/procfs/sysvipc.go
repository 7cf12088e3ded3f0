package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// IPCObject is one line of /proc/sysvipc/shm, sem or msg: each column
// by its header's name ("key", "shmid", "perms", "nattch"...), as a
// number (perms in octal, the rest in decimal).
type IPCObject map[string]int64

// SysvIPC lists the System V IPC objects of kind ("shm", "sem" or "msg")
// of the IPC namespace of the calling thread (the one it is in when it
// opens the file).
func SysvIPC(kind string) ([]IPCObject, error) {
	b, err := os.ReadFile("/proc/sysvipc/" + kind)
	if err != nil {
		return nil, err
	}
	return ParseSysvIPC(kind, b)
}

// ParseSysvIPC parses b, the contents of /proc/sysvipc/kind.
func ParseSysvIPC(kind string, b []byte) ([]IPCObject, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	head := strings.Fields(lines[0])
	var objs []IPCObject
	for _, l := range lines[1:] {
		fs := strings.Fields(l)
		if len(fs) < len(head) {
			return nil, fmt.Errorf("/proc/sysvipc/%s: line %q", kind, l)
		}
		o := IPCObject{}
		for i, h := range head {
			base := 10
			if h == "perms" {
				base = 8
			}
			v, err := strconv.ParseInt(fs[i], base, 64)
			if err != nil {
				if u, uerr := strconv.ParseUint(fs[i], base, 64); uerr == nil {
					v, err = int64(u), nil
				}
			}
			if err != nil {
				return nil, fmt.Errorf("/proc/sysvipc/%s: %s %q", kind, h, fs[i])
			}
			o[h] = v
		}
		objs = append(objs, o)
	}
	return objs, nil
}
