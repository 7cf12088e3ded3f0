// Command bench-floor runs one of the bench's floors (package floor) as
// a process of its own, so that a floor pays for starting a process as
// procs-dump and procs-load do. The bench builds it static, as procs's
// commands are, and runs it:
//
//	bench-floor dump PID ADDR LEN CHUNK >SINK
//	bench-floor load IMAGE SIZE CHUNK
//
// ADDR is hexadecimal; LEN, SIZE and CHUNK are bytes.
package main

import (
	"fmt"
	"os"
	"strconv"

	"procs/tests/bench/floor"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "bench-floor: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	num := func(s string, base int) int64 {
		n, err := strconv.ParseInt(s, base, 64)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bench-floor: bad number %q\n", s)
			os.Exit(2)
		}
		return n
	}
	switch {
	case len(args) == 5 && args[0] == "dump":
		return floor.Dump(int(num(args[1], 10)), uintptr(num(args[2], 16)), int(num(args[3], 10)), int(num(args[4], 10)), os.Stdout)
	case len(args) == 4 && args[0] == "load":
		return floor.Load(args[1], num(args[2], 10), int(num(args[3], 10)))
	}
	fmt.Fprintln(os.Stderr, "usage: bench-floor dump PID ADDR LEN CHUNK >SINK | bench-floor load IMAGE SIZE CHUNK")
	os.Exit(2)
	return nil
}
