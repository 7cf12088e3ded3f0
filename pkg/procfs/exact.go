package procfs

import (
	"strconv"
)

// OomScoreAdj returns /proc/PID/oom_score_adj.
func OomScoreAdj(pid int) (int, error) {
	path := pidPath(pid, "oom_score_adj")
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(string(trimSpace(b)))
	if err != nil || v < -1000 || v > 1000 {
		return 0, parseError(path, b)
	}
	return v, nil
}
