// Command bench-floor runs one of the bench's floors (package floor) as
// a process of its own, so that a floor pays for starting a process as
// procs-dump and procs-load do. The bench builds it static, as procs's
// commands are, and runs it:
//
//	bench-floor dump CHUNK RANGE... >SINK
//	bench-floor load IMAGE SIZE CHUNK
//
// A RANGE is PID:ADDR:LEN, or PID:ADDR:LEN:shared for memory shared
// copy-on-write (see floor.Range); dump reads them in turn (the
// processes of a tree). ADDR is hexadecimal; LEN, SIZE and CHUNK are
// bytes.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

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
	case len(args) >= 3 && args[0] == "dump":
		var ranges []floor.Range
		for _, a := range args[2:] {
			f := strings.Split(a, ":")
			if len(f) < 3 || len(f) > 4 || len(f) == 4 && f[3] != "shared" {
				fmt.Fprintf(os.Stderr, "bench-floor: bad range %q\n", a)
				os.Exit(2)
			}
			ranges = append(ranges, floor.Range{PID: int(num(f[0], 10)), Addr: uintptr(num(f[1], 16)), Len: int(num(f[2], 10)), Shared: len(f) == 4})
		}
		return floor.Dump(ranges, int(num(args[1], 10)), os.Stdout)
	case len(args) == 4 && args[0] == "load":
		return floor.Load(args[1], num(args[2], 10), int(num(args[3], 10)))
	}
	fmt.Fprintln(os.Stderr, "usage: bench-floor dump CHUNK PID:ADDR:LEN[:shared]... >SINK | bench-floor load IMAGE SIZE CHUNK")
	os.Exit(2)
	return nil
}
