// Command procs-serve: see man/procs-serve.8.
package main

import (
	"os"

	"procs/pkg/cli/servecmd"
)

func main() {
	os.Exit(servecmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
