// Command gov is a Go victim for round-trip tests: 100 goroutines that
// count, a ticker, allocation churn and periodic runtime.GC. Every tick
// (100 ms) it prints
//
//	go N goroutines=M gc=K sumok=1 aliveok=1
//
// where M is runtime.NumGoroutine, K the number of completed GC cycles,
// sumok says a map and a slice built at start still have their checksum,
// and aliveok says every counting goroutine moved since the last tick but
// one (a tick right after a restore may come before they ran).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

const workers = 100

func checksum(m map[int]uint64, s []uint64) uint64 {
	var sum uint64
	for k, v := range m {
		sum += uint64(k)*31 + v
	}
	for i, v := range s {
		sum ^= v * uint64(i+1)
	}
	return sum
}

func main() {
	m := make(map[int]uint64)
	s := make([]uint64, 1<<16)
	for i := range 10000 {
		m[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	for i := range s {
		s[i] = uint64(i) ^ 0xdeadbeef
	}
	want := checksum(m, s)

	var counts [workers]atomic.Int64
	for i := range workers {
		go func() {
			var keep [][]byte
			for {
				time.Sleep(10 * time.Millisecond)
				counts[i].Add(1)
				keep = append(keep, make([]byte, 4096))
				if len(keep) > 16 {
					keep = keep[:0]
				}
			}
		}()
	}

	fmt.Fprintf(os.Stdout, "start 0 pid=%d\n", os.Getpid())
	var last, prev [workers]int64
	tick := time.NewTicker(100 * time.Millisecond)
	for n := 1; ; n++ {
		<-tick.C
		if n%5 == 0 {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		alive, aliveBefore := true, true
		for i := range workers {
			c := counts[i].Load()
			if c == last[i] {
				alive = false
			}
			if c == prev[i] {
				aliveBefore = false
			}
			prev[i], last[i] = last[i], c
		}
		fmt.Fprintf(os.Stdout, "go %d goroutines=%d gc=%d sumok=%d aliveok=%d\n",
			n, runtime.NumGoroutine(), ms.NumGC, b2i(checksum(m, s) == want), b2i(alive || aliveBefore || n < 3))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
