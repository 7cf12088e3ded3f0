// Package fetchcmd is the command line of procs-fetch, which writes an
// image kept by procs-serve to stdout.
package fetchcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pborman/getopt/v2"
	"golang.org/x/sys/unix"

	"procs/pkg/client"
)

// Version is stamped at build time.
var Version = "devel"

// Usage is printed by -h and repeated in man/procs-fetch.1.
const Usage = `Usage: procs-fetch [-s SERVER] [--token-file FILE] [--delete] [-o FILE] [-v] ID|next
       procs-fetch -h | --version

Write the image ID kept by procs-serve to stdout; "next" waits for the
next image to arrive.

  -s, --server HOST[:PORT]  the server (default $PROCS_SERVER, else
                            127.0.0.1:7627); https://HOST[:PORT] for TLS
      --token-file FILE     token for the server (default
                            $PROCS_TOKEN_FILE, else $PROCS_TOKEN)
      --delete              remove the image from the server once it is
                            completely written
  -o, --output FILE         write to FILE instead of stdout
  -v, --verbose             say what is fetched on stderr
  -h, --help                print this help and exit
      --version             print the version and exit
`

// Main runs procs-fetch with args (args[0] is the program name) and
// returns the exit status: 0 done, 1 error, 2 usage.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	p := printer{prog: "procs-fetch", w: stderr}
	set := getopt.New()
	srvFlag := set.StringLong("server", 's', "")
	tokenFile := set.StringLong("token-file", 0, "")
	del := set.BoolLong("delete", 0)
	output := set.StringLong("output", 'o', "")
	verbose := set.BoolLong("verbose", 'v')
	help := set.BoolLong("help", 'h')
	version := set.BoolLong("version", 0)
	if err := set.Getopt(args, nil); err != nil {
		p.printf("%v", err)
		p.printf("hint: see procs-fetch -h")
		return 2
	}
	switch {
	case *help:
		fmt.Fprint(stdout, Usage)
		return 0
	case *version:
		fmt.Fprintln(stdout, "procs-fetch", Version)
		return 0
	case set.NArgs() != 1:
		p.printf("want one ID or next")
		p.printf("hint: see procs-fetch -h")
		return 2
	}
	id := set.Arg(0)
	if *output == "" && isTerminal(stdout) {
		p.printf("refusing to write an image to a terminal")
		p.printf("hint: redirect stdout or use -o FILE")
		return 1
	}
	token, err := client.LoadToken(*tokenFile)
	if err != nil {
		p.printf("%v", err)
		return 1
	}
	c, err := client.New(client.ServerAddr(*srvFlag), token)
	if err != nil {
		p.printf("%v", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	signal.Ignore(syscall.SIGPIPE) // a closed stdout is an error, not a death
	if err := fetch(ctx, c, id, *output, *del, stdout, func(format string, args ...any) {
		if *verbose {
			p.printf(format, args...)
		}
	}); err != nil {
		p.printf("%v", err)
		return 1
	}
	return 0
}

func fetch(ctx context.Context, c *client.Client, id, output string, del bool, stdout *os.File, logf func(string, ...any)) error {
	if id == "next" {
		logf("waiting for the next image on %s", c.Server())
		e, err := c.Next(ctx, "")
		if err != nil {
			return err
		}
		id = e.ID
		logf("%s arrived: %s, pid %d, from %s, %d bytes", e.ID, e.Comm, e.PID, e.Origin, e.Size)
	}
	body, err := c.Fetch(ctx, id)
	if err != nil {
		return err
	}
	defer body.Close()
	if output != "" {
		err = writeFileAtomic(output, body)
	} else {
		_, err = io.Copy(stdout, body)
		if err == nil {
			// Make a file on stdout durable before --delete; pipes and
			// terminals say EINVAL.
			if serr := stdout.Sync(); serr != nil && !errors.Is(serr, syscall.EINVAL) && del {
				err = serr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	logf("wrote %s", id)
	if del {
		if err := c.Delete(ctx, id); err != nil {
			return err
		}
		logf("deleted %s", id)
	}
	return nil
}

// writeFileAtomic writes r to name through a temporary file in the same
// directory, so that name appears only whole; nothing is left on error.
func writeFileAtomic(name string, r io.Reader) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// printer writes messages on stderr as "procs-fetch: message".
// TODO(merge): replace with the shared printer of package cli.
type printer struct {
	prog string
	w    *os.File
}

func (p printer) printf(format string, args ...any) {
	fmt.Fprintf(p.w, p.prog+": "+format+"\n", args...)
}
