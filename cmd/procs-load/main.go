// Command procs-load restores a process from an image and runs it. See
// man/procs-load.1 and procs/pkg/cli/loadcmd.
package main

import (
	"os"

	"procs/pkg/cli/loadcmd"
)

func main() {
	os.Exit(loadcmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
