// Command procs-dump writes an image of a running process. See
// man/procs-dump.1 and procs/pkg/cli/dumpcmd.
package main

import (
	"os"

	"procs/pkg/cli/dumpcmd"
	"procs/pkg/files"
)

func main() {
	if files.IsHolder() {
		os.Exit(files.RunHolder())
	}
	os.Exit(dumpcmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
