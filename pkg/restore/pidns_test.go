package restore

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"procs/format"
)

func TestIDList(t *testing.T) {
	many := make([]int, 20)
	for i := range many {
		many[i] = 100 + i
	}
	for _, tc := range []struct {
		ids  []int
		want string
	}{
		{[]int{4242}, "PID 4242 is"},
		{[]int{4242, 4250}, "PIDs 4242 and 4250 are"},
		{[]int{1, 2, 3}, "PIDs 1, 2 and 3 are"},
		{many, "PIDs 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115 and 4 more are"},
	} {
		if got := idList(tc.ids); got != tc.want {
			t.Errorf("idList(%v) = %q; want %q", tc.ids, got, tc.want)
		}
	}
}

// TestTakenIDs: this process's PID, and a thread id of it, are taken;
// an id above every one given (pid_max) is not.
func TestTakenIDs(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skip(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	tasks, _ := os.ReadDir("/proc/self/task")
	tid, _ := strconv.Atoi(tasks[len(tasks)-1].Name())
	imgs := []format.Process{
		{PID: max, Threads: []format.Thread{{TID: max}}},
		{PID: os.Getpid(), Threads: []format.Thread{{TID: os.Getpid()}, {TID: tid}}},
	}
	want := slices.Compact(slices.Sorted(slices.Values([]int{os.Getpid(), tid})))
	if got := takenIDs(imgs); !slices.Equal(got, want) {
		t.Errorf("takenIDs = %v; want %v", got, want)
	}
	if got := aboveMax(imgs); !strings.Contains(got, strconv.Itoa(max)) {
		t.Errorf("aboveMax = %q; want it to name %d", got, max)
	}
}
