// Command procs-fetch: see man/procs-fetch.1.
package main

import (
	"os"

	"procs/pkg/cli/fetchcmd"
)

func main() {
	os.Exit(fetchcmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
