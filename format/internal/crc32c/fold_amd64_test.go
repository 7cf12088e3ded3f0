package crc32c

import (
	"os"
	"strings"
	"testing"
)

// TestHaveFold checks the CPU detection against the flags Linux shows.
func TestHaveFold(t *testing.T) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	var flags map[string]bool
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = map[string]bool{}
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	want := flags["avx512f"] && flags["vpclmulqdq"] && flags["pclmulqdq"] && flags["sse4_2"]
	if haveFold != want {
		t.Errorf("haveFold = %v; /proc/cpuinfo says %v", haveFold, want)
	}
}
