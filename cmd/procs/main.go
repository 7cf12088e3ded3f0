// Command procs: see man/procs.1.
package main

import (
	"os"

	"procs/pkg/cli/procscmd"
	"procs/pkg/files"
)

func main() {
	if files.IsHolder() {
		os.Exit(files.RunHolder())
	}
	os.Exit(procscmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
