// Package fetchcmd is the command line of procs-fetch, which writes an
// image kept by procs-serve to stdout. cmd/procs-fetch calls Main.
package fetchcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/pkg/api"
	"procs/pkg/cli"
	"procs/pkg/client"
	"procs/pkg/safetext"
)

// Usage is printed by -h and repeated in man/procs-fetch.1.
const Usage = `usage: procs-fetch [-s SERVER] [--token-file=FILE] [--delete] [-o FILE]
                   [--trust-uploaded] [-v] ID|next
       procs-fetch -h | --version

Write the image ID kept by procs-serve to stdout (or FILE); "next" waits
for the next image to arrive.

  -s, --server=HOST[:PORT]  the server (default $PROCS_SERVER, else
                            127.0.0.1:7627); https://HOST[:PORT] for TLS
      --token-file=FILE     token for the server (default
                            $PROCS_TOKEN_FILE, else $PROCS_TOKEN)
      --delete              take the image for this receiver alone (a
                            claim), and remove it from the server once
                            it is completely written
  -o, --output=FILE         write to FILE instead of stdout ("-" is
                            stdout); FILE appears only once complete
      --trust-uploaded      write the image even if it runs with
                            credentials that its uploader could not
                            grant (refused otherwise)
  -v, --verbose             say what is fetched on stderr
  -h, --help                print this help and exit
      --version             print the version and exit

Exit status: 0 done, 1 failed (no such image, server unreachable, token
refused, write error), 2 usage error (also: stdout is a terminal).
`

const prog = "procs-fetch"

type options struct {
	server, tokenFile, output, id string
	del, trust                    bool
	cli.Flags
}

func parse(args []string) (options, error) {
	var o options
	set := getopt.New()
	set.FlagLong(&o.server, "server", 's')
	set.FlagLong(&o.tokenFile, "token-file", 0)
	set.FlagLong(&o.del, "delete", 0)
	set.FlagLong(&o.output, "output", 'o')
	set.FlagLong(&o.trust, "trust-uploaded", 0)
	o.Register(set)
	ops, err := cli.Parse(set, args)
	switch {
	case err != nil || o.Help || o.Version:
		return o, err
	case len(ops) == 0:
		return o, cli.Usagef("missing ID (or next)")
	case len(ops) > 1:
		return o, cli.Usagef("too many arguments: %q", ops[1:])
	case set.IsSet("output") && o.output == "":
		return o, cli.Usagef("empty file name for --output")
	case set.IsSet("server") && o.server == "":
		return o, cli.Usagef("empty server address for --server")
	}
	o.id = ops[0]
	return o, nil
}

// Main runs procs-fetch with args (args[0] is the program name) and
// returns its exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	msg := cli.NewMsg(prog, stderr)
	o, err := parse(args)
	cli.IgnoreSIGPIPE()
	if code, done := cli.Preamble(msg, stdout, Usage, o.Flags, err, cli.ExitUsage); done {
		return code
	}
	out, err := cli.OpenOutput(o.output, stdout)
	if err != nil {
		msg.Error(err)
		if errors.Is(err, cli.ErrTerminal) {
			return cli.ExitUsage
		}
		return cli.ExitFailure
	}
	defer out.Close() // removes a partial file unless committed
	token, err := client.LoadToken(o.tokenFile)
	if err != nil {
		msg.Error(err)
		return cli.ExitFailure
	}
	c, err := client.New(client.ServerAddr(o.server), token)
	if err != nil {
		msg.Error(err)
		return cli.ExitUsage
	}
	c.TrustUploaded = o.trust
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := fetch(ctx, c, o, out, msg); err != nil {
		out.Abort()
		if ctx.Err() != nil {
			err = errors.New("interrupted by a signal")
		}
		if errors.As(err, new(*client.UntrustedError)) {
			err = cli.WithHint(err, "pass --trust-uploaded to write it anyway")
		}
		msg.Error(err)
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// fetch writes image o.id (or the next to arrive) to out and commits out
// (synced, renamed into place). With --delete it claims the image first,
// so that no other receiver gets it too, and commits the claim (the image
// is removed) only once out is committed; on failure it releases it.
func fetch(ctx context.Context, c *client.Client, o options, out *cli.Output, msg *cli.Msg) error {
	id := o.id
	var (
		body  io.ReadCloser
		token string
		err   error
	)
	if id == "next" {
		msg.Logf("waiting for the next image on %s", c.Server())
		var e api.Entry
		if o.del {
			e, body, token, err = c.ClaimNext(ctx, 0, func(e api.Entry) {
				msg.Logf("%s was taken by another receiver; waiting for the next image", e.ID)
			})
		} else {
			e, err = c.Next(ctx, "")
		}
		if err != nil {
			return err
		}
		id = e.ID
		msg.Logf("%s arrived: %s, pid %d, from %s, %s", e.ID, safetext.Clean(e.Comm, 64), e.PID, safetext.Clean(e.Origin, 64), cli.FormatBytes(e.Size))
	}
	switch {
	case body != nil:
	case o.del:
		body, token, err = c.Claim(ctx, id, 0)
	default:
		body, err = c.Fetch(ctx, id)
	}
	if err != nil {
		return err
	}
	n, err := io.Copy(out, body)
	body.Close()
	if err != nil {
		err = fmt.Errorf("image %s: %w", id, err)
	} else {
		err = out.Commit()
	}
	if err != nil {
		if token != "" {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if rerr := c.Release(rctx, id, token); rerr == nil {
				msg.Logf("released %s: it stays on the server", id)
			}
		}
		return err
	}
	msg.Logf("wrote %s: %s", id, cli.FormatBytes(n))
	if o.del {
		if err := c.Commit(ctx, id, token); err != nil {
			return err
		}
		msg.Logf("deleted %s", id)
	}
	return nil
}
