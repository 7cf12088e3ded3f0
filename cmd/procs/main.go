// Command procs: see man/procs.1.
package main

import (
	"os"

	"procs/pkg/cli/procscmd"
)

func main() {
	os.Exit(procscmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
